"""The per-step ceiling (cap) of the multi-bit IF neuron (docs/design.md §3.5).

* MBIF(m, n) capped at θ (K = 2^n), from v_0 = q/2, has after T steps exactly the time-averaged output
  of IF (v_0 = θ/2) after 2^n·T steps, for inputs below 0, inside [0, θ] and above θ.
* IF is unchanged by a cap; a cap binds only when 2^(m+n) − 1 > 2^n.
* Capped at K = L = 2^n, one MBIF(m, n) step is QCFS(L): a QCFS ANN converts exactly at T = 1.
"""

import pytest
import torch

from ann2snn.ann.activations import QCFS
from ann2snn.cli.main import main
from ann2snn.conversion.convert import convert
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF, resolve_cap
from ann2snn.ann.quantizer import max_count
from ann2snn.conversion.snn import exact_neuron_hint, neuron_settings

from helpers import random_batches, tiny_ann


def average_output(neuron, x, steps):
    """Feed the constant current ``x`` for ``steps`` steps; return the time-averaged output."""
    total = torch.zeros_like(x)
    for _ in range(steps):
        total = total + neuron(x)
    return total / steps


# hand-computed: θ = 1, MBIF(1+2) capped at θ (q = 1/4, K = 4, v_0 = 1/8) against IF (v_0 = 1/2).
# x = 0.3, T = 2: MBIF totals floor((2·0.3 + 1/8)/(1/4)) = floor(2.9) = 2 quanta = 0.5 → average 0.25.
# IF over 8 steps: floor((8·0.3 + 0.5)/1) = floor(2.9) = 2 spikes = 2 → average 0.25.
HAND = [(0.3, 2, 0.25), (-0.5, 3, 0.0), (1.75, 2, 1.0), (0.125, 1, 0.25), (0.0625, 4, 0.0625), (1.0, 3, 1.0)]


@pytest.mark.parametrize("x,T,expected", HAND)
def test_capped_mbif_hand_computed(x, T, expected):
    mbif = MultiBitIF(1.0, 1, 2, "half-lsb", cap="theta")
    neuron_if = MultiBitIF(1.0, 1, 0, "half-lsb")
    got = average_output(mbif, torch.tensor([x]), T)
    assert float(got) == expected
    assert float(average_output(neuron_if, torch.tensor([x]), 4 * T)) == expected


@pytest.mark.parametrize("m,n", [(1, 1), (1, 3), (2, 2), (3, 1), (1, 4)])
@pytest.mark.parametrize("theta", [1.0, 0.75, 2.5])
def test_capped_mbif_equals_if_at_2n_times_T_randomized(m, n, theta):
    """Randomized: dyadic inputs (exact in float32) below 0, inside [0, θ] and above θ. Every operation
    is elementwise on exact values, so no kernel set can round it otherwise (not an ``exactness`` test)."""
    g = torch.Generator().manual_seed(7 * m + n)
    x = torch.randint(-256, 3 * 256, (2000,), generator=g).float() / 256 * theta
    assert (x < 0).any() and ((x >= 0) & (x <= theta)).any() and (x > theta).any()
    for T in (1, 3, 8):
        mbif = MultiBitIF(theta, m, n, "half-lsb", cap="theta")
        assert mbif.k_max == 2 ** n
        neuron_if = MultiBitIF(theta, 1, 0, "half-lsb")
        a = average_output(mbif, x, T)
        b = average_output(neuron_if, x, 2 ** n * T)
        assert torch.equal(a, b)
        # the resolution θ/(2^n·T): every average is a multiple of it, clipped to [0, θ]
        steps = a / (theta / (2 ** n * T))
        assert torch.allclose(steps, steps.round(), atol=1e-4) and a.min() >= 0 and a.max() <= theta


def test_uncapped_mbif_exceeds_theta_where_the_capped_one_does_not():
    x = torch.tensor([1.75])
    assert float(MultiBitIF(1.0, 1, 3, "half-lsb")(x)) == 1.75
    assert float(MultiBitIF(1.0, 1, 3, "half-lsb", cap="theta")(x)) == 1.0


@pytest.mark.parametrize("m,n", [(m, n) for m in range(0, 4) for n in range(0, 4) if 1 <= m + n])
def test_cap_binds_only_when_full_range_exceeds_2n(m, n):
    full = max_count(m, n)
    k = resolve_cap("theta", m, n)
    assert (k < full) == (full > 2 ** n)
    g = torch.Generator().manual_seed(m * 10 + n)
    x = torch.randn(50, 300, generator=g) * 2
    capped, plain = MultiBitIF(1.0, m, n, "zero", cap="theta"), MultiBitIF(1.0, m, n, "zero")
    outs = [(capped(x[t]), plain(x[t])) for t in range(50)]
    same = all(torch.equal(a, b) for a, b in outs)
    assert same == (k == full)


@pytest.mark.parametrize("v_init", ["half-lsb", "zero"])
def test_if_is_unchanged_by_a_cap(v_init):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 500, generator=g)
    for cap in ("theta", 1, "1", "full"):
        a, b = MultiBitIF(0.7, 1, 0, v_init, cap=cap), MultiBitIF(0.7, 1, 0, v_init)
        assert a.k_max == 1
        for t in range(40):
            assert torch.equal(a(x[t]), b(x[t]))


