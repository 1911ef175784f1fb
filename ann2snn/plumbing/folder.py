"""Image folders in ImageNet's layout (``ROOT/train/<class>/*.JPEG``, ``ROOT/val/<class>/*.JPEG``) as batches.

``dataset="imagefolder"`` with ``data_dir=ROOT``. The files are listed by
:class:`torchvision.datasets.ImageFolder` (classes are the sorted folder names; any extension of
``torchvision.datasets.folder.IMG_EXTENSIONS``, case-insensitive) and decoded with PIL, every mode
(grayscale, palette, CMYK, RGBA) turned into RGB by ``Image.convert("RGB")`` (alpha is dropped, not
composited). Worker processes of a :class:`torch.utils.data.DataLoader` decode and transform, as
``uint8 [3, S, S]`` tensors; the main process turns each batch into float and normalises it on the
target device with the same arithmetic as :class:`ann2snn.plumbing.data.CifarBatches`:
``(x.float() / 255.0 - mean) / std``.

Transforms (:mod:`torchvision.transforms.v2`), as usual for ImageNet training:

- training (``augment="crop-flip"``): ``RandomResizedCrop(image_size)`` (scale 0.08–1, ratio 3/4–4/3,
  bilinear with antialias) and ``RandomHorizontalFlip()``; ``augment="autoaugment"`` adds
  ``AutoAugment`` with the ImageNet policy; ``augment="none"`` trains on the evaluation transform;
- evaluation, threshold calibration and λ initialisation: ``Resize(resize)`` (shorter side) then
  ``CenterCrop(image_size)``; ``resize`` defaults to ``round(image_size / 0.875)`` (256 for 224), and
  ``resize=0`` crops without resizing.

Mean and std default to ImageNet's. With ``image_size=32, resize=0`` and CIFAR's mean and std, a PNG
folder written from CIFAR (:mod:`ann2snn.plumbing.make_folder`) gives exactly the tensors of the CIFAR path.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import torch

from ann2snn.plumbing.errors import UserError

FOLDER = "imagefolder"
TRAIN_SPLIT, VAL_SPLIT = "train", "val"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
#: the evaluation crop is this fraction of the resized shorter side (224 of 256)
CROP_FRACTION = 0.875
#: the automatic number of worker processes is at most this
MAX_AUTO_WORKERS = 8
#: settings that shape the model's input (stored in a training run's config)
TRANSFORM_KEYS = ("image_size", "resize", "mean", "std")
#: settings of how a run reads the files (free to change between runs, and on resume)
READ_KEYS = ("workers", "skip_bad_images")
#: how many unreadable files a note lists by name
NOTE_NAMES = 10


def pil_rgb_loader(path: str):
    """Open an image file with PIL and decode it fully as RGB (``Image.convert("RGB")``).

    Raises whatever PIL raises for an unreadable file (``OSError`` for a truncated one,
    ``PIL.UnidentifiedImageError`` for one that is no image, ...).
    """
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")  # convert() loads the pixels, so a truncated file fails here


# ---------------------------------------------------------------------------------------------- the folder

@dataclass(frozen=True)
class FolderSplit:
    """One split of an image folder: ``classes`` (sorted folder names), and per image its path and
    class number (``targets``, ``int64 [N]``), in ImageFolder's order (by class, then by file name)."""

    root: str
    classes: tuple
    paths: tuple
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.paths)


_SCANS: dict = {}
#: split folder → {path: error} of the unreadable files skipped so far in this process (each noted once)
_SKIPPED: dict = {}


def _scan_key(path: str):
    """The folder and the modification times of it and of its entries (a file added to or removed
    from a class folder changes that folder's time)."""
    entries = sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(path) if e.is_dir())
    return path, os.stat(path).st_mtime_ns, tuple(entries)


