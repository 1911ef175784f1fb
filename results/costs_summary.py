"""Pick the half-lsb rows at T = 1, 4, 16, 128 from both costs sweeps (results/cifar10/costs_summary.md).

Usage: python results/costs_summary.py. Values are copied from the sweep_ops.csv files unchanged.
"""

import pandas as pd

parts = ["results/cifar10/vgg16-qcfs/costs/sweep_ops.csv", "results/cifar10/vgg16-matched-mbif/costs/sweep_ops.csv"]
d = pd.concat([pd.read_csv(p) for p in parts])
d = d[(d.v_init == "half-lsb") & d["T"].isin([1, 4, 16, 128])]
cols = ["activation", "L_or_bits", "neuron", "T", "accuracy", "events", "bit_acs", "energy_snn_uj",
        "energy_snn_bitplane_uj", "energy_ann_uj"]
text = (d[cols].to_markdown(index=False, floatfmt=".4g")
        + "\n\nPer image, on a fixed class-balanced 1,000-image CIFAR-10 test subset (accuracy in % on that subset). "
        "From " + " and ".join(parts) + " by `python results/costs_summary.py`.\n")
with open("results/cifar10/costs_summary.md", "w") as f:
    f.write(text)
print(text)
