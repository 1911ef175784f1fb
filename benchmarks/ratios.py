"""Speed and memory ratios, each measured within this one run.

Usage: cd benchmarks && python ratios.py [--out ../results/benchmarks/cpu.md] [--arch vgg16 --width 0.25]
       [--device cuda] [--no-spikingjelly]

  step          one SNN step / one forward of the same network with ReLU, T = 32 steps     (target <= 1.1)
                plain step, fused step (--fuse), fused + channels_last (--channels-last, against a
                channels_last ReLU net)
  sweep         one sweep over T = {4, 16, 64, 128} / one 128-step simulation            (target <= 1.05)
  memory        peak memory of a T=128 simulation / of a T=8 simulation                  (target <= 1.1)
  memory+count  the same with operation counting on, and counting on / off at T = 128    (target <= 1.1)
  counting      simulation with operation counting / without (and with diagnostics too)  (target <= 1.3)
  training      a QCFS training step / the same network with ReLU; plain and fused       (target <= 1.15)
  data          data pipeline images/s / model training images/s                         (target >= 10)
  SpikingJelly  our IF simulation / SpikingJelly 2.0.0's, same ReLU net, θ and images     (target <= 0.5)
                (benchmarks/spikingjelly_race.py; needs pip install -e '.[benchmark]')

Ratios, not seconds: both sides of each ratio run on the same machine in the same process (memory on
the CPU: in child processes, peak RSS; on CUDA: peak allocated GPU memory), so machine speed
cancels out. Each timing is the best of a few repeats, after a warm-up call (which also compiles
the fused step). On CUDA every timing synchronises the device. Random inputs stand in for images
(speed does not depend on pixel values) except in the SpikingJelly race, which checks agreement on
CIFAR-10 test images when ./data holds them; the data ratio uses a random uint8 array the size of
CIFAR-10's training set.
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


def peak_rss_child(arch, width, T, batch, count=False) -> float:
    """Peak resident memory (MiB) of a child process that simulates T steps (with operation counting)."""
    code = f"""
import resource, torch, sys
sys.path.insert(0, {repr(sys.path[0])})
from ratios import build, snn_of
from ann2snn.conversion.simulate import simulate_snn
torch.manual_seed(0)
snn = snn_of(build({arch!r}, {width}))
x = torch.randn({batch}, 3, 32, 32); y = torch.zeros({batch}, dtype=torch.long)
observers = []
if {count!r}:
    from ann2snn.analysis.opcount import OpCounter
    observers = [OpCounter(snn)]
