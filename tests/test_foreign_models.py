"""Models the toolkit did not build: converted right, or refused by name (docs/design.md §5, pitfalls 1 and 11).

torchvision's resnet18 / vgg11_bn / mobilenet_v2 (untrained, 10 classes) and small hand-written
models with ``F.relu``, max-pooling or activations the converter does not handle. A converted model
must equal its ANN in ANN mode exactly, and its SNN's time-averaged logits must approach the ANN's
as T grows. The images are smooth random ones (``helpers.random_batches``): what is checked is the
conversion of an untrained network, which does not depend on what the images show.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ann2snn.conversion.calibrate import calibrate_thresholds
from ann2snn.conversion.convert import convert
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.opcheck import check_operations, swap_maxpool_for_avgpool
from ann2snn.conversion.simulate import reset_neurons, set_mode
from ann2snn.conversion.snn import prepare_ann

from helpers import random_batches

torchvision = pytest.importorskip("torchvision")
EX = torch.zeros(1, 3, 32, 32)


class FunctionalReLU(nn.Module):
    """Only F.relu calls, no nn.ReLU attribute."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Odd(nn.Module):
    """A small net whose middle step is chosen by ``kind``."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.act, self.pool = nn.ReLU(), nn.MaxPool2d(2)
        self.gelu, self.hs = nn.GELU(), nn.Hardsigmoid()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.c1(x)
        if self.kind == "maxpool":
            x = self.pool(F.relu(x))
        elif self.kind == "gelu":
            x = self.gelu(x)
        elif self.kind == "hardsigmoid":
            x = self.hs(x)
        elif self.kind == "clamp":
            x = x.clamp(min=0)
        elif self.kind == "product":
            x = F.relu(x) * torch.sigmoid(x).detach()
        elif self.kind == "softmax":
            x = F.softmax(x, dim=1)
        x = self.act(self.c2(x))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("kind,fragment", [
    ("maxpool", "max_pool2d (max-pooling): a max of spikes is not a max of rates"),
    ("gelu", "module 'gelu' (GELU"),
    ("hardsigmoid", "module 'hs' (Hardsigmoid"),
    ("clamp", "a clip (ReLU6 / Hardtanh / clamp)"),
    ("product", "sigmoid"),
    ("softmax", "softmax"),
])
def test_bad_small_models_are_refused_with_the_users_line(kind, fragment):
    with pytest.raises(UserError) as info:
        prepare_ann(Odd(kind).eval())
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg
    if kind in ("maxpool", "clamp", "product", "softmax"):  # functional calls: the user's own line
        assert "test_foreign_models.py:" in msg


def test_product_of_two_signals_is_refused():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = F.relu(self.c(x))
            return (y * y).flatten(1)

    with pytest.raises(UserError, match="multiplies or divides two signals"):
        check_operations(Gate().eval(), EX)


def test_scaling_by_a_constant_passes():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)
            self.g = nn.Parameter(torch.ones(1, 4, 1, 1))

        def forward(self, x):
            return (F.relu(self.c(x) * 0.5) * self.g / 2).flatten(1)

    assert check_operations(Scale().eval(), EX) == 1


def images(n=8, seed=0):
    """``n`` smooth random images (the test images: seed 0; calibration batches: other seeds)."""
    return random_batches(n, n, seed=seed)[0][0]


def convert_with_data(model, bits=(1, 0)):
    """A user's path: prepare ReLU sites, calibrate θ (99.99th percentile) on two batches, convert."""
    prepared = prepare_ann(model.eval())
    calib = [(images(32, seed=100 + i), None) for i in range(2)]
    thresholds = calibrate_thresholds(prepared, calib, "percentile:99.99", 2)
    return convert(prepared, EX, *bits, "half-lsb", thresholds=thresholds), prepared


def rel_error(snn, x, ann_logits, T_list):
    """‖mean of the SNN logits over steps 1..T − ANN logits‖ / ‖ANN logits‖ at each T."""
    out, acc = {}, None
    reset_neurons(snn)
    with torch.no_grad():
        for t in range(1, max(T_list) + 1):
            o = snn(x)
            acc = o if acc is None else acc + o
            if t in T_list:
                out[t] = float((acc / t - ann_logits).norm() / ann_logits.norm())
    reset_neurons(snn)
    return out


@pytest.mark.parametrize("name", ["resnet18", pytest.param("vgg11_bn", marks=pytest.mark.slow)])
def test_torchvision_models_with_maxpool_are_refused_then_convert_after_the_swap(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    with pytest.raises(UserError, match=r"module '(maxpool|features\.\d+)' \(MaxPool2d, .*max-pooling"):
        prepare_ann(model)
    swap_maxpool_for_avgpool(model)
    snn, prepared = convert_with_data(model)
    x = images()
    with torch.no_grad():
        ann_logits = model(x)
        set_mode(snn, "ann")
        assert torch.equal(snn(x), ann_logits) and torch.equal(prepared(x), ann_logits)  # ANN-mode parity
        set_mode(snn, "snn")
    err = rel_error(snn, x, ann_logits, [4, 32, 128])
    # the SNN approaches its ANN as T grows (IF, θ from the 99.99th percentile): stated tolerance at T = 128
    assert err[128] < err[32] < err[4] and err[128] < 0.25, err


def test_functional_relu_only_model_converts():
    torch.manual_seed(0)
    model = FunctionalReLU().eval()
    snn, _ = convert_with_data(model, bits=(1, 3))
    x = images()
    with torch.no_grad():
        ann_logits = model(x)
        set_mode(snn, "ann")
        assert torch.equal(snn(x), ann_logits)
        set_mode(snn, "snn")
    err = rel_error(snn, x, ann_logits, [1, 16, 64])
    assert err[64] < err[1] and err[64] < 0.1, err


def test_mobilenet_v2_relu6_is_refused_by_name():
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    with pytest.raises(UserError, match=r"module 'features\.0\.2' \(ReLU6, .*a clip \(ReLU6 / Hardtanh / clamp\)"):
        prepare_ann(model)


def test_swap_keeps_geometry():
    m = nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AdaptiveMaxPool2d(1))
    swap_maxpool_for_avgpool(m)
    assert isinstance(m[0], nn.AvgPool2d) and (m[0].kernel_size, m[0].stride, m[0].padding) == (3, 2, 1)
    assert isinstance(m[1], nn.AdaptiveAvgPool2d)
    assert m(torch.ones(1, 2, 8, 8)).shape == (1, 2, 1, 1)
