"""How often spikes flip between batch sizes, time chunks, CPU kernel sets and thread counts.

A converted network is simulated once per setting on the same test images. Every neuron's count
k_t at every step, and the logits, are recorded per image, then compared with a reference setting
of the same precision (batch = all images, time chunk 1, the CPU's native kernels, one thread):

    settings: batch 1, batch 7, time chunk 4, ATEN_CPU_CAPABILITY=default and avx2, 2 threads
    precisions: float32 and float64

Each setting runs in its own process (the kernel set is fixed when torch starts).

Usage:
    python results/reproducibility.py --checkpoint ANN_OR_SNN [--neuron mbif:1+3] [--threshold percentile:99.99]
        [--images 32] [--T 16] [--skip-md5] --out results/reproducibility/NAME
Writes NAME/flips.csv, flips.md and flips.json (with the command, versions and CPU), each atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import pandas as pd
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = [  # name, environment, batch (None = all images), time chunk, threads
    ("reference", {}, None, 1, 1),
    ("batch 1", {}, 1, 1, 1),
    ("batch 7", {}, 7, 1, 1),
    ("time chunk 4", {}, None, 4, 1),
    ("kernels default", {"ATEN_CPU_CAPABILITY": "default"}, None, 1, 1),
    ("kernels avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, None, 1, 1),
    ("2 threads", {}, None, 1, 2),
]


def record(snn_path: str, data_dir: str, images: int, T: int, batch: int | None, chunk: int, precision: str,
           skip_md5: bool) -> dict:
    """Simulate one setting; see :func:`ann2snn.conversion.simulate.record_spike_counts`."""
    from ann2snn.conversion.simulate import record_spike_counts
    from ann2snn.conversion.snn import load_snn
    from ann2snn.pipelines.sweep import PRECISIONS, load_test_batches

    snn, ckpt = load_snn(snn_path)
    snn = snn.to(PRECISIONS[precision])
    batches = load_test_batches(ckpt["config"], data_dir, batch or images, images, False, skip_md5)
    return record_spike_counts(snn, batches, T, chunk)


def compare(ref: dict, got: dict, T_list: list[int]) -> dict:
    """Spike flips and prediction changes of ``got`` against ``ref``."""
    flips = total = 0
    first = None
    for name, k in ref["counts"].items():
        diff = k != got["counts"][name]
        flips += int(diff.sum())
        total += diff.numel()
        steps = diff.flatten(1).any(1).nonzero()
        if len(steps):
            first = int(steps[0]) + 1 if first is None else min(first, int(steps[0]) + 1)
    acc_r, acc_g = ref["logits"].double().cumsum(0), got["logits"].double().cumsum(0)
    row = {"spikes compared": total, "spikes flipped": flips, "flipped fraction": flips / total,
           "first step with a flip": first, "max |logit diff|": float((ref["logits"].double() - got["logits"].double()).abs().max())}
    for T in T_list:
        row[f"predictions changed T={T}"] = int((acc_r[T - 1].argmax(1) != acc_g[T - 1].argmax(1)).sum())
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--neuron", default="mbif:1+3")
    ap.add_argument("--v-init", default="half-lsb")
    ap.add_argument("--threshold", default="lambda")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--data-dir", default=os.environ.get("ANN2SNN_DATA", "./data"))
    ap.add_argument("--skip-md5", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--worker", nargs=5, metavar=("SNN", "BATCH", "CHUNK", "PRECISION", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        snn, batch, chunk, precision, out = args.worker
        torch.save(record(snn, args.data_dir, args.images, args.T, int(batch) or None, int(chunk), precision,
                          args.skip_md5), out)
        return 0
    if not args.out or args.images < 1 or args.T < 1:
        print("error: need --out, --images >= 1 and --T >= 1", file=sys.stderr)
        return 2
    from ann2snn.plumbing.checkpoint import atomic_write_text, load_checkpoint
    from ann2snn.conversion.snn import parse_neuron_spec
    from ann2snn.conversion.snn import convert_checkpoint
    from ann2snn.plumbing.provenance import provenance

    T_list = [t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= args.T]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        snn_path = args.checkpoint
        if load_checkpoint(args.checkpoint)["kind"] == "ann":
            snn_path = os.path.join(tmp, "snn.pt")
            cal = None
            if args.threshold != "lambda":
                cal = {"threshold": args.threshold, "calib_batches": 10, "fold_bn": False, "data_dir": args.data_dir,
                       "skip_md5": args.skip_md5}
            convert_checkpoint(args.checkpoint, {**parse_neuron_spec(args.neuron), "v_init": args.v_init}, snn_path,
                               cal)
        for precision in ("float32", "float64"):
            results = {}
            for name, env, batch, chunk, threads in SETTINGS:
                out = os.path.join(tmp, f"{precision}-{len(results)}.pt")
                cmd = [sys.executable, os.path.abspath(__file__), "--checkpoint", args.checkpoint, "--images",
                       str(args.images), "--T", str(args.T), "--data-dir", args.data_dir,
                       *(["--skip-md5"] if args.skip_md5 else []),
                       "--worker", snn_path, str(batch or 0), str(chunk), precision, out]
                environ = {**os.environ, **env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
                subprocess.run(cmd, env=environ, check=True)
                results[name] = torch.load(out, weights_only=True)
                if name != "reference":
                    row = {"precision": precision, "setting": name, **compare(results["reference"], results[name], T_list)}
                    rows.append(row)
                    print(row, flush=True)
                os.remove(out)
    df = pd.DataFrame(rows)
    prov = provenance(sys.argv[1:])
    prov["command"] = "python results/reproducibility.py " + " ".join(sys.argv[1:])
    prov["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    prov["cpu"] = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                       platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "flips.csv"), df.to_csv(index=False))
    atomic_write_text(os.path.join(args.out, "flips.json"), json.dumps({"provenance": prov, "rows": rows}, indent=1) + "\n")
    atomic_write_text(os.path.join(args.out, "flips.md"),
                      f"Spike flips against the reference (batch = all {args.images} images, time chunk 1, native "
                      f"kernels {prov['cpu_capability']}, 1 thread), {args.neuron} ({args.v_init}), T = {args.T}, "
                      f"{args.images} CIFAR test images; CPU: {prov['cpu']}.\n\n"
                      + df.to_markdown(index=False, floatfmt=".3g")
                      + f"\n\nCommand: `{prov['command']}` (commit {prov['git_commit'][:12]}).\n")
    print(df.to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