simulate_snn(snn, [(x, y)], {T}, observers=observers)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vgg16")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", default=None, help="also write the table (Markdown) here")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--no-spikingjelly", action="store_true", help="skip the race against SpikingJelly")
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
    from ann2snn.conversion.simulate import set_fused
    from ann2snn.analysis.opcount import OpCounter
    from ann2snn.analysis.diagnostics import LayerDiagnostics

    relu = place(build(args.arch, args.width, "relu").eval(), dev)
    T = 32

    def per_step(model, inp, steps=T, observers=()):
        return timed(lambda: simulate_snn(model, [(inp, y)], steps, observers=list(observers)), repeat=2) / steps

    with torch.inference_mode():
        relu(x)  # warm-up (kernel selection on CUDA)
        fwd = timed(lambda: relu(x), repeat=5)
    for fuse in ("off", "on"):
        set_fused(snn, fuse, dev)
        simulate_snn(snn, [(x, y)], 2)  # warm-up (compiles the fused step)
        rows.append(("step", f"SNN step / ReLU-ANN forward, T={T}, {'fused' if fuse == 'on' else 'plain'} step",
                     per_step(snn, x) / fwd, "<= 1.1"))
    if dev.type == "cpu":
        relu_cl = relu.to(memory_format=torch.channels_last)
        snn.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            relu_cl(x)
            fwd_cl = timed(lambda: relu_cl(x), repeat=5)
        simulate_snn(snn, [(x, y)], 2)
        step_cl = per_step(snn, x)
        rows.append(("step", "SNN step / ReLU-ANN forward, fused, both channels_last", step_cl / fwd_cl, "<= 1.1"))
        rows.append(("step", "(for reference) channels_last ReLU-ANN forward / default-layout forward", fwd_cl / fwd,
                     "-"))
        snn.to(memory_format=torch.contiguous_format)
        relu.to(memory_format=torch.contiguous_format)
    set_fused(snn, "on", dev)
    chunks = {T: auto_time_chunk(snn, [(x, y)], T, dev) for T in (128,)}
    one = timed(lambda: simulate_snn(snn, [(x, y)], 128, time_chunk=chunks[128]), repeat=1)

    def sweep():  # what `ann2snn sweep --T 4,16,64,128` does: one 128-step simulation, read at 4 T
        correct, n = simulate_snn(snn, [(x, y)], 128, time_chunk=chunks[128])
        return [int(correct[T - 1]) for T in (4, 16, 64, 128)]
    rows.append(("sweep", "sweep {4,16,64,128} / one 128-step run", timed(sweep, repeat=1) / one, "<= 1.05"))

    # the cost of counting: the same fused simulation with observers
    base = per_step(snn, x)
    counter = OpCounter(snn)
    simulate_snn(snn, [(x, y)], 2, observers=[counter])  # warm-up (compiles the fused count)
    with_ops = per_step(snn, x, observers=[counter])
    diag = LayerDiagnostics(snn, [T])
    with_both = per_step(snn, x, observers=[counter, diag])
    counter.remove()
    diag.remove()
    rows.append(("counting", f"simulation with operation counting / without (fused, T={T})", with_ops / base, "<= 1.3"))
    rows.append(("counting", "simulation with counting and diagnostics / without", with_both / base, "<= 1.3"))
    set_fused(snn, "off", dev)
    plain = per_step(snn, x)
    counter = OpCounter(snn)
    plain_ops = per_step(snn, x, observers=[counter])
    counter.remove()
    rows.append(("counting", "(plain step) with operation counting / without", plain_ops / plain, "<= 1.3"))
    set_fused(snn, "on", dev)

    if dev.type == "cuda":
        peaks = {}
        for T in (8, 128):
            torch.cuda.reset_peak_memory_stats(dev)
            simulate_snn(snn, [(x, y)], T, time_chunk=1)
            peaks[T] = torch.cuda.max_memory_allocated(dev) / 2**20
        m8, m128 = peaks[8], peaks[128]
        rows.append(("memory", f"peak GPU memory T=128 / T=8 ({m128:.0f} / {m8:.0f} MiB allocated)", m128 / m8, "<= 1.1"))
    else:
        m8 = peak_rss_child(args.arch, args.width, 8, args.batch)
        m128 = peak_rss_child(args.arch, args.width, 128, args.batch)
        rows.append(("memory", f"peak RSS T=128 / T=8 ({m128:.0f} / {m8:.0f} MiB, whole process)", m128 / m8, "<= 1.1"))
        c8 = peak_rss_child(args.arch, args.width, 8, args.batch, count=True)
        c128 = peak_rss_child(args.arch, args.width, 128, args.batch, count=True)
        rows.append(("memory+count", f"with counting: peak RSS T=128 / T=8 ({c128:.0f} / {c8:.0f} MiB)", c128 / c8, "<= 1.1"))
        rows.append(("memory+count", "peak RSS at T=128: counting on / off", c128 / m128, "<= 1.1"))

    labels = torch.randint(0, 10, (args.batch,), device=dev)
    qcfs_net = place(build(args.arch, args.width).train(), dev)
    relu_net = place(build(args.arch, args.width, "relu").train(), dev)
    t_qcfs = timed(train_step(qcfs_net, x, labels), repeat=5)
    t_relu = timed(train_step(relu_net, x, labels), repeat=5)
    rows.append(("training", "QCFS training step / ReLU training step, plain activation", t_qcfs / t_relu, "<= 1.15"))
    from ann2snn.ann.activations import QuantClip
    for m in qcfs_net.modules():
        if isinstance(m, QuantClip):
            m.fused = True
    train_step(qcfs_net, x, labels)()  # warm-up (compiles forward and backward)
    t_fused = timed(train_step(qcfs_net, x, labels), repeat=5)
    rows.append(("training", "QCFS training step / ReLU training step, fused activation (--fuse)", t_fused / t_relu,
                 "<= 1.15"))

    images = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8)
    labels = torch.zeros(50000, dtype=torch.long)
    loader = CifarBatches(images, labels, DATASETS["cifar10"], 128, augment="crop-flip", shuffle=True, device=dev)

    def one_epoch_data():
        for _ in loader:
            pass
    data_ips = 50000 / timed(one_epoch_data, repeat=1)
    train_ips = args.batch / t_qcfs
    rows.append(("data", f"data images/s / training images/s ({data_ips:.0f} / {train_ips:.0f})", data_ips / train_ips,
                 ">= 10"))

    race_sj = None
    if not args.no_spikingjelly and dev.type == "cpu":
        from spikingjelly_race import race

        race_sj = race(width=args.width, T=32, batch=256, n_images=512, repeat=3,
                  data_dir=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data"))
        rows.append(("SpikingJelly", "our IF simulation / SpikingJelly's, plain step", race_sj["ours_s_plain"] / race_sj["sj_s"], "<= 0.5"))
        rows.append(("SpikingJelly", "our IF simulation / SpikingJelly's, fused step", race_sj["ours_s_fused"] / race_sj["sj_s"], "<= 0.5"))
        rows.append(("SpikingJelly", "ours fused + channels_last / SpikingJelly default layout",
                     race_sj["ours_s_fused_channels_last"] / race_sj["sj_s"], "<= 0.5"))
        rows.append(("SpikingJelly", "ours fused + channels_last / SpikingJelly also channels_last",
                     race_sj["ours_s_fused_channels_last"] / race_sj["sj_s_channels_last"], "<= 0.5"))

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    lines = [f"Ratios measured in one run: {args.arch} x{args.width}, batch {args.batch}, MBIF(1+3), "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads, device: {device}.", "",
             "| id | ratio | value | target | met |", "|---|---|---:|---|---|"]
    for rid, what, value, target in rows:
        if target == "-":
            lines.append(f"| {rid} | {what} | {value:.3f} | - | - |")
            continue
        op, bound = target.split()
        met = value <= float(bound) if op == "<=" else value >= float(bound)
        lines.append(f"| {rid} | {what} | {value:.3f} | {target} | {'yes' if met else 'no'} |")
    if race_sj is not None:
        lines += ["", f"SpikingJelly race, the same SNN on both sides: {race_sj['network']}, {race_sj['images']}, T = {race_sj['T']}, batch "
                  f"{race_sj['batch']}, {race_sj['sites']} IF sites with our θ (99.9th percentile). Predictions at T agree on "
                  f"{100 * race_sj['agree_at_T']:.1f} % of 128 images; largest logit difference {race_sj['max_rel_logit_diff']:.2e} "
                  f"of the logit scale; accuracy at T: ours {100 * race_sj['acc_ours']:.2f} %, SpikingJelly "
                  f"{100 * race_sj['acc_sj']:.2f} %. Seconds (best of 3): ours plain {race_sj['ours_s_plain']:.2f}, fused "
                  f"{race_sj['ours_s_fused']:.2f}, fused + channels_last {race_sj['ours_s_fused_channels_last']:.2f}; SpikingJelly "
                  f"{race_sj['sj_s']:.2f}, channels_last {race_sj['sj_s_channels_last']:.2f}."]
    where = os.path.relpath(os.getcwd(), os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines += ["", f"Command (from the repository's `{where}` folder): `python {' '.join(sys.argv)}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        atomic_write_text(args.out.rsplit(".", 1)[0] + ".json",
                          json.dumps({"rows": [dict(zip(("id", "ratio", "value", "target"), r)) for r in rows],
                                      "device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                                      "spikingjelly": race_sj}, indent=1))


if __name__ == "__main__":
    main()
