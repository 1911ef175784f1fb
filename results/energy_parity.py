"""Energy to parity (issue 13): for each conversion path, the best IF row and the best MBIF row at the
first T where each comes within 1 point of its own ANN, with its operation counts and energy.

Usage: python results/energy_parity.py [OUT] [PATH=COSTS_FOLDER ...]
  default OUT: results/cifar10/energy_to_parity (writes OUT.md and OUT.csv, through a temporary file
  and a rename); default paths (CIFAR-10 VGG-16 x0.25, 1,000-image test subset):
    relu=results/cifar10/vgg16-relu/costs           calibrated ReLU ANN (percentile:99.9)
    qcfs-cap=results/cifar10/vgg16-qcfs-cap/costs   QCFS(L=4) ANN, neurons capped at theta
    matched=results/cifar10/vgg16-matched-mbif/costs matched(1+3) ANN
Each folder is a costs sweep (results/sweep_runs.sh ...-costs): its sweep_ops.csv gives accuracy,
events, bit-plane ACs and energy per image at each T; its sweep.csv gives the ANN's accuracy on the
same images. Values are copied unchanged; this script only picks rows.

"Best" row of a kind (IF: neuron "IF"; MBIF: every other neuron): the one that reaches parity
(accuracy >= ANN - 1 point) at the smallest T; ties go to the lower bit-plane energy. A kind with no
row at parity by the largest T swept is listed with "not reached" and its most accurate row at that T.
A bad argument or a missing file exits 2 with one line.
"""

import os
import sys

import pandas as pd

from ann2snn.plumbing.checkpoint import atomic_write_text

PARITY_POINTS = 1.0
DEFAULT_PATHS = {
    "relu": "results/cifar10/vgg16-relu/costs",
    "qcfs-cap": "results/cifar10/vgg16-qcfs-cap/costs",
    "matched": "results/cifar10/vgg16-matched-mbif/costs",
}
COLUMNS = ["path", "neuron", "v_init", "T_parity", "T", "accuracy", "ann_accuracy", "events", "bit_acs",
           "energy_snn_uj", "energy_snn_bitplane_uj", "energy_ann_uj"]


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def best_rows(path, folder):
    """The best IF and the best MBIF row of one costs sweep, as dicts with COLUMNS."""
    ops_file, acc_file = os.path.join(folder, "sweep_ops.csv"), os.path.join(folder, "sweep.csv")
    for f in (ops_file, acc_file):
        if not os.path.exists(f):
            fail(f"{f} not found; run the costs sweep first (results/sweep_runs.sh cifar10-ARCH-...-costs)")
    ops, acc = pd.read_csv(ops_file), pd.read_csv(acc_file)
    ann = acc["ANN"].unique()
    if len(ann) != 1:
        fail(f"{acc_file} holds more than one ANN accuracy ({list(ann)}); one costs sweep per folder")
    ann = float(ann[0])
    out = []
    for kind, rows in (("IF", ops[ops.neuron == "IF"]), ("MBIF", ops[ops.neuron != "IF"])):
        if rows.empty:
            continue
        candidates = []
        for (neuron, v_init), r in rows.groupby(["neuron", "v_init"], sort=False):
            r = r.sort_values("T")
            hit = r[(r.accuracy - ann).round(6) >= -PARITY_POINTS]   # accuracies are multiples of 100/images
            if len(hit):
                row, t_parity = hit.iloc[0], int(hit.iloc[0]["T"])
                candidates.append((0, t_parity, float(row.energy_snn_bitplane_uj), row, str(t_parity)))
            else:
                row = r.iloc[-1]
                candidates.append((1, 0, -float(row.accuracy), row, f"not reached by T={int(row['T'])}"))
        _, _, _, row, t_parity = min(candidates, key=lambda c: c[:3])
        out.append({"path": path, "neuron": row.neuron, "v_init": row.v_init, "T_parity": t_parity,
                    "T": int(row["T"]), "accuracy": float(row.accuracy), "ann_accuracy": ann,
                    "events": float(row.events), "bit_acs": float(row.bit_acs),
                    "energy_snn_uj": float(row.energy_snn_uj),
                    "energy_snn_bitplane_uj": float(row.energy_snn_bitplane_uj),
                    "energy_ann_uj": float(row.energy_ann_uj)})
    return out


def main(argv):
    out, paths = "results/cifar10/energy_to_parity", {}
    for a in argv:
        if "=" in a:
            name, folder = a.split("=", 1)
            if not name or not folder:
                fail(f"bad PATH=FOLDER argument '{a}'")
            paths[name] = folder
        elif a.startswith("-"):
            fail(f"unknown option '{a}'; usage: python results/energy_parity.py [OUT] [PATH=COSTS_FOLDER ...]")
        else:
            out = a
    paths = paths or DEFAULT_PATHS
    table = pd.DataFrame([r for name, folder in paths.items() for r in best_rows(name, folder)], columns=COLUMNS)
    sources = ", ".join(f"{n}={f}" for n, f in paths.items())
    cmd = "python results/energy_parity.py" + "".join(f" {a}" for a in argv)
    text = (f"Energy to parity: the best IF and the best MBIF row of each conversion path at the first T where it "
            f"comes within {PARITY_POINTS:g} point of its own ANN (accuracy in % on the costs sweep's test images; "
            "events, bit-plane ACs and energy per image; 0.9 pJ/AC, 4.6 pJ/MAC, first-layer MACs on the analog "
            "input at every step).\n\n"
            + table.to_markdown(index=False, floatfmt=".4g")
            + f"\n\nRows copied from sweep_ops.csv (ANN accuracy from sweep.csv) of: {sources}; by `{cmd}`.\n")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    atomic_write_text(out + ".csv", table.to_csv(index=False))
    atomic_write_text(out + ".md", text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
