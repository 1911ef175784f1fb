"""A held-out training split (`holdout`): never trained on, the same for every run, balanced."""

import pytest
import torch

from ann2snn.plumbing.data import HOLDOUT_SEED, balanced_subset, holdout_split
from ann2snn.plumbing.errors import UserError


def test_holdout_split_is_disjoint_complete_balanced_and_fixed():
    labels = torch.arange(100) % 10
    kept, held = holdout_split(labels, 20, 10)
    assert len(held) == 20 and len(kept) == 80
    assert set(held.tolist()).isdisjoint(kept.tolist()) and set(held.tolist()) | set(kept.tolist()) == set(range(100))
    assert torch.bincount(labels[held], minlength=10).tolist() == [2] * 10  # two of each class, by hand
    assert torch.equal(held, balanced_subset(labels, 20, HOLDOUT_SEED, 10))  # the stated draw
    assert torch.equal(held, holdout_split(labels, 20, 10)[1])  # the same every time
    for bad in (0, 100, 2.5):
        with pytest.raises(UserError, match="holdout"):
            holdout_split(labels, bad, 10)


@pytest.mark.real_data
def test_a_run_never_trains_on_its_held_out_images(cifar10_dir):
    from ann2snn.ann.train import DEFAULTS, load_data
    from ann2snn.plumbing.data import load_split

    config = {**DEFAULTS, "dataset": "cifar10", "data_dir": cifar10_dir, "holdout": 500, "subset": 2000,
              "test_subset": 10, "augment": "none"}
    train, _ = load_data(config)
    x, y = load_split("cifar10", cifar10_dir, True)
    _, held = holdout_split(y, 500, 10)
    trained = {bytes(img.numpy()) for img in train.images}
    assert len(trained) == 2000
    assert not trained & {bytes(x[i].numpy()) for i in held.tolist()}
