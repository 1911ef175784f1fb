"""Hand-computed membrane and output traces of IF / MBIF (docs/design.md §3.1), and the shared quantizer."""

import pytest
import torch

from ann2snn.ann.activations import QCFS, MatchedQuant
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF


def run(neuron, inputs):
    """Feed scalar inputs step by step; return (outputs, membrane potentials after reset)."""
    outs, vs = [], []
    for x in inputs:
        outs.append(float(neuron(torch.tensor([x]))[0]))
        vs.append(float(neuron.v[0]))
    return outs, vs


# (theta, m, n, v_init, inputs, expected outputs, expected v after each step); all values dyadic,
# so every number below is exact in float32.
TRACES = {
    # IF, v0 = θ/2 = 0.5; constant 0.25: fires when v reaches exactly θ (tie at v = q fires)
    "if-half-lsb-const": (1.0, 1, 0, "half-lsb", [0.25] * 6, [0, 1, 0, 0, 0, 1], [0.75, 0, 0.25, 0.5, 0.75, 0]),
    # IF, half-threshold is the same v0 = θ/2 for IF
    "if-half-threshold-const": (1.0, 1, 0, "half-threshold", [0.25] * 6, [0, 1, 0, 0, 0, 1], [0.75, 0, 0.25, 0.5, 0.75, 0]),
    # IF, v0 = 0, θ = 2, varying input incl. negative current and a tie at v = θ
    "if-zero-varying": (2.0, 1, 0, "zero", [1.5, 1.0, -2.0, 3.0, 0.5], [0, 2, 0, 0, 2], [1.5, 0.5, -1.5, 1.5, 0]),
    # IF saturates at K = 1: one spike per step, the rest of v carries over
    "if-saturation": (1.0, 1, 0, "half-lsb", [3.0, 3.0, 3.0], [1, 1, 1], [2.5, 4.5, 6.5]),
    # MBIF 1+3: q = θ/8, K = 15, v0 = q/2 = 1/16; constant 5/16
    "mbif13-half-lsb-const": (1.0, 1, 3, "half-lsb", [0.3125] * 4, [0.375, 0.25, 0.375, 0.25], [0, 0.0625, 0, 0.0625]),
    # MBIF 1+3, v0 = θ/2: a bias of θ/2 spread over the steps
    "mbif13-half-threshold-const": (1.0, 1, 3, "half-threshold", [0.3125] * 3, [0.75, 0.375, 0.25], [0.0625, 0, 0.0625]),
    # MBIF 1+3, v0 = 0, tie at exactly v = q fires one quantum
    "mbif13-zero-tie": (1.0, 1, 3, "zero", [0.125, 0.0625, 0.0625], [0.125, 0, 0.125], [0, 0.0625, 0]),
    # MBIF 1+3 saturates at K = 15: at most 15/8·θ a step, above the ANN's clip θ
    "mbif13-saturation": (1.0, 1, 3, "half-lsb", [5.0, 5.0], [1.875, 1.875], [3.1875, 6.3125]),
    # MBIF 2+1: q = θ/2, K = 7 (max 3.5θ), v0 = θ/2
    "mbif21-half-threshold-const": (1.0, 2, 1, "half-threshold", [1.25] * 4, [1.5, 1.5, 1.0, 1.5], [0.25, 0, 0.25, 0]),
    # MBIF 2+1 with θ = 2: q = 1, v0 = q/2 = 0.5; varying input and saturation at K·q = 7
    "mbif21-half-lsb-varying": (2.0, 2, 1, "half-lsb", [0.5, 9.0, -1.0, 0.25], [1, 7, 1, 0], [0, 2, 0, 0.25]),
    # MBIF 2+1 from zero
    "mbif21-zero-const": (1.0, 2, 1, "zero", [0.75] * 3, [0.5, 1.0, 0.5], [0.25, 0, 0.25]),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_hand_computed_trace(name):
    theta, m, n, v_init, inputs, outs, vs = TRACES[name]
    got_outs, got_vs = run(MultiBitIF(theta, m, n, v_init), inputs)
    assert got_outs == outs
    assert got_vs == vs


def test_reset_restarts_from_v0():
    neuron = MultiBitIF(1.0, 1, 0, "half-lsb")
    _, _, _, _, inputs, outs, vs = TRACES["if-half-lsb-const"]
    assert run(neuron, inputs) == (outs, vs)
    neuron.reset()
    assert run(neuron, inputs) == (outs, vs)  # the hand-computed trace again, from v0 = θ/2


@pytest.mark.parametrize("v_init", ["zero", "half-threshold"])
@pytest.mark.parametrize("theta", [1.0, 0.5, 0.7])
def test_if_equals_textbook_binary_if(v_init, theta):
    """Randomized: MBIF(1,0) is a binary IF neuron with reset by subtraction (v >= θ fires θ)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 500, generator=g) * 0.8
    neuron = MultiBitIF(theta, 1, 0, v_init)
    v = torch.full((500,), theta / 2 if v_init == "half-threshold" else 0.0)
    for t in range(64):
        v = v + x[t]
        spike = (v >= theta).float()
        v = v - spike * theta
        assert torch.equal(neuron(x[t]), spike * theta)
    assert torch.equal(neuron.v, v)


def test_values_are_multiples_of_the_quantum():
    neuron = MultiBitIF(0.9, 1, 3, "half-lsb")
    q = 0.9 / 8
    for _ in range(10):
        s = neuron(torch.rand(1000) * 3)
        k = s / q
        assert torch.allclose(k, k.round(), atol=1e-4)
        assert float(k.max()) <= 15 + 1e-4 and float(k.min()) >= 0


@pytest.mark.parametrize("theta", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_threshold_refused(theta):
    with pytest.raises(UserError, match="theta"):
        MultiBitIF(theta, 1, 3)


@pytest.mark.parametrize("m,n", [(0, 0), (-1, 2), (2, -1), (9, 8), (0, 17)])
def test_bad_bits_refused(m, n):
    with pytest.raises(UserError, match="bit widths"):
        MultiBitIF(1.0, m, n)
    with pytest.raises(UserError, match="bit widths"):
        MatchedQuant(m, n)


def test_extreme_bits_accepted():
    assert MultiBitIF(1.0, 0, 1).k_max == 1
    assert MultiBitIF(1.0, 16, 0).k_max == 65535
    assert MultiBitIF(1.0, 0, 16).k_max == 65535


def test_unknown_v_init():
    with pytest.raises(UserError, match="v_init"):
        MultiBitIF(1.0, 1, 0, "half")


def test_qcfs_formula():
    """QCFS(x) = λ·clip(floor(x·L/λ + 0.5)/L, 0, 1) (Bu et al. 2022), on dyadic points off the ties."""
    act = QCFS(levels=4, lambda_init=2.0)
    x = torch.tensor([-1.0, 0.0, 0.2, 0.3, 0.7, 1.1, 1.3, 1.9, 2.0, 5.0])
    expected = 2.0 * torch.clamp(torch.floor(x * 4 / 2.0 + 0.5) / 4, 0, 1)
    assert torch.allclose(act(x), expected)
    assert act(x).tolist() == pytest.approx([0, 0, 0, 0.5, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0])


def test_matched_formula():
    """matched(x) = λ·clip(floor(x·2^n/λ + 0.5)/2^n, 0, 2^m − 2^-n)."""
    act = MatchedQuant(1, 3, lambda_init=1.0)
    x = torch.linspace(-1, 3, 401)
    expected = torch.clamp(torch.floor(x * 8 + 0.5) / 8, 0, 2 - 1 / 8)
    assert torch.equal(act(x), expected)


def test_matched_1_0_equals_qcfs_L1():
    x = torch.randn(10000) * 3
    for lam in (0.37, 1.0, 2.5):
        assert torch.equal(MatchedQuant(1, 0, lam)(x), QCFS(1, lam)(x))


def test_straight_through_gradients():
    act = QCFS(levels=4, lambda_init=2.0)
    x = torch.tensor([-2.0, 0.3, 1.1, 3.0], requires_grad=True)
    act(x).sum().backward()
    # identity inside the clip range, zero where the count is clipped
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    # λ, as autograd through QCFS's own formula gives it: k/L − x/λ per element inside the clip
    # (x=0.3: k=1 → 0.25−0.15; x=1.1: k=2 → 0.5−0.55), K/L = 1 at the top clip, 0 below zero
    assert float(act.raw_lambda.grad) == pytest.approx(0.1 - 0.05 + 1.0)


def test_lambda_stays_positive_but_keeps_its_gradient():
    act = QCFS(levels=4, lambda_init=1.0)
    with torch.no_grad():
        act.raw_lambda.fill_(-0.5)
    assert float(act.threshold().detach()) > 0
    out = act(torch.tensor([10.0]))
    out.sum().backward()
    assert float(act.raw_lambda.grad) == 1.0  # the gradient still reaches the raw parameter
    with pytest.raises(UserError):
        QCFS(levels=4, lambda_init=0.0)
    with pytest.raises(UserError):
        QCFS(levels=0)
