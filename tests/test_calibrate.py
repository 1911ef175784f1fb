"""Conversion of ordinary ReLU networks: call sites, percentile thresholds, BN folding."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ann2snn.ann.build import build_ann
from ann2snn.conversion.calibrate import (ReLUSite, calibrate_thresholds, fold_batchnorm, kth_percentile, parse_threshold,
                               prepare_relu_sites)
from ann2snn.conversion.convert import convert
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import set_mode, simulate_snn

from helpers import random_batches, tiny_ann

EX = torch.zeros(1, 3, 32, 32)


@pytest.mark.parametrize("p", [50, 90, 99, 99.9, 99.99, 100])
def test_percentile_matches_numpy(p):
    values = torch.randn(200_001, generator=torch.Generator().manual_seed(0)).exp()
    assert kth_percentile(values, p) == pytest.approx(float(np.percentile(values.numpy(), p, method="inverted_cdf")))


def test_parse_threshold():
    assert parse_threshold("max") == ("max", None)
    assert parse_threshold("percentile:99.9") == ("percentile", 99.9)
    for bad in ("percentile", "percentile:0", "percentile:101", "percentile:x", "median"):
        with pytest.raises(UserError, match="`threshold`"):
            parse_threshold(bad)


class Mixed(nn.Module):
    """ReLU as a module, reused at two call sites, as F.relu, as torch.relu and as a method."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = self.relu(self.c1(x))
        x = self.relu(self.c2(x))
        x = F.relu(self.c3(x))
        x = torch.relu(x + 1) - 1
        x = F.avg_pool2d(x, 32).flatten(1).relu()
        return self.fc(x)


def test_every_relu_call_site_becomes_its_own_neuron():
    model = Mixed().eval()
    with pytest.raises(UserError):  # as it is, conversion refuses
        convert(model, EX, 1, 0)
    prepared = prepare_relu_sites(model, EX)
    sites = [n for n, m in prepared.named_modules() if isinstance(m, ReLUSite)]
    assert len(sites) == 5
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(prepared(x), model(x))
    th = calibrate_thresholds(prepared, [(x, None)], "max", 1)
    snn = convert(prepared, EX, 1, 3, thresholds=th)
    assert sum(isinstance(m, MultiBitIF) for m in snn.modules()) == 5
    set_mode(snn, "ann")
    with torch.no_grad():
        assert torch.equal(snn(x), model(x))


def test_module_relus_keep_their_names():
    model = build_ann({"arch": "resnet20", "dataset": "cifar10", "width": 0.25, "activation": "relu"}).eval()
    prepared = prepare_relu_sites(model, EX)
    assert type(prepared) is type(model)
    assert isinstance(prepared.layers[0][0].act2, ReLUSite)
    assert set(prepared.state_dict()) == set(model.state_dict())


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace this
            x = F.relu(x)
        return self.fc(x.flatten(1))


def test_untraceable_model_is_refused_with_a_message():
    with pytest.raises(UserError, match="torch.fx cannot trace Untraceable"):
        prepare_relu_sites(Untraceable(), torch.ones(1, 3, 32, 32))


@pytest.mark.parametrize("arch", ["vgg16", "resnet18", "resnet20"])
def test_bn_folding_equals_the_original(arch):
    model = tiny_ann(arch, width=0.125)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(folded(x), ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-5)


def test_max_threshold_is_the_largest_activation():
    model = Mixed().eval()
    prepared = prepare_relu_sites(model, EX)
    batches = random_batches(16, 8)
    th = calibrate_thresholds(prepared, batches, "max", 2)
    seen = []
    site = [m for m in prepared.modules() if isinstance(m, ReLUSite)][0]
    h = site.register_forward_hook(lambda _m, _i, out: seen.append(float(out.max())))
    with torch.no_grad():
        for x, _ in batches:
            prepared(x)
    h.remove()
    first = [n for n, m in prepared.named_modules() if m is site][0]
    assert th[first] == max(seen)


@pytest.mark.slow
def test_calibrated_relu_snn_approaches_its_ann_as_T_grows():
    torch.manual_seed(0)
    model = build_ann({"arch": "resnet20", "dataset": "cifar10", "width": 0.5, "activation": "relu"})
    calib = random_batches(64, 32, seed=5)
    with torch.no_grad():  # settle BN statistics on the data, as training would
        model.train()
        for x, _ in calib:
            model(x)
    model.eval()
    test = random_batches(60, 30, seed=6, model=model)  # labels: the ANN's own predictions
    prepared = prepare_relu_sites(model, EX)
    th = calibrate_thresholds(prepared, calib, "percentile:99.99", 2)
    snn = convert(prepared, EX, 1, 0, thresholds=th)
    correct, n = simulate_snn(snn, test, 256)
    agree = (correct.double() / n).tolist()
    # measured here: 0.17 / 0.42 / 0.55 / 0.87 / 0.92 at T = 1 / 8 / 32 / 128 / 256
    assert agree[255] >= 0.85  # the SNN agrees with its ANN on nearly every image
    assert agree[255] > agree[31] > agree[7] > agree[0]
