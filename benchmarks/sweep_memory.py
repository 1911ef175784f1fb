"""Memory of a 224-px sweep, flat in T: torchvision's ResNet-18 with its spiking max-pool and operation counting.

Usage: cd benchmarks && python sweep_memory.py [--batch 8] [--T 4,32] [--diagnostics] [--out FILE.json]

  memory   peak RSS of a sweep of one batch at T = 32 / at T = 4, each in a fresh process   (target <= 1.1)

The network: ``torchvision.models.resnet18`` with random weights (ImageNet's 1000 classes), its ReLU
thresholds calibrated (``max``) on two random batches of 224-px images, converted to MBIF 1+3 with
``maxpool="spiking"`` (:class:`ann2snn.conversion.maxpool.SpikingMaxPool`). Each T runs in its own child
process: :func:`ann2snn.pipelines.sweep.sweep_model` with ``ops=True`` (the sweep's ANN-mode pass, its
:class:`~ann2snn.analysis.opcount.OpCounter`, one simulation of T steps) on one batch of random uint8
images. Two figures per child: the whole process's peak resident memory (``ru_maxrss``: Python, torch
and the model included) and the growth of the peak over the sweep alone (``VmHWM`` reset just before it,
Linux), beside the sweep's own estimate of the latter (:mod:`ann2snn.analysis.memory`, computed after
the run so as not to disturb it). Memory, not time: the machine's load does not change these figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys
import torch, torchvision
import ann2snn
from ann2snn.analysis.memory import estimate_memory
from ann2snn.pipelines.sweep import sweep_model
from ann2snn.plumbing.data import DATASETS, CifarBatches
from ann2snn.plumbing.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

T, batch, diagnostics = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
size = 224
torch.manual_seed(0)
g = torch.Generator().manual_seed(1)
calibration = [(torch.randn(2, 3, size, size, generator=g), torch.zeros(2, dtype=torch.int64)) for _ in range(2)]
snn = ann2snn.convert_model(torchvision.models.resnet18(), calibration, neuron="mbif", int_bits=1, frac_bits=3,
                            threshold="max", calib_batches=2, maxpool="spiking", example=torch.zeros(1, 3, size, size))
del calibration
images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
batches = CifarBatches(images, torch.zeros(batch, dtype=torch.int64), DATASETS["cifar10"], batch)
base = rss_bytes()
reset = reset_peak_rss()
sweep_model(snn, batches, T, T_list=[T], ops=True, diagnostics=diagnostics, input_shape=(3, size, size))
growth = peak_rss_bytes() - base if reset else None
process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
estimate = estimate_memory(snn, (3, size, size), ops=True, diagnostics=diagnostics).simulation_bytes(batch)
print(json.dumps({"T": T, "process_peak_bytes": process, "sweep_growth_bytes": growth, "estimate_bytes": estimate}))
"""


def child(T: int, batch: int, diagnostics: bool) -> dict:
    """One fresh process: the figures of a sweep of one batch at ``T`` steps (see the module docstring)."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(T), str(batch), "1" if diagnostics else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8, help="images per batch (default 8: a small machine)")
    ap.add_argument("--T", default="4,32", help="the two step counts, short,long (default 4,32)")
    ap.add_argument("--diagnostics", action="store_true", help="also gather the per-layer diagnostics")
    ap.add_argument("--out", help="also write the figures to this JSON file")
    args = ap.parse_args()
    short, long = (int(t) for t in args.T.split(","))
    runs = {T: child(T, args.batch, args.diagnostics) for T in (short, long)}
    mib = 2.0 ** 20
    a, b = runs[short], runs[long]
    rows = [("whole process, peak RSS", a["process_peak_bytes"], b["process_peak_bytes"])]
    if a["sweep_growth_bytes"] is not None:
        rows.append(("growth over the sweep", a["sweep_growth_bytes"], b["sweep_growth_bytes"]))
    what = "counting" + (" and diagnostics" if args.diagnostics else "")
    print(f"ResNet-18 (torchvision, random weights), spiking max-pool, 224 px, batch {args.batch}, MBIF 1+3, {what}")
    for name, x, y in rows:
        print(f"  {name}: T={long} {y / mib:.0f} MiB / T={short} {x / mib:.0f} MiB = {y / x:.3f}  (target <= 1.1)")
    print(f"  the sweep's estimate of the growth: {a['estimate_bytes'] / mib:.0f} MiB (the same at every T)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"batch": args.batch, "diagnostics": args.diagnostics, "runs": runs,
                       "ratio_process": b["process_peak_bytes"] / a["process_peak_bytes"],
                       "ratio_growth": (b["sweep_growth_bytes"] / a["sweep_growth_bytes"]
                                        if a["sweep_growth_bytes"] else None)}, f, indent=1)


if __name__ == "__main__":
    main()
