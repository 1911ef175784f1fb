"""Stack every results/<dataset>/*/sweep.csv into one Table-9-layout table (table.csv, table.md).

Usage: python results/combine.py results/cifar10
Rows are copied as the sweeps wrote them; nothing is recomputed or rounded again.
Both tables are written through a temporary file and a rename, so a reader never sees half a table.
"""

import glob
import os
import sys

import pandas as pd


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


folder = sys.argv[1]
parts = sorted(glob.glob(os.path.join(folder, "*", "sweep.csv")))
if not parts:
    sys.exit(f"no sweep.csv under {folder}/*/")
df = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
write_atomic(os.path.join(folder, "table.csv"), df.to_csv(index=False))
write_atomic(os.path.join(folder, "table.md"),
             "Top-1 accuracy (%) of the converted SNN at each T, and of the ANN (full test set).\n\n"
             + df.to_markdown(index=False) + "\n\nStacked by `python results/combine.py " + folder + "` from "
             + ", ".join(os.path.relpath(p, folder) for p in parts) + ".\n")
print(df.to_markdown(index=False))
