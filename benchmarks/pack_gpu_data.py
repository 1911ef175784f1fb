"""Pack a CIFAR-10 subset small enough to travel to a lent GPU machine (its working tree may hold
64 MiB; the full data set is 178 MB), in torchvision's own file layout.

Usage: python benchmarks/pack_gpu_data.py SRC DEST [--train 10000] [--test 5000]
  SRC holds cifar-10-batches-py/ (e.g. after `python ../shared/data/unpack_cifar.py data`).
  DEST gets cifar-10-batches-py/ with the first N training images (spread over the five batch
  files) and the first M test images. The files' MD5s are not torchvision's: load with --skip-md5.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dest")
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--test", type=int, default=5000)
    args = ap.parse_args()
    src = os.path.join(args.src, "cifar-10-batches-py")
    dest = os.path.join(args.dest, "cifar-10-batches-py")
    os.makedirs(dest, exist_ok=True)
    per_file = args.train // 5
    for name, keep in [(f"data_batch_{i}", per_file) for i in range(1, 6)] + [("test_batch", args.test)]:
        with open(os.path.join(src, name), "rb") as f:
            d = pickle.load(f, encoding="latin1")
        d = {"data": d["data"][:keep], "labels": d["labels"][:keep], "batch_label": d.get("batch_label", name)}
        with open(os.path.join(dest, name), "wb") as f:
            pickle.dump(d, f)
    shutil.copy(os.path.join(src, "batches.meta"), os.path.join(dest, "batches.meta"))
    print(f"wrote {dest}: {5 * per_file} training and {args.test} test images")


if __name__ == "__main__":
    main()
