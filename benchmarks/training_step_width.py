"""The training-step ratio (QCFS training step / ReLU training step) at two widths, to show what limits
it on the CPU.

Usage: OMP_NUM_THREADS=1 python benchmarks/training_step_width.py
Its committed output, from when it was called benchmarks/p4_width.py: results/benchmarks/p4_width.txt.
Both sides of each ratio are timed in this one process (best of 4 steps after a warm-up).
"""

from __future__ import annotations

import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from ratios import build, timed, train_step  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    for width, batch in ((0.25, 64), (1.0, 32)):
        x, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        q = train_step(build("vgg16", width).train(), x, labels)
        r = train_step(build("vgg16", width, "relu").train(), x, labels)
        q(), r()
        tq, tr = timed(q, 4), timed(r, 4)
        print(f"vgg16 width {width}, batch {batch}: QCFS {tq:.3f} s, ReLU {tr:.3f} s, QCFS / ReLU = {tq / tr:.3f}", flush=True)


if __name__ == "__main__":
    main()
