"""The fused neuron step (one compiled kernel per step) against the plain step.

The claim is bit-identity: the same spike values and membrane potentials, not merely close ones.
Both run the same correctly rounded float operations in the same order, so it holds for every
kernel set; ``.ci/run`` repeats the tests of the compiled step, activation and count under
ATEN_CPU_CAPABILITY=default / avx2 and with 2 threads (marker ``exactness``): the code inductor
generates depends on the kernel set. The network tests are not repeated there: in a network the
plain and the fused step see the same layer outputs (the layers run the same kernels in both), so
under another kernel set they only compare the step on other inputs.
"""

import pytest
import torch

from ann2snn.ann.activations import QCFS, MatchedQuant
from ann2snn.conversion.convert import convert
from ann2snn.conversion.neurons import MultiBitIF, if_step
from ann2snn.plumbing import fuse
from ann2snn.conversion.simulate import record_spike_counts, set_fused, neurons_of
from ann2snn.plumbing.errors import UserError

from helpers import random_batches, tiny_ann

EX = torch.zeros(1, 3, 32, 32)
#: activation sites (neurons after conversion) of each architecture, counted in test_convert.py
SITES = {"vgg16": 15, "resnet18": 17, "resnet20": 19}


def both(v, x, q, k):
    with torch.inference_mode():
        return if_step(v, x, q, k), fuse.compiled(if_step)(v, x, q, k)


@pytest.mark.exactness
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_step_is_bit_identical_on_random_inputs(dtype):
    g = torch.Generator().manual_seed(0)
    shapes = [(64, 8, 9, 9), (33, 16, 5, 7), (50, 10), (3, 17, 1, 1)]
    for i in range(24):
        shape = shapes[i % len(shapes)]
        x = (torch.randn(shape, generator=g) * 3).to(dtype)
        v = torch.randn(shape, generator=g).to(dtype)
        q = (torch.rand((), generator=g) + 0.01).to(dtype)
        k = [1, 15, 4, 8, 255, 3][i % 6]
        (s1, v1), (s2, v2) = both(v, x, q, k)
        assert s1.dtype == s2.dtype == dtype
        assert torch.equal(s1, s2) and torch.equal(v1, v2), (i, shape, k)


@pytest.mark.exactness
def test_fused_step_is_bit_identical_at_the_thresholds():
    """Potentials exactly on multiples of q (the floor's edges), just below them, and outside [0, K·q]."""
    q = torch.tensor(0.1)  # not a power of two: v / q rounds
    base = torch.arange(-40, 200, dtype=torch.float32) * q
    v = torch.cat([base, torch.nextafter(base, torch.tensor(-1e9)), torch.nextafter(base, torch.tensor(1e9))])
    x = torch.zeros_like(v)
    for k in (1, 15):
        (s1, v1), (s2, v2) = both(v, x, q, k)
        assert torch.equal(s1, s2) and torch.equal(v1, v2)
    assert float(s1.max()) == pytest.approx(15 * 0.1, rel=1e-6)


@pytest.mark.parametrize("arch, bits, cap", [("vgg16", (1, 3), None), ("vgg16", (1, 0), None),
                                             ("resnet18", (1, 3), "theta"), ("resnet20", (2, 2), None)])
def test_fused_network_gives_the_same_spikes_and_logits(arch, bits, cap):
    ann = tiny_ann(arch, width=0.25 if arch != "resnet20" else 0.5)
    snn = convert(ann, EX, *bits, cap=cap)
    batches = random_batches(24, 12, seed=3)
    plain = record_spike_counts(snn, batches, 10)
    assert set_fused(snn, "on") is True
    fused = record_spike_counts(snn, batches, 10)
    assert [n.fused for n in neurons_of(snn)] == [True] * SITES[arch], "the fused step fell back to the plain one"
    assert torch.equal(plain["logits"], fused["logits"])
    for site in plain["counts"]:
        assert torch.equal(plain["counts"][site], fused["counts"][site]), site
    assert sum(int(c.sum()) for c in fused["counts"].values()) > 0


def test_fused_step_with_time_chunk_equals_plain_step_by_step():
    """Merging 4 steps into the batch changes the conv shapes: compared in float64, where they agree."""
    snn = convert(tiny_ann("vgg16"), EX, 1, 3).double()
    batches = [(x.double(), y) for x, y in random_batches(16, 8, seed=5)]
    plain = record_spike_counts(snn, batches, 8)
    set_fused(snn, True)
    chunked = record_spike_counts(snn, batches, 8, time_chunk=4)
    assert [n.fused for n in neurons_of(snn)] == [True] * SITES["vgg16"]
    for site in plain["counts"]:
        assert torch.equal(plain["counts"][site], chunked["counts"][site]), site
    assert torch.allclose(plain["logits"], chunked["logits"], rtol=0, atol=1e-12)


