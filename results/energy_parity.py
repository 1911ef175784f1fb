"""Energy to parity: for each conversion path, the best IF row and the best MBIF row at the
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

"Best" row of a kind (IF: neuron "IF"; MBIF: every other neuron), among the rows of that costs sweep:
the one that reaches parity (accuracy >= ANN - 1 point) at the smallest T; ties go to the lower
bit-plane energy. A kind with no row at parity is listed with reached = False and its most accurate
row at the largest T swept. A folder must hold one costs sweep of one ANN with one threshold mode, and
its sweep_ops.csv must agree with its sweep.csv.
A bad argument, a missing or inconsistent file, or an unwritable OUT exits 2 with one line.
"""

import os
import sys

import pandas as pd

from report import check_out_stem, fail, write_report

PARITY_POINTS = 1.0
DEFAULT_PATHS = {
    "relu": "results/cifar10/vgg16-relu/costs",
    "qcfs-cap": "results/cifar10/vgg16-qcfs-cap/costs",
    "matched": "results/cifar10/vgg16-matched-mbif/costs",
}
COLUMNS = ["path", "neuron", "v_init", "threshold", "reached", "T", "accuracy", "ann_accuracy", "events", "bit_acs",
           "energy_snn_uj", "energy_snn_bitplane_uj", "energy_ann_uj"]
USAGE = "usage: python results/energy_parity.py [OUT] [PATH=COSTS_FOLDER ...]"


def read_sweep(folder):
    """sweep_ops.csv and sweep.csv of one costs sweep, checked against each other."""
    ops_file, acc_file = os.path.join(folder, "sweep_ops.csv"), os.path.join(folder, "sweep.csv")
    for f in (ops_file, acc_file):
        if not os.path.exists(f):
            fail(f"{f} not found; run the costs sweep first (results/sweep_runs.sh cifar10-ARCH-...-costs)")
    try:
        ops, acc = pd.read_csv(ops_file), pd.read_csv(acc_file)
        ops = ops[["neuron", "v_init", "T", "accuracy", "events", "bit_acs", "energy_snn_uj",
                   "energy_snn_bitplane_uj", "energy_ann_uj"]]
        acc = acc[["neuron", "v_init", "threshold", "ANN"]].join(acc.filter(regex=r"^T=\d+$"))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError, ValueError) as e:
        fail(f"{folder} does not hold a costs sweep's sweep_ops.csv and sweep.csv ({type(e).__name__}: {e})")
    ann, thresholds = acc["ANN"].unique(), acc["threshold"].unique()
    if len(ann) != 1 or pd.isna(ann[0]):
        fail(f"{acc_file} holds {len(ann)} ANN accuracies ({list(ann)}); give one costs sweep of one ANN per folder")
    if len(thresholds) != 1:
        fail(f"{acc_file} holds several thresholds ({list(thresholds)}); sweep_ops.csv cannot tell their rows apart")
    if ops.duplicated(["neuron", "v_init", "T"]).any():
        fail(f"{ops_file} repeats a (neuron, v_init, T) row; give one costs sweep per folder")
    # sweep_ops.csv is written only when operations were counted: a later --no-ops sweep into the same folder
    # leaves an old one behind, so each accuracy must equal sweep.csv's
    wide = acc.melt(id_vars=["neuron", "v_init"], value_vars=[c for c in acc if c.startswith("T=")],
                    var_name="T", value_name="acc_table")
    wide["T"] = wide["T"].str[2:].astype(int)
    both = ops.merge(wide, on=["neuron", "v_init", "T"], how="left")
    if both["acc_table"].isna().any() or ((both["accuracy"] - both["acc_table"]).abs() > 0.051).any():
        fail(f"{ops_file} does not match {acc_file} (an operation count from another sweep?); rerun the costs sweep")
    return ops, float(ann[0]), str(thresholds[0])


def best_rows(path, folder):
    """The best IF and the best MBIF row of one costs sweep, as dicts with COLUMNS."""
    ops, ann, threshold = read_sweep(folder)
    t_max = int(ops["T"].max())
    out = []
    for rows in (ops[ops.neuron == "IF"], ops[ops.neuron != "IF"]):
        if rows.empty:
            continue
        candidates = []
        for _, r in rows.groupby(["neuron", "v_init"], sort=False):
            r = r.sort_values("T")
            hit = r[(r.accuracy - ann).round(6) >= -PARITY_POINTS]   # accuracies are multiples of 100/images
            if len(hit):
                row = hit.iloc[0]
                candidates.append(((0, int(row["T"]), float(row.energy_snn_bitplane_uj)), row, True))
            else:  # compared at the largest T every row of the sweep has
                row = r[r["T"] == t_max].iloc[0] if (r["T"] == t_max).any() else r.iloc[-1]
                candidates.append(((1, -float(row.accuracy), float(row.energy_snn_bitplane_uj)), row, False))
        _, row, reached = min(candidates, key=lambda c: c[0])
        out.append({"path": path, "neuron": row.neuron, "v_init": row.v_init, "threshold": threshold,
                    "reached": reached, "T": int(row["T"]), "accuracy": float(row.accuracy), "ann_accuracy": ann,
                    "events": float(row.events), "bit_acs": float(row.bit_acs),
                    "energy_snn_uj": float(row.energy_snn_uj),
                    "energy_snn_bitplane_uj": float(row.energy_snn_bitplane_uj),
                    "energy_ann_uj": float(row.energy_ann_uj)})
    return out


def main(argv):
    out, paths = "results/cifar10/energy_to_parity", {}
    for a in argv:
        if a.startswith("-"):
            fail(f"unknown option '{a}'; {USAGE}")
        if "=" in a:
            name, folder = a.split("=", 1)
            if not name or not folder:
                fail(f"bad PATH=FOLDER argument '{a}'; {USAGE}")
            if name in paths:
                fail(f"path '{name}' given twice; give each PATH=FOLDER once")
            paths[name] = folder
        else:
            out = a
    check_out_stem(out, "results/cifar10/energy_to_parity")
    paths = paths or DEFAULT_PATHS
    table = pd.DataFrame([r for name, folder in paths.items() for r in best_rows(name, folder)], columns=COLUMNS)
    sources = ", ".join(f"{n}={f}" for n, f in paths.items())
    cmd = "python results/energy_parity.py" + "".join(f" {a}" for a in argv)
    text = (f"Energy to parity: for each conversion path, the best IF row and the best MBIF row at the first T where "
            f"it comes within {PARITY_POINTS:g} point of its own ANN (`reached`; ties go to the lower bit-plane "
            "energy). A row that never gets there (`reached` False) is shown at the largest T swept, and the most "
            "accurate such row is shown. Only the rows of each costs sweep compete. Accuracy in % on the costs "
            "sweep's test images; events, bit-plane ACs and energy in uJ per image: `energy_snn_uj` counts one AC "
            "per synaptic event, `energy_snn_bitplane_uj` one AC per bit plane of each multi-bit spike (0.9 pJ/AC, "
            "4.6 pJ/MAC, the first layer's MACs on the analog input at every step; ann2snn/analysis/opcount.py).\n\n"
            + table.to_markdown(index=False, floatfmt=".4g")
            + f"\n\nRows copied from sweep_ops.csv (ANN accuracy from sweep.csv) of: {sources}; by `{cmd}`.\n")
    write_report(out, text, table)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
