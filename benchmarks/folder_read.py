"""Can the image-folder reader keep train-ann fed? Read rate / training rate, both measured in this one run.

Usage: cd benchmarks && python folder_read.py [--data-dir DIR] [--folder DIR] [--per-class 100] [--batch 64]
                                              [--workers auto] [--device auto] [--amp none] [--steps N] [--out FILE.md]

  read rate    images per second that FolderBatches delivers for training: JPEG decoding (PIL), RandomResizedCrop
               224 + flip in the DataLoader's worker processes (the default count unless --workers), and the
               batched normalisation on the training device; whole epochs, worker start-up included
  train rate   images per second that train-ann's step consumes: torchvision's ResNet-18 at 224 pixels as
               train-ann builds --arch torchvision:resnet18 (its default QCFS L=4 activation at every ReLU call
               site), SGD + cross-entropy as in ann2snn.ann.train.fit, on batches of the same folder already
               on the device
  ratio        read rate / train rate (target >= 3 on 2 cores: the reader is not the bottleneck)

The folder is a JPEG folder made from CIFAR-10 at 224 pixels (ann2snn.plumbing.make_folder: real pixels,
bicubic upscaling, quality 90) in a temporary folder, unless --folder names one (made before, e.g. with
``python -m ann2snn.plumbing.make_folder DIR --per-class 100 --val-per-class 1 --format jpeg --size 224``).
Making it is not timed. Run it on a quiet machine, without OMP_NUM_THREADS (the training side uses torch's
default threads, the reading side its worker processes): a busy core slows either side unevenly.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import torch
from torch import nn


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def read_rate(batches, device: torch.device, epochs: int = 2) -> tuple[float, int]:
    """Best images/second over ``epochs`` whole epochs of ``batches`` (each a new order and new crops)."""
    best, count = 0.0, 0
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        sync(device)
        t0 = time.perf_counter()
        count = 0
        for x, _ in batches:
            count += len(x)
        sync(device)
        best = max(best, count / (time.perf_counter() - t0))
    return best, count


def model_for(device: torch.device) -> tuple[nn.Module, str]:
    """ResNet-18 for 224-pixel images and 10 classes, as train-ann builds ``--arch torchvision:resnet18`` with its
    default QCFS activation (every ReLU call site a QCFS(L=4) site)."""
    from ann2snn.ann.build import build_ann
    from ann2snn.plumbing.device import place

    torch.manual_seed(0)
    model = build_ann({"arch": "torchvision:resnet18", "dataset": "imagefolder", "num_classes": 10,
                       "activation": "qcfs", "levels": 4, "lambda_init": 8.0})
    return place(model, device).train(), "ann2snn arch torchvision:resnet18, QCFS L=4"


def train_rate(model: nn.Module, data: list, device: torch.device, amp: str, steps: int, warmup: int = 2) -> float:
    """Images/second of ``steps`` training steps (after ``warmup``), cycling through ``data`` on the device."""
    from ann2snn.plumbing.device import autocast

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        x, y = data[i % len(data)]
        with autocast(device, amp):
            out = model(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(y)

    for i in range(warmup):
        step(i)
    sync(device)
    t0 = time.perf_counter()
    seen = sum(step(i) for i in range(steps))
    sync(device)
    return seen / (time.perf_counter() - t0)


def main(argv=None) -> int:
    from ann2snn.plumbing import folder as F
    from ann2snn.plumbing.data import default_data_dir
    from ann2snn.plumbing.device import resolve_device
    from ann2snn.plumbing.make_folder import make_cifar_folder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="CIFAR-10's folder (default $ANN2SNN_DATA or ./data)")
    p.add_argument("--folder", default=None, help="an image folder made before (default: made now, in a temporary folder)")
    p.add_argument("--per-class", type=int, default=100, help="training images per class of the folder made now")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", default="auto", help="decoding processes (default: FolderBatches' automatic count)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default 30 on CUDA, 3 on the CPU)")
    p.add_argument("--out", default=None, help="also write the result as Markdown here")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    steps = args.steps or (30 if device.type == "cuda" else 3)
    with tempfile.TemporaryDirectory(prefix="folder_read.") as tmp:
        root = args.folder
        if root is None:
            root = os.path.join(tmp, "cifar10-jpeg224")
            print(f"making a JPEG folder of CIFAR-10 at 224 pixels ({args.per_class} images per class) ...",
                  file=sys.stderr)
            make_cifar_folder(root, args.data_dir or default_data_dir(), per_class=args.per_class, val_per_class=1,
                              fmt="jpeg", size=224, quality=90)
        split = F.scan_split(root, F.TRAIN_SPLIT)
        workers = F.resolve_workers(args.workers)
        train = F.FolderBatches(split, args.batch, F.train_transform(224), shuffle=True, seed=0, device=device,
                                workers=workers)
        reads, images = read_rate(train, device)
        data = []
        for x, y in train:  # a few real batches, already on the device, for the training side
            data.append((x, y))
            if len(data) == 4:
                break
        model, what = model_for(device)
        trains = train_rate(model, data, device, args.amp, steps)
    ratio = reads / trains
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    lines = [
        f"# Image-folder read rate / train-ann consumption ({platform.node()}, {cores} cores, {device}"
        + (f" {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "") + ")",
        "",
        f"- folder: {root if args.folder else 'CIFAR-10 as JPEG at 224 px (made now)'}, {images} training images per epoch, "
        f"batch {args.batch}",
        f"- read: {reads:,.1f} images/s (RandomResizedCrop 224 + flip, {workers} worker process(es), best of 2 epochs)",
        f"- train: {trains:,.1f} images/s ({what}, amp {args.amp}, {steps} steps after 2 warm-up steps)",
        f"- **ratio read / train: {ratio:.2f}** (target >= 3 on 2 cores)",
        "",
        f"torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, Python {platform.python_version()}; "
        f"command: python benchmarks/folder_read.py {' '.join(sys.argv[1:] if argv is None else argv)}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