@pytest.mark.parametrize("cap", [0, -1, 16, "16", "1.5", "abc", "", "2e3", True, 2.0])
def test_bad_cap_is_refused(cap):
    with pytest.raises(UserError):
        MultiBitIF(1.0, 1, 3, cap=cap)


def test_settings_store_the_cap_only_when_it_binds():
    cfg = {"activation": "qcfs", "levels": 4}
    assert neuron_settings("mbif", cfg, 1, 3, cap="theta")["cap"] == 8
    assert neuron_settings("mbif", cfg, 1, 2, cap="4")["cap"] == 4
    assert neuron_settings("mbif", cfg, 1, 3, cap="full")["cap"] is None
    assert neuron_settings("mbif", cfg, 1, 3, cap=15)["cap"] is None
    assert neuron_settings("if", cfg)["cap"] is None
    with pytest.raises(UserError, match="drop `cap`"):
        neuron_settings("if", cfg, cap="theta")


@pytest.mark.parametrize("levels,hint", [(1, "--neuron if"), (2, "--neuron mbif:1+1 --cap 2"),
                                         (4, "--neuron mbif:1+2 --cap 4"), (8, "--neuron mbif:1+3 --cap 8"), (3, None),
                                         (6, None)])
def test_exact_neuron_hint(levels, hint):
    got = exact_neuron_hint({"activation": "qcfs", "levels": levels})
    assert (got is None) if hint is None else (hint in got)
    assert exact_neuron_hint({"activation": "matched", "int_bits": 1, "frac_bits": 3}) is None


# (arch, L) pairs whose tiny random network does not go silent (L = 1, 2 kill a tiny VGG-16's signal)
EXACT_CASES = [("vgg16", 4), ("vgg16", 8), ("resnet18", 1), ("resnet18", 2), ("resnet18", 4), ("resnet18", 8),
               ("resnet20", 2)]


@pytest.mark.exactness
@pytest.mark.parametrize("arch,levels", EXACT_CASES)
def test_qcfs_converts_exactly_at_T1_with_the_cap(arch, levels):
    """QCFS(L = 2^n) = one MBIF(1, n) step capped at K = L from v_0 = q/2 (random images, tiny nets;
    the real-CIFAR-10 version is in test_integration.py)."""
    ann = tiny_ann(arch, "qcfs", width=0.125, levels=levels)
    x = random_batches(16, 16, seed=5)[0][0]
    n = levels.bit_length() - 1
    snn = convert(ann, x[:1], 1, n, "half-lsb", cap=levels)
    with torch.no_grad():
        logits = ann(x)
        assert logits.abs().max() > 0 and logits.argmax(1).unique().numel() > 1  # not a silent network
        assert torch.equal(snn(x), logits)
    if n >= 1:  # without the cap it is not the ANN
        snn_full = convert(ann, x[:1], 1, n, "half-lsb")
        with torch.no_grad():
            assert not torch.equal(snn_full(x), ann(x))


def test_qcfs_activation_is_one_capped_step():
    """Elementwise only (each a correctly rounded IEEE operation, the same in every kernel set); the
    network version above is the ``exactness`` test."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10000, generator=g) * 3
    act = QCFS(4, 1.3)
    neuron = MultiBitIF(act.threshold().detach(), 1, 2, "half-lsb", cap=4)
    with torch.no_grad():
        assert torch.equal(neuron(x), act(x))


def test_cli_cap_errors(tmp_path, capsys):
    from ann2snn.plumbing.checkpoint import FORMAT, save_checkpoint

    ann = tiny_ann("resnet20", "qcfs", width=0.25)
    cfg = {"arch": "resnet20", "dataset": "cifar10", "width": 0.25, "activation": "qcfs", "levels": 4,
           "lambda_init": 1.0}
    path = tmp_path / "ann.pt"
    save_checkpoint({"kind": "ann", "format": FORMAT, "config": cfg, "epoch": 1, "complete": True,
                     "model_state": ann.state_dict(), "metrics": []}, str(path))
    capsys.readouterr()
    for args in (["--neuron", "if", "--cap", "theta"], ["--neuron", "mbif", "--cap", "0"],
                 ["--neuron", "mbif", "--cap", "16"], ["--neuron", "mbif", "--cap", "x"]):
        out = tmp_path / "snn.pt"
        assert main(["convert", "--checkpoint", str(path), *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()
    assert main(["convert", "--checkpoint", str(path), "--neuron", "mbif:1+2", "--cap", "4",
                 "--out", str(tmp_path / "ok.pt")]) == 0
    printed = capsys.readouterr().out
    assert "K=4" in printed and "--neuron mbif:1+2 --cap 4" in printed
    assert main(["sweep", "--checkpoint", str(path), "--neuron", "if", "--cap", "theta", "--T", "2",
                 "--out", str(tmp_path / "sw")]) == 2
    assert "drop --cap" in capsys.readouterr().err