def scan_split(data_dir: str, split: str) -> FolderSplit:
    """List ``data_dir/split`` with :class:`torchvision.datasets.ImageFolder` (no image is decoded).

    A second scan of an unchanged folder in the same process is answered from memory.

    Raises:
        UserError: the split folder is missing, holds no class folder, or a class folder holds no
            image (each such folder is named).
    """
    from torchvision import datasets
    from torchvision.datasets.folder import IMG_EXTENSIONS

    path = os.path.abspath(os.path.join(os.fspath(data_dir), split))
    if not os.path.isdir(path):
        raise UserError(f"no {split}/ folder in `data_dir` {data_dir}: an image folder holds "
                        f"ROOT/{TRAIN_SPLIT}/<class>/<image> and ROOT/{VAL_SPLIT}/<class>/<image>")
    key = _scan_key(path)
    if key in _SCANS:
        return _SCANS[key]
    try:
        ds = datasets.ImageFolder(path, loader=pil_rgb_loader, allow_empty=True)
    except FileNotFoundError:
        raise UserError(f"{path} holds no class folder: put each class's images in {path}/<class>/") from None
    targets = torch.as_tensor(ds.targets, dtype=torch.int64)
    counts = torch.bincount(targets, minlength=len(ds.classes)).tolist()
    empty = [name for name, n in zip(ds.classes, counts) if n == 0]
    if empty:
        shown = ", ".join(empty[:NOTE_NAMES]) + (f" and {len(empty) - NOTE_NAMES} more" if len(empty) > NOTE_NAMES else "")
        raise UserError(f"{len(empty)} class folder(s) of {path} hold no image ({shown}); images end in "
                        f"{' '.join(IMG_EXTENSIONS)} (any case)")
    result = FolderSplit(path, tuple(ds.classes), tuple(p for p, _ in ds.samples), targets)
    if len(_SCANS) >= 8:
        _SCANS.clear()
    _SCANS[key] = result
    return result


def check_classes(found, expected, found_what: str, expected_what: str) -> None:
    """Raise UserError unless ``found`` (class names, in order) equals ``expected``.

    The message names the classes missing from ``found`` and the extra ones, or, with the same
    names, says that the order differs.
    """
    found, expected = list(found), list(expected)
    if found == expected:
        return
    missing = [c for c in expected if c not in set(found)]
    extra = [c for c in found if c not in set(expected)]

    def names(items):
        return ", ".join(items[:NOTE_NAMES]) + (f" and {len(items) - NOTE_NAMES} more" if len(items) > NOTE_NAMES else "")

    parts = ([f"missing {len(missing)}: {names(missing)}"] if missing else []) + \
            ([f"extra {len(extra)}: {names(extra)}"] if extra else [])
    what = "; ".join(parts) if parts else "the same names in another order"
    raise UserError(f"the classes of {found_what} differ from those of {expected_what} ({what}); "
                    "class folders must be the same in both")


# ---------------------------------------------------------------------------------------------- settings

#: each setting as messages name it (literal strings, so tests/test_error_flags.py sees every name)
NAMED = {"image_size": "`image_size`", "resize": "`resize`", "mean": "`mean`", "std": "`std`",
         "num_classes": "`num_classes`"}


def _triple(name: str, value) -> list:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        out = []
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise UserError(f"{NAMED[name]} must be three numbers (R, G, B), e.g. 0.485,0.456,0.406, got {value!r}")
    return out


