"""Operation counts, fan-out maps, energy, and bit-plane execution (the paper's Fig. 4, Table 5)."""

import math

import pytest
import torch
from torch import nn

from ann2snn.ann.activations import QCFS
from ann2snn.analysis.bitplane import bitplane_forward, popcount
from ann2snn.conversion.convert import convert
from ann2snn.models import vgg16
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.analysis.opcount import E_AC_PJ, E_MAC_PJ, OpCounter, ann_macs, fanout_maps
from ann2snn.ann.evaluate import evaluate_ann
from ann2snn.conversion.simulate import Observer, set_mode, simulate_snn

from helpers import tiny_ann

# fan-out of one channel of a 4×4 map into a 3×3 / pad 1 / stride 1 conv, per output channel
BORDER_4x4 = torch.tensor([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])


# ---------------------------------------------------------------------------------------------
# two-layer toy with hand-counted spikes
# ---------------------------------------------------------------------------------------------
class Toy(nn.Module):
    """input [B,1,4,4] → conv(1→2) → site → conv(2→3) → site → flatten → Linear(48→5)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.act1 = QCFS(4, lambda_init=1.0)
        self.conv2 = nn.Conv2d(2, 3, 3, padding=1)
        self.act2 = QCFS(4, lambda_init=1.0)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(48, 5)

    def forward(self, x):
        return self.fc(self.flatten(self.act2(self.conv2(self.act1(self.conv1(x))))))


def toy_snn(site_bits=None):
    """``site_bits`` None: MBIF(1+3), θ = 1 (q = 1/8, K = 15), v_0 = 0, with spike counts known by hand:

    site act1: channel 0 gets 7/8 at pixels (0,0) and (1,2) (k = 7 each step, popcount 3), 0
    elsewhere; channel 1 gets 1/16 everywhere (k = 0, 1, 0, 1, ...).
    site act2 (conv2 weights 0): channel 0 gets 0 (silent), channel 1 gets 15/8 (k = 15, popcount
    4), channel 2 gets 1 (k = 8, popcount 1), everywhere.
    """
    model = Toy().eval()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[0, 0, 1, 1] = 7 / 8
        model.conv1.bias.copy_(torch.tensor([0.0, 1 / 16]))
        model.conv2.weight.zero_()
        model.conv2.bias.copy_(torch.tensor([0.0, 15 / 8, 1.0]))
    snn = convert(model, torch.zeros(1, 1, 4, 4), 1, 3, "zero", site_bits=site_bits)
    x = torch.zeros(2, 1, 4, 4)
    x[:, 0, 0, 0] = 1.0  # corner
    x[:, 0, 1, 2] = 1.0  # interior
    return snn, x


def test_toy_fanout_border_vs_interior():
    snn, _ = toy_snn()
    counter = OpCounter(snn, (1, 1, 4, 4))
    assert counter.sites == ["act1", "act2"]
    f1 = counter.fanout["act1"]
    assert f1.shape == (2, 4, 4) and f1.dtype == torch.int64
    for c in range(2):
        assert torch.equal(f1[c], BORDER_4x4 * 3)  # 3 output channels of conv2
    assert (f1[0, 0, 0], f1[0, 0, 1], f1[0, 1, 1]) == (12, 18, 27)  # corner, edge, interior
    assert torch.equal(counter.fanout["act2"], torch.full((3, 4, 4), 5))  # Linear(48→5)
    assert counter.analog_layers == ["conv1"]
    assert counter.first_layer_macs == 16 * 2 * 1 * 9


def test_toy_counts_per_step_by_hand():
    snn, x = toy_snn()
    counter = OpCounter(snn, (1, 1, 4, 4))
    simulate_snn(snn, [(x, torch.zeros(2, dtype=torch.long))], 4, observers=[counter])
    # site 1: corner (12) + interior (27) fire k=7 every step; channel 1 (all 16, Σ fan-out 300)
    # fires k=1 at odd steps.  site 2: 32 elements (channels 1, 2) × fan-out 5 = 160 every step.
    ev1 = [39, 39 + 300, 39, 39 + 300]
    bo1 = [3 * 39, 3 * 39 + 300, 3 * 39, 3 * 39 + 300]
    ev2 = [160] * 4
    bo2 = [(16 * 4 + 16 * 1) * 5] * 4
    assert counter.images == 2
    assert counter.site_events["act1"].tolist() == [2 * v for v in ev1]
    assert counter.site_bitops["act1"].tolist() == [2 * v for v in bo1]
    assert counter.site_events["act2"].tolist() == [2 * v for v in ev2]
    assert counter.site_bitops["act2"].tolist() == [2 * v for v in bo2]
    assert counter.events_per_step.tolist() == [2 * 199, 2 * 499, 2 * 199, 2 * 499]
    assert counter.bitops_per_step.tolist() == [2 * 517, 2 * 817, 2 * 517, 2 * 817]

    tot = counter.totals(2)
    assert tot["events"] == 199 + 499 and tot["bit_acs"] == 517 + 817
    assert tot["first_layer_macs"] == 288 * 2
    assert tot["energy_snn_uj"] == pytest.approx((4.6 * 288 * 2 + 0.9 * 698) * 1e-6, rel=1e-12)
    assert tot["energy_snn_bitplane_uj"] == pytest.approx((4.6 * 288 * 2 + 0.9 * 1334) * 1e-6, rel=1e-12)
    assert tot["ann_macs"] == 288 + 864 + 240
    assert tot["energy_ann_uj"] == pytest.approx(4.6 * 1392 * 1e-6, rel=1e-12)
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)
    with pytest.raises(ValueError):
        counter.totals(5)

    # a second simulation adds up; ANN-mode evaluation and plain forward passes are not counted
    simulate_snn(snn, [(x[:1], torch.zeros(1, dtype=torch.long))], 4, observers=[counter])
    set_mode(snn, "ann")
    evaluate_ann(snn, [(x, torch.zeros(2, dtype=torch.long))])
    set_mode(snn, "snn")
    with torch.no_grad():
        snn(x)
    assert counter.images == 3
    assert counter.events_per_step.tolist() == [3 * 199, 3 * 499, 3 * 199, 3 * 499]
    assert counter.totals(4)["events"] == 2 * (199 + 499)
    counter.remove()
    simulate_snn(snn, [(x, torch.zeros(2, dtype=torch.long))], 4, observers=[counter])
    assert counter.events_per_step.tolist() == [3 * 199, 3 * 499, 3 * 199, 3 * 499]


def test_toy_if_events_equal_bitops():
    model = Toy().eval()
    snn = convert(model, torch.zeros(1, 1, 4, 4), 1, 0)
    counter = OpCounter(snn, (1, 1, 4, 4))
    simulate_snn(snn, [(torch.randn(3, 1, 4, 4) * 3, torch.zeros(3, dtype=torch.long))], 6, observers=[counter])
    assert torch.equal(counter.events_per_step, counter.bitops_per_step)


def test_wrong_input_size_is_refused():
    snn = convert(PoolToy().eval(), torch.zeros(1, 1, 8, 8), 1, 0)
    counter = OpCounter(snn, (1, 1, 8, 8))
    with pytest.raises(ValueError, match="probed"):
        simulate_snn(snn, [(torch.zeros(2, 1, 16, 16), torch.zeros(2, dtype=torch.long))], 1, observers=[counter])


# ---------------------------------------------------------------------------------------------
# routing through pools
# ---------------------------------------------------------------------------------------------
class PoolToy(nn.Module):
    """[B,1,8,8] → conv → site → AvgPool2d(2) → conv(1→2) → site → AdaptiveAvgPool2d(1) → Flatten → Linear(2→3)."""

    def __init__(self, bn_before_conv=False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.act1 = QCFS(4, lambda_init=1.0)
        self.pool = nn.AvgPool2d(2)
        self.mid = nn.BatchNorm2d(1) if bn_before_conv else nn.Identity()
        self.conv2 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.act2 = QCFS(4, lambda_init=1.0)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        h = self.act1(self.conv1(x))
        h = self.act2(self.conv2(self.mid(self.pool(h))))
        return self.fc(self.drop(self.flatten(self.gap(h))))


def test_avgpool_routing():
    model = PoolToy().eval()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[0, 0, 1, 1] = 1.0
        model.conv2.weight.zero_()
    snn = convert(model, torch.zeros(1, 1, 8, 8), 1, 0, "zero")  # IF, θ = 1
    counter = OpCounter(snn, (1, 1, 8, 8))
    pooled = BORDER_4x4 * 2  # 4×4 pooled map into conv(1→2)
    expect = pooled.repeat_interleave(2, 0).repeat_interleave(2, 1)  # each input of a window: its output's
    assert torch.equal(counter.fanout["act1"][0], expect)
    assert torch.equal(counter.fanout["act2"], torch.full((2, 4, 4), 3))  # GAP + Linear(2→3)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1.0  # pooled (1,1): interior, 9 × 2 = 18
    x[0, 0, 0, 1] = 1.0  # pooled (0,0): corner, 4 × 2 = 8
    simulate_snn(snn, [(x, torch.zeros(1, dtype=torch.long))], 3, observers=[counter])
    assert counter.events_per_step.tolist() == [26.0] * 3
    assert counter.bitops_per_step.tolist() == [26.0] * 3


def test_scaling_routing_is_refused():
    model = PoolToy(bn_before_conv=True).eval()
    snn = convert(model, torch.zeros(1, 1, 8, 8), 1, 0)
    with pytest.raises(ValueError, match="BatchNorm"):
        fanout_maps(snn, (1, 1, 8, 8))


# ---------------------------------------------------------------------------------------------
# ResNet-20: fan-outs against a brute-force Jacobian count, and per-step counts
# ---------------------------------------------------------------------------------------------
def brute_force_fanout(snn, shape):
    """Independent fan-out: zero every neuron output, set one element of one neuron to 1 (one
    batch row per element), and count the output entries of all Conv2d / Linear layers that change.
    Every such entry is one weight multiplying that element (all weights are non-zero)."""
    neurons = [(n, m) for n, m in snn.named_modules() if isinstance(m, MultiBitIF)]
    weighted = [m for m in snn.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    shapes = {}
    hs = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, o.shape[1:])) for n, m in neurons]
    with torch.no_grad():
        snn(torch.zeros(shape))
    for h in hs:
        h.remove()
    result = {}
    for target, _ in neurons:
        numel = math.prod(shapes[target])
        rows = torch.cat([torch.zeros(1, numel), torch.eye(numel)]).reshape(numel + 1, *shapes[target])
        outs = []
        hs = [m.register_forward_hook(lambda mod, i, o, n=n: rows if n == target else torch.zeros_like(o))
              for n, m in neurons]
        hs += [m.register_forward_hook(lambda mod, i, o: outs.append(o)) for m in weighted]
        for _, m in neurons:
            m.reset()
        with torch.no_grad():
            snn(torch.randn(1, *shape[1:]).expand(numel + 1, *shape[1:]))
        for h in hs:
            h.remove()
        changed = sum(((o[1:] - o[:1]) != 0).flatten(1).sum(1) for o in outs)
        result[target] = changed.reshape(shapes[target])
    for n, m in neurons:
        m.reset()
    return result


class Recorder(Observer):
    """Records every neuron's spike counts k_t at every step."""

    def __init__(self, snn):
        self.k = {}
        self.handles = [m.register_forward_hook(lambda mod, i, o, n=n: self.k.setdefault(n, []).append(
            torch.round(o / mod.quantum()).long())) for n, m in snn.named_modules() if isinstance(m, MultiBitIF)]


