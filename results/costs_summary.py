"""Pick the half-lsb rows at T = 1, 4, 16, 128 from one network's two CIFAR-10 costs sweeps.

Usage: python results/costs_summary.py ARCH   (e.g. vgg16, resnet18)
Reads results/cifar10/ARCH-qcfs/costs/sweep_ops.csv and results/cifar10/ARCH-matched-mbif/costs/sweep_ops.csv
and writes results/cifar10/costs_summary_ARCH.md, through a temporary file and a rename. Values are copied from the sweep_ops.csv files unchanged.
A bad argument or a missing costs sweep exits 2 with one line.
"""

import os
import sys

import pandas as pd

from ann2snn.plumbing.checkpoint import atomic_write_text

args = sys.argv[1:]
if len(args) != 1:
    print("usage: python results/costs_summary.py ARCH   (e.g. vgg16, resnet18)", file=sys.stderr)
    sys.exit(2)
arch = args[0]
parts = [f"results/cifar10/{arch}-qcfs/costs/sweep_ops.csv", f"results/cifar10/{arch}-matched-mbif/costs/sweep_ops.csv"]
missing = [p for p in parts if not os.path.exists(p)]
if missing:
    print(f"error: {missing[0]} not found; run the costs sweeps first (results/sweep_runs.sh)", file=sys.stderr)
    sys.exit(2)
d = pd.concat([pd.read_csv(p) for p in parts])
d = d[(d.v_init == "half-lsb") & d["T"].isin([1, 4, 16, 128])]
cols = ["activation", "L_or_bits", "neuron", "T", "accuracy", "events", "bit_acs", "energy_snn_uj",
        "energy_snn_bitplane_uj", "energy_ann_uj"]
text = (d[cols].to_markdown(index=False, floatfmt=".4g")
        + "\n\nPer image, on a fixed class-balanced 1,000-image CIFAR-10 test subset (accuracy in % on that subset). "
        "From " + " and ".join(parts) + f" by `python results/costs_summary.py {arch}`.\n")
atomic_write_text(f"results/cifar10/costs_summary_{arch}.md", text)
print(text)
