"""Direct-training speed ratios, each measured within this one run.

Usage: cd benchmarks && python direct_ratios.py [--width 1] [--batch 64] [--out FILE.md] [--device cuda]

  step ratio (T = 1)   one train-snn optimizer step (ResNet-20, MBLIF 2+1 with the interlaminar
                       connection, T = 1) / one step of the same ResNet-20 with ReLU in place of the
                       neurons and no interlaminar connection                         (target <= 1.5)
  time scaling         the same SNN step at T = 4 / (4 × the step at T = 1)           (target <= 1.1)

Each with the plain neuron step and with the fused one (train-snn --fuse on). Ratios, not seconds:
both sides of a ratio run in this process on the same threads, so machine speed cancels out; each
timing is the best of a few repeats after warm-up steps (which also compile the fused step). Random
images stand in for CIFAR-10 (speed does not depend on pixel values). Run it on a quiet machine: a
busy core makes torch many times slower, and unevenly so.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn


def timed(fn, repeat: int = 5) -> float:
    """Best of ``repeat`` wall-clock timings of ``fn()`` in seconds (the device synchronised)."""
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One optimizer step of train-snn's recipe (SGD, momentum 0.9, weight decay 1e-4, cross-entropy)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def snn(width: float, T: int, fused: bool, device) -> nn.Module:
    from ann2snn.pipelines.train_snn import build_snn, resolve_config

    torch.manual_seed(0)
    cfg = resolve_config({"arch": "resnet20", "width": width, "T": T, "neuron": "mblif", "int_bits": 2,
                          "frac_bits": 1, "ic": True, "fuse": "on" if fused else "off"})
    return build_snn(cfg).to(device).train()


def relu_net(width: float, device) -> nn.Module:
    from ann2snn.ann.build import build_ann

    torch.manual_seed(0)
    return build_ann({"arch": "resnet20", "dataset": "cifar10", "width": width, "activation": "relu"}).to(device).train()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default=None, help="also write the table (Markdown) here")
    args = ap.parse_args()
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(dev)

    def best(model):
        step = step_fn(model, x, y)
        for _ in range(2):
            step()  # warm-up (and, for the fused step, compilation)
        return timed(step, args.repeat)

    relu = best(relu_net(args.width, dev))
    rows = []
    for fused in (False, True):
        t1 = best(snn(args.width, 1, fused, dev))
        t4 = best(snn(args.width, 4, fused, dev))
        name = "fused" if fused else "plain"
        rows.append((f"SNN step at T = 1 / ReLU ResNet-20 step ({name} neuron step)", t1 / relu, "<= 1.5"))
        rows.append((f"SNN step at T = 4 / (4 × SNN step at T = 1) ({name} neuron step)", t4 / (4 * t1), "<= 1.1"))
    lines = ["| ratio | value | target |", "|---|---|---|"] + [f"| {n} | {v:.2f} | {t} |" for n, v, t in rows]
    head = (f"ResNet-20, width {args.width:g}, batch {args.batch}, MBLIF 2+1 + IC; {args.device}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    text = head + "\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