@pytest.fixture(scope="module")
def resnet_snn():
    return convert(tiny_ann("resnet20", width=0.25), torch.zeros(1, 3, 8, 8), 1, 3)


def test_resnet_fanout_matches_brute_force(resnet_snn):
    shape = (1, 3, 8, 8)
    counter = OpCounter(resnet_snn, shape)
    brute = brute_force_fanout(resnet_snn, shape)
    assert set(brute) == set(counter.fanout) and len(brute) == 19
    for name in brute:
        assert torch.equal(counter.fanout[name], brute[name]), name
    # by hand: a 4-channel 8×8 map into stage 2 (conv3×3 stride 2 → 8 ch, plus conv1×1 stride 2 shortcut)
    f = counter.fanout["layers.0.2.act2"]
    assert (f[0, 0, 0], f[0, 1, 1], f[0, 2, 2], f[0, 2, 1]) == (8 + 8, 4 * 8, 8 + 8, 2 * 8)
    # identity shortcut adds nothing: stem output into block conv1 only (4 ch, 3×3, stride 1)
    stem = counter.fanout["act1"][1]
    assert (stem[0, 0], stem[0, 3], stem[4, 4]) == (4 * 4, 6 * 4, 9 * 4)
    assert torch.equal(counter.fanout["layers.2.2.act2"], torch.full((16, 2, 2), 10))  # GAP + fc(→10)
    assert counter.analog_layers == ["conv1"]


