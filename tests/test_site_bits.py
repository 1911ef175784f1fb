"""Per-site bits: each neuron its own (m, n, K); operation counts follow each site's bits (a hand count)."""

import pytest
import torch

import ann2snn
from ann2snn.analysis.opcount import OpCounter
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import simulate_snn
from ann2snn.plumbing.errors import UserError
from test_opcount import toy_snn


def _toy(site_bits):
    """test_opcount's two-layer toy (its inputs and weights known by hand), with ``site_bits``."""
    snn, x = toy_snn(site_bits)
    return None, snn, x


def test_per_site_bits_count_operations_per_site_by_hand():
    """act1 as IF (θ = 1, v_0 = 0): channel 0 gets 7/8 at the corner (fan-out 12) and an interior pixel (27),
    so v = 7/8, 14/8 → fires at steps 2, 3, 4 (v − 1 each time); channel 1 gets 1/16 a step and stays silent
    for 4 steps. act2 as MBIF(2+1) (q = 1/2, K = 7), fan-out 5 (Linear 48→5): channel 1 gets 15/8 a step,
    so k = floor(v/q) = 3, 4, 4, 4 (v = 15/8, 18/8, 17/8, 16/8; popcount 2, 1, 1, 1); channel 2 gets 1, so
    k = 2 every step (popcount 1); channel 0 is silent."""
    _, snn, x = _toy({"act1": {"int_bits": 1, "frac_bits": 0}, "act2": {"int_bits": 2, "frac_bits": 1}})
    bits = {n: (m.int_bits, m.frac_bits, m.k_max) for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    assert bits == {"act1": (1, 0, 1), "act2": (2, 1, 7)}
    counter = OpCounter(snn, (1, 1, 4, 4))
    simulate_snn(snn, [(x, torch.zeros(2, dtype=torch.long))], 4, observers=[counter])
    assert counter.site_events["act1"].tolist() == [2 * v for v in (0, 39, 39, 39)]
    assert counter.site_bitops["act1"].tolist() == [2 * v for v in (0, 39, 39, 39)]
    assert counter.site_events["act2"].tolist() == [2 * 160] * 4  # 32 firing elements × 5
    assert counter.site_bitops["act2"].tolist() == [2 * v for v in (16 * 2 * 5 + 80, 160, 160, 160)]
    tot = counter.totals(4)
    assert tot["bit_acs"] == 3 * 39 + 240 + 3 * 160
    # the same network at uniform MBIF(1+3) counts otherwise (its own hand count: test_opcount.py)
    _, uniform, _ = _toy(None)
    c2 = OpCounter(uniform, (1, 1, 4, 4))
    simulate_snn(uniform, [(x, torch.zeros(2, dtype=torch.long))], 4, observers=[c2])
    assert c2.totals(4)["bit_acs"] != tot["bit_acs"]


def test_per_site_bits_for_another_network_are_refused_naming_the_sites():
    with pytest.raises(UserError, match=r"conv9.*its sites without bits: act1, act2"):
        _toy({"conv9": {"int_bits": 1, "frac_bits": 0}})
    with pytest.raises(UserError):
        _toy({"act1": {"int_bits": 0, "frac_bits": 0}})


def test_per_site_bits_survive_save_and_load(tmp_path):
    from helpers import random_batches, tiny_ann

    ann = tiny_ann("vgg16", width=0.125)
    x = random_batches(8, 8, seed=1)[0][0]
    snn = ann2snn.convert_model(ann, neuron="mbif")
    sites = [n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)]
    plan = {s: {"int_bits": 1 + i % 2, "frac_bits": i % 4, "cap": None} for i, s in enumerate(sites)}
    mixed = ann2snn.convert_model(ann, neuron="mbif", site_bits=plan)
    assert ann2snn.ann_parity(mixed, ann, x)
    ann2snn.save_snn(mixed, str(tmp_path / "m.pt"))
    back, ckpt = ann2snn.load_snn(str(tmp_path / "m.pt"), ann=tiny_ann("vgg16", width=0.125))
    assert ckpt["conversion"]["site_bits"] == plan
    assert torch.equal(ann2snn.simulate_logits(back, x, 3), ann2snn.simulate_logits(mixed, x, 3))


def test_a_reset_counter_counts_a_change_of_bits_as_a_fresh_one():
    """The planner reuses one OpCounter: after reset() and new bits it counts what a new counter counts."""
    from ann2snn.conversion.plan import apply_site_bits

    _, snn, x = _toy(None)
    counter = OpCounter(snn, (1, 1, 4, 4))
    simulate_snn(snn, [(x, torch.zeros(2, dtype=torch.long))], 4, observers=[counter])
    bits = {"act1": {"int_bits": 1, "frac_bits": 0, "cap": None}, "act2": {"int_bits": 2, "frac_bits": 1, "cap": None}}
    apply_site_bits(snn, bits)
    counter.reset()
    simulate_snn(snn, [(x, torch.zeros(2, dtype=torch.long))], 4, observers=[counter])
    assert counter.totals(4)["bit_acs"] == 3 * 39 + 240 + 3 * 160  # the hand count above
    assert counter.images == 2
