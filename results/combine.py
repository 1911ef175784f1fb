"""Stack every results/<dataset>/*/sweep.csv into one Table-9-layout table (table.csv, table.md).

Usage: python results/combine.py results/cifar10
Rows are copied as the sweeps wrote them; nothing is recomputed or rounded again.
Both tables are written through a temporary file and a rename, so a reader never sees half a table.
"""

import glob
import json
import os
import sys

import pandas as pd

from ann2snn.plumbing.checkpoint import atomic_write_text

if len(sys.argv) != 2:
    print("usage: python results/combine.py results/DATASET", file=sys.stderr)
    sys.exit(2)
folder = sys.argv[1]
parts = sorted(glob.glob(os.path.join(folder, "*", "sweep.csv")))
if not parts:
    print(f"no sweep.csv under {folder}/*/: run results/sweep_runs.sh first", file=sys.stderr)
    sys.exit(2)
df = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
samples = sorted({r["samples"] for p in parts for r in json.load(open(p[:-3] + "json"))["rows"]})
where = "full test set" if samples == [10000] else "test images: " + ", ".join(map(str, samples))
atomic_write_text(os.path.join(folder, "table.csv"), df.to_csv(index=False))
atomic_write_text(os.path.join(folder, "table.md"),
                  f"Top-1 accuracy (%) of the converted SNN at each T, and of the ANN ({where}).\n\n"
                  + df.to_markdown(index=False) + "\n\nStacked by `python results/combine.py " + folder + "` from "
                  + ", ".join(os.path.relpath(p, folder) for p in parts) + ".\n")
print(df.to_markdown(index=False))
