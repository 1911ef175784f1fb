"""The direct-training table at T = 1 on the full CIFAR-10 (results/direct/), beside the seed's Table 4.

Usage: python results/direct_table.py RUNS OUT
  RUNS: the folder of results/direct_runs.sh (RUNS_DIR), holding cifar10-resnet20-{lif,mblif21-ic,relu}
        (and cifar10-resnet20-mblif21 where it was run); OUT: e.g. results/direct.
Writes OUT/table.md and OUT/table.csv (every number read from the runs' own files: each SNN's eval-snn
accuracy.json at T = 1, 2, 4 and its metrics.csv; the ReLU ANN's metrics.csv), and copies each run's
metrics.csv to OUT/train_metrics/. A run that has not finished is listed with the epochs it reached.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pandas as pd

#: the seed's Tables 2 and 4 (MBLIF 2+1 with IC, ResNet-20, CIFAR-10): to compare with, never copied into rows
SEED_T1 = {"cifar10": 94.59, "cifar100": 75.43}
RUNS = [("cifar10-resnet20-lif", "LIF, no IC (Table 3 row 1)"),
        ("cifar10-resnet20-mblif21", "MBLIF 2+1, no IC"),
        ("cifar10-resnet20-mblif21-ic", "MBLIF 2+1 + IC (Table 3 row 6)"),
        ("cifar10-resnet20-relu", "ReLU ResNet-20 ANN (baseline)")]
EPOCHS = 20


def read_run(runs: str, name: str) -> dict | None:
    folder = os.path.join(runs, name)
    metrics_path = os.path.join(folder, "metrics.csv")
    if not os.path.exists(metrics_path):
        return None
    metrics = pd.read_csv(metrics_path)
    done = int(metrics["epoch"].max())
    row = {"run": name, "epochs_done": done, "finished": done >= EPOCHS,
           "train_acc_last": round(100 * float(metrics["train_acc"].iloc[-1]), 2),
           "hours": round(float(metrics["seconds"].sum()) / 3600, 2)}
    evaluated = os.path.join(folder, "eval", "accuracy.json")
    if name.endswith("relu"):
        row.update({"T=1": None, "T=2": None, "T=4": None, "ANN": round(100 * float(metrics["test_acc"].iloc[-1]), 2)})
    elif os.path.exists(evaluated) and row["finished"]:
        with open(evaluated) as f:
            r = json.load(f)["rows"][0]
        row.update({"T=1": r["T=1"], "T=2": r["T=2"], "T=4": r["T=4"], "ANN": None})
    else:
        row.update({"T=1": None, "T=2": None, "T=4": None, "ANN": None})
    return row


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs, out = argv
    rows = []
    os.makedirs(os.path.join(out, "train_metrics"), exist_ok=True)
    for name, label in RUNS:
        row = read_run(runs, name)
        if row is None:
            continue
        rows.append({"row": label, **row})
        shutil.copyfile(os.path.join(runs, name, "metrics.csv"), os.path.join(out, "train_metrics", f"{name}.csv"))
    df = pd.DataFrame(rows)
    df.to_csv(os.path.join(out, "table.csv"), index=False)
    text = ("Direct training on the full CIFAR-10 training set at a single time step (T = 1): ResNet-20 at width 1, "
            f"{EPOCHS} epochs, seed 0, SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 64, cosine schedule, "
            "crop-flip augmentation; each SNN evaluated on the 10,000 test images at T = 1, 2 and 4 (trained at "
            "T = 1). Top-1 accuracy in %; '-' where a row has no such number.\n\n"
            + df.astype(object).where(df.notna(), "-").to_markdown(index=False) +
            f"\n\nThe seed's Table 4 (MBLIF 2+1 + IC, ResNet-20, its own widths and a longer GPU schedule): "
            f"{SEED_T1['cifar10']} % at T = 1 on CIFAR-10, {SEED_T1['cifar100']} % on CIFAR-100.\n\n"
            f"Written by `python results/direct_table.py {runs} {out}` from the runs of `results/direct_runs.sh`.\n")
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
