"""Write CIFAR-10/100 out as an image folder: ``OUT/train/<class>/NNNNN.png`` and ``OUT/val/<class>/NNNNN.png``.

A real image folder for ``dataset="imagefolder"`` (tests, examples, benchmarks), made of CIFAR's own
pixels read by :func:`ann2snn.plumbing.data.load_split`: ``train/`` from CIFAR's training split,
``val/`` from its test split. Class folders are CIFAR's class names (alphabetical in both CIFARs, so
the folder's class numbers are CIFAR's labels); ``NNNNN`` is the image's index in its CIFAR split, so
the folder lists each class's images in CIFAR's order. PNG is lossless: at the native 32 pixels the
folder holds exactly CIFAR's pixels. JPEG at a larger ``size`` (bicubic upscaling) makes a folder that
decodes like ImageNet's, for benchmarks.

    python -m ann2snn.plumbing.make_folder OUT [--data-dir DIR] [--dataset cifar10|cifar100]
        [--per-class N] [--val-per-class N] [--format png|jpeg] [--size S] [--quality Q] [--skip-md5] [--download]

The folder is written under a temporary name beside ``OUT`` and renamed at the end: an interrupted run
leaves no ``OUT``. An existing ``OUT`` is refused.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile

import torch

from ann2snn.plumbing.data import dataset_info, default_data_dir, load_split
from ann2snn.plumbing.errors import ARGUMENT, UserError

FORMATS = {"png": ".png", "jpeg": ".jpg"}


def class_names(dataset: str, data_dir: str) -> list[str]:
    """CIFAR's class names in label order, from the dataset's own meta file (as torchvision reads it).

    Raises:
        UserError: the meta file is missing or unreadable.
    """
    info = dataset_info(dataset)
    meta = info.cls.meta
    path = os.path.join(data_dir, info.folder, meta["filename"])
    try:
        with open(path, "rb") as f:
            return list(pickle.load(f, encoding="latin1")[meta["key"]])
    except (OSError, pickle.UnpicklingError, KeyError, EOFError) as e:
        raise UserError(f"cannot read {dataset}'s class names from {path} ({type(e).__name__}: {e})") from None


def _first_per_class(labels: torch.Tensor, n: int | None, num_classes: int) -> torch.Tensor:
    """Indices of the first ``n`` images of each class, in split order (all for None)."""
    if n is None:
        return torch.arange(len(labels))
    picks = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if n > len(idx):
            raise UserError(f"per class {n} is more than the {len(idx)} images of class {c}")
        picks.append(idx[:n])
    return torch.sort(torch.cat(picks)).values


def make_cifar_folder(out: str, data_dir: str | None = None, dataset: str = "cifar10", per_class: int | None = None,
                      val_per_class: int | None = None, fmt: str = "png", size: int | None = None, quality: int = 90,
                      skip_md5: bool = False, download: bool = False, progress: bool = False) -> dict:
    """Write ``dataset`` as an image folder at ``out`` (see the module's description).

    Args:
        out: the folder to create (must not exist).
        data_dir: the folder holding CIFAR's files (default ``$ANN2SNN_DATA`` or ``./data``).
        per_class, val_per_class: the first N images of each class of the training / test split, in
            CIFAR's order (None: all; ``val_per_class`` defaults to ``per_class``).
        fmt: ``png`` (lossless) or ``jpeg`` (``quality`` 1..95).
        size: side in pixels, upscaled with PIL's bicubic filter (None: CIFAR's 32).
        skip_md5, download: as :func:`ann2snn.plumbing.data.load_split`.

    Returns:
        ``{"train": images written, "val": images written, "classes": [names]}``.

    Raises:
        UserError: ``out`` exists, bad counts / format / size / quality, or missing CIFAR files.
    """
    from PIL import Image

    if fmt not in FORMATS:
        raise UserError(f"unknown image format {fmt!r}: use png or jpeg")
    for name, value in (("per_class", per_class), ("val_per_class", val_per_class), ("size", size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{name} must be a whole number >= 1, got {value!r}")
    if not (isinstance(quality, int) and 1 <= quality <= 95):
        raise UserError(f"quality must be a whole number in 1..95, got {quality!r}")
    out = os.path.abspath(os.fspath(out))
    if os.path.lexists(out):
        raise UserError(f"{out} already exists: choose a new folder")
    data_dir = default_data_dir() if data_dir is None else os.fspath(data_dir)
    val_per_class = per_class if val_per_class is None else val_per_class
    loaded = [(split, *load_split(dataset, data_dir, train, download, skip_md5), n)
              for split, train, n in (("train", True, per_class), ("val", False, val_per_class))]
    names = class_names(dataset, data_dir)
    splits = [(split, x, y, _first_per_class(y, n, len(names))) for split, x, y, n in loaded]
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(out) + ".", suffix=".partial")
    counts = {}
    try:
        for split, x, y, idx in splits:
            for name in names:
                os.makedirs(os.path.join(tmp, split, name))
            for k, i in enumerate(idx.tolist()):
                img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
                if size is not None and size != img.width:
                    img = img.resize((size, size), Image.Resampling.BICUBIC)
                path = os.path.join(tmp, split, names[int(y[i])], f"{i:05d}{FORMATS[fmt]}")
                if fmt == "png":
                    img.save(path, format="PNG")
                else:
                    img.save(path, format="JPEG", quality=quality)
                if progress and k and k % 10000 == 0:
                    print(f"{split}: {k}/{len(idx)}", file=sys.stderr)
            counts[split] = len(idx)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**counts, "classes": names}


def main(argv: list[str] | None = None) -> int:
    """``python -m ann2snn.plumbing.make_folder``: a mistake prints one line ``Error: ...`` and returns 2."""
    p = argparse.ArgumentParser(prog="python -m ann2snn.plumbing.make_folder",
                                description="Write CIFAR-10/100 out as an image folder (OUT/train/<class>/, OUT/val/<class>/).")
    p.add_argument("out", help="the folder to create")
    p.add_argument("--data-dir", default=None, help="folder holding CIFAR's files (default $ANN2SNN_DATA or ./data)")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    p.add_argument("--per-class", type=int, default=None, help="first N training images of each class (default all)")
    p.add_argument("--val-per-class", type=int, default=None, help="first N test images of each class (default --per-class)")
    p.add_argument("--format", choices=list(FORMATS), default="png")
    p.add_argument("--size", type=int, default=None, help="side in pixels (bicubic upscaling; default 32)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1..95")
    p.add_argument("--skip-md5", action="store_true", help="load CIFAR without torchvision's MD5 check")
    p.add_argument("--download", action="store_true", help="fetch CIFAR with torchvision if missing (online)")
    args = p.parse_args(argv)
    try:
        done = make_cifar_folder(args.out, args.data_dir, args.dataset, args.per_class, args.val_per_class,
                                 args.format, args.size, args.quality, args.skip_md5, args.download,
                                 progress=True)
    except UserError as e:  # the library's argument names as this command's flags
        print("Error: " + ARGUMENT.sub(lambda m: "--" + m.group(1).replace("_", "-"), str(e)), file=sys.stderr)
        return 2
    print(f"wrote {done['train']} training and {done['val']} validation images of {len(done['classes'])} classes "
          f"to {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