def test_set_fused_modes_and_bad_value():
    snn = convert(tiny_ann("vgg16"), EX, 1, 3)
    assert set_fused(snn, "auto", "cpu") is True
    assert set_fused(snn, "auto", "cpu", image_steps=10_000 * 128) is True
    assert set_fused(snn, "auto", "cpu", image_steps=2000 * 32) is False  # the quick main job: not worth compiling
    assert set_fused(snn, "auto", "cuda") is False
    assert set_fused(snn, "off") is False and not any(n.fused for n in neurons_of(snn))
    with pytest.raises(UserError, match="auto, on or off"):
        set_fused(snn, "fast")


def test_fused_step_falls_back_to_the_plain_step_with_one_warning(monkeypatch):
    def broken(_fn):
        def fail(*_a):
            raise RuntimeError("no C++ compiler here\nsecond line")
        return fail

    monkeypatch.setattr(fuse, "compiled", broken)
    # a real error (the plain step fails too) is raised as it is, with no warning, and fusion stays on
    bad = MultiBitIF(1.0, 1, 3)
    bad.fused = True
    bad(torch.zeros(4, 3, 2, 2))
    import warnings as _w
    with _w.catch_warnings():
        _w.simplefilter("error")
        with pytest.raises(RuntimeError):
            bad(torch.zeros(5, 3, 2, 2))  # shape differs from v
    assert bad.fused is True
    n = MultiBitIF(1.0, 1, 3)
    ref = MultiBitIF(1.0, 1, 3)
    n.fused = True
    xs = [torch.full((4, 3, 2, 2), 0.3), torch.full((4, 3, 2, 2), 0.7), torch.full((4, 3, 2, 2), 0.2)]
    with pytest.warns(RuntimeWarning, match="fused if_step unavailable .*no C\\+\\+ compiler here\\); using the plain"):
        out = [n(x) for x in xs]
    assert n.fused is False
    assert all(torch.equal(a, ref(x)) for a, x in zip(out, xs))


def test_sweep_cli_records_the_fused_choice(tmp_path, fake_cifar):
    """`ann2snn sweep --fuse on|off` gives the same curve and writes which step ran."""
    import json

    from click.testing import CliRunner

    from ann2snn.cli.main import cli

    runner = CliRunner()
    ckpt = tmp_path / "ann"
    r = runner.invoke(cli, ["train-ann", "--arch", "vgg16", "--width", "0.125", "--epochs", "1", "--data-dir",
                            fake_cifar, "--skip-md5", "--out", str(ckpt), "--quiet"])
    assert r.exit_code == 0, r.output
    curves = {}
    for fuse in ("on", "off"):
        out = tmp_path / f"sweep-{fuse}"
        r = runner.invoke(cli, ["sweep", "--checkpoint", str(ckpt), "--neuron", "mbif:1+3", "--T", "1,4,8",
                                "--data-dir", fake_cifar, "--skip-md5", "--no-ops", "--fuse", fuse,
                                "--out", str(out), "--quiet"])
        assert r.exit_code == 0, r.output
        rows = json.loads((out / "sweep.json").read_text())
        rows = rows["rows"] if isinstance(rows, dict) and "rows" in rows else rows
        curves[fuse] = rows
    assert curves["on"][0]["fused"] is True and curves["off"][0]["fused"] is False
    assert curves["on"][0]["curve"] == curves["off"][0]["curve"]


@pytest.mark.exactness
@pytest.mark.parametrize("make", [lambda: QCFS(4, 1.3), lambda: MatchedQuant(1, 3, 0.9)])
def test_fused_activation_in_training_same_output_and_input_gradient(make):
    """The fused QCFS / matched activation (the training ratio of benchmarks/ratios.py): forward values and dL/dx bit-identical; dL/dλ is a sum
    over the tensor, which the compiled backward adds in another order (close, not identical)."""
    g = torch.Generator().manual_seed(1)
    for shape in [(32, 16, 8, 8), (20, 30, 2, 3)]:
        x = (torch.randn(shape, generator=g) * 1.5)
        grad_out = torch.randn(shape, generator=g)
        results = []
        for fused in (False, True):
            act = make()
            act.fused = fused
            xi = x.clone().requires_grad_(True)
            y = act(xi)
            y.backward(grad_out)
            results.append((y.detach(), xi.grad, act.raw_lambda.grad))
            assert act.fused is fused, "the fused activation fell back to the plain one"
        (y1, gx1, gl1), (y2, gx2, gl2) = results
        assert torch.equal(y1, y2) and torch.equal(gx1, gx2)
        assert float(gl2) == pytest.approx(float(gl1), rel=1e-5, abs=1e-6)


