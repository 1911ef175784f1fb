"""Time to parity: the wall time each SNN needs to come within 1 point of its ANN, ours against
SpikingJelly 2.0.0's converter, on the same ReLU ANN and the same test images.

Usage: python benchmarks/time_to_parity.py --checkpoint RUN [--plan PLAN.json] [--images 1000] [--T-max 256]
       [--data-dir DIR] [--skip-md5] [--out FILE.md]
(needs ``pip install -e '.[benchmark]'``, which brings spikingjelly==2.0.0).

- The ANN: a ReLU network from ``train-ann --activation relu`` (``--checkpoint``); the images: the first
  ``--images`` of its test split, the same tensors on both sides.
- SpikingJelly runs its own ``Converter`` as its users would: ``RateCodingRecipe`` in its ``99.9%`` mode,
  calibrated on ``--calib-images`` training images, IF neurons with its soft reset.
- Ours: uniform MBIF(1+3) with θ the 99.9th percentile on as many training batches (``convert
  --threshold percentile:99.9``), the same with bias correction (``--correct bias``), and the planned SNN
  of ``--plan`` (``convert --plan``), where given.
- Each SNN is simulated once up to ``--T-max`` steps (the prediction at t: the argmax of the logits
  summed over steps 1..t). Its first T within 1 point of the ANN on these images, times its measured
  time per step (the simulation's wall time / ``--T-max``), is its time to parity. An SNN never within
  1 point by ``--T-max`` is reported so.
- All runs happen in this one process, one after another, on the same threads (``--threads``).
Run it on a quiet machine: a busy core makes torch many times slower, and unevenly so.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch


def first_within(curve: list[float], ann: float, points: float = 1.0) -> int | None:
    """The first T (1-based) whose accuracy is within ``points`` of ``ann`` (both in %), or None."""
    for t, acc in enumerate(curve, start=1):
        if ann - acc <= points:
            return t
    return None


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--plan", default=None)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--calib-images", type=int, default=1280)
    ap.add_argument("--T-max", dest="T_max", type=int, default=256)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--skip-md5", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter
    from spikingjelly.activation_based.ann2snn.recipes import RateCodingRecipe

    from ann2snn.ann.build import load_ann
    from ann2snn.conversion.simulate import simulate_snn
    from ann2snn.conversion.snn import calibrate_settings, convert_ann, correct_settings, neuron_settings
    from ann2snn.pipelines.plan import load_plan
    from ann2snn.conversion.plan import check_plan
    from ann2snn.conversion.neurons import MultiBitIF
    from ann2snn.plumbing.data import CifarBatches, dataset_info, default_data_dir, load_split
    from ann2snn.plumbing.splits import first_images, train_eval_batches

    data_dir = args.data_dir or default_data_dir()
    ann, ckpt = load_ann(args.checkpoint)
    config = ckpt["config"]
    if config.get("activation") != "relu":
        raise SystemExit(f"{args.checkpoint} is not a ReLU network")
    info = dataset_info(config["dataset"])
    x, y = load_split(config["dataset"], data_dir, False, False, args.skip_md5)
    test = list(CifarBatches(x[: args.images], y[: args.images], info, args.batch))
    n = sum(len(b[1]) for b in test)
    with torch.inference_mode():
        ann_acc = 100 * sum(int((ann.eval()(xb).argmax(1) == yb).sum()) for xb, yb in test) / n
    calib_batches = -(-args.calib_images // 128)

    rows = []

    def ours(label, settings, correction=None, plan=None):
        settings = calibrate_settings(ann, config, settings, "percentile:99.9", calib_batches, False, data_dir,
                                      False, args.skip_md5)
        if plan is not None:
            settings = {**settings, "site_bits": plan["site_bits"]}
        snn = convert_ann(ann, settings, note=lambda _m: None)
        if plan is not None:
            check_plan(plan, [nm for nm, m in snn.named_modules() if isinstance(m, MultiBitIF)])
        if correction:
            correct_settings(snn, config, settings, correction, 4, 1000, data_dir, False, args.skip_md5)
        (correct, total), seconds = _timed(lambda: simulate_snn(snn, test, args.T_max))
        rows.append((label, [100 * int(c) / total for c in correct], seconds))

    base = {**neuron_settings("mbif", config, 1, 3), "maxpool": "refuse"}
    ours("ours: MBIF(1+3)", base)
    ours("ours: MBIF(1+3), bias correction", base, correction="bias")
    if args.plan:
        ours("ours: planned SNN", base, plan=load_plan(args.plan))

    calib = first_images(train_eval_batches(config, data_dir, False, args.skip_md5), args.calib_images)
    sj = Converter(RateCodingRecipe(dataloader=[calib[i:i + 128] for i in range(0, len(calib), 128)], mode="99.9%",
                                    fuse_flag=False)).convert(ann.eval()).eval()

    @torch.inference_mode()
    def sj_run():
        correct = torch.zeros(args.T_max, dtype=torch.int64)
        for xb, yb in test:
            functional.reset_net(sj)
            acc = None
            for t in range(args.T_max):
                out = sj(xb)
                acc = out if acc is None else acc + out
                correct[t] += int((acc.argmax(1) == yb).sum())
        functional.reset_net(sj)
        return correct

    correct, seconds = _timed(sj_run)
    rows.append(("SpikingJelly 2.0.0 Converter (99.9%, IF)", [100 * int(c) / n for c in correct], seconds))

    lines = [f"Time to parity (within 1 point of the ANN), measured in one run: {args.checkpoint} "
             f"({config['arch']} x{config.get('width')}, {config['dataset']}), {n} test images, batch {args.batch}, "
             f"T up to {args.T_max}, torch {torch.__version__}, {args.threads} thread(s), {platform.machine()} CPU.",
             "", f"ANN on these images: {ann_acc:.2f} %", "",
             "| SNN | first T within 1 point | accuracy there (%) | s per step | time to parity (s) |",
             "|---|--:|--:|--:|--:|"]
    best = None
    for label, curve, seconds in rows:
        per_step = seconds / args.T_max
        t = first_within(curve, ann_acc)
        if t is None:
            lines.append(f"| {label} | not within {args.T_max} | {curve[-1]:.2f} at T = {args.T_max} | {per_step:.4f} | - |")
            continue
        parity = t * per_step
        lines.append(f"| {label} | {t} | {curve[t - 1]:.2f} | {per_step:.4f} | {parity:.3f} |")
        if not label.startswith("SpikingJelly") and (best is None or parity < best[1]):
            best = (label, parity)
    sj_label, sj_curve, sj_seconds = rows[-1]
    sj_t = first_within(sj_curve, ann_acc)
    lines.append("")
    if best and sj_t:
        lines.append(f"SpikingJelly's time to parity / ours (best: {best[0]}): "
                     f"{sj_t * sj_seconds / args.T_max / best[1]:.1f} (target >= 200)")
    elif best:
        lines.append(f"SpikingJelly was not within 1 point by T = {args.T_max}: its time to parity is more than "
                     f"{args.T_max * sj_seconds / args.T_max / best[1]:.1f} × ours (best: {best[0]}; target >= 200)")
    cmd = "python benchmarks/time_to_parity.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    lines += ["", f"Command: `{cmd}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
