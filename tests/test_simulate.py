"""One-pass sweeps, batch-size invariance, state reset."""

import pytest
import torch

from ann2snn.conversion.convert import convert
from ann2snn.ann.evaluate import evaluate_ann
from ann2snn.conversion.simulate import neurons_of, set_mode, simulate_snn

from helpers import random_batches, tiny_ann

EX = torch.zeros(1, 3, 32, 32)


@pytest.fixture(scope="module")
def setup():
    ann = tiny_ann("resnet20", width=0.25)  # residual adds and down-sampling shortcuts included
    batches = random_batches(n=60, batch_size=20, model=ann)
    return ann, batches


@pytest.mark.parametrize("bits", [(1, 0), (1, 3)])
def test_one_pass_equals_separate_runs(setup, bits):
    """One run to T = 16 gives, at every t, what a separate run to T = t gives."""
    ann, batches = setup
    snn = convert(ann, EX, *bits)
    one_pass, n = simulate_snn(snn, batches, 16)
    assert n == 60 and one_pass.shape == (16,)
    for t in (1, 4, 9, 15):
        separate, m = simulate_snn(snn, batches, t)
        assert m == 60 and torch.equal(one_pass[:t], separate), t
    # and it is not trivially constant: accuracy changes with t for IF
    if bits == (1, 0):
        assert len(set(one_pass.tolist())) > 1


def test_prediction_at_t_is_argmax_of_summed_logits(setup):
    ann, batches = setup
    snn = convert(ann, EX, 1, 3)
    correct, _ = simulate_snn(snn, batches, 5)
    manual = torch.zeros(5, dtype=torch.int64)
    with torch.no_grad():
        for x, y in batches:
            for n in neurons_of(snn):
                n.reset()
            acc = 0
            for t in range(5):
                acc = acc + snn(x)
                manual[t] += int((acc.argmax(1) == y).sum())
    assert torch.equal(correct, manual)


@pytest.mark.parametrize("bits", [(1, 0), (1, 3)])
def test_batch_size_invariance(setup, bits):
    ann, batches = setup
    snn = convert(ann, EX, *bits)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    results = []
    for bs in (7, 60, 1):
        chunks = [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]
        results.append(simulate_snn(snn, chunks, 8)[0])
    assert torch.equal(results[0], results[1])
    assert torch.equal(results[0], results[2])


def test_state_is_reset_between_batches_and_runs(setup):
    ann, batches = setup
    snn = convert(ann, EX, 1, 0)
    first, _ = simulate_snn(snn, batches, 6)
    snn(batches[0][0])  # leave some state behind
    again, _ = simulate_snn(snn, batches, 6)
    assert torch.equal(first, again)
    # reversing the batch order changes nothing either
    rev, _ = simulate_snn(snn, batches[::-1], 6)
    assert torch.equal(first, rev)
    assert [n.v for n in neurons_of(snn)] == [None] * 19  # ResNet-20: 19 neurons, all reset


def test_ann_mode_accuracy_equals_ann(setup):
    """Against random labels (the fixture's labels are the ANN's own predictions, which it would score
    100 % on whatever it computed): ANN mode scores what the ANN's own argmax, counted here, scores."""
    ann, _ = setup
    batches = random_batches(n=60, batch_size=20, seed=9)
    with torch.no_grad():
        by_hand = sum(int((ann(x).argmax(1) == y).sum()) for x, y in batches)
    assert 0 < by_hand < 60
    snn = convert(ann, EX, 1, 3)
    set_mode(snn, "ann")
    assert evaluate_ann(snn, batches) == evaluate_ann(ann, batches) == (by_hand, 60)


def test_simulation_keeps_no_autograd_graph(setup):
    ann, batches = setup
    snn = convert(ann, EX, 1, 3)
    flags = []
    for n in neurons_of(snn):
        n.register_forward_hook(lambda _m, _i, out: flags.append(out.requires_grad or _m.v.requires_grad))
    with torch.enable_grad():
        simulate_snn(snn, batches[:1], 3)
    assert len(flags) == 3 * len(neurons_of(snn)) and not any(flags)


def test_progress_bar_takes_an_iterable_without_a_length():
    """A DataLoader over an IterableDataset has __len__ but raises TypeError on it."""
    import ann2snn
    from helpers import random_batches, tiny_ann
    from ann2snn.conversion.simulate import simulate_snn

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(random_batches(8, 4))

    loader = torch.utils.data.DataLoader(Stream(), batch_size=None)
    snn = ann2snn.convert_model(tiny_ann("vgg16", width=0.125), neuron="mbif")
    correct, total = simulate_snn(snn, loader, 3, progress=True)
    assert total == 8 and correct.shape == (3,)
    correct2, _ = simulate_snn(snn, loader, 3, progress=True, time_chunk=3)
    assert torch.equal(correct, correct2)
