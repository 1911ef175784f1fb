"""Tests that kill the mutants that survived the mutation check of the core (results/mutation/README.md).

The core is the neuron step (``ann2snn/conversion/neurons.py``), the shared quantizer
(``ann2snn/ann/quantizer.py``) and the per-step cap K. Every expected value below is written by hand
from docs/design.md §3.1 (``v ← v + x``, ``k = clip(floor(v/q), 0, K)``, ``s = k·q``, ``v ← v − s``,
``q = θ·2^-n``, ``K = 2^(m+n) − 1`` or the cap) or is a literal message or default; none is computed
by the code under test. All inputs are dyadic, so every value is exact in float32.
"""

import struct

import pytest
import torch

from ann2snn.ann.activations import QCFS
from ann2snn.ann.quantizer import at_least_float32, check_bits
from ann2snn.conversion.neurons import MultiBitIF, if_step, resolve_cap
from ann2snn.plumbing import fuse
from ann2snn.plumbing.errors import UserError


def steps(neuron, inputs, shape=(1,)):
    """Feed constant currents ``inputs`` (one per step) of ``shape``; return the outputs and potentials
    after each step, read at one element (all elements are equal)."""
    outs, vs = [], []
    for x in inputs:
        s = neuron(torch.full(shape, x))
        outs.append(float(s.flatten()[0]))
        vs.append(float(neuron.v.flatten()[0]))
    return outs, vs


# --- the default neuron is IF ------------------------------------------------------------------

def test_default_neuron_is_if():
    """MultiBitIF(θ) with no bits is IF = MBIF(1, 0): q = θ, K = 1, v_0 = θ/2.

    θ = 1, inputs 0.625 then 3: v = 0.5 + 0.625 = 1.125 fires 1 (v → 0.125); v = 3.125 fires only
    K = 1 (v → 2.125). A 2+0 default (K = 3) would send 3 at step 2; a 1+1 default (q = 1/2,
    v_0 = 1/4) would send 0.5 at step 1."""
    n = MultiBitIF(1.0)
    assert n.k_max == 1 and float(n.quantum()) == 1.0 and float(n.initial_potential()) == 0.5
    assert steps(n, [0.625, 3.0]) == ([1.0, 1.0], [0.125, 2.125])


def test_fresh_neuron_defaults():
    """A new neuron spikes one step per call, unfused, with no potential yet. ``mode`` is exactly
    ``"snn"``: ann2snn.analysis.opcount and .entropy record a neuron only when ``mode == "snn"``."""
    n = MultiBitIF(1.0, 1, 3)
    assert n.mode == "snn"
    assert n.fused is False
    assert n.time_chunk == 1
    assert n.v is None


# --- θ is stored as a float32 0-dim buffer --------------------------------------------------------

def test_theta_is_stored_as_float32_whatever_its_input_dtype():
    """θ given as a float64 tensor is stored as float32 (rounded to nearest), so a float32 simulation
    keeps a float32 potential."""
    n = MultiBitIF(torch.tensor(0.1, dtype=torch.float64), 1, 3)
    assert n.theta.dtype == torch.float32 and n.theta.shape == ()
    assert float(n.theta) == struct.unpack("f", struct.pack("f", 0.1))[0]
    s = n(torch.full((3,), 0.25))
    assert s.dtype == torch.float32 and n.v.dtype == torch.float32


# --- ANN mode -----------------------------------------------------------------------------------

