"""Max-pooling in conversion: the spiking max-pool's stated properties, and the three `maxpool` modes."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from ann2snn.conversion.maxpool import SpikingMaxPool, apply_maxpool
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.plumbing.errors import UserError


def _run(pool: SpikingMaxPool, xs: torch.Tensor) -> torch.Tensor:
    """Outputs of every step, ``[T, ...]``, from a fresh state."""
    pool.reset()
    return torch.stack([pool(x) for x in xs])


def _spikes(T, shape, q, k_max, seed=0):
    """Neuron-like inputs: whole counts 0..K times q, with many zeros."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, k_max + 1, (T, *shape), generator=g)
    k[torch.rand(k.shape, generator=g) < 0.5] = 0
    return k.float() * q


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.AdaptiveMaxPool2d(1)])
@pytest.mark.parametrize("q,k_max", [(1.0, 1), (0.125, 15), (0.5, 3)])
def test_time_sum_identity_is_exact_for_power_of_two_quanta(pool, q, k_max):
    xs = _spikes(12, (2, 3, 6, 6), q, k_max)
    out = _run(SpikingMaxPool(pool), xs)
    # Σ_t o_t against the ANN pool of the summed input, computed directly
    assert torch.equal(out.sum(0), pool(xs.sum(0)))
    # every prefix too: the pool's running output is the max-pool of the running input
    assert torch.equal(out.cumsum(0), torch.stack([pool(xs[:t + 1].sum(0)) for t in range(len(xs))]))


@pytest.mark.parametrize("q,k_max", [(1.0, 1), (0.125, 15)])
def test_outputs_are_whole_counts_between_zero_and_the_steps_largest_input(q, k_max):
    pool = nn.MaxPool2d(3, 2, 1)
    xs = _spikes(16, (2, 4, 8, 8), q, k_max, seed=1)
    out = _run(SpikingMaxPool(pool), xs)
    k = out / q
    assert torch.equal(k, k.round())
    assert out.min() >= 0
    # the window's largest input of the same step, by the ANN pool of that step alone
    assert bool((out <= torch.stack([pool(x) for x in xs])).all())
    if k_max == 1:  # after IF the pool's output is binary too: 0 or θ
        assert set(out.unique().tolist()) <= {0.0, q}
    assert out.max() <= k_max * q


def test_a_max_of_spikes_would_overcount_where_the_spiking_pool_does_not():
    """The reason for the accumulated input: pooling each step's spikes on its own sums to more."""
    xs = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])  # [T=2, 1, 1, 2]: the two inputs fire in turn
    pool = nn.MaxPool2d((1, 2))
    per_step = sum(pool(x) for x in xs)
    assert float(per_step) == 2.0 and float(pool(xs.sum(0))) == 1.0
    assert float(_run(SpikingMaxPool(pool), xs).sum()) == 1.0


def test_general_theta_keeps_the_identity_within_float_rounding():
    q = 0.3137  # not a power of two: the sums round
    xs = _spikes(64, (2, 3, 6, 6), q, 15, seed=2)
    pool = nn.MaxPool2d(2)
    out = _run(SpikingMaxPool(pool), xs)
    ref = pool(xs.double().sum(0)).float()
    assert torch.allclose(out.sum(0), ref, rtol=64 * 2 ** -23, atol=0)
    assert out.min() >= 0


def test_analog_input_constant_current_gives_the_ann_pool_every_step():
    """conv → max-pool → neuron: a constant input current (direct encoding at the first layer)."""
    torch.manual_seed(0)
    c = torch.randn(2, 3, 8, 8)  # negative values too: a current, not spikes
    pool = nn.MaxPool2d(2)
    out = _run(SpikingMaxPool(pool), c.expand(20, *c.shape))
    ann = pool(c)
    assert torch.allclose(out, ann.expand_as(out), rtol=0, atol=20 * 4 * 2 ** -23 * float(c.abs().max()))
    assert torch.allclose(out.sum(0), pool(20 * c), rtol=1e-6, atol=1e-5)
    assert out.min() < 0  # currents: negative outputs are allowed


def test_analog_input_varying_current_time_sum_identity():
    torch.manual_seed(1)
    xs = torch.randn(30, 2, 3, 8, 8)
    pool = nn.MaxPool2d(3, 2, 1)
    out = _run(SpikingMaxPool(pool), xs)
    ref = pool(xs.double().sum(0)).float()
    assert torch.allclose(out.sum(0), ref, rtol=1e-5, atol=1e-5)


