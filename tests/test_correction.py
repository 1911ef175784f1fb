"""Correction after conversion (bias / potential, after SNN Calibration): what it targets, hand counts,
ANN-mode parity, save/load, the data it reads, and bad input."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import ann2snn
from ann2snn.conversion.correct import CORRECT_MODES, correct_snn
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.plumbing.errors import UserError
from helpers import random_batches, tiny_ann


def _relu_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10)).eval()


def _rate_errors(snn, x, T):
    """Per site: mean over channels of |ANN mean − SNN mean over T steps|, each mean per channel over
    images and positions; computed here by simulating step by step with forward hooks (not by the
    correction's own time-chunked pass)."""
    from ann2snn.conversion.simulate import set_mode

    neurons = {m: n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    sums = {}

    def hook(m, _i, out):
        dims = [0] + list(range(2, out.dim()))
        sums[neurons[m]] = sums.get(neurons[m], 0) + out.double().mean(dims)

    handles = [m.register_forward_hook(hook) for m in neurons]
    with torch.inference_mode():
        set_mode(snn, "ann")
        snn(x)
        ann = dict(sums)
        sums.clear()
        list(ann2snn.iter_steps(snn, x, T))
    for h in handles:
        h.remove()
    return {n: float((ann[n] - sums[n] / T).abs().mean()) for n in ann}


@pytest.mark.parametrize("neuron", ["if", "mbif"])
@pytest.mark.parametrize("mode", ["bias", "potential", "bias+potential"])
def test_correction_reduces_the_rate_error_it_targets(neuron, mode):
    m = _relu_net()
    x = random_batches(64, 64, seed=3)[0][0][:, :, :8, :8]
    snn = ann2snn.convert_model(m, calibration=[(x, None)], neuron=neuron, calib_batches=1, example=x[:1])
    before = _rate_errors(snn, x, 4)
    report = correct_snn(snn, x, mode, T_cal=4)
    after = _rate_errors(snn, x, 4)
    assert all(after[n] <= before[n] + 1e-9 for n in before), (before, after)
    assert sum(after.values()) < 0.7 * sum(before.values()), (before, after)
    # the report's own numbers agree with this step-by-step count where nothing before a site changed
    first = report["sites"][0]
    assert first["error_before"] == pytest.approx(before[first["site"]], rel=1e-6)
    assert first["error_after"] == pytest.approx(after[first["site"]], rel=1e-6)


def test_bias_and_potential_by_hand_on_one_neuron():
    """One channel, the identity as the layer before: with input a (constant), an IF neuron from v_0 = θ/2
    fires at T_cal = 1 when a + θ/2 >= θ. The bias is mean(relu(a)) − mean(s) over the images; the
    potential offset at T_cal = 2 is (mean(relu(a)) − mean(s_1 + s_2)/2)·2."""
    lin = nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(0.0)
    net = nn.Sequential(lin, nn.ReLU(), nn.Linear(1, 1)).eval()
    a = torch.tensor([[0.2], [0.6], [1.3], [-0.4]])
    snn = ann2snn.convert_model(net, calibration=[(a, None)], neuron="if", threshold="max", calib_batches=1,
                                example=a[:1])
    theta = float(snn[1].theta)
    assert theta == pytest.approx(1.3)
    fired = [1.0 if v + theta / 2 >= theta else 0.0 for v in (0.2, 0.6, 1.3, -0.4)]  # 0, 0, 1, 0
    want_bias = (0.2 + 0.6 + 1.3 + 0.0) / 4 - theta * sum(fired) / 4
    correct_snn(snn, a, "bias", T_cal=1)
    assert float(snn[1].bias_current) == pytest.approx(want_bias, rel=1e-6)
    assert snn[1].v_offset is None

    snn = ann2snn.convert_model(net, calibration=[(a, None)], neuron="if", threshold="max", calib_batches=1,
                                example=a[:1])
    outs = []
    for v in (0.2, 0.6, 1.3, -0.4):  # two steps by hand: charge, fire (at most one spike of θ), subtract
        pot, total = theta / 2, 0.0
        for _ in range(2):
            pot += v
            s = theta if pot >= theta else 0.0
            pot -= s
            total += s
        outs.append(total / 2)
    want_offset = ((0.2 + 0.6 + 1.3) / 4 - sum(outs) / 4) * 2
    correct_snn(snn, a, "potential", T_cal=2)
    assert float(snn[1].v_offset) == pytest.approx(want_offset, rel=1e-6)
    assert snn[1].bias_current is None


@pytest.mark.parametrize("mode", CORRECT_MODES)
@pytest.mark.parametrize("arch", ["vgg16", "resnet20"])
def test_ann_mode_parity_is_unchanged_by_every_correction(mode, arch):
    ann = tiny_ann(arch, width=0.125)
    x = random_batches(16, 16, seed=5)[0][0]
    snn = ann2snn.convert_model(ann, calibration=[(x, None)], neuron="mbif", correct=mode, correct_T=2)
    assert ann2snn.ann_parity(snn, ann, x)
    corrected = [m for m in snn.modules() if isinstance(m, MultiBitIF) and
                 (m.bias_current is not None or m.v_offset is not None)]
    assert len(corrected) == (0 if mode == "none" else len([m for m in snn.modules() if isinstance(m, MultiBitIF)]))


def test_one_group_is_the_whole_method_and_groups_move_by_their_share():
    m = _relu_net(1)
    x = random_batches(64, 64, seed=7)[0][0][:, :, :8, :8]
    nets = [ann2snn.convert_model(m, calibration=[(x, None)], calib_batches=1, example=x[:1]) for _ in range(3)]
    correct_snn(nets[0], x, "bias", 2)
    correct_snn(nets[1], x, "bias", 2, group=64)
    correct_snn(nets[2], x, "bias", 2, group=32)
    b = [[mod.bias_current for mod in n.modules() if isinstance(mod, MultiBitIF)] for n in nets]
    assert all(torch.equal(p, q) for p, q in zip(b[0], b[1]))
    # with two groups the first site's bias is the mean of each half's own correction (the running mean),
    # because nothing before the first site changes between the groups
    half = [ann2snn.convert_model(m, calibration=[(x, None)], calib_batches=1, example=x[:1]) for _ in range(2)]
    correct_snn(half[0], x[:32], "bias", 2)
    first = [mod for mod in half[0].modules() if isinstance(mod, MultiBitIF)][0].bias_current
    # the second half moves it by half (its share) of the error left with the first half's bias in place
    site = [mod for mod in half[0].modules() if isinstance(mod, MultiBitIF)][0]
    with torch.inference_mode():
        current = half[0][0](x[32:])  # the first site's input: the first conv, whatever came before
        target = torch.relu(current).double().mean((0, 2, 3))
        left = target - site.dry_run(current.repeat(2, 1, 1, 1), 2).double().mean((0, 2, 3))
    assert torch.allclose(b[2][0].double(), first.double() + 0.5 * left, atol=1e-6)


def test_corrected_snn_checkpoint_round_trips(tmp_path, fake_cifar, capsys):
    """convert --correct writes the corrections into the SNN checkpoint; load_snn rebuilds the same SNN."""
    from ann2snn.pipelines.train_ann import train_ann
    from ann2snn.conversion.snn import convert_checkpoint, load_snn

    run = tmp_path / "ann"
    train_ann({"arch": "vgg16", "width": 0.125, "dataset": "cifar10", "data_dir": fake_cifar, "skip_md5": True,
               "activation": "relu", "epochs": 1, "batch_size": 25, "augment": "none", "lambda_init": 1.0},
              str(run), progress=False)
    out = tmp_path / "snn.pt"
    data = {"data_dir": fake_cifar, "skip_md5": True}
    ckpt = convert_checkpoint(str(run), {"neuron": "mbif"}, str(out),
                              calibration={"threshold": "max", "calib_batches": 1, "fold_bn": False, **data},
                              correction={"mode": "bias+potential", "T_cal": 2, "images": 20, **data})
    assert ckpt["conversion"]["correct"]["mode"] == "bias+potential" and ckpt["conversion"]["correct"]["images"] == 20
    assert any(k.endswith(".bias_current") for k in ckpt["model_state"])
    snn, _ = load_snn(str(out))
    x = random_batches(4, 4, seed=2)[0][0]
    for name, m in snn.named_modules():
        if isinstance(m, MultiBitIF):
            assert torch.equal(m.bias_current, ckpt["model_state"][f"{name}.bias_current"])
            assert torch.equal(m.v_offset, ckpt["model_state"][f"{name}.v_offset"])
    # a file whose settings say "corrected" but lack a neuron's correction is refused by the strict load
    broken = dict(ckpt)
    broken["model_state"] = {k: v for k, v in ckpt["model_state"].items() if not k.endswith(".v_offset")}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(UserError, match="v_offset"):
        load_snn(str(tmp_path / "broken.pt"))
    assert ann2snn.simulate_logits(snn, x, 3).shape == (3, 4, 10)


def test_correction_reads_training_images_never_held_out_ones(monkeypatch):
    """The images a correction (and a calibration) reads are the kept training images of a run trained
    with a held-out split; a loader that raises on a held-out image proves it."""
    from ann2snn.plumbing import data, splits

    labels = torch.arange(200) % 10
    images = torch.arange(200, dtype=torch.uint8).view(200, 1, 1, 1).expand(200, 3, 32, 32).contiguous()
    monkeypatch.setattr(data, "load_split", lambda name, root, train, *a, **k: (images, labels))
    _, held = data.holdout_split(labels, 50, 10)
    batches = splits.train_eval_batches({"dataset": "cifar10", "holdout": 50}, "unused")
    seen = torch.cat([x for x, _ in batches])
    info = data.DATASETS["cifar10"]
    ids = torch.round(seen[:, 0, 0, 0] * info.std[0] * 255 + info.mean[0] * 255).long()
    assert len(ids) == 150 and not set(ids.tolist()) & set(held.tolist())
    held_batches = splits.holdout_batches({"dataset": "cifar10", "holdout": 50}, "unused")
    ids = torch.round(torch.cat([x for x, _ in held_batches])[:, 0, 0, 0] * info.std[0] * 255 + info.mean[0] * 255)
    assert sorted(ids.long().tolist()) == held.tolist()
    with pytest.raises(UserError, match="holdout"):
        splits.holdout_batches({"dataset": "cifar10"}, "unused")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ann2snn", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_bad_correction_input_is_one_line_and_writes_nothing(tmp_path, fake_cifar):
    from ann2snn.pipelines.train_ann import train_ann

    run = tmp_path / "ann"
    train_ann({"arch": "vgg16", "width": 0.125, "dataset": "cifar10", "data_dir": fake_cifar, "skip_md5": True,
               "activation": "qcfs", "epochs": 1, "batch_size": 25, "augment": "none", "lambda_init": 1.0},
              str(run), progress=False)
    out = tmp_path / "snn.pt"
    cases = [
        (["--correct", "bogus"], "Invalid value for '--correct'"),
        (["--correct-T", "2"], "--correct-T set up a correction: give --correct too"),
        (["--correct", "bias", "--correct-T", "0"], "--correct-T"),
        (["--correct", "bias", "--data-dir", str(tmp_path / "nowhere")], "--correct bias reads training images"),
    ]
    for extra, words in cases:
        r = _cli("convert", "--checkpoint", str(run), "--out", str(out), *extra)
        assert r.returncode == 2, (extra, r.stderr)
        lines = [line for line in r.stderr.strip().splitlines() if not line.startswith(("note:", "warning:"))]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, (extra, r.stderr)
        assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith("snn.pt")]
    r = _cli("sweep", "--checkpoint", str(run), "--neuron", "mbif", "--correct", "bias", "--correct", "nope",
             "--T", "1", "--out", str(tmp_path / "sw"))
    assert r.returncode == 2 and "--correct" in r.stderr and not (tmp_path / "sw").exists()


def test_sweep_rows_name_their_correction(tmp_path, fake_cifar):
    from ann2snn.pipelines.train_ann import train_ann
    from ann2snn.pipelines.sweep import run_sweep

    run = tmp_path / "ann"
    train_ann({"arch": "vgg16", "width": 0.125, "dataset": "cifar10", "data_dir": fake_cifar, "skip_md5": True,
               "activation": "relu", "epochs": 1, "batch_size": 25, "augment": "none", "lambda_init": 1.0},
              str(run), progress=False)
    result = run_sweep([str(run)], "1,2", neurons=["mbif"], thresholds=["max"], calib_batches=1,
                       corrections=["none", "bias"], correct_T=2, correct_images=20, data_dir=fake_cifar,
                       skip_md5=True, subset=10, ops=False, out=str(tmp_path / "sw"))
    assert [r["correction"] for r in result["rows"]] == ["none", "bias T_cal=2"]
    assert result["rows"][0]["ANN"] == result["rows"][1]["ANN"]
    assert result["curves"][1]["conversion"]["correct"]["images"] == 20
    with pytest.raises(UserError, match="give `corrections` too"):
        run_sweep([str(run)], "1", neurons=["mbif"], thresholds=["max"], correct_T=2, data_dir=fake_cifar,
                  skip_md5=True, subset=10, ops=False)


def test_torchvision_resnet18_with_its_max_pool_is_corrected():
    """A network the toolkit did not build: torchvision's ResNet-18 (fx-rewritten ReLU call sites, the
    max-pool kept as a spiking max-pool). Every site is corrected, each error shrinks, ANN mode is the ANN."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = random_batches(16, 16, seed=4)[0][0]
    snn = ann2snn.convert_model(model, calibration=[(x, None)], calib_batches=1, maxpool="spiking",
                                correct="bias+potential", correct_T=2)
    sites = snn.ann2snn_conversion["correct"]["sites"]
    assert len(sites) == 17 and all(s["error_after"] <= s["error_before"] for s in sites)
    assert ann2snn.ann_parity(snn, model, x)


def test_corrected_after_conversion_saves_and_loads_and_is_not_called_exact(tmp_path):
    """correct_snn on a network from convert_model: save_snn records what the neurons carry, load_snn rebuilds
    it; the time chunk a caller set is left as it was; a corrected conversion is never "exact at T = 1"."""
    from ann2snn.conversion.simulate import stateful_of
    from ann2snn.conversion.snn import exact_at_T1

    m = _relu_net(2)
    x = random_batches(32, 32, seed=9)[0][0][:, :, :8, :8]
    snn = ann2snn.convert_model(m, calibration=[(x, None)], calib_batches=1, example=x[:1])
    for mod in stateful_of(snn):
        mod.time_chunk = 1
    correct_snn(snn, x, "bias+potential", 3)
    assert all(mod.time_chunk == 1 for mod in stateful_of(snn))
    ann2snn.save_snn(snn, str(tmp_path / "s.pt"))
    back, ckpt = ann2snn.load_snn(str(tmp_path / "s.pt"), ann=_relu_net(2))
    assert ckpt["conversion"]["correct"]["mode"] == "bias+potential"
    assert torch.equal(ann2snn.simulate_logits(back, x, 3), ann2snn.simulate_logits(snn, x, 3))
    qcfs_exact = {"int_bits": 1, "frac_bits": 2, "cap": 4, "v_init": "half-lsb"}
    assert exact_at_T1({"activation": "qcfs", "levels": 4}, qcfs_exact)  # the identity, without correction
    assert not exact_at_T1({"activation": "qcfs", "levels": 4}, {**qcfs_exact, "correct": {"mode": "bias"}})


def test_the_correction_group_follows_the_memory_budget():
    """The widest layer output of _relu_net on 8×8 images is a conv's 8 channels × 8 × 8 float32 = 2,048 bytes per
    image; a pass needs T_cal × 6 copies of it per image (49,152 bytes at T_cal = 4), so a budget of 5 such images
    gives groups of 5, and an ample one takes every image at once."""
    from ann2snn.conversion.correct import GROUP_COPIES, auto_group

    m = _relu_net(0)
    x = random_batches(32, 32, seed=9)[0][0][:, :, :8, :8]
    snn = ann2snn.convert_model(m, calibration=[(x, None)], calib_batches=1, example=x[:1])
    assert GROUP_COPIES == 6
    assert auto_group(snn, x, 4, budget=5 * 4 * 6 * 2048) == 5
    assert auto_group(snn, x, 4, budget=5 * 4 * 6 * 2048 - 1) == 4
    assert auto_group(snn, x, 4, budget=10 ** 12) == 32
    assert correct_snn(snn, x, "bias", 4)["group"] == 32  # this machine has room for 32 tiny images
