"""CIFAR-10/100 as uint8 tensors in memory, with batched tensor augmentation.

Files are read by ``torchvision.datasets`` (decoded once), then kept as ``uint8 [N, 3, 32, 32]``.
Augmentation runs on whole batches of tensors: random crop 32 with 4-pixel zero padding and a
horizontal flip at rate 0.5 (the standard CIFAR recipe), or QCFS's AutoAugment (CIFAR-10 policy, from
torchvision) + Cutout(16) (DeVries & Taylor 2017). Normalisation uses the dataset's mean and std.

Image folders (``dataset="imagefolder"``) are read by :mod:`ann2snn.plumbing.folder` instead, with the
same batch interface and epoch order; their augmentation is seeded per image rather than per batch
(see :class:`ann2snn.plumbing.folder.FolderBatches`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torchvision import datasets

from ann2snn.plumbing.errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    cls: type
    folder: str
    num_classes: int
    mean: tuple
    std: tuple


DATASETS = {
    "cifar10": DatasetInfo("cifar10", datasets.CIFAR10, "cifar-10-batches-py", 10,
                           (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", datasets.CIFAR100, "cifar-100-python", 100,
                            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

AUGMENTS = ("crop-flip", "autoaugment", "none")

#: an image folder in ImageNet's layout (:mod:`ann2snn.plumbing.folder`), read by train-ann, convert,
#: sweep and entropy
FOLDER = "imagefolder"
#: every dataset name the ANN paths read
DATASET_NAMES = (*DATASETS, FOLDER)


def default_data_dir() -> str:
    """``$ANN2SNN_DATA`` if set, else ``./data``."""
    return os.environ.get("ANN2SNN_DATA", "./data")


def dataset_info(name: str) -> DatasetInfo:
    """The fixed facts of CIFAR-10/100.

    Raises:
        UserError: an unknown dataset name, or ``imagefolder`` (its classes come from the folder:
            :func:`ann2snn.ann.build.num_classes_of`).
    """
    if name == FOLDER:
        raise UserError("`dataset` imagefolder is read by train-ann, convert, sweep and entropy only: "
                        "use cifar10 or cifar100 here")
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _no_md5(cls: type) -> type:
    """A subclass of a torchvision CIFAR class whose data files skip the MD5 check.

    ``meta`` keeps no checksum either. Only used with the explicit ``skip_md5`` option.
    """
    return type(cls.__name__ + "NoMD5", (cls,), {
        "train_list": [[name, None] for name, _ in cls.train_list],
        "test_list": [[name, None] for name, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    })


_UNPACK = os.path.join("..", "shared", "data", "unpack_cifar.py")


def offline_copy() -> str | None:
    """The packed offline datasets of this project's machines: ``../shared/data/unpack_cifar.py`` next to
    this checkout (never looked up from the working folder), or None."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.normpath(os.path.join(checkout, _UNPACK))
    return path if os.path.isfile(path) else None


def _unpack_offline(name: str, root: str, folder: str) -> bool:
    """Unpack ``name`` from :func:`offline_copy` into ``root`` (about 6 s); True when it is there now."""
    import subprocess

    script = offline_copy()
    if script is None:
        return False
    print(f"note: {folder} is missing; unpacking the offline copy with {script} (checked against its own "
          "MANIFEST; CIFAR-100's copy then needs --skip-md5)", file=sys.stderr)
    done = subprocess.run([sys.executable, script, root, name], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"warning: {script} failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}", file=sys.stderr)
    return done.returncode == 0 and os.path.isdir(folder)


def offline_instruction(name: str, root: str) -> str:
    """The one offline-data instruction (the README, docs/data.md and both missing-data errors say it in
    these words): where torchvision's folder for ``name`` goes under ``root``, or where else to point."""
    folder = dataset_info(name).folder
    return (f"Offline, put torchvision's {folder}/ in {root}, or point `data_dir` or $ANN2SNN_DATA at "
            "the folder that holds it.")


def _remove_partial_download(root: str, archive: str, made_root: bool, had_archive: bool) -> None:
    """After a failed download: remove the archive this call began (``archive`` under ``root``), and
    ``root`` if this call made it and it is now empty."""
    path = os.path.join(root, archive)
    if not had_archive and os.path.isfile(path):
        os.remove(path)
    if made_root and os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)