def test_state_shapes_reset_and_ann_mode():
    pool = SpikingMaxPool(nn.MaxPool2d(3, 2, 1))
    x = torch.ones(2, 4, 16, 16)
    pool(x)
    assert pool.acc.shape == (2, 4, 16, 16) and pool.peak.shape == (2, 4, 8, 8)  # the stated memory
    pool.reset()
    assert pool.acc is None and pool.peak is None
    pool.mode = "ann"
    y = torch.randn(2, 4, 16, 16)
    assert torch.equal(pool(y), F.max_pool2d(y, 3, 2, 1))
    assert pool.acc is None  # ANN mode keeps no state


def test_time_chunk_equals_step_by_step():
    xs = _spikes(6, (2, 3, 6, 6), 0.25, 7, seed=3)
    a = _run(SpikingMaxPool(nn.MaxPool2d(2)), xs)
    chunked = SpikingMaxPool(nn.MaxPool2d(2))
    chunked.time_chunk = 3
    b = torch.cat([chunked(xs[0:3].reshape(-1, 3, 6, 6)), chunked(xs[3:6].reshape(-1, 3, 6, 6))])
    assert torch.equal(a.reshape(-1, 3, 3, 3), b)


def test_wraps_only_max_pools():
    with pytest.raises(TypeError):
        SpikingMaxPool(nn.AvgPool2d(2))
    with pytest.raises(TypeError):
        SpikingMaxPool(nn.MaxPool2d(2, return_indices=True))


def test_apply_maxpool_modes_and_notes():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
    notes = []
    assert apply_maxpool(net, "refuse", notes.append) is net and notes == []
    assert apply_maxpool(net, "spiking", notes.append) is net and notes == []
    swapped = apply_maxpool(net, "avg", notes.append)
    assert isinstance(swapped[2], nn.AvgPool2d) and isinstance(net[2], nn.MaxPool2d)  # a copy; net unchanged
    assert len(notes) == 1 and "changes the network" in notes[0]
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert apply_maxpool(plain, "spiking", notes.append) is plain
    assert "no max-pool" in notes[-1]
    with pytest.raises(UserError, match="maxpool"):
        apply_maxpool(net, "max", notes.append)


# --- conversion with `maxpool` -------------------------------------------------------------------

