"""The fused MBLIF / LIF step of direct training: all T steps as one compiled kernel forward and one backward.

The reference is the plain per-step loop of ``MBLIF.forward``. The fused step runs the same float
operations in the same order, so spikes are compared with ``torch.equal``; the input gradient adds
the same two terms per step as autograd does (a sum of two floats does not depend on their order),
so it is compared with ``torch.equal`` too.
"""

import warnings

import pytest
import torch

from ann2snn.cli.main import main
from ann2snn.direct.mblif import MBLIF
from ann2snn.pipelines.train_snn import build_snn, resolve_config, train_snn
from ann2snn.plumbing import fuse


def run_neuron(m, n, reset, x, fused, seed=1):
    """Spikes and input gradient of one MBLIF(m, n) on currents ``x [T, B, ...]``, for a fixed random loss."""
    neuron = MBLIF(m, n, reset=reset)
    neuron.fused = fused
    xi = x.clone().requires_grad_(True)
    s = neuron(xi)
    w = torch.randn(s.shape, generator=torch.Generator().manual_seed(seed))
    (s * w).sum().backward()
    return s.detach(), xi.grad, neuron.fused


# every bits setting with both resets, T = 1, 2 and 4 each at least twice
CASES = [((1, 0), "hard", 1), ((1, 0), "subtract", 4), ((2, 0), "hard", 2), ((2, 0), "subtract", 1),
         ((1, 1), "hard", 4), ((1, 1), "subtract", 2), ((2, 1), "hard", 4), ((2, 1), "subtract", 2)]


@pytest.mark.exactness
@pytest.mark.parametrize("bits, reset, T", CASES)
def test_fused_equals_plain_spikes_and_gradients(bits, reset, T):
    torch._dynamo.reset()  # compile afresh for this case: no fallback to eager after the recompile limit
    g = torch.Generator().manual_seed(T * 10 + bits[0])
    # currents around the thresholds (V_th = 0.6, quanta 0.3 and 0.6), with exact ties on level edges
    x = torch.randn(T, 6, 4, 5, 5, generator=g) * 0.9
    x[0, 0, 0, 0, :4] = torch.tensor([0.6, 0.3, 1.2, 0.0])
    s0, g0, _ = run_neuron(*bits, reset, x, fused=False)
    s1, g1, still_fused = run_neuron(*bits, reset, x, fused=True)
    assert still_fused  # the compiled kernels ran (no fallback)
    assert torch.equal(s0, s1) and torch.equal(g0, g1)
    # the spikes are multiples of 2^-n in [0, 2^m - 2^-n] and some fire: the comparison is not vacuous
    unit = 2.0 ** -bits[1]
    assert torch.equal(s1, torch.round(s1 / unit) * unit) and 0 < s1.max() <= 2 ** bits[0] - unit
    assert (g1 != 0).float().mean() > 0.5


def test_a_hand_computed_lif_run():
    """LIF (V_th 0.6, τ 4, hard reset) on the currents 0.5, 0.5, 0.7: by hand u = 0.5 (no spike),
    0.875 (spike, reset), 0.7 (spike)."""
    neuron = MBLIF(1, 0, tau=4.0, v_th=0.6)
    neuron.fused = True
    s = neuron(torch.tensor([[0.5], [0.5], [0.7]]))
    assert s.flatten().tolist() == [0.0, 1.0, 1.0]


@pytest.mark.exactness
def test_fused_network_gives_equal_weight_gradients():
    """A ResNet-20 (¼ width, MBLIF 2+1 with the interlaminar connection, T = 2): outputs and every weight
    gradient equal between the fused and the plain step."""
    torch._dynamo.reset()
    grads = []
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 10
    for on in ("off", "on"):
        torch.manual_seed(0)
        model = build_snn(resolve_config({"width": 0.25, "T": 2, "fuse": on})).train()
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        grads.append((out.detach(), {k: p.grad for k, p in model.named_parameters()}))
    (o0, g0), (o1, g1) = grads
    assert torch.equal(o0, o1)
    assert g0.keys() == g1.keys() and all(torch.equal(g0[k], g1[k]) for k in g0)


def test_the_fallback_warns_once_and_stays_correct(monkeypatch):
    x = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(2))
    s0, g0, _ = run_neuron(2, 1, "hard", x, fused=False)

    def broken(fn):
        def fail(*args):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(fuse, "compiled", broken)
    neuron = MBLIF(2, 1)
    neuron.fused = True
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        xi = x.clone().requires_grad_(True)
        s1 = neuron(xi)
        w = torch.randn(s1.shape, generator=torch.Generator().manual_seed(1))
        (s1 * w).sum().backward()
        s2 = neuron(x)  # plain from now on: no second warning
    assert [str(w.message).split(" (")[0] for w in seen] == ["fused mblif_steps unavailable"]
    assert neuron.fused is False
    assert torch.equal(s1.detach(), s0) and torch.equal(xi.grad, g0) and torch.equal(s2, s0)