def load_split(name: str, root: str, train: bool, download: bool = False,
               skip_md5: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of CIFAR-10/100 with torchvision, decoded once.

    Returns:
        ``(images, labels)``: ``uint8 [N, 3, 32, 32]`` and ``int64 [N]``.

    With ``download`` and a packed offline copy beside the checkout (:func:`offline_copy`), the copy is
    unpacked instead of fetched.

    Raises:
        UserError: the files are missing (and ``download`` is off); a download failed (its partial
            archive, and ``root`` if the call made it, are removed); or the files fail torchvision's MD5
            check (pass ``skip_md5`` to load them anyway; that is logged on stderr).
    """
    info = dataset_info(name)
    folder = os.path.join(root, info.folder)
    if download and not os.path.isdir(folder) and _unpack_offline(name, root, folder):
        download = False  # this project's machines are offline: their packed copy is what --download gets
    if not download and not os.path.isdir(folder):
        offline = offline_copy()
        packed = (f" On this machine, `download` unpacks the packed copy in {os.path.dirname(offline)}/."
                  if offline else "")
        raise UserError(f"{name} not found in {root} (torchvision's {info.folder}/). Online, add `download`. "
                        f"{offline_instruction(name, root)}{packed}")
    cls = info.cls
    if skip_md5:
        print(f"warning: loading {name} from {folder} WITHOUT torchvision's MD5 check (--skip-md5)",
              file=sys.stderr)
        cls = _no_md5(cls)
    made_root = download and not os.path.exists(root)
    had_archive = os.path.exists(os.path.join(root, cls.filename))
    try:
        ds = cls(root, train=train, download=download)
    except RuntimeError:
        hint = "" if skip_md5 else " If you trust these files (e.g. a re-packed copy), pass `skip_md5`."
        raise UserError(f"{name} in {folder} is incomplete or fails torchvision's MD5 check.{hint}") from None
    except OSError as e:  # download failures: leave no partial archive or empty folder behind
        _remove_partial_download(root, cls.filename, made_root, had_archive)
        raise UserError(f"could not download {name} into {root} ({e}). {offline_instruction(name, root)}") from None
    except Exception as e:  # a corrupt file that skipped the MD5 check
        raise UserError(f"{name} in {folder} could not be read ({type(e).__name__}: {e}); re-fetch the files") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images, labels


def balanced_subset(labels: torch.Tensor, n: int, seed: int, num_classes: int) -> torch.Tensor:
    """Indices of a fixed, seeded, class-balanced subset of ``n`` samples (sorted).

    Each class gets ``n // num_classes`` samples; the remainder goes one each to the lowest class
    numbers. The same ``(labels, n, seed)`` always gives the same subset.

    Raises:
        UserError: if ``n`` is not positive or a class has too few samples.
    """
    if n <= 0:
        raise UserError(f"`subset` must be a positive number of samples, got {n}")
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        want = n // num_classes + (1 if c < n % num_classes else 0)
        idx = torch.nonzero(labels == c).flatten()
        if want > len(idx):
            raise UserError(f"`subset` {n} asks for {want} samples of class {c}, which has only {len(idx)}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:want]])
    return torch.sort(torch.cat(picks)).values


def epoch_order(n: int, g: torch.Generator, shuffle: bool, seed: int, epoch: int, rank: int = 0,
                world: int = 1) -> torch.Tensor:
    """The sample order of one epoch, int64 ``[n or n/world]``, shared by every batches class: one process
    takes ``randperm(n)`` from ``g`` (or ``0..n-1`` unshuffled); under torchrun each rank takes its
    :class:`~torch.utils.data.DistributedSampler` share (seed ``seed``, epoch ``epoch``, drop_last), or
    every ``world``-th sample unshuffled."""
    if world == 1:
        return torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    if not shuffle:
        return torch.arange(rank, n, world)
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.int64)


def check_position(batch, n: int) -> int:
    """``batch`` if it is a whole batch position in ``0..n`` (``set_position``); ValueError otherwise."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 0 <= batch <= n:
        raise ValueError(f"set_position: batch {batch!r} is outside 0..{n}")
    return batch


#: the seed of the held-out split's draw (fixed: every run that holds out N images holds out the same ones)
HOLDOUT_SEED = 12345


def holdout_split(labels: torch.Tensor, n: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kept, held_out)`` indices of a training split that keeps ``n`` images apart: a class-balanced,
    seeded draw (:func:`balanced_subset` with :data:`HOLDOUT_SEED`), the same for every run and seed.

    The held-out images are never trained on and are not test images: correction checks and planning
    read them (``holdout`` in a run config). Both index tensors are sorted.

    Raises:
        UserError: ``n`` not in ``1 .. len(labels) - 1``, or a class with too few images.
    """
    if not (isinstance(n, int) and 1 <= n < len(labels)):
        raise UserError(f"`holdout` must be a number of images from 1 to {len(labels) - 1}, got {n!r}")
    held = balanced_subset(labels, n, HOLDOUT_SEED, num_classes)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


def random_crop_flip(x: torch.Tensor, g: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding ``padding``) and horizontal flip at rate 0.5.

    ``x``: ``[B, C, H, W]`` (any dtype) → same shape; offsets are uniform in ``[0, 2·padding]``.
    """
    b, c, h, w = x.shape
    dev = x.device  # offsets come from the (CPU) generator, the indexing runs where x lives
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=g).to(dev)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=g).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                 rows, cols]
    flip = (torch.rand(b, generator=g) < 0.5).to(dev)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def cutout(x: torch.Tensor, g: torch.Generator, size: int = 16) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): zero one ``size``×``size`` square per image, its centre
    uniform over the image and the square clipped at the border. ``x``: ``[B, C, H, W]`` float."""
    b, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (b,), generator=g).to(dev)[:, None, None]
    cx = torch.randint(0, w, (b,), generator=g).to(dev)[:, None, None]
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    inside = (ys >= cy - size // 2) & (ys < cy + size // 2) & (xs >= cx - size // 2) & (xs < cx + size // 2)
    return x.masked_fill(inside[:, None], 0.0)


class CifarBatches:
    """Iterable over normalised ``(images float32 [B, 3, 32, 32], labels int64 [B])`` batches.

    Args:
        images, labels: a split from :func:`load_split` (or a subset of it).
        info: the dataset's :class:`DatasetInfo` (mean and std).
        batch_size: samples per batch; the last batch may be smaller.
        augment: ``crop-flip``, ``autoaugment`` (AutoAugment CIFAR-10 policy + crop-flip + Cutout(16),
            as in QCFS) or ``none``.
        shuffle: reshuffle each epoch.
        seed: base seed; epoch e uses generator seed ``seed * 100003 + e`` for order and
            augmentation, so a resumed run sees exactly the batches it would have seen.
        device: where the whole split is kept (as uint8) and augmented: batches never cross
            from host to device during an epoch.
        rank, world: this process's share under distributed data parallel (``world`` > 1). For
            training (``shuffle``), ``torch.utils.data.DistributedSampler`` (``drop_last``) picks
            the rank's indices each epoch, and the augmentation generator is offset by the rank.
            For evaluation each rank takes samples ``rank, rank + world, ...``: every sample exactly
            once (DistributedSampler pads by repeating samples, which would bias summed counts).

    The interface the training loop (:func:`ann2snn.ann.train.fit`) uses, and that any other batches
    class for it provides: :meth:`set_epoch`, :meth:`set_position` and ``len()`` (batches per epoch).
    """

    def __init__(self, images, labels, info: DatasetInfo, batch_size: int, augment: str = "none",
                 shuffle: bool = False, seed: int = 0, device: str | torch.device = "cpu", rank: int = 0,
                 world: int = 1):
        if augment not in AUGMENTS:
            raise UserError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENTS)}")
        if batch_size < 1:
            raise UserError(f"`batch_size` must be >= 1, got {batch_size}")
        if world > 1 and len(labels) < world:
            raise UserError(f"{len(labels)} samples cannot be shared by {world} processes: use a larger "
                            "`subset` / `test_subset`, or fewer processes")
        self.device = torch.device(device)
        self.images, self.labels, self.info = images.to(self.device), labels.to(self.device), info
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.rank, self.world = rank, world
        self.epoch, self.position = 0, 0
        self.mean = torch.tensor(info.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(info.std, device=self.device).view(1, 3, 1, 1)
        self._autoaugment = None
        if augment == "autoaugment":
            from torchvision.transforms import v2

            self._autoaugment = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration uses (from its first batch)."""
        self.epoch = epoch
        self.position = 0

    def set_position(self, batch: int) -> None:
        """Make iterations of the current epoch start at batch ``batch`` (0-based) of its seeded order.

        The batches from there are exactly those an iteration from the start yields from there, with
        the same augmentation: the epoch's generator is advanced over the skipped batches by drawing
        their augmentation numbers (not applying them), so the random streams are those of an
        uninterrupted epoch. AutoAugment draws from torch's global generator, which the caller restores
        (a training checkpoint holds it). ``batch == len(self)`` gives an empty iteration.
        :meth:`set_epoch` sets the position back to 0.

        Raises:
            ValueError: ``batch`` outside ``0..len(self)``.
        """
        self.position = check_position(batch, len(self))

    def _skip_draws(self, b: int, g: torch.Generator) -> None:
        """Advance ``g`` exactly as augmenting a batch of ``b`` images does (the draws depend on ``b`` and
        the image size only), on a stand-in batch with one channel."""
        x = torch.zeros(b, 1, *self.images.shape[-2:])
        if self.augment != "none":
            x = random_crop_flip(x, g)
        if self._autoaugment is not None:
            cutout(x, g)

    def _order(self, g: torch.Generator) -> torch.Tensor:
        order = epoch_order(len(self.labels), g, self.shuffle, self.seed, self.epoch, self.rank, self.world)
        if self.world > 1 and self.shuffle:
            g.manual_seed((self.seed * 100003 + self.epoch) * 1009 + self.rank)  # augmentation differs per rank
        return order

    def __len__(self) -> int:
        n = len(self._order(torch.Generator()))
        return (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = self._order(g)
        n = len(order)
        for i, start in enumerate(range(0, n, self.batch_size)):
            if i < self.position:  # set_position: skipped, but its augmentation draws still taken from g
                self._skip_draws(len(order[start:start + self.batch_size]), g)
                continue
            idx = order[start:start + self.batch_size].to(self.device)
            x, y = self.images[idx], self.labels[idx]
            if self._autoaugment is not None:  # per image, the slower faithful option
                x = torch.stack([self._autoaugment(img) for img in x])
            if self.augment != "none":
                x = random_crop_flip(x, g)
            x = (x.float() / 255.0 - self.mean) / self.std
            if self._autoaugment is not None:
                x = cutout(x, g)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)  # as the model (ann2snn.plumbing.device.place)
            yield x, y