def _whole(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{NAMED[name]} must be a whole number >= {low}, got {value!r}")
    return value


def resolve_settings(image_size=None, resize=None, mean=None, std=None) -> dict:
    """The input settings of an image-folder run, defaults filled in and checked.

    Returns:
        ``{"image_size": S, "resize": R, "mean": [3 floats], "std": [3 floats]}``: ``S`` the side of
        the square crop (default 224), ``R`` the shorter side the evaluation resizes to first
        (default ``round(S / 0.875)``, 0 for no resize), mean and std ImageNet's by default (a list,
        or a string ``"a,b,c"``).

    Raises:
        UserError: a size that is not a whole number >= 1, ``resize`` below ``image_size`` (other
            than 0), or mean/std that are not three numbers (std > 0).
    """
    size = DEFAULT_IMAGE_SIZE if image_size is None else _whole("image_size", image_size, 1)
    if resize is None:
        resize = int(round(size / CROP_FRACTION))
    resize = _whole("resize", resize, 0)
    if 0 < resize < size:
        raise UserError(f"`resize` {resize} is smaller than `image_size` {size}: the center crop would pad; "
                        "give `resize` >= `image_size`, or 0 for no resize")
    mean = list(IMAGENET_MEAN) if mean is None else _triple("mean", mean)
    std = list(IMAGENET_STD) if std is None else _triple("std", std)
    if not all(s > 0 for s in std):
        raise UserError(f"`std` must be three positive numbers, got {std}")
    return {"image_size": size, "resize": resize, "mean": mean, "std": std}


def resolve_workers(workers=None) -> int:
    """Worker processes: ``None`` or ``"auto"`` → ``min(cores of this process / processes on this
    machine under torchrun, 8)`` (at least 1); a whole number >= 0 as given (0: decode in the main
    process).

    Raises:
        UserError: anything else.
    """
    if workers is None or workers == "auto":
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
        return max(1, min(cores // local, MAX_AUTO_WORKERS))
    if isinstance(workers, str) and workers.isdigit():
        workers = int(workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserError(f"`workers` must be auto or a whole number >= 0, got {workers!r}")
    return workers


def train_transform(image_size: int, augment: str = "crop-flip", resize: int = 0):
    """The per-image training transform on ``uint8 [3, H, W]`` tensors → ``uint8 [3, S, S]``.

    ``crop-flip``: RandomResizedCrop(S) + RandomHorizontalFlip; ``autoaugment``: those and
    AutoAugment (ImageNet policy); ``none``: :func:`eval_transform` (``resize`` is used only there).

    Raises:
        UserError: an unknown ``augment``.
    """
    from torchvision.transforms import v2

    if augment == "none":
        return eval_transform(image_size, resize)
    if augment not in ("crop-flip", "autoaugment"):
        raise UserError(f"unknown `augment` {augment!r}: use crop-flip, autoaugment or none")
    steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    if augment == "autoaugment":
        steps.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
    return v2.Compose(steps)


def eval_transform(image_size: int, resize: int):
    """The per-image evaluation transform: Resize(resize) (shorter side; skipped for 0) + CenterCrop(S),
    on ``uint8 [3, H, W]`` tensors → ``uint8 [3, S, S]``."""
    from torchvision.transforms import v2

    steps = ([v2.Resize(resize, antialias=True)] if resize else []) + [v2.CenterCrop(image_size)]
    return v2.Compose(steps)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation: a hash of ``(seed, epoch, index)``
    (:class:`numpy.random.SeedSequence`), below 2^63."""
    import numpy as np

    words = [int(v) % (1 << 63) for v in (seed, epoch, index)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0]) >> 1


# ---------------------------------------------------------------------------------------------- batches

class _Images(torch.utils.data.Dataset):
    """Decodes and transforms one image per key ``(index, epoch)``; ``epoch`` None: not seeded.

    Returns ``(index, uint8 [3, S, S], None)``, or ``(index, None, "error text")`` for a file that PIL
    cannot read (the main process decides whether that stops the run)."""

    def __init__(self, paths, transform, seed: int):
        self.paths, self.transform, self.seed = paths, transform, seed

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, key):
        from torchvision.transforms.v2 import functional as F

        index, epoch = key
        try:
            image = pil_rgb_loader(self.paths[index])
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            return index, None, " ".join(f"{type(e).__name__}: {e}".split())
        x = F.pil_to_tensor(image)
        if epoch is None:
            out = self.transform(x)
        else:  # the v2 transforms draw from torch's default generator: seed it for this image only
            gen = torch.random.default_generator
            state = gen.get_state()
            gen.manual_seed(sample_seed(self.seed, epoch, index))
            try:
                out = self.transform(x)
            finally:
                gen.set_state(state)
        return index, out.as_subclass(torch.Tensor).contiguous(), None


def _collate(items):
    good = [(i, x) for i, x, err in items if err is None]
    bad = [(i, err) for i, _, err in items if err is not None]
    index = torch.tensor([i for i, _ in good], dtype=torch.int64)
    x = torch.stack([x for _, x in good]) if good else None
    return index, x, bad


class FolderBatches:
    """Iterable over normalised ``(images float32 [B, 3, S, S], labels int64 [B])`` batches of an image folder.

    The same interface as :class:`ann2snn.plumbing.data.CifarBatches` (``set_epoch``, ``set_position``,
    ``len``, iteration), read by a :class:`torch.utils.data.DataLoader` with ``workers`` processes.

    Args:
        split: a :class:`FolderSplit` from :func:`scan_split`.
        batch_size: samples per batch; the last batch may be smaller.
        transform: per-image transform of ``uint8 [3, H, W]`` → ``uint8 [3, S, S]`` tensors
            (:func:`train_transform`, :func:`eval_transform`, or your own: every draw from torch's
            default generator is seeded per image).
        mean, std: three floats each; ``x = (uint8.float() / 255.0 - mean) / std``, as CifarBatches.
        indices: the images of ``split`` to use (``int64``, e.g. a :func:`~ann2snn.plumbing.data.balanced_subset`);
            None for all.
        shuffle: a new order each epoch (training).
        seed: base seed of the order and of the augmentation.
        device: where batches are normalised and returned (pinned host memory feeds a GPU).
        rank, world: this process's share under distributed data parallel, as CifarBatches: for
            training ``torch.utils.data.DistributedSampler`` (``drop_last``), for evaluation samples
            ``rank, rank + world, ...``, each exactly once.
        workers: decoding processes (:func:`resolve_workers`; 0 decodes in this process).
        skip_bad_images: skip files PIL cannot read instead of stopping: they are kept in
            :attr:`skipped` (path → error) and listed in a note on stderr at the end of the pass that first
            meets them (not again in later epochs, nor by other batches of the same split in this process).
        skipped: a dict to keep them in (default: this process's dict for ``split.root``).

    Order and augmentation, and how they differ from CifarBatches by design:

    - Order: epoch ``e`` visits ``indices`` in ``torch.randperm(n)`` drawn from a generator seeded
      ``seed * 100003 + e`` (under torchrun: ``DistributedSampler(seed=seed)`` at epoch ``e``), the same
      order CifarBatches draws for the same ``n``. So on one process the order depends only on
      ``(seed, epoch)`` and equals the CIFAR path's when the images are listed in the same order.
    - Augmentation: CifarBatches draws the crops and flips of a whole batch from that same generator,
      after the order, so a crop depends on the batch it falls in. Here each image's transform is
      seeded with :func:`sample_seed` ``(seed, epoch, folder index)``: it depends neither on the batch,
      the batch size, the number of workers nor the number of processes, so a resumed run (also one
      resumed mid-epoch with :meth:`set_position`) draws the same crops. The transforms themselves differ
      too: RandomResizedCrop + flip (ImageNet's recipe) instead of CIFAR's padded 32×32 crop + flip.
    - A skipped unreadable image leaves its batch one image short (a batch of only such images is left out).
    """

    def __init__(self, split: FolderSplit, batch_size: int, transform, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 indices: torch.Tensor | None = None, shuffle: bool = False, seed: int = 0,
                 device: str | torch.device = "cpu", rank: int = 0, world: int = 1, workers=None,
                 skip_bad_images: bool = False, skipped: dict | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"`batch_size` must be >= 1, got {batch_size}")
        self.split, self.transform = split, transform
        self.indices = torch.arange(len(split)) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        self.labels = split.targets[self.indices]
        if world > 1 and len(self.indices) < world:
            raise UserError(f"{len(self.indices)} images cannot be shared by {world} processes: use a larger "
                            "`subset` / `test_subset`, or fewer processes")
        self.classes = split.classes
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world = rank, world
        self.workers = resolve_workers(workers)
        self.skip_bad_images = bool(skip_bad_images)
        self.device = torch.device(device)
        self._settings = {"mean": _triple("mean", mean), "std": _triple("std", std)}
        self.mean = torch.tensor(_triple("mean", mean), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(_triple("std", std), device=self.device).view(1, 3, 1, 1)
        self.epoch, self.position = 0, 0
        #: path → error text of every unreadable file skipped so far
        self.skipped: dict[str, str] = _SKIPPED.setdefault(split.root, {}) if skipped is None else skipped

    def rebatched(self, batch_size: int) -> "FolderBatches":
        """The same images, order, transform and settings in batches of ``batch_size`` (unreadable files
        noted once across both)."""
        return FolderBatches(self.split, batch_size, self.transform, indices=self.indices, shuffle=self.shuffle,
                             seed=self.seed, device=self.device, rank=self.rank, world=self.world,
                             workers=self.workers, skip_bad_images=self.skip_bad_images, skipped=self.skipped,
                             **self._settings)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iterations use (from its first batch)."""
        self.epoch, self.position = epoch, 0

    def set_position(self, batch: int) -> None:
        """Make iterations of the current epoch start at batch ``batch`` (0-based) of its seeded order, as
        :meth:`ann2snn.plumbing.data.CifarBatches.set_position`: the images of the batches before it are
        skipped in the index list, never decoded (each image's augmentation is seeded by itself, so
        nothing needs replaying). ``batch == len(self)`` gives an empty iteration. :meth:`set_epoch` sets
        the position back to 0.

        Raises:
            ValueError: ``batch`` outside ``0..len(self)``.
        """
        from ann2snn.plumbing.data import check_position

        self.position = check_position(batch, len(self))

    def _order(self) -> torch.Tensor:
        """Positions into ``indices`` for this rank and epoch."""
        from ann2snn.plumbing.data import epoch_order

        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return epoch_order(len(self.indices), g, self.shuffle, self.seed, self.epoch, self.rank, self.world)

    def _samples(self) -> int:
        n = len(self.indices)
        if self.world == 1:
            return n
        return n // self.world if self.shuffle else len(range(self.rank, n, self.world))

    def __len__(self) -> int:
        """Batches in a whole epoch (whatever :meth:`set_position` says)."""
        return -(-self._samples() // self.batch_size)

    def _loader(self, keys: list):
        from torch.utils.data import DataLoader

        batches = [keys[s:s + self.batch_size] for s in range(0, len(keys), self.batch_size)]
        # the loader draws its workers' base seed from `generator`: torch's global generator (dropout, the
        # training run's saved RNG state) is never touched
        return DataLoader(_Images(self.split.paths, self.transform, self.seed), batch_sampler=batches,
                          num_workers=min(self.workers, max(1, len(batches))) if self.workers else 0,
                          collate_fn=_collate, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))

    def __iter__(self):
        order = self._order()[self.position * self.batch_size:]
        epoch = self.epoch if self.shuffle else None
        keys = [(i, epoch) for i in self.indices[order].tolist()]
        skipped = {}  # met for the first time in this pass
        try:
            for index, x, bad in self._loader(keys):
                for i, err in bad:
                    path = self.split.paths[i]
                    if not self.skip_bad_images:
                        raise UserError(f"cannot read image {path} ({err}); replace or remove it, or pass "
                                        "`skip_bad_images` to skip unreadable images")
                    if path not in self.skipped:
                        skipped[path] = err
                if x is None:
                    continue
                y = self.split.targets[index].to(self.device, non_blocking=True)
                x = x.to(self.device, non_blocking=True)
                x = (x.float() / 255.0 - self.mean) / self.std
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)  # as the model (plumbing.device.place)
                yield x, y
        finally:
            if skipped:
                self.skipped.update(skipped)
                names = sorted(skipped)
                shown = "; ".join(f"{p} ({skipped[p]})" for p in names[:NOTE_NAMES])
                more = f"; and {len(names) - NOTE_NAMES} more" if len(names) > NOTE_NAMES else ""
                print(f"note: skipped {len(names)} unreadable image(s) of {self.split.root}: {shown}{more}",
                      file=sys.stderr)


# ---------------------------------------------------------------------------------------------- runs

def _options(options: dict | None) -> dict:
    """Check the keys of a ``folder`` options dict (values None: not given)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(TRANSFORM_KEYS) - set(READ_KEYS))
    if unknown:
        raise UserError(f"unknown image-folder option(s) {', '.join(unknown)}: use "
                        f"{', '.join(TRANSFORM_KEYS + READ_KEYS)}")
    return options


def check_folder_options(dataset: str, options: dict | None) -> dict:
    """``options`` checked (unknown keys refused; None values dropped) for a model trained on ``dataset``.

    Raises:
        UserError: an unknown key, or an input setting (``image_size``, ``resize``, ``mean``, ``std``)
            for a CIFAR model (``workers`` and ``skip_bad_images`` are ignored there).
    """
    options = _options(options)
    given = [k for k in TRANSFORM_KEYS if k in options]
    if dataset != FOLDER and given:
        raise UserError(f"{NAMED[given[0]]} applies to models trained on an image folder; this one was trained on "
                        f"{dataset} (32-pixel images, its own mean and std)")
    return options


def run_settings(config: dict, options: dict | None = None) -> dict:
    """The input settings of a trained model's config (:func:`resolve_settings`), with ``options``
    (``image_size``, ``resize``, ``mean``, ``std``; None values ignored) overriding the stored ones."""
    options = _options(options)
    return resolve_settings(**{k: options.get(k, config.get(k)) for k in TRANSFORM_KEYS})


def resolve_folder_config(config: dict) -> dict:
    """A train-ann config for ``dataset="imagefolder"`` with its folder settled: lists the train and
    val splits of ``config["data_dir"]``, checks that both have the same classes (and, for a config that
    already stores ``classes``, e.g. a resumed run, those), and fills in ``classes`` (the sorted folder
    names), ``num_classes`` (default: their count) and the input settings (:func:`resolve_settings`).

    Raises:
        UserError: a missing or empty folder or class folder, classes that differ (named), or
            ``num_classes`` below the folder's class count.
    """
    train = scan_split(config["data_dir"], TRAIN_SPLIT)
    val = scan_split(config["data_dir"], VAL_SPLIT)
    check_classes(val.classes, train.classes, val.root, train.root)
    if config.get("classes") is not None:
        check_classes(train.classes, config["classes"], train.root, "the run being resumed")
    num = config.get("num_classes")
    num = len(train.classes) if num is None else _whole("num_classes", num, 1)
    if num < len(train.classes):
        raise UserError(f"`num_classes` {num} is below the {len(train.classes)} classes of {train.root}")
    settings = resolve_settings(*(config.get(k) for k in TRANSFORM_KEYS))
    return {**config, **settings, "classes": list(train.classes), "num_classes": num}


def folder_extra_config(dataset: str, data_dir: str, options: dict | None = None) -> dict | None:
    """For a network trained elsewhere (:func:`ann2snn.ann.build.weights_checkpoint`) on an image folder:
    ``{"classes": the val split's class names, "image_size", "resize", "mean", "std"}``: its head defaults
    to the class count and the folder is checked against them; the input settings are ``options``'
    (``image_size``, ``resize``, ``mean``, ``std``; None: the defaults of :func:`resolve_settings`),
    recorded so that an SNN converted from it is evaluated with them. A state_dict carries no
    preprocessing: give the one the network was trained with. None for another dataset.

    Raises:
        UserError: as :func:`scan_split` and :func:`resolve_settings`.
    """
    if dataset != FOLDER:
        return None
    options = options or {}
    settings = resolve_settings(**{k: options.get(k) for k in ("image_size", "resize", "mean", "std")})
    return {"classes": list(scan_split(data_dir, VAL_SPLIT).classes), **settings}


def _subset(split: FolderSplit, n: int | None, seed: int):
    if not n:
        return None
    from ann2snn.plumbing.data import balanced_subset

    return balanced_subset(split.targets, n, seed, len(split.classes))


def _checked_split(config: dict, data_dir: str, split: str) -> FolderSplit:
    s = scan_split(data_dir, split)
    if config.get("classes") is not None:
        check_classes(s.classes, config["classes"], s.root, "the checkpoint")
    return s


def load_folder_data(config: dict, device: torch.device | str = "cpu", rank: int = 0, world: int = 1,
                     batch_size: int | None = None, test_batch: int = 500):
    """Train and val batches of a resolved config (:func:`resolve_folder_config`), as
    :func:`ann2snn.ann.train.load_data` gives them for CIFAR: ``subset`` (seeded with ``seed``) and
    ``test_subset`` (seed 0) class-balanced; training shuffled, transformed with ``augment``; val with
    the evaluation transform in batches of ``test_batch``. ``batch_size``: this rank's training batch.

    Returns:
        ``(train, val, calibration)``: :class:`FolderBatches`; ``calibration`` is the training images
        (the same subset and order as ``train``) under the evaluation transform, for λ initialisation.
    """
    settings = resolve_settings(*(config.get(k) for k in TRANSFORM_KEYS))
    train_split = _checked_split(config, config["data_dir"], TRAIN_SPLIT)
    val_split = _checked_split(config, config["data_dir"], VAL_SPLIT)
    size, resize = settings["image_size"], settings["resize"]
    common = {"mean": settings["mean"], "std": settings["std"], "device": device, "rank": rank, "world": world,
              "workers": config.get("workers"), "skip_bad_images": config.get("skip_bad_images", False)}
    idx = _subset(train_split, config.get("subset"), config["seed"])
    batch = config["batch_size"] if batch_size is None else batch_size
    train = FolderBatches(train_split, batch, train_transform(size, config.get("augment", "crop-flip"), resize),
                          indices=idx, shuffle=True, seed=config["seed"], **common)
    calibration = FolderBatches(train_split, batch, eval_transform(size, resize), indices=idx, shuffle=True,
                                seed=config["seed"], **common)
    val = FolderBatches(val_split, test_batch, eval_transform(size, resize),
                        indices=_subset(val_split, config.get("test_subset"), 0), **common)
    return train, val, calibration


def check_folder_run(config: dict, data_dir: str, splits, options: dict | None = None) -> None:
    """Everything :func:`folder_eval_batches` would refuse, checked before any work: the options, the
    settings, and the listing and classes of each split in ``splits`` (``"train"``, ``"val"``).
    Nothing for a CIFAR model but the options.

    Raises:
        UserError: as :func:`folder_eval_batches`.
    """
    options = check_folder_options(config.get("dataset"), options)
    if config.get("dataset") != FOLDER:
        return
    run_settings(config, options)
    resolve_workers(options.get("workers"))
    for split in splits:
        _checked_split(config, data_dir, split)


def folder_eval_batches(config: dict, data_dir: str, split: str, batch_size: int, subset: int | None = None,
                        shuffle: bool = False, options: dict | None = None, device: torch.device | str = "cpu",
                        rank: int = 0, world: int = 1) -> FolderBatches:
    """Batches of one split under the evaluation transform of a trained model's ``config``
    (:func:`run_settings` with ``options``), checked against the classes it stores: the val split for
    a sweep or entropy (``subset`` class-balanced with seed 0), the train split in a seeded order
    (``shuffle``, seed 0) for threshold calibration.

    Raises:
        UserError: a missing or empty folder, classes that differ from the checkpoint's, bad options.
    """
    options = _options(options)
    settings = run_settings(config, options)
    s = _checked_split(config, data_dir, split)
    return FolderBatches(s, batch_size, eval_transform(settings["image_size"], settings["resize"]),
                         settings["mean"], settings["std"], indices=_subset(s, subset, 0), shuffle=shuffle,
                         seed=0, device=device, rank=rank, world=world, workers=options.get("workers"),
                         skip_bad_images=options.get("skip_bad_images", False))