def tiny(fake_cifar, **extra):
    return {"width": 0.25, "T": 2, "epochs": 2, "batch_size": 25, "data_dir": fake_cifar, "skip_md5": True,
            "neuron": "mblif", "int_bits": 2, "frac_bits": 1, "ic": True, **extra}


def test_a_resumed_fused_run_continues_exactly_and_stores_its_choice(tmp_path, fake_cifar):
    full = torch.load(train_snn(tiny(fake_cifar, fuse="on"), str(tmp_path / "full"), progress=False),
                      weights_only=True)
    train_snn(tiny(fake_cifar, fuse="on"), str(tmp_path / "part"), stop_after=1, progress=False)
    # auto on resume keeps the stored choice ("on"), though auto would pick "off" for so short a run
    part = torch.load(train_snn(tiny(fake_cifar), str(tmp_path / "part"), resume=True, explicit={"fuse"},
                                progress=False), weights_only=True)
    assert full["config"]["fuse"] == part["config"]["fuse"] == "on"
    assert all(torch.equal(full["model_state"][k], part["model_state"][k]) for k in full["model_state"])
    # a plain run of the same recipe: the same weights (fused and plain steps are the same arithmetic)
    plain = torch.load(train_snn(tiny(fake_cifar, fuse="off"), str(tmp_path / "plain"), progress=False),
                       weights_only=True)
    assert plain["config"]["fuse"] == "off"
    assert all(torch.equal(full["model_state"][k], plain["model_state"][k]) for k in full["model_state"])
    # auto is stored resolved: 2 epochs × 2 batches is far below 1,000 steps, so "off"
    auto = torch.load(train_snn(tiny(fake_cifar, epochs=1), str(tmp_path / "auto"), progress=False),
                      weights_only=True)
    assert auto["config"]["fuse"] == "off"


def test_fuse_bad_input_gets_one_line(tmp_path, fake_cifar, capsys):
    base = ["train-snn", "--width", "0.25", "--T", "1", "--epochs", "1", "--batch-size", "25", "--data-dir",
            fake_cifar, "--skip-md5", "--quiet"]
    capsys.readouterr()
    assert main([*base, "--fuse", "always", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fuse" in err and not (tmp_path / "a").exists()
    assert main([*base, "--fuse", "on", "--no-detach-reset", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err == "Error: --fuse on needs --detach-reset (the fused step keeps the reset out of the gradient): " \
                  "drop one of them\n" and not (tmp_path / "b").exists()
    # resuming with a contradicting --fuse: refused, and the run folder is left as it was
    assert main([*base, "--fuse", "off", "--out", str(tmp_path / "run")]) == 0
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "run").iterdir())
    capsys.readouterr()
    assert main([*base, "--fuse", "on", "--resume", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fuse on differs from the resumed run's off" in err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "run").iterdir()) == before


def test_eval_snn_at_other_T(tmp_path, fake_cifar, capsys):
    """A network trained at T = 1, evaluated at T = 1, 2, 4: its T = 1 accuracy is the one training stored,
    and the T = 4 value is the argmax of the 4-step mean output, counted by hand."""
    from ann2snn.ann.train import load_data
    from ann2snn.pipelines.train_snn import evaluate_direct_snn, load_direct_snn

    run = tmp_path / "run"
    assert main(["train-snn", "--width", "0.25", "--T", "1", "--epochs", "1", "--batch-size", "25", "--data-dir",
                 fake_cifar, "--skip-md5", "--quiet", "--out", str(run)]) == 0
    stored = torch.load(run / "checkpoint.pt", weights_only=True)
    res = evaluate_direct_snn(str(run), "4,1,2", data_dir=fake_cifar, skip_md5=True)
    assert res["T"] == [1, 2, 4] and len(res["curve"]) == 4 and res["samples"] == 10
    assert res["curve"][0] == stored["metrics"][-1]["test_acc_t1"]
    model, ckpt = load_direct_snn(str(run))
    x, y = next(iter(load_data({**ckpt["config"], "data_dir": fake_cifar, "skip_md5": True})[1]))
    with torch.no_grad():
        out = model.forward_steps(x, 4)  # [4, B, classes]
    assert res["row"]["T=4"] == round(100 * float((out.mean(0).argmax(1) == y).float().mean()), 2)
    # the CLI writes the table
    capsys.readouterr()
    assert main(["eval-snn", "--checkpoint", str(run), "--T", "1,2,4", "--data-dir", fake_cifar, "--skip-md5",
                 "--quiet", "--out", str(tmp_path / "ev")]) == 0
    assert "trained at T = 1" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["accuracy.csv", "accuracy.json", "accuracy.md"]
    # a DVS network reads frames binned for its own T: another T is refused in one line, nothing written
    stored["config"] = {**stored["config"], "dataset": "dvs-gesture", "T": 4, "augment": "none"}
    torch.save(stored, tmp_path / "dvs.pt")
    assert main(["eval-snn", "--checkpoint", str(tmp_path / "dvs.pt"), "--T", "1,2", "--out",
                 str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "binned for T = 4" in err and "--T 4" in err
    assert not (tmp_path / "no").exists()
