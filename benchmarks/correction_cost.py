"""What a correction costs: correcting an SNN on N images, divided by one T_cal-step simulation of those images.

Usage: python benchmarks/correction_cost.py [--checkpoint RUN] [--images 1000] [--T-cal 4] [--batch 500]
       [--threads 1] [--out FILE.md]
The network is a ReLU VGG-16 ×0.25 (``--checkpoint``: an ANN from ``train-ann --activation relu``; without it,
the same architecture at its seeded initialisation), converted to MBIF(1+3) with θ the 99.9th percentile of
its activations. Both sides in this process on the same threads, each the best of ``--repeat`` runs:
  correction   ``correct_snn`` with bias, and with bias+potential, on N images at T_cal (target <= 5)
  sweep        ``simulate_snn`` of the same N images for T_cal steps (batches of ``--batch``)
Random smooth images stand in for CIFAR-10 (speed does not depend on pixel values). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--T-cal", dest="T_cal", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import ann2snn
    from ann2snn.ann.build import build_ann, load_ann
    from ann2snn.conversion.correct import correct_snn
    from ann2snn.conversion.simulate import simulate_snn

    if args.checkpoint:
        ann, _ = load_ann(args.checkpoint)
        what = args.checkpoint
    else:
        torch.manual_seed(0)
        ann = build_ann({"arch": "vgg16", "dataset": "cifar10", "width": 0.25, "activation": "relu", "lambda_init": 1.0})
        what = "VGG-16 x0.25 ReLU at its seeded initialisation"
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.randn(args.images, 3, 4, 4, generator=g), size=32, mode="bilinear")
    calib = [(x[i:i + 128], None) for i in range(0, len(x), 128)]

    def fresh():
        return ann2snn.convert_model(ann.eval(), calibration=calib, neuron="mbif", calib_batches=len(calib))

    def best(fn):
        times = []
        for _ in range(args.repeat):
            net = fresh()
            t0 = time.perf_counter()
            fn(net)
            times.append(time.perf_counter() - t0)
        return min(times)

    batches = [(x[i:i + args.batch], torch.zeros(len(x[i:i + args.batch]), dtype=torch.long))
               for i in range(0, len(x), args.batch)]
    sweep = best(lambda net: simulate_snn(net, batches, args.T_cal))
    bias = best(lambda net: correct_snn(net, x, "bias", args.T_cal))
    both = best(lambda net: correct_snn(net, x, "bias+potential", args.T_cal))
    lines = [f"Correction cost, measured in one run: {what}, MBIF(1+3), {args.images} images, T_cal = {args.T_cal}, "
             f"torch {torch.__version__}, {args.threads} thread(s), {platform.machine()} CPU; best of {args.repeat}.",
             "", "| ratio | value | target | met |", "|---|--:|---|---|",
             f"| bias correction / one T_cal-step simulation of the same images | {bias / sweep:.2f} | <= 5 | "
             f"{'yes' if bias / sweep <= 5 else 'no'} |",
             f"| bias+potential correction / one T_cal-step simulation | {both / sweep:.2f} | <= 5 | "
             f"{'yes' if both / sweep <= 5 else 'no'} |",
             "", f"Seconds: simulation {sweep:.2f}, bias {bias:.2f}, bias+potential {both:.2f}.",
             "", "Command: `python benchmarks/correction_cost.py " + " ".join(argv if argv is not None else
                                                                              __import__("sys").argv[1:]) + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
