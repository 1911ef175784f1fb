"""Data: subsets, batched augmentation statistics, AutoAugment + Cutout, the real CIFAR-100 (with or without MD5)."""

import os

import pytest
import torch

from ann2snn.plumbing.data import DATASETS, CifarBatches, balanced_subset, cutout, load_split, random_crop_flip
from ann2snn.plumbing.errors import UserError


def test_balanced_subset_is_balanced_seeded_and_fixed():
    labels = torch.arange(10).repeat_interleave(50)[torch.randperm(500, generator=torch.Generator().manual_seed(3))]
    a = balanced_subset(labels, 103, seed=1, num_classes=10)
    assert len(a) == 103 and len(set(a.tolist())) == 103
    counts = torch.bincount(labels[a], minlength=10)
    assert counts.tolist() == [11, 11, 11] + [10] * 7
    assert torch.equal(a, balanced_subset(labels, 103, seed=1, num_classes=10))
    assert not torch.equal(a, balanced_subset(labels, 103, seed=2, num_classes=10))
    with pytest.raises(UserError, match="only 50"):
        balanced_subset(labels, 600, seed=1, num_classes=10)
    with pytest.raises(UserError, match="positive"):
        balanced_subset(labels, 0, seed=1, num_classes=10)


def test_crop_offsets_are_uniform_and_flips_half():
    """Each image is a 32×32 window of its zero-padded (40×40) self; offsets uniform on 0..8."""
    n = 4000
    # an image whose pixel value encodes its position, so the crop offset can be read back
    base = (torch.arange(32)[:, None] * 32 + torch.arange(32)[None, :]).float() + 1
    x = base.expand(n, 1, 32, 32).clone()
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(base, (4, 4, 4, 4))
    oys, oxs, flips = [], [], []
    for img in out[:, 0]:
        for flip in (False, True):
            cand = img.flip(1) if flip else img
            # locate the window: the first nonzero pixel's value tells the source position
            nz = torch.nonzero(cand)
            r, c = nz[0].tolist()
            v = int(cand[r, c]) - 1
            oy, ox = v // 32 - r + 4, v % 32 - c + 4
            if 0 <= oy <= 8 and 0 <= ox <= 8 and torch.equal(padded[oy:oy + 32, ox:ox + 32], cand):
                oys.append(oy), oxs.append(ox), flips.append(flip)
                break
        else:
            raise AssertionError("output is not a crop (or flipped crop) of the padded input")
    oys, oxs = torch.tensor(oys), torch.tensor(oxs)
    for offsets in (oys, oxs):
        freq = torch.bincount(offsets, minlength=9).double() / n
        assert float((freq - 1 / 9).abs().max()) < 0.02  # uniform on 0..8 (± ~4 σ)
    assert abs(sum(flips) / n - 0.5) < 0.03


def test_cutout_zeroes_one_clipped_square():
    x = torch.ones(500, 3, 32, 32)
    out = cutout(x, torch.Generator().manual_seed(0), size=16)
    zeros = (out[:, 0] == 0).sum((1, 2))
    assert int(zeros.max()) == 256 and int(zeros.min()) >= 64  # a full 16×16, or clipped at a corner
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # same square on every channel


def test_batches_normalise_and_autoaugment_runs():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 10
    plain = list(CifarBatches(images, labels, DATASETS["cifar10"], 16))
    assert [len(y) for _, y in plain] == [16, 16, 8]
    mean, std = torch.tensor(DATASETS["cifar10"].mean), torch.tensor(DATASETS["cifar10"].std)
    expected = (images[:16].float() / 255 - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(plain[0][0], expected)
    aug = CifarBatches(images, labels, DATASETS["cifar10"], 16, augment="autoaugment", shuffle=True, seed=1)
    batches = list(aug)
    assert [b[0].shape for b in batches] == [(16, 3, 32, 32)] * 2 + [(8, 3, 32, 32)]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(labels.tolist())
    # the same epoch twice gives the same order; another epoch another order
    aug2 = CifarBatches(images, labels, DATASETS["cifar10"], 16, augment="crop-flip", shuffle=True, seed=1)
    first = torch.cat([y for _, y in aug2])
    assert torch.equal(first, torch.cat([y for _, y in aug2]))
    aug2.set_epoch(1)
    assert not torch.equal(first, torch.cat([y for _, y in aug2]))


def test_missing_data_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="`download`"):
        load_split("cifar10", str(tmp_path), True)


@pytest.mark.real_data
def test_real_cifar100_loads_and_needs_skip_md5_exactly_when_its_md5s_differ(cifar100_dir, capfd):
    """The real CIFAR-100 test split: 100 images of each of the 100 classes, and the published mean.

    torchvision checks the MD5s of its own list; this project's offline copy orders the images within a
    class differently, so it fails that check and loads only with skip_md5. A genuine download passes."""
    import hashlib

    import torchvision

    folder = os.path.join(cifar100_dir, "cifar-100-python")
    official = dict(torchvision.datasets.CIFAR100.train_list + torchvision.datasets.CIFAR100.test_list)
    genuine = all(hashlib.md5(open(os.path.join(folder, name), "rb").read()).hexdigest() == md5
                  for name, md5 in official.items())
    if genuine:
        x0, y0 = load_split("cifar100", cifar100_dir, False)
    else:
        with pytest.raises(UserError, match="`skip_md5`"):
            load_split("cifar100", cifar100_dir, False)
    x, y = load_split("cifar100", cifar100_dir, False, skip_md5=True)
    assert "WITHOUT torchvision's MD5 check" in capfd.readouterr().err
    if genuine:
        assert torch.equal(x, x0) and torch.equal(y, y0)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [100] * 100
    mean = x.double().mean((0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.5088, 0.4874, 0.4419], dtype=torch.double), atol=2e-3)