def test_train_ann_fuse_option_and_old_runs_resume_plain(tmp_path, fake_cifar):
    """`train-ann --fuse on` trains; the choice is stored and kept by --resume; auto leaves a short run plain."""
    from ann2snn.pipelines import train_ann as train_mod

    cfg = {"arch": "vgg16", "width": 0.125, "epochs": 2, "data_dir": fake_cifar, "skip_md5": True,
           "batch_size": 16}
    seen = []
    real_fit = train_mod.fit

    def spy(model, config, *a, **k):
        seen.append({m.fused for m in model.modules() if isinstance(m, QCFS)})
        return real_fit(model, config, *a, **k)

    import unittest.mock as mock

    with mock.patch.object(train_mod, "fit", spy):
        train_mod.train_ann({**cfg, "fuse": "on"}, str(tmp_path / "on"), progress=False, stop_after=1)
        ckpt = torch.load(tmp_path / "on" / "checkpoint.pt", weights_only=False)
        assert ckpt["config"]["fuse"] == "on"
        train_mod.train_ann({"data_dir": fake_cifar, "skip_md5": True}, str(tmp_path / "on"), resume=True,
                            progress=False)
        # auto: a short run (2 epochs of a 100-image stand-in) is not worth compiling
        train_mod.train_ann(cfg, str(tmp_path / "auto"), progress=False, stop_after=1)
    assert seen == [{True}, {True}, {False}]
    with pytest.raises(UserError, match="auto, on or off"):
        train_mod.train_ann({**cfg, "fuse": "always"}, str(tmp_path / "bad"), progress=False)


@pytest.mark.exactness
@pytest.mark.parametrize("bits", [(1, 3), (1, 0)])
def test_fused_counting_gives_the_same_counts(bits):
    """With fused neurons, OpCounter counts in one compiled pass; integer sums make it equal the plain count."""
    from ann2snn.analysis.opcount import OpCounter, count_step
    from ann2snn.conversion.simulate import simulate_snn

    snn = convert(tiny_ann("vgg16"), EX, *bits)
    batches = random_batches(16, 8, seed=7)
    totals = []
    for fused in (False, True):
        set_fused(snn, fused)
        counter = OpCounter(snn)
        simulate_snn(snn, batches, 6, observers=[counter])
        counter.remove()
        assert [n.fused for n in neurons_of(snn)] == [fused] * SITES["vgg16"]
        totals.append([counter.totals(T) for T in (1, 3, 6)])
    assert totals[0] == totals[1]
    assert totals[0][-1]["events"] > 0
    # the step function itself, compiled against plain, on counts up to 255
    g = torch.Generator().manual_seed(2)
    q = torch.tensor(0.3)
    out = torch.randint(0, 256, (9, 5, 4, 3), generator=g).float() * q
    with torch.inference_mode():
        a, b = count_step(out, q, 8), fuse.compiled(count_step)(out, q, 8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    k = torch.round(out / q).long().reshape(9, -1)
    assert torch.equal(a[1].long(), sum((k >> i) & 1 for i in range(8)).sum(0))


def test_threads_option_bad_values_and_busy_count(capsys):
    from ann2snn.cli.main import main
    from ann2snn.plumbing.device import choose_threads

    for bad in ("0", "-1", "abc", "3000000000", "99999999999999999999"):
        code = main(["sweep", "--threads", bad, "--checkpoint", "x.pt", "--out", "o"])
        err = capsys.readouterr().err
        assert code == 2 and "--threads must be" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, bad
    assert choose_threads("3") == 3


def test_busy_cores_counts_the_non_idle_share_of_each_usable_cpu(monkeypatch):
    """Two /proc/stat snapshots written here, so the result is a hand count (no clock, no real load):
    cpu0 goes 100 → 200 jiffies with 80 idle (+ 10 iowait) of them: 0.1 busy; cpu1 100 → 300 with 40
    idle: 0.8 busy; cpu2 is not in this process's affinity set and does not count."""
    import builtins
    import io
    import os
    import time

    from ann2snn.plumbing.device import busy_cores

    # fields: user nice system idle iowait irq softirq steal
    stats = iter(["cpu  1 1 1 1 1 1 1 1\ncpu0 10 0 0 80 10 0 0 0\ncpu1 50 0 0 50 0 0 0 0\ncpu2 0 0 0 100 0 0 0 0\n",
                  "cpu  1 1 1 1 1 1 1 1\ncpu0 20 0 0 160 20 0 0 0\ncpu1 210 0 0 90 0 0 0 0\ncpu2 100 0 0 100 0 0 0 0\n"])
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: io.StringIO(next(stats)) if path == "/proc/stat"
                        else real_open(path, *a, **k))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    assert busy_cores(0.25) == pytest.approx(0.1 + 0.8, abs=1e-12)


def test_first_step_keeps_a_wider_v0_dtype():
    """A float64 neuron fed float32 currents keeps a float64 potential from the first step on (as before)."""
    n = MultiBitIF(1.0, 1, 3).double()
    s = n(torch.full((2, 3), 0.3))
    assert n.v.dtype == torch.float64 and s.dtype == torch.float64
