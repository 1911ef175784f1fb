"""What is reproducible, in which precision, across what (docs/reproducibility.md).

* float64 (``--precision float64``): the same spike count at every neuron, step and image, and the
  same accuracy at every t, for batch sizes 1, 7 and 40 and time chunks 1 and 4. ``.ci/run`` repeats
  this file under ``ATEN_CPU_CAPABILITY=default`` and ``avx2`` and with 2 threads.
* float32: one setting is deterministic (the same run in another process gives the same result), but
  spikes can differ between batch sizes or kernel sets; results/reproducibility/ measures how often.
"""

import pytest
import torch

from ann2snn.conversion.convert import convert
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import record_spike_counts, reset_neurons, simulate_snn

from helpers import random_batches, tiny_ann

pytestmark = pytest.mark.exactness
EX = torch.zeros(1, 3, 32, 32)


def rebatch(batches, size):
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


@pytest.mark.parametrize("arch,bits", [("resnet20", (1, 3)), pytest.param("vgg16", (1, 3), marks=pytest.mark.slow),
                                       ("resnet20", (1, 0))])
def test_float64_is_independent_of_batch_size_and_time_chunk(arch, bits):
    ann = tiny_ann(arch, width=0.25)
    batches = random_batches(40, 40, model=ann, seed=3)
    snn = convert(ann, EX, *bits).double()
    ref = record_spike_counts(snn, batches, 8)
    assert sum(int(k.sum()) for k in ref["counts"].values()) > 0
    # correct images at each t, counted here: the prediction at t is the argmax of the logits summed
    # over steps 1..t, in step order (as the simulation adds them)
    correct_ref = (torch.cumsum(ref["logits"], 0).argmax(-1) == ref["labels"]).sum(1)
    assert torch.equal(simulate_snn(snn, batches, 8)[0], correct_ref)
    for size, chunk in ((1, 1), (7, 1), (40, 4), (7, 8)):
        got = record_spike_counts(snn, rebatch(batches, size), 8, time_chunk=chunk)
        for site, k in ref["counts"].items():
            assert torch.equal(k, got["counts"][site]), (size, chunk, site)
        assert torch.allclose(ref["logits"], got["logits"], rtol=0, atol=1e-12)
        correct, total = simulate_snn(snn, rebatch(batches, size), 8, time_chunk=chunk)
        assert torch.equal(correct, correct_ref) and total == 40


# the float32 run of test_float32_run_is_deterministic_within_one_setting, for a fresh process:
# argv = tests folder, output file, thread count
ONE_RUN = """
import sys, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[3]))
from helpers import random_batches, tiny_ann
from ann2snn.conversion.convert import convert
from ann2snn.conversion.simulate import record_spike_counts
ann = tiny_ann("resnet20", width=0.25)
snn = convert(ann, torch.zeros(1, 3, 32, 32), 1, 3)
torch.save(record_spike_counts(snn, random_batches(24, 8, model=ann, seed=4), 6), sys.argv[2])
"""


def counts_by_hand(snn, batches, T):
    """Every neuron's count k = output / q at every step, stepping the network batch by batch here."""
    seen = {}
    handles = [m.register_forward_hook(lambda m, _i, out, name=name: seen.setdefault(name, []).append(
        torch.round(out / m.quantum()))) for name, m in snn.named_modules() if isinstance(m, MultiBitIF)]
    try:
        with torch.no_grad():
            for x, _ in batches:
                reset_neurons(snn)
                for _ in range(T):
                    snn(x)
    finally:
        for h in handles:
            h.remove()
    # [batch 0 step 0, ..., batch 0 step T-1, batch 1 step 0, ...] → [T, N, ...]
    return {name: torch.stack([torch.cat(ks[t::T]) for t in range(T)]) for name, ks in seen.items()}


def test_float32_run_is_deterministic_within_one_setting(tmp_path):
    """The same float32 run in a fresh process gives the same spike counts and logits, bit for bit, and
    the counts are the ones taken by hand from the neurons' outputs."""
    import os
    import subprocess
    import sys

    ann = tiny_ann("resnet20", width=0.25)
    batches = random_batches(24, 8, model=ann, seed=4)
    snn = convert(ann, EX, 1, 3)
    here = record_spike_counts(snn, batches, 6)
    tests = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, "-c", ONE_RUN, tests, str(tmp_path / "run.pt"), str(torch.get_num_threads())],
                   check=True, capture_output=True)
    there = torch.load(tmp_path / "run.pt", weights_only=True)
    assert sorted(here["counts"]) == sorted(there["counts"]) and len(here["counts"]) == 19
    for site in here["counts"]:
        assert torch.equal(here["counts"][site], there["counts"][site]), site
    assert torch.equal(here["logits"], there["logits"])
    by_hand = counts_by_hand(snn, batches, 6)
    assert sorted(by_hand) == sorted(here["counts"])
    for site, k in by_hand.items():
        assert torch.equal(here["counts"][site].to(k.dtype), k), site
    assert sum(int(k.sum()) for k in by_hand.values()) > 0


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_float32_T1_identities_hold_on_this_kernel_set(arch):
    """Matched and QCFS-with-cap T = 1 identities: the same operations on the same shapes, in float32."""
    x = random_batches(16, 16, seed=6)[0][0]
    matched = tiny_ann(arch, "matched", width=0.125, int_bits=1, frac_bits=3)
    qcfs = tiny_ann(arch, "qcfs", width=0.125, levels=4)
    with torch.no_grad():
        assert torch.equal(convert(matched, EX, 1, 3, "half-lsb")(x), matched(x))
        assert torch.equal(convert(qcfs, EX, 1, 2, "half-lsb", cap=4)(x), qcfs(x))
