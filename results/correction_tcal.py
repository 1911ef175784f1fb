"""Choosing the correction length T_cal on the held-out split (never the test set): results/correction/tcal.md.

Usage: python results/correction_tcal.py CHECKPOINT OUT [--images N] [--T-max T] [--skip-md5]
  CHECKPOINT: an ANN trained with --holdout (results/correction_runs.sh); OUT: e.g. results/correction.
For IF and MBIF(1+3) (θ the 99.9th percentile of 10 training batches for a ReLU ANN, λ otherwise) and for
each correction (none; bias and bias+potential at T_cal = 1, 2, 4, 8; 1,000 training images), the accuracy
on N held-out images (a seeded class-balanced part of the held-out split; default all) at T = 1 … T_max.
Writes OUT/tcal_<dataset>-<arch>-<activation>.md and .csv.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--T-max", dest="T_max", type=int, default=8)
    ap.add_argument("--skip-md5", action="store_true")
    args = ap.parse_args(argv)

    from ann2snn.ann.build import load_ann
    from ann2snn.conversion.simulate import simulate_snn
    from ann2snn.conversion.snn import calibrate_settings, convert_ann, correct_settings, neuron_settings
    from ann2snn.plumbing.data import default_data_dir
    from ann2snn.plumbing.splits import holdout_batches

    data_dir = default_data_dir()
    ann, ckpt = load_ann(args.checkpoint)
    config = ckpt["config"]
    threshold = "percentile:99.9" if config.get("activation") == "relu" else "lambda"
    held = list(holdout_batches(config, data_dir, skip_md5=args.skip_md5, subset=args.images))
    total = sum(len(y) for _, y in held)
    with torch.inference_mode():
        ann_acc = 100 * sum(int((ann.eval()(x).argmax(1) == y).sum()) for x, y in held) / total
    rows = []
    for neuron, bits in (("if", (1, 0)), ("mbif", (1, 3))):
        base = {**neuron_settings(neuron, config, *(None, None) if neuron == "if" else bits), "maxpool": "refuse"}
        base = calibrate_settings(ann, config, base, threshold, 10, False, data_dir, False, args.skip_md5)
        for mode, T_cal in [("none", None)] + [(m, t) for m in ("bias", "bias+potential") for t in (1, 2, 4, 8)]:
            snn = convert_ann(ann, base, note=lambda _m: None)
            if mode != "none":
                correct_settings(snn, config, base, mode, T_cal, 1000, data_dir, False, args.skip_md5)
            correct, n = simulate_snn(snn, held, args.T_max)
            row = {"neuron": "IF" if neuron == "if" else "MBIF 1+3", "correction": mode, "T_cal": T_cal or "-"}
            row.update({f"T={t}": round(100 * int(correct[t - 1]) / n, 2) for t in range(1, args.T_max + 1)})
            rows.append(row)
            print(row, flush=True)
    df = pd.DataFrame(rows)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"tcal_{config['dataset']}-{config['arch']}-{config.get('activation')}")
    df.to_csv(stem + ".csv", index=False)
    cmd = "python results/correction_tcal.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(stem + ".md", "w") as f:
        f.write(f"Accuracy (%) on {total} held-out training images (never trained on; not the test set) of "
                f"{args.checkpoint} ({config['dataset']} {config['arch']} x{config.get('width')} "
                f"{config.get('activation')}, θ: {threshold}), after correction at T_cal on 1,000 training "
                f"images. The ANN on these images: {ann_acc:.2f} %.\n\n{df.to_markdown(index=False)}\n\n"
                f"Command: `{cmd}`\n")
    print(open(stem + ".md").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