def test_resnet_counts_match_recount(resnet_snn):
    shape = (1, 3, 8, 8)
    counter = OpCounter(resnet_snn, shape)
    brute = brute_force_fanout(resnet_snn, shape)
    rec = Recorder(resnet_snn)
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(3, 3, 8, 8, generator=g) * 2, torch.zeros(3, dtype=torch.long)) for _ in range(2)]
    T = 4
    simulate_snn(resnet_snn, batches, T, observers=[counter, rec])
    counter.remove()
    for h in rec.handles:
        h.remove()
    pop = torch.tensor([bin(i).count("1") for i in range(16)])
    ev = torch.zeros(T, dtype=torch.float64)
    bo = torch.zeros(T, dtype=torch.float64)
    for name, ks in rec.k.items():
        assert len(ks) == 2 * T
        for i, k in enumerate(ks):
            ev[i % T] += float(((k != 0) * brute[name]).sum())
            bo[i % T] += float((pop[k] * brute[name]).sum())
    assert torch.equal(counter.events_per_step, ev)
    assert torch.equal(counter.bitops_per_step, bo)
    assert (ev > 0).all() and (bo > ev).all()  # multi-bit spikes: more bit-plane ACs than events
    tot = counter.totals(T)
    assert tot["events"] == pytest.approx(float(ev.sum()) / 6)
    assert tot["first_layer_macs"] == 64 * 4 * 27 * T  # stem: 8×8 × 4 ch × 3·3·3


