"""ANN test accuracy over seeds: the last epoch of each run, and mean ± sample std where >= 2 seeds finished.

Usage: python results/seeds.py RUNS_DIR OUT_PREFIX NAME [NAME ...]
  NAME: a run name without its seed suffix (e.g. cifar10-vgg16-qcfs); seed 0 is RUNS_DIR/NAME,
  seed S > 0 is RUNS_DIR/NAME-seedS. Reads each run's metrics.csv (written by train-ann every epoch).
  Writes OUT_PREFIX.csv and OUT_PREFIX.md. A run that has not reached its last epoch is listed as
  unfinished and left out of the mean.
"""

import glob
import os
import re
import sys

import numpy as np
import pandas as pd
import torch

runs_dir, prefix, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows, summary = [], []
for name in names:
    folders = [os.path.join(runs_dir, name)] + sorted(glob.glob(os.path.join(runs_dir, f"{name}-seed*")))
    accs = []
    for folder in folders:
        if not os.path.isfile(os.path.join(folder, "metrics.csv")):
            continue
        m = re.search(r"-seed(\d+)$", folder)
        seed = int(m.group(1)) if m else 0
        metrics = pd.read_csv(os.path.join(folder, "metrics.csv"))
        epochs = torch.load(os.path.join(folder, "checkpoint.pt"), weights_only=True)["config"]["epochs"]
        done = len(metrics) >= epochs
        acc = round(100 * float(metrics["test_acc"].iloc[-1]), 2)
        rows.append({"run": name, "seed": seed, "epochs_done": len(metrics), "epochs": epochs, "finished": done,
                     "ann_test_acc": acc})
        if done:
            accs.append(acc)
    summary.append({"run": name, "seeds_finished": len(accs),
                    "ann_acc_mean": round(float(np.mean(accs)), 2) if accs else None,
                    "ann_acc_std": round(float(np.std(accs, ddof=1)), 2) if len(accs) > 1 else None,
                    "per_seed": " / ".join(f"{a:.2f}" for a in accs)})
per_run, table = pd.DataFrame(rows), pd.DataFrame(summary)
table.to_csv(prefix + ".csv", index=False)
with open(prefix + ".md", "w") as f:
    f.write("ANN top-1 test accuracy (%) after the last epoch, per seed; mean ± sample std (ddof = 1) over the "
            "finished seeds.\n\n" + table.to_markdown(index=False) + "\n\nPer run:\n\n"
            + per_run.to_markdown(index=False) + "\n\nWritten by `python results/seeds.py "
            + " ".join(sys.argv[1:]) + "`.\n")
print(table.to_markdown(index=False))
