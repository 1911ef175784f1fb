"""Speed and memory ratios, each measured within this one run (issue 5's P1-P5).

Usage: python benchmarks/ratios.py [--out results/benchmarks/cpu.md] [--arch vgg16 --width 0.25] [--device cuda]

  P1  SNN simulation of T steps / (T x one ANN forward), at T = 8, 32, 128   (target <= 1.0)
  P2  one sweep over T = {4, 16, 64, 128} / one 128-step simulation          (target <= 1.05)
  P3  peak memory of a T=128 simulation / of a T=8 simulation                (target <= 1.1)
  P4  a QCFS training step / the same network with ReLU                      (target <= 1.15)
  P5  data pipeline images/s / model training images/s                       (target >= 10)

Ratios, not seconds: both sides of each ratio run on the same machine in the same process (P3 on
the CPU: in two child processes, peak RSS; on CUDA: peak allocated GPU memory), so machine speed
cancels out. On CUDA every timing synchronises the device before reading the clock, and P1/P2 use
the automatic time chunk (``ann2snn.conversion.simulate.auto_time_chunk``). Random inputs stand in for images
(speed does not depend on pixel values); P5 uses a random uint8 array the size of CIFAR-10's
training set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch


def sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` wall-clock timings of ``fn()`` (seconds), the device synchronised."""
    best = float("inf")
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def build(arch, width, activation="qcfs"):
    from ann2snn.ann.build import build_ann

    torch.manual_seed(0)
    return build_ann({"arch": arch, "dataset": "cifar10", "width": width, "activation": activation,
                      "lambda_init": 1.0})


def snn_of(ann, bits=(1, 3)):
    from ann2snn.conversion.snn import convert_ann

    return convert_ann(ann.eval(), {"int_bits": bits[0], "frac_bits": bits[1], "v_init": "half-lsb"})


def train_step(model, x, labels):
    """A function doing one SGD training step of ``model`` on ``(x, labels)``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def peak_rss_child(arch, width, T, batch) -> float:
    """Peak resident memory (MiB) of a child process that simulates T steps."""
    code = f"""
import resource, torch, sys
sys.path.insert(0, {repr(sys.path[0])})
from ratios import build, snn_of
from ann2snn.conversion.simulate import simulate_snn
torch.manual_seed(0)
snn = snn_of(build({arch!r}, {width}))
x = torch.randn({batch}, 3, 32, 32); y = torch.zeros({batch}, dtype=torch.long)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
simulate_snn(snn, [(x, y)], {T})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vgg16")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default=None, help="also write the table (Markdown) here")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        ap.error(f"--out {args.out}: its folder does not exist; create it first")
    from ann2snn.plumbing.checkpoint import atomic_write_text
    from ann2snn.plumbing.data import CifarBatches, DATASETS
    from ann2snn.plumbing.device import place
    from ann2snn.conversion.simulate import auto_time_chunk, simulate_snn

    dev = torch.device(args.device)

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=dev)
    y = torch.zeros(args.batch, dtype=torch.long, device=dev)
    if dev.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    ann = place(build(args.arch, args.width).eval(), dev)
    snn = place(snn_of(ann), dev)
    rows = []

    with torch.inference_mode():
        ann(x)  # warm-up (kernel selection on CUDA)
        fwd = timed(lambda: ann(x), repeat=5)
    chunks = {T: auto_time_chunk(snn, [(x, y)], T, dev) for T in (8, 32, 128)}
    for T in (8, 32, 128):
        sim = timed(lambda: simulate_snn(snn, [(x, y)], T, time_chunk=chunks[T]), repeat=1 if T == 128 else 2)
        rows.append(("P1", f"SNN {T} steps / ({T} x ANN forward), time chunk {chunks[T]}", sim / (T * fwd), "<= 1.0"))

    one = timed(lambda: simulate_snn(snn, [(x, y)], 128, time_chunk=chunks[128]), repeat=1)

    def sweep():  # what `ann2snn sweep --T 4,16,64,128` does: one 128-step simulation, read at 4 T
        correct, n = simulate_snn(snn, [(x, y)], 128, time_chunk=chunks[128])
        return [int(correct[T - 1]) for T in (4, 16, 64, 128)]
    rows.append(("P2", "sweep {4,16,64,128} / one 128-step run", timed(sweep, repeat=1) / one, "<= 1.05"))

    if dev.type == "cuda":
        peaks = {}
        for T in (8, 128):
            torch.cuda.reset_peak_memory_stats(dev)
            simulate_snn(snn, [(x, y)], T, time_chunk=chunks[8])  # one chunk length for both: memory vs T
            peaks[T] = torch.cuda.max_memory_allocated(dev) / 2**20
        m8, m128 = peaks[8], peaks[128]
        rows.append(("P3", f"peak GPU memory T=128 / T=8 ({m128:.0f} / {m8:.0f} MiB allocated)", m128 / m8, "<= 1.1"))
    else:
        m8 = peak_rss_child(args.arch, args.width, 8, args.batch)
        m128 = peak_rss_child(args.arch, args.width, 128, args.batch)
        rows.append(("P3", f"peak RSS T=128 / T=8 ({m128:.0f} / {m8:.0f} MiB, whole process)", m128 / m8, "<= 1.1"))

    labels = torch.randint(0, 10, (args.batch,), device=dev)
    qcfs_net = place(build(args.arch, args.width).train(), dev)
    relu_net = place(build(args.arch, args.width, "relu").train(), dev)
    t_qcfs = timed(train_step(qcfs_net, x, labels), repeat=5)
    t_relu = timed(train_step(relu_net, x, labels), repeat=5)
    rows.append(("P4", "QCFS training step / ReLU training step", t_qcfs / t_relu, "<= 1.15"))

    images = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8)
    labels = torch.zeros(50000, dtype=torch.long)
    loader = CifarBatches(images, labels, DATASETS["cifar10"], 128, augment="crop-flip", shuffle=True, device=dev)

    def one_epoch_data():
        for _ in loader:
            pass
    data_ips = 50000 / timed(one_epoch_data, repeat=1)
    train_ips = args.batch / t_qcfs
    rows.append(("P5", f"data images/s / training images/s ({data_ips:.0f} / {train_ips:.0f})", data_ips / train_ips,
                 ">= 10"))

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    lines = [f"Ratios measured in one run: {args.arch} x{args.width}, batch {args.batch}, MBIF(1+3), "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads, device: {device}.", "",
             "| id | ratio | value | target | met |", "|---|---|---:|---|---|"]
    for rid, what, value, target in rows:
        op, bound = target.split()
        met = value <= float(bound) if op == "<=" else value >= float(bound)
        lines.append(f"| {rid} | {what} | {value:.3f} | {target} | {'yes' if met else 'no'} |")
    where = os.path.relpath(os.getcwd(), os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines += ["", f"Command (from the repository's `{where}` folder): `python {' '.join(sys.argv)}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        atomic_write_text(args.out.rsplit(".", 1)[0] + ".json",
                          json.dumps({"rows": [dict(zip(("id", "ratio", "value", "target"), r)) for r in rows],
                                      "device": device, "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
