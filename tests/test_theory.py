"""Theory checks on a one-layer net with constant input (docs/design.md §3.2–§3.5).

With reset by subtraction and constant input x, the total a neuron emits after T steps is
floor((T·x + v_0)/q)·q until it saturates, so its time average is x rounded on a grid of q/T:

* IF (n = 0) with v_0 = θ/2 and T = L reproduces QCFS(L) *exactly, for every x*: the grids agree on
  [0, λ], below 0 nothing fires, and above λ IF saturates at one spike (θ = λ) per step.
* MBIF(m, n) with v_0 = q/2 and T·2^n = L reproduces QCFS(L) exactly on [0, λ], but *not above λ*:
  MBIF's per-step ceiling (2^m − 2^-n)·θ lies above λ.
* With T·2^n a larger multiple j·L of L, the SNN grid is finer than QCFS's: they agree on QCFS's
  own grid points k·λ/L and must differ between them.
* As T grows, the time average converges to clip(x, 0, λ) with error <= q/T, hence to within
  λ/(2L) + q/T of the QCFS output.
"""

import pytest
import torch
from torch import nn

from ann2snn.ann.activations import QCFS
from ann2snn.conversion.convert import convert
from ann2snn.conversion.simulate import reset_neurons

LAM = 1.0
X = torch.arange(-64, 160, dtype=torch.float32) / 64  # dyadic inputs: every sum below is exact


def one_layer(levels):
    return nn.Sequential(QCFS(levels=levels, lambda_init=LAM)).eval()


def snn_average(ann, m, n, T, v_init="half-lsb", x=X):
    snn = convert(ann, x[:1], m, n, v_init)
    reset_neurons(snn)
    total = torch.zeros_like(x)
    with torch.no_grad():
        for _ in range(T):
            total += snn(x)
    return total / T


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_if_with_T_equal_L_reproduces_qcfs_everywhere(levels):
    ann = one_layer(levels)
    with torch.no_grad():
        assert torch.equal(snn_average(ann, 1, 0, T=levels), ann(X))


@pytest.mark.parametrize("m,n,levels,T", [(1, 3, 16, 2), (1, 2, 8, 2), (1, 3, 8, 1), (2, 1, 4, 2)])
def test_mbif_with_T_times_2n_equal_L_reproduces_qcfs_on_0_lambda(m, n, levels, T):
    ann = one_layer(levels)
    avg = snn_average(ann, m, n, T)
    with torch.no_grad():
        ref = ann(X)
    inside = X <= LAM
    assert torch.equal(avg[inside], ref[inside])
    # above λ the MBIF ceiling (2^m − 2^-n)·θ lets the SNN exceed the ANN's clip
    above = X >= 1.25 * LAM
    assert bool((avg[above] > ref[above]).all())


def test_finer_snn_grid_agrees_only_on_qcfs_grid_points():
    levels, m, n, T = 4, 1, 3, 2  # T·2^n = 16 = 4·L
    ann = one_layer(levels)
    avg = snn_average(ann, m, n, T)
    with torch.no_grad():
        ref = ann(X)
    inside = (X >= 0) & (X <= LAM)
    on_grid = inside & ((X * levels / LAM) == (X * levels / LAM).round())
    assert torch.equal(avg[on_grid], ref[on_grid])
    between = inside & ~on_grid
    assert bool((avg[between] != ref[between]).any())


@pytest.mark.parametrize("m,n", [(1, 0), (1, 3), (2, 1)])
def test_time_average_converges_to_the_clipped_input(m, n):
    levels = 4
    ann = one_layer(levels)
    x = torch.rand(2000, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2
    q = LAM * 2.0 ** -n
    target = x.clamp(0, LAM)
    with torch.no_grad():
        qcfs = ann(x)
    errors = []
    for T in (1, 4, 16, 64, 256):
        err = (snn_average(ann, m, n, T, x=x) - target).abs()
        # where the per-step ceiling does not bind (always for x <= λ), |avg − x| <= q/T
        assert float(err[x <= LAM].max()) <= q / T + 1e-5
        errors.append(float(err[x <= LAM].max()))
        assert float((snn_average(ann, m, n, T, x=x) - qcfs)[x <= LAM].abs().max()) <= LAM / (2 * levels) + q / T + 1e-5
    assert errors[-1] < errors[0]