def test_ann_mode_runs_the_source_activation_and_leaves_v_alone():
    """In ANN mode the neuron is its source activation: QCFS(L = 4, λ = 1)(x) = clip(floor(4x + 1/2)/4, 0, 1)."""
    n = MultiBitIF(1.0, 1, 2, ann_activation=QCFS(levels=4, lambda_init=1.0))
    n.mode = "ann"
    x = torch.tensor([-0.5, 0.125, 0.3125, 0.625, 2.0])
    # 4x + 1/2 = -1.5, 1, 1.75, 3, 8.5 → floor -2, 1, 1, 3, 8 → /4, clipped to [0, 1]
    with torch.no_grad():
        assert n(x).tolist() == [0.0, 0.25, 0.25, 0.75, 1.0]
    assert n.v is None  # no membrane potential was touched
    n.mode = "snn"  # back to spiking: one MBIF(1, 2) step, q = 1/4, v_0 = 1/8, K = 7
    # v = 1/8 + x = -0.375, 0.25, 0.4375, 0.75, 2.125 → k = 0, 1, 1, 3, 7 (capped at K)
    assert n(x).tolist() == [0.0, 0.25, 0.25, 0.75, 1.75]


def test_ann_mode_without_a_source_activation_is_refused():
    n = MultiBitIF(1.0, 1, 3)
    n.mode = "ann"
    with pytest.raises(RuntimeError) as err:
        n(torch.zeros(2))
    assert str(err.value) == "this neuron has no source activation to run in ANN mode"


# --- the fused (compiled) step --------------------------------------------------------------------

def test_unfused_neuron_never_takes_the_compiled_step(monkeypatch):
    """A neuron with ``fused`` off runs feature maps ``[B, C, H, W]`` on the plain step only."""
    calls = []
    monkeypatch.setattr(fuse, "compiled", lambda fn: calls.append(fn) or fn)
    n = MultiBitIF(1.0, 1, 3)
    outs, _ = steps(n, [0.3125] * 3, shape=(2, 3, 2, 2))
    assert outs == [0.375, 0.25, 0.375]  # as the hand trace mbif13-half-lsb-const in test_neurons.py
    assert calls == []


def test_fused_step_applies_the_cap(monkeypatch):
    """The fused branch is taken for 4-D inputs after the first step and fires with the same K.

    ``fuse.compiled`` is replaced by the identity (no compilation), so the branch runs ``if_step`` as
    given. MBIF(1, 3), θ = 1: q = 1/8, K = 15, v_0 = 1/16; input 5 saturates: 15/8 per step,
    v = 5.0625 − 1.875 = 3.1875, then 8.1875 − 1.875 = 6.3125. With the cap K = 8 (``cap="theta"``):
    1 per step, v = 4.0625, then 8.0625."""
    calls = []
    monkeypatch.setattr(fuse, "compiled", lambda fn: calls.append(fn) or fn)
    for cap, outs, vs in ((None, [1.875, 1.875], [3.1875, 6.3125]), ("theta", [1.0, 1.0], [4.0625, 8.0625])):
        n = MultiBitIF(1.0, 1, 3, cap=cap)
        n.fused = True
        assert steps(n, [5.0, 5.0], shape=(2, 1, 2, 2)) == (outs, vs)
        assert n.fused is True  # it did not fall back to the plain step
    assert calls == [if_step, if_step]  # once per neuron: the second step of each