def test_vgg_classifier_fanout():
    snn = convert(tiny_ann("vgg16", width=0.125), torch.zeros(1, 3, 32, 32), 1, 0)
    fan = OpCounter(snn).fanout
    h = 512  # hidden width 4096 × 0.125
    assert torch.equal(fan["features.42"], torch.full((64, 2, 2), h))  # AvgPool2d(2) → Flatten → Linear(64→h)
    assert torch.equal(fan["classifier.2"], torch.full((h,), h))  # → Dropout → Linear(h→h)
    assert torch.equal(fan["classifier.5"], torch.full((h,), 10))
    first = fan["features.2"][0]  # 8 ch 32×32 → conv(8→8) 3×3 pad 1
    assert (first[0, 0], first[0, 5], first[7, 9]) == (4 * 8, 6 * 8, 9 * 8)


# ---------------------------------------------------------------------------------------------
# ann_macs
# ---------------------------------------------------------------------------------------------
def test_ann_macs_toy():
    r = ann_macs(Toy(), (1, 1, 4, 4))
    assert r["layers"] == {"conv1": 16 * 2 * 9, "conv2": 16 * 3 * 2 * 9, "fc": 48 * 5}
    assert r["total"] == 288 + 864 + 240
    assert (r["first_layer"], r["first"]) == ("conv1", 288)
    grouped = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.Flatten(), nn.Linear(6 * 4 * 4, 7))
    r = ann_macs(grouped, (1, 4, 8, 8))
    assert r["total"] == 6 * 4 * 4 * (4 // 2) * 9 + 96 * 7


def test_ann_macs_vgg16():
    model = vgg16(10, lambda: QCFS(4), 1.0)
    r = ann_macs(model)
    # (map side, C_in, C_out) of the 13 convs: 32² ×2, 16² ×2, 8² ×3, 4² ×3, 2² ×3
    convs = ([(32, 3, 64), (32, 64, 64), (16, 64, 128), (16, 128, 128)]
             + [(8, 128, 256)] + [(8, 256, 256)] * 2 + [(4, 256, 512)] + [(4, 512, 512)] * 2 + [(2, 512, 512)] * 3)
    conv_macs = sum(s * s * a * b * 9 for s, a, b in convs)
    fc_macs = 512 * 4096 + 4096 * 4096 + 4096 * 10
    assert conv_macs == 313_196_544  # 313.2M (not 313.5M); + a 512→10 Linear would be 313,201,664
    assert r["total"] == conv_macs + fc_macs == 332_111_872
    assert r["first"] == 32 * 32 * 64 * 27
    assert len(r["layers"]) == 16


# ---------------------------------------------------------------------------------------------
# bit planes
# ---------------------------------------------------------------------------------------------
def test_popcount():
    k = torch.arange(0, 70000, dtype=torch.float32)
    expect = torch.tensor([bin(i).count("1") for i in range(70000)])
    assert torch.equal(popcount(k), expect)
    with pytest.raises(ValueError):
        popcount(torch.tensor([0.5]))
    with pytest.raises(ValueError):
        popcount(torch.tensor([-1.0]))


@pytest.mark.parametrize("kind", ["conv", "conv_strided", "linear"])
def test_bitplane_exact_with_dyadic_weights(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "linear":
        layer = nn.Linear(20, 7)
        counts = torch.randint(0, 16, (5, 20), generator=g).float()
    else:
        layer = nn.Conv2d(3, 4, 3, stride=2 if kind == "conv_strided" else 1, padding=1)
        counts = torch.randint(0, 16, (2, 3, 6, 6), generator=g).float()
    with torch.no_grad():
        layer.weight.copy_(torch.randint(-8, 9, layer.weight.shape, generator=g) / 8)
        layer.bias.copy_(torch.randint(-4, 5, layer.bias.shape, generator=g) / 4)
    q = 0.125
    out = bitplane_forward(layer, counts, q, 4)
    assert torch.equal(out, layer(counts * q))


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_bitplane_close_with_float_weights(kind):
    torch.manual_seed(1)
    if kind == "linear":
        layer = nn.Linear(64, 10)
        counts = torch.randint(0, 16, (4, 64)).float()
    else:
        layer = nn.Conv2d(4, 8, 3, padding=1)
        counts = torch.randint(0, 16, (2, 4, 8, 8)).float()
    q = torch.tensor(0.3711)
    with torch.no_grad():
        out = bitplane_forward(layer, counts, q, 4)
        ref = layer(counts * q)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_bitplane_on_neuron_counts_and_bad_input():
    layer = nn.Linear(6, 2)
    with pytest.raises(ValueError):
        bitplane_forward(layer, torch.tensor([[16.0, 0, 0, 0, 0, 0]]), 0.1, 4)  # 16 needs 5 bits
    with pytest.raises(ValueError):
        bitplane_forward(layer, torch.full((1, 6), 1.5), 0.1, 4)
    with pytest.raises(TypeError):
        bitplane_forward(nn.Identity(), torch.zeros(1, 6), 0.1, 4)
