"""NIR export: round trips through sinabs, what is lost, and refusals."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import ann2snn
from helpers import random_batches, tiny_ann

nir = pytest.importorskip("nir", reason="NIR export needs the nir extra: pip install -e '.[nir]'")
sinabs = pytest.importorskip("sinabs", reason="the round trips need the receiving library sinabs")

from ann2snn.export.nir_graph import export_nir, snn_to_nir, to_sinabs  # noqa: E402


def _dyadic(ann):
    """No BatchNorm, weights on a 2^-6 grid and λ powers of two: every sum is exact in float32, so two
    implementations of the same neurons must agree bit for bit."""
    for m in list(ann.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(m, name, nn.Identity())
    with torch.no_grad():
        for m in ann.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.round(m.weight * 64) / 64)
                if m.bias is not None:
                    m.bias.copy_(torch.round(m.bias * 64) / 64)
            if hasattr(m, "raw_lambda"):
                m.raw_lambda.copy_(2.0 ** torch.round(torch.log2(m.raw_lambda.clamp_min(1e-3))))
    return ann


def _both(snn, path, x, T):
    export_nir(snn, str(path))
    net = to_sinabs(str(path), batch_size=x.shape[0])
    ours = ann2snn.simulate_logits(snn, x, T)
    sinabs.reset_states(net)
    with torch.no_grad():
        theirs = torch.stack([net(x) for _ in range(T)])
    return ours, theirs


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
@pytest.mark.parametrize("bits", [(1, 0), (2, 0), (1, 3)])
def test_round_trip_through_sinabs_is_bit_exact_in_exact_arithmetic(tmp_path, arch, bits):
    """Every sum is exact in float32 (see _dyadic), so no kernel set or thread count can round it
    otherwise: not an ``exactness`` test."""
    ann = _dyadic(tiny_ann(arch, width=0.125))
    snn = ann2snn.convert_model(ann, neuron="if" if bits == (1, 0) else "mbif", int_bits=bits[0],
                                frac_bits=bits[1], v_init="zero")
    x = torch.round(torch.randn(3, 3, 32, 32) * 16) / 16
    ours, theirs = _both(snn, tmp_path / "m.nir", x, T=12)
    assert torch.equal(ours, theirs)
    assert ours.abs().sum() > 0


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_round_trip_of_an_ordinary_network_agrees_within_rounding(tmp_path, arch):
    """BN folding and q moved into the next weights re-associate float products: a potential within
    rounding of a threshold may fire a step apart, and in a deep untrained network one flip spreads.
    Stated tolerance: the summed logits over T = 32 steps differ by < 10 % of their scale, and at
    least 6 of 8 predictions agree (measured on these images: 6 % for VGG-16, 0.3 % for ResNet-18; 8 of 8).
    Smooth random images: the rounding does not depend on what the images show (real CIFAR-10 images
    through a real train-ann run: the last test of this file)."""
    snn = ann2snn.convert_model(tiny_ann(arch, width=0.125), neuron="mbif", v_init="zero")
    x = random_batches(8, 8, seed=11)[0][0]
    ours, theirs = _both(snn, tmp_path / "m.nir", x, T=32)
    total_ours, total_theirs = ours.sum(0), theirs.sum(0)
    assert (total_ours - total_theirs).abs().max() < 0.1 * total_ours.abs().max()
    assert (total_ours.argmax(1) == total_theirs.argmax(1)).sum() >= 6


def test_v_init_is_the_documented_difference(tmp_path):
    """half-lsb is not carried (NIR starts at v = 0): the sinabs network equals our zero-start SNN,
    not the half-lsb one."""
    ann = _dyadic(tiny_ann("vgg16", width=0.125))
    x = torch.round(torch.randn(2, 3, 32, 32) * 16) / 16
    half = ann2snn.convert_model(ann, neuron="mbif", v_init="half-lsb")
    zero = ann2snn.convert_model(ann, neuron="mbif", v_init="zero")
    ours_half, theirs = _both(half, tmp_path / "h.nir", x, T=8)
    assert not torch.equal(ours_half, theirs)
    assert torch.equal(ann2snn.simulate_logits(zero, x, 8), theirs)
    graph = nir.read(str(tmp_path / "h.nir"))
    meta = [n.metadata for n in graph.nodes.values() if isinstance(n, nir.IF)][0]
    assert str(meta["ann2snn_v_init"]) in ("half-lsb", "b'half-lsb'") or meta["ann2snn_v_init"] == b"half-lsb"


def test_the_cap_lives_in_metadata_and_sinabs_own_importer_ignores_it(tmp_path):
    ann = _dyadic(tiny_ann("vgg16", width=0.125))
    snn = ann2snn.convert_model(ann, neuron="if", v_init="zero")
    graph = snn_to_nir(snn)
    ifs = [n for n in graph.nodes.values() if isinstance(n, nir.IF)]
    assert len(ifs) == 15 and all(int(n.metadata["ann2snn_max_spikes_per_step"]) == 1 for n in ifs)
    from sinabs.nir import _import_sinabs_module

    plain = _import_sinabs_module(ifs[0], batch_size=1, num_timesteps=None)
    assert plain.min_v_mem is not None  # sinabs' own importer floors v at -v_thr and fires without a cap
    x = torch.full((1, *ifs[0].r.shape), 3.5) * torch.as_tensor(ifs[0].v_threshold)
    assert plain(x).max() == 3  # three spikes in one step, where our IF (K = 1) sends one


def test_cli_exports_a_converted_checkpoint_and_refuses_bad_input(tmp_path, capsys):
    """The export in this process; the refusal through a real ``python -m ann2snn`` process, whose whole
    stderr must be the one line (no warning of an import, no traceback)."""
    from ann2snn.cli.main import main
    from ann2snn.conversion.snn import convert_checkpoint
    from ann2snn.plumbing.checkpoint import save_checkpoint, FORMAT

    ann = tiny_ann("resnet18", width=0.125)
    ann_path = tmp_path / "ann.pt"
    save_checkpoint({"kind": "ann", "format": FORMAT, "model_state": ann.state_dict(),
                     "config": {"arch": "resnet18", "dataset": "cifar10", "width": 0.125, "activation": "qcfs",
                                "levels": 4, "lambda_init": 1.0}}, str(ann_path))
    snn_path = tmp_path / "snn.pt"
    convert_checkpoint(str(ann_path), {"neuron": "mbif", "int_bits": None, "frac_bits": None, "v_init": "zero",
                                       "cap": None}, str(snn_path))
    capsys.readouterr()
    assert main(["export-nir", "--checkpoint", str(snn_path), "--out", str(tmp_path / "m.nir")]) == 0
    out = capsys.readouterr().out
    assert "IF nodes" in out and "ann2snn_max_spikes_per_step" in out
    graph = nir.read(str(tmp_path / "m.nir"))
    assert sum(isinstance(n, nir.IF) for n in graph.nodes.values()) == 17  # ResNet-18: 17 neurons
    bad = subprocess.run([sys.executable, "-m", "ann2snn", "export-nir", "--checkpoint", str(ann_path),
                          "--out", str(tmp_path / "x.nir")], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert "SNN checkpoint" in bad.stderr and not (tmp_path / "x.nir").exists()


def test_an_operation_nir_cannot_express_is_refused_by_name():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.pool = nn.AvgPool2d(3, 1, padding=1)
            self.fc = nn.Linear(4 * 32 * 32, 10)

        def forward(self, x):
            return self.fc(self.pool(self.act(self.c(x))).flatten(1))

    snn = ann2snn.convert_model(Odd().eval(), calibration=[(torch.rand(8, 3, 32, 32), None)], calib_batches=1)
    with pytest.raises(ann2snn.UserError, match="'pool'.*padding"):
        snn_to_nir(snn)


@pytest.mark.integration
@pytest.mark.real_data
@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_networks_from_a_real_train_ann_run_export_and_run_in_sinabs(cifar10_dir, tmp_path, arch):
    from ann2snn.cli.main import main
    from ann2snn.conversion.snn import load_snn
    from helpers import real_images

    run = tmp_path / "run"
    assert main(["train-ann", "--arch", arch, "--width", "0.125", "--epochs", "1", "--subset", "1000",
                 "--test-subset", "200", "--batch-size", "64", "--data-dir", cifar10_dir, "--out", str(run),
                 "--quiet"]) == 0
    assert main(["convert", "--checkpoint", str(run), "--neuron", "mbif", "--v-init", "zero",
                 "--out", str(tmp_path / "snn.pt")]) == 0
    assert main(["export-nir", "--checkpoint", str(tmp_path / "snn.pt"), "--out", str(tmp_path / "m.nir")]) == 0
    snn, _ = load_snn(str(tmp_path / "snn.pt"))
    x = real_images(cifar10_dir, n=8, offset=100)
    net = to_sinabs(str(tmp_path / "m.nir"), batch_size=8)
    ours = ann2snn.simulate_logits(snn, x, 16).sum(0)
    with torch.no_grad():
        theirs = torch.stack([net(x) for _ in range(16)]).sum(0)
    assert (ours.argmax(1) == theirs.argmax(1)).sum() >= 6
    assert (ours - theirs).abs().max() < 0.1 * ours.abs().max()


def test_partial_flatten_add_with_alpha_and_pool_options_are_refused():
    class Net(nn.Module):
        def __init__(self, how):
            super().__init__()
            self.how = how
            self.c = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.pool = nn.AvgPool2d(2, ceil_mode=(how == "ceil"))
            self.fc = nn.Linear(4 * 16 * 16, 10)

        def forward(self, x):
            y = self.pool(self.act(self.c(x)))
            if self.how == "alpha":
                y = torch.add(y, y, alpha=2)
            if self.how == "partial":
                return y.flatten(1, 2).sum(-1)[:, :10]
            return self.fc(y.flatten(1))

    calib = [(torch.rand(8, 3, 32, 32), None)]
    for how, match in [("ceil", "ceil_mode"), ("alpha", "cannot express")]:
        snn = ann2snn.convert_model(Net(how).eval(), calibration=calib, calib_batches=1)
        with pytest.raises(ann2snn.UserError, match=match):
            snn_to_nir(snn)


def test_export_leaves_the_callers_network_unchanged():
    snn = ann2snn.convert_model(tiny_ann("vgg16", width=0.125), neuron="mbif").double()
    before = {k: v.clone() for k, v in snn.state_dict().items()}
    snn_to_nir(snn)
    after = snn.state_dict()
    assert {v.dtype for v in after.values() if v.is_floating_point()} == {torch.float64}
    assert after.keys() == before.keys() and all(torch.equal(before[k], v) for k, v in after.items())


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_a_bias_correction_is_folded_into_the_layer_before_bit_exactly(tmp_path, arch):
    """Dyadic corrections on dyadic weights: the sinabs network, whose conv/linear biases took each neuron's
    bias current, runs our corrected SNN bit for bit; the potential correction is only in the metadata."""
    from ann2snn.conversion.neurons import MultiBitIF

    ann = _dyadic(tiny_ann(arch, width=0.125))
    snn = ann2snn.convert_model(ann, neuron="mbif", v_init="zero")
    g = torch.Generator().manual_seed(3)
    neurons = [m for m in snn.modules() if isinstance(m, MultiBitIF)]
    # shape each correction by a probe (the channel count of each neuron's input)
    shapes = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a: shapes.__setitem__(mod, a[0].shape[1])) for m in neurons]
    ann2snn.simulate_logits(snn, torch.zeros(1, 3, 32, 32), 1)
    for h in hooks:
        h.remove()
    for m in neurons:
        m.set_correction(bias_current=torch.round(torch.randn(shapes[m], generator=g) * 8) / 64)
    x = torch.round(torch.randn(3, 3, 32, 32) * 16) / 16
    ours, theirs = _both(snn, tmp_path / "m.nir", x, T=6)
    assert torch.equal(ours, theirs)
    plain = ann2snn.convert_model(ann, neuron="mbif", v_init="zero")
    assert not torch.equal(ours, ann2snn.simulate_logits(plain, x, 6))  # the corrections mattered
    from ann2snn.export.nir_graph import lost_in_export

    lines = lost_in_export({"v_init": "zero", "int_bits": 1, "frac_bits": 3, "correct": {"mode": "bias+potential"}})
    assert any("potential correction" in line and "lost" in line for line in lines)
    assert any("bias correction is folded" in line for line in lines)


def test_a_bias_correction_without_a_layer_of_its_own_is_refused():
    """A ReLU on the input itself: no conv or linear node feeds the neuron, so no bias can take its current.
    (Behind an average pool the export inserts a 1×1 scaling conv of its own, which takes it.)"""
    class OnInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()
            self.fc = nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            return self.fc(self.act(x).flatten(1))

    x = torch.randn(4, 3, 32, 32)
    snn = ann2snn.convert_model(OnInput().eval(), calibration=[(x, None)], calib_batches=1, correct="bias",
                                correct_T=1)
    from ann2snn.plumbing.errors import UserError

    with pytest.raises(UserError, match="bias correction of neuron 'act'"):
        snn_to_nir(snn)
    plain = ann2snn.convert_model(OnInput().eval(), calibration=[(x, None)], calib_batches=1)
    assert snn_to_nir(plain) is not None  # without the correction the same network exports
