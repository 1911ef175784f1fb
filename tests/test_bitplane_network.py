"""Fig. 4 on a real network: every layer fed by multi-bit spikes equals its sum of binary bit planes.

The identity is about the layers' arithmetic, not about what the images show: smooth random images
(``helpers.random_batches``) drive every layer, so these tests need no real data."""

import pytest
import torch

import ann2snn
from ann2snn.analysis.bitplane import check_bitplanes
from helpers import random_batches, tiny_ann


def images(n, seed=0):
    return random_batches(n, n, seed=seed)[0][0]


@pytest.mark.parametrize("arch,bits,cap", [("vgg16", (1, 3), None), ("resnet18", (1, 3), "theta"), ("vgg16", (2, 2), None)])
def test_layers_on_multibit_spikes_equal_their_bit_planes(arch, bits, cap):
    ann = tiny_ann(arch, width=0.125)
    snn = ann2snn.convert_model(ann, neuron="mbif", int_bits=bits[0], frac_bits=bits[1], cap=cap)
    x = images(4)
    rows = check_bitplanes(snn, x, T=3)
    convs = [n for n, m in snn.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(rows) >= len(convs) // 2  # most weighted layers are fed by a neuron directly
    k_bits = {None: bits[0] + bits[1], "theta": bits[1] + 1}[cap]
    for row in rows:
        assert row["bits"] == k_bits
        assert row["max_rel_diff"] < 1e-5, row  # float re-association only
        assert 0 <= row["mean_popcount"] <= k_bits
    assert any(row["mean_popcount"] > 1 for row in rows)  # multi-bit spikes do carry several planes


def test_bit_planes_are_exact_in_float64():
    snn = ann2snn.convert_model(tiny_ann("vgg16", width=0.125), neuron="mbif").double()
    rows = check_bitplanes(snn, images(2, seed=1).double(), T=2)
    assert rows and max(r["max_rel_diff"] for r in rows) < 1e-12


def test_if_spikes_are_one_plane():
    snn = ann2snn.convert_model(tiny_ann("vgg16", width=0.125), neuron="if")
    rows = check_bitplanes(snn, images(2, seed=2), T=4)
    assert rows and all(r["bits"] == 1 and r["max_rel_diff"] < 1e-6 for r in rows)  # q moved past the sum: round-off
    assert all(r["mean_popcount"] in (0.0, 1.0) for r in rows)


def test_bad_T_is_refused():
    snn = ann2snn.convert_model(tiny_ann("vgg16", width=0.125), neuron="if")
    with pytest.raises(ValueError, match="T must be"):
        check_bitplanes(snn, torch.zeros(1, 3, 32, 32), T=0)