class _PoolNet(nn.Module):
    """conv → ReLU → max-pool → 1x1 conv (fan-out C_out = 5 per pooled element) → ReLU → linear."""

    def __init__(self, reuse=False, functional=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 5, 1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(5 * 2 * 2 if reuse else 5 * 4 * 4, 3)
        self.reuse, self.functional = reuse, functional

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = F.max_pool2d(x, 2) if self.functional else self.pool(x)
        x = self.relu2(self.conv2(x))
        if self.reuse:
            x = self.pool(x)  # the same module at a second call site
        return self.fc(x.flatten(1))


def _batches(n=4, seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(8, 3, size, size, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def _convert(net, **kw):
    from ann2snn import convert_model

    return convert_model(net, calibration=_batches(), threshold="max", example=torch.zeros(1, 3, 8, 8), **kw)


def test_max_pool_is_refused_by_default_naming_the_module_and_the_way_out():
    torch.manual_seed(0)
    with pytest.raises(UserError, match=r"module 'pool'.*`maxpool` spiking"):
        _convert(_PoolNet())


def test_functional_max_pool_is_refused_even_with_spiking():
    torch.manual_seed(0)
    with pytest.raises(UserError, match="nn.MaxPool2d module"):
        _convert(_PoolNet(functional=True), maxpool="spiking")


def test_a_max_pool_module_called_twice_is_refused():
    torch.manual_seed(0)
    with pytest.raises(UserError, match="'pool' is called 2 times"):
        _convert(_PoolNet(reuse=True), maxpool="spiking")


def test_spiking_conversion_keeps_ann_mode_parity_and_approaches_the_ann():
    from ann2snn.api import iter_steps
    from ann2snn.conversion.simulate import set_mode

    torch.manual_seed(0)
    net = _PoolNet().eval()
    snn = _convert(net, maxpool="spiking", neuron="if")
    assert isinstance(snn.pool, SpikingMaxPool) and isinstance(net.pool, nn.MaxPool2d)  # the user's net unchanged
    x, _ = _batches(1, seed=5)[0]
    set_mode(snn, "ann")
    assert torch.equal(snn(x), net(x))  # ANN-mode parity, exact
    set_mode(snn, "snn")
    with torch.no_grad():
        ann = net(x)
    acc, errs = 0, {}
    for t, out in enumerate(iter_steps(snn, x, 256), 1):
        acc = acc + out
        if t in (16, 256):
            errs[t] = float((acc / t - ann).abs().max() / ann.abs().max())
    assert errs[256] < errs[16] and errs[256] < 0.05, errs


def test_spiking_pool_outputs_are_the_next_layers_events():
    """Op counting: the pool is the event source of conv2 (1x1, 5 output channels: fan-out 5 per pooled
    element); the neuron before the pool reaches no weighted layer itself."""
    from ann2snn.analysis.opcount import OpCounter
    from ann2snn.conversion.simulate import simulate_snn

    torch.manual_seed(0)
    snn = _convert(_PoolNet().eval(), maxpool="spiking", neuron="mbif", int_bits=1, frac_bits=2)
    x, y = _batches(1, seed=6)[0]
    pool_out = []
    counter = OpCounter(snn, input_shape=(1, 3, 8, 8))
    h = snn.pool.register_forward_hook(lambda _m, _i, out: pool_out.append(out.clone()))
    simulate_snn(snn, [(x, y)], 6, observers=[counter])
    h.remove()
    counter.remove()
    q = snn.relu1.quantum()
    assert counter.pool_sources == {"pool": "relu1"}
    assert int(counter.fanout["relu1"].sum()) == 0
    assert bool((counter.fanout["pool"] == 5).all())
    k = torch.stack(pool_out).div(q).round()  # [T, B, 4, 4, 4] whole counts of relu1's q
    assert float(counter.site_events["pool"].sum()) == 5 * int((k != 0).sum())
    popcount = sum(((k.long() >> b) & 1) for b in range(3))  # K = 7: three bits, counted by hand
    assert float(counter.site_bitops["pool"].sum()) == 5 * int(popcount.sum())
    assert float(counter.site_events["relu1"].sum()) == 0


def test_bit_planes_check_the_layer_after_a_spiking_pool():
    from ann2snn.analysis.bitplane import check_bitplanes

    torch.manual_seed(0)
    snn = _convert(_PoolNet().eval(), maxpool="spiking", neuron="mbif", int_bits=1, frac_bits=3)
    rows = {r["layer"]: r for r in check_bitplanes(snn, _batches(1, seed=7)[0][0], T=4)}
    assert rows["conv2"]["neuron"] == "relu1" and rows["conv2"]["bits"] == 4
    assert rows["conv2"]["max_rel_diff"] < 1e-5


def test_nir_export_refuses_a_spiking_pool_by_name():
    from ann2snn.export.nir_graph import snn_to_nir

    pytest.importorskip("nir")
    torch.manual_seed(0)
    snn = _convert(_PoolNet().eval(), maxpool="spiking")
    with pytest.raises(UserError, match="spiking max-pool 'pool'"):
        snn_to_nir(snn, torch.zeros(1, 3, 8, 8))


def test_avg_swaps_with_a_note_and_spiking_without_pools_notes(capsys):
    torch.manual_seed(0)
    net = _PoolNet().eval()
    snn = _convert(net, maxpool="avg")
    assert isinstance(snn.pool, nn.AvgPool2d) and isinstance(net.pool, nn.MaxPool2d)
    assert "changes the network" in capsys.readouterr().err
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    _convert(plain, maxpool="spiking")
    assert "no max-pool" in capsys.readouterr().err


def test_save_and_load_keep_the_spiking_pool(tmp_path):
    from ann2snn import load_snn, save_snn
    from ann2snn.api import iter_steps

    torch.manual_seed(0)
    snn = _convert(_PoolNet().eval(), maxpool="spiking")
    save_snn(snn, tmp_path / "snn.pt")
    back, ckpt = load_snn(tmp_path / "snn.pt", ann=_PoolNet())
    assert ckpt["conversion"]["maxpool"] == "spiking" and isinstance(back.pool, SpikingMaxPool)
    x = _batches(1, seed=8)[0][0]
    assert all(torch.equal(a, b) for a, b in zip(iter_steps(snn, x, 8), iter_steps(back, x, 8)))


def test_neuron_sites_and_pools_reset_together():
    from ann2snn.conversion.simulate import reset_neurons, stateful_of

    torch.manual_seed(0)
    snn = _convert(_PoolNet().eval(), maxpool="spiking")
    assert [type(m).__name__ for m in stateful_of(snn)].count("SpikingMaxPool") == 1
    assert sum(isinstance(m, MultiBitIF) for m in stateful_of(snn)) == 2
    snn(torch.rand(2, 3, 8, 8))
    assert snn.pool.acc is not None
    reset_neurons(snn)
    assert snn.pool.acc is None
