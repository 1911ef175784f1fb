"""Time-batched simulation (steps merged into the batch) against step-by-step simulation.

A chunked call runs each layer on ``[c·B, ...]`` instead of ``[B, ...]``. In float32 a convolution
may round differently for the two shapes on some CPUs (an AVX-512 machine showed 9.5e-7), and a
floor can turn that into a different spike, so the claim is made in float64 (``--precision
float64``): the same spike counts and accuracies at every t, logits within 1e-12. These tests are
also run under other kernel sets and thread counts by ``.ci/run`` (marker ``exactness``).
"""

import pytest
import torch

from ann2snn.conversion.convert import convert
from ann2snn.conversion.simulate import Observer, neurons_of, reset_neurons, simulate_snn

from helpers import random_batches, tiny_ann

EX = torch.zeros(1, 3, 32, 32)


def counts_and_logits_both_ways(snn, x, T):
    """Per-step spike counts of every neuron and logits, step by step and as one chunk of T steps."""
    seen = []

    def hook(m, _i, out):
        seen.append(torch.round(out / m.quantum()).reshape(m.time_chunk, -1))

    handles = [n.register_forward_hook(hook) for n in neurons_of(snn)]
    try:
        with torch.inference_mode():
            reset_neurons(snn)
            step = torch.stack([snn(x) for _ in range(T)])
            step_counts = torch.cat([torch.cat(seen[i::len(neurons_of(snn))], 0) for i in range(len(neurons_of(snn)))], 1)
            seen.clear()
            reset_neurons(snn)
            for n in neurons_of(snn):
                n.time_chunk = T
            merged = snn(x.repeat(T, 1, 1, 1)).reshape(T, len(x), -1)
            merged_counts = torch.cat(seen, 1)
    finally:
        for h in handles:
            h.remove()
        for n in neurons_of(snn):
            n.time_chunk = 1
    return step, merged, step_counts, merged_counts


# resnet20: residual adds, down-sampling shortcuts
@pytest.mark.exactness
@pytest.mark.parametrize("arch", [pytest.param("vgg16", marks=pytest.mark.slow), "resnet20"])
@pytest.mark.parametrize("bits", [(1, 0), (1, 3)])
def test_time_batched_equals_step_by_step_in_float64(arch, bits):
    ann = tiny_ann(arch, width=0.25)
    batches = random_batches(40, 20, model=ann)
    snn = convert(ann, EX, *bits).double()
    step, merged, k_step, k_merged = counts_and_logits_both_ways(snn, batches[0][0].double(), 6)
    assert k_step.sum() > 0 and torch.equal(k_step, k_merged)  # every spike count at every step
    assert torch.allclose(step, merged, rtol=0, atol=1e-12)
    ref, n = simulate_snn(snn, batches, 16)
    for chunk in (2, 5, 16, 32):
        got, m = simulate_snn(snn, batches, 16, time_chunk=chunk)
        assert m == n and torch.equal(got, ref)
    assert [(nr.time_chunk, nr.v) for nr in neurons_of(snn)] == [(1, None)] * {"vgg16": 15, "resnet20": 19}[arch]


@pytest.mark.exactness
@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_matched_T1_identity_holds_time_batched_in_float64(arch):
    ann = tiny_ann(arch, activation="matched", width=0.125, int_bits=1, frac_bits=3).double()
    snn = convert(ann, EX.double(), 1, 3, "half-lsb")
    x = random_batches(8, 8)[0][0].double()
    step, merged, k_step, k_merged = counts_and_logits_both_ways(snn, x, 3)
    with torch.no_grad():
        logits = ann(x)
    assert torch.equal(step[0], logits)  # step by step: the same operations on the same shapes
    assert torch.allclose(merged[0], logits, rtol=0, atol=1e-12)
    assert torch.equal(merged[0].argmax(1), logits.argmax(1)) and torch.equal(k_step, k_merged)


def test_observers_need_step_by_step():
    ann = tiny_ann("resnet20")
    snn = convert(ann, EX, 1, 0)
    with pytest.raises(ValueError, match="step-by-step"):
        simulate_snn(snn, random_batches(4, 4), 4, observers=[Observer()], time_chunk=2)
