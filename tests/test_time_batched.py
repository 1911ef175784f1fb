"""Time-batched simulation (steps merged into the batch) equals step-by-step simulation exactly."""

import pytest
import torch

from ann2snn.convert import convert
from ann2snn.simulate import Observer, neurons_of, reset_neurons, simulate_snn

from helpers import random_batches, tiny_ann

EX = torch.zeros(1, 3, 32, 32)


def logits_both_ways(snn, x, T):
    with torch.inference_mode():
        reset_neurons(snn)
        step = torch.stack([snn(x) for _ in range(T)])
        reset_neurons(snn)
        for n in neurons_of(snn):
            n.time_chunk = T
        try:
            merged = snn(x.repeat(T, 1, 1, 1)).reshape(T, len(x), -1)
        finally:
            for n in neurons_of(snn):
                n.time_chunk = 1
    return step, merged


@pytest.mark.parametrize("arch", ["vgg16", "resnet20"])  # resnet20: residual adds, down-sampling shortcuts
@pytest.mark.parametrize("bits", [(1, 0), (1, 3)])
def test_time_batched_equals_step_by_step(arch, bits):
    ann = tiny_ann(arch, width=0.25)
    batches = random_batches(40, 20, model=ann)
    snn = convert(ann, EX, *bits)
    step, merged = logits_both_ways(snn, batches[0][0], 6)
    assert torch.equal(step, merged)  # every logit at every step, bit for bit
    ref, n = simulate_snn(snn, batches, 16)
    for chunk in (2, 5, 16, 32):
        got, m = simulate_snn(snn, batches, 16, time_chunk=chunk)
        assert m == n and torch.equal(got, ref)
    assert all(nr.time_chunk == 1 and nr.v is None for nr in neurons_of(snn))


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_matched_T1_identity_holds_time_batched(arch):
    ann = tiny_ann(arch, activation="matched", width=0.125, int_bits=1, frac_bits=3)
    snn = convert(ann, EX, 1, 3, "half-lsb")
    x = random_batches(8, 8)[0][0]
    step, merged = logits_both_ways(snn, x, 3)
    with torch.no_grad():
        assert torch.equal(merged[0], ann(x))
    assert torch.equal(step, merged)


def test_observers_need_step_by_step():
    ann = tiny_ann("resnet20")
    snn = convert(ann, EX, 1, 0)
    with pytest.raises(ValueError, match="step-by-step"):
        simulate_snn(snn, random_batches(4, 4), 4, observers=[Observer()], time_chunk=2)
