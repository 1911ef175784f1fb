"""Conversion: every call site becomes its own neuron, and nothing passes silently."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ann2snn.ann.activations import QCFS, MatchedQuant, QuantClip
from ann2snn.conversion.convert import convert, find_activation_sites
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import neurons_of, reset_neurons, set_mode

from helpers import tiny_ann

EX = torch.zeros(1, 3, 32, 32)


@pytest.mark.parametrize("arch,sites", [("vgg16", 15), ("resnet18", 17), ("resnet20", 19)])
def test_one_neuron_per_call_site(arch, sites):
    ann = tiny_ann(arch, width=0.125)
    snn = convert(ann, EX, 1, 3)
    neurons = neurons_of(snn)
    assert len(neurons) == sites
    assert len({id(n) for n in neurons}) == sites
    # θ is each site's own λ
    lams = [float(m.threshold().detach()) for m in ann.modules() if isinstance(m, QCFS)]
    assert [float(n.theta) for n in neurons] == lams
    assert all((n.int_bits, n.frac_bits) == (1, 3) for n in neurons)
    # the input ANN is left untouched
    assert not any(isinstance(m, MultiBitIF) for m in ann.modules())


@pytest.mark.exactness
@pytest.mark.parametrize("arch", ["vgg16", "resnet18", "resnet20"])
@pytest.mark.parametrize("bits", [(1, 0), (1, 3)])
def test_ann_mode_parity(arch, bits):
    """The converted net with neurons switched back to their activations equals the ANN exactly."""
    ann = tiny_ann(arch, width=0.125)
    snn = convert(ann, EX, *bits)
    set_mode(snn, "ann")
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(snn(x), ann(x))


class Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = QCFS()
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.fc(x.flatten(1))


class Functional(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = QCFS()
        self.fn = fn
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        x = self.fn(self.act(self.conv(x)))
        return self.fc(x.flatten(1))


class Dead(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = QCFS()
        self.unused = QCFS()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(self.act(x).flatten(1))


def test_reused_module_is_rejected():
    with pytest.raises(UserError, match="'act' is called 2 times"):
        convert(Reused(), EX, 1, 0)


def test_never_called_site_is_rejected():
    with pytest.raises(UserError, match="'unused' is never called"):
        convert(Dead(), EX, 1, 0)


@pytest.mark.parametrize("fn", [F.relu, torch.relu, lambda t: t.relu(), lambda t: F.relu(t, inplace=True)])
def test_functional_relu_is_rejected_with_its_line(fn):
    with pytest.raises(UserError, match=r"test_convert\.py:\d+"):
        convert(Functional(fn), EX, 1, 0)


def test_relu_module_is_rejected_by_name():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), QCFS(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    with pytest.raises(UserError, match="module '1' is ReLU"):
        convert(model, EX, 1, 0)


def test_no_site_is_rejected():
    with pytest.raises(UserError, match="no QCFS"):
        convert(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), EX, 1, 0)


def test_nonpositive_lambda_is_refused():
    ann = tiny_ann("resnet20")
    site = next(m for m in ann.modules() if isinstance(m, QCFS))
    with torch.no_grad():
        site.raw_lambda.fill_(-0.1)
    with pytest.raises(UserError, match="λ=-0.1"):
        convert(ann, EX, 1, 3)


def test_sites_are_listed_in_call_order():
    assert find_activation_sites(tiny_ann("resnet20"), EX)[:3] == ["act1", "layers.0.0.act1", "layers.0.0.act2"]


def test_two_models_do_not_share_state():
    ann = tiny_ann("resnet20")
    a, b = convert(ann, EX, 1, 3), convert(ann, EX, 1, 3)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a(x)
        a(x)
        assert [n.v for n in neurons_of(b)] == [None] * 19  # ResNet-20: 19 sites
        first_b = b(x)
        reset_neurons(a)
        assert torch.equal(a(x), first_b)


@pytest.mark.exactness
@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
@pytest.mark.parametrize("bits", [(1, 3), (2, 2), (1, 0)])
def test_matched_ann_converts_exactly_at_T1(arch, bits):
    """An ANN with the matched activation equals its MBIF SNN at T = 1, bit for bit."""
    ann = tiny_ann(arch, activation="matched", width=0.125, int_bits=bits[0], frac_bits=bits[1])
    sites = [type(m) for m in ann.modules() if isinstance(m, QuantClip)]
    assert sites == [MatchedQuant] * {"vgg16": 15, "resnet18": 17}[arch]  # every site, and not zero of them
    snn = convert(ann, EX, *bits, v_init="half-lsb")
    x = torch.randn(16, 3, 32, 32) * 2
    with torch.no_grad():
        assert torch.equal(snn(x), ann(x))