# --- half-precision inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_raised_to_float32(dtype):
    x = torch.tensor([0.5, -1.25, 3.0], dtype=dtype)
    y = at_least_float32(x)
    assert y.dtype == torch.float32 and y.tolist() == [0.5, -1.25, 3.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_wider_are_kept(dtype):
    x = torch.tensor([0.5, -1.25], dtype=dtype)
    assert at_least_float32(x) is x


def test_qcfs_quantizes_a_bfloat16_input_in_float32():
    """QCFS(L = 4, λ = 1) on bfloat16 inputs runs in float32 and gives clip(floor(4x + 1/2)/4, 0, 1)."""
    act = QCFS(levels=4, lambda_init=1.0)
    x = torch.tensor([-0.25, 0.1171875, 0.37109375, 0.875, 1.5], dtype=torch.bfloat16)
    with torch.no_grad():
        y = act(x)
    # 4x + 1/2 = -0.5, 0.96875, 1.984375, 4, 6.5 → floor -1, 0, 1, 4, 6 → /4, clipped to [0, 1]
    assert y.dtype == torch.float32 and y.tolist() == [0.0, 0.0, 0.25, 1.0, 1.0]


# --- messages of the refusals (one line each, what to do) -------------------------------------------

@pytest.mark.parametrize("m,n,shown", [(1.5, 3, "m=1.5, n=3"), (1, 3.0, "m=1, n=3.0"), ("2", 1, "m='2', n=1")])
def test_bits_that_are_not_whole_numbers_are_refused(m, n, shown):
    """Either width alone being not an int is refused (1.5 + 3 would otherwise pass the range check)."""
    with pytest.raises(UserError) as err:
        check_bits(m, n)
    assert str(err.value) == f"bit widths must be whole numbers, got {shown}"


def test_bad_bit_widths_message():
    with pytest.raises(UserError) as err:
        check_bits(9, 8)
    assert str(err.value) == ("bad bit widths m=9, n=8: need m >= 0, n >= 0 and 1 <= m+n <= 16 "
                              "(IF is m=1, n=0; the default MBIF is m=1, n=3)")


def test_bad_cap_messages():
    with pytest.raises(UserError) as err:
        resolve_cap("abc", 1, 3)
    assert str(err.value) == ("bad cap 'abc': use full, theta or a whole count K with 1 <= K <= 15 "
                              "(the largest count of 1+3)")
    with pytest.raises(UserError) as err:
        resolve_cap("16", 1, 3)
    assert str(err.value) == "cap K=16 is out of range for 1+3: need 1 <= K <= 15"
    with pytest.raises(UserError) as err:
        MultiBitIF(1.0, 2, 1, cap=0)
    assert str(err.value) == "cap K=0 is out of range for 2+1: need 1 <= K <= 7"


def test_cap_values():
    """K for each form of the cap: full 2^(m+n) − 1, theta min(2^n, full), or the count itself."""
    assert [resolve_cap(c, 1, 3) for c in (None, "full", "theta", 1, "8", " 12 ", 15)] == [15, 15, 8, 1, 8, 12, 15]
    assert [resolve_cap(c, 0, 2) for c in (None, "theta")] == [3, 3]  # 2^2 = 4 > K = 3: theta does not bind
    assert [resolve_cap(c, 3, 0) for c in (None, "theta")] == [7, 1]


def test_bad_v_init_message():
    with pytest.raises(UserError) as err:
        MultiBitIF(1.0, 1, 3, "half")
    assert str(err.value) == "unknown v_init 'half': use one of half-lsb, half-threshold, zero"


@pytest.mark.parametrize("theta,shown", [(0.0, "0"), (-2.5, "-2.5"), (float("inf"), "inf")])
def test_bad_threshold_message(theta, shown):
    with pytest.raises(UserError) as err:
        MultiBitIF(theta, 1, 3)
    assert str(err.value) == (f"threshold theta={shown} is not a positive number; the ANN's λ must be > 0 "
                              "(retrain, or check the checkpoint)")


# --- the printed form -----------------------------------------------------------------------------

def test_repr_shows_the_cap_only_when_it_binds():
    assert repr(MultiBitIF(1.0, 1, 3)) == "MultiBitIF(theta=1, m=1, n=3, v_init=half-lsb, reset=subtract)"
    assert repr(MultiBitIF(1.0, 1, 3, cap=15)) == "MultiBitIF(theta=1, m=1, n=3, v_init=half-lsb, reset=subtract)"
    assert repr(MultiBitIF(0.75, 2, 1, "zero", cap=4)) == \
        "MultiBitIF(theta=0.75, m=2, n=1, K=4, v_init=zero, reset=subtract)"
    assert repr(MultiBitIF(2.5, 1, 3, "half-threshold", cap="theta")) == \
        "MultiBitIF(theta=2.5, m=1, n=3, K=8, v_init=half-threshold, reset=subtract)"
