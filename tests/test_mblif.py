"""Direct training: MBLIF neuron traces and surrogate, ECA, the spiking ResNet with the interlaminar
connection, train_snn's checkpoints and resume, and the train-snn command's flag checks.

All models are tiny (width ≤ 0.5, T ≤ 2); the training data is a fake CIFAR-10 in torchvision's
file format (``fake_cifar``, loaded with skip_md5).
"""

import math
import os

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ann2snn.plumbing.checkpoint import load_checkpoint
from ann2snn.cli.train_snn import train_snn_cmd
from ann2snn.direct.eca import ECA, eca_kernel_size
from ann2snn.plumbing.errors import UserError
from ann2snn.direct.mblif import LIF, MBLIF, multilevel_spike, surrogate_derivative
from ann2snn.direct.spiking_resnet import SpikingBasicBlock, mblif_factory, spiking_resnet20
from ann2snn.ann.train import load_data
from ann2snn.pipelines.train_snn import evaluate_steps, load_direct_snn, resolve_config, train_snn

BITS = [(1, 0), (2, 0), (1, 1), (2, 1)]


def run(neuron, x):
    s, u = neuron(torch.tensor(x, dtype=torch.float32).view(-1, 1), return_potential=True)
    return s.flatten().tolist(), u.flatten().tolist()


# ---------------------------------------------------------------- neuron traces (V_th = 1, τ = 2: leak ½, exact)
# each case: bits, input currents, reset → (spike values, charged potentials u_t). Hand-computed:
# u_t = ½·c_{t−1} + x_t; k = clip(floor(u/q), 0, K), q = 2^-n; s = k·2^-n;
# hard: c = u if k = 0 else 0;  subtract: c = u − k·q.
TRACES = [
    # LIF: K = 1. hard: 0.75 | ½·0.75+0.75 = 1.125 fires → 0 | 0.5 | 0.25+2 = 2.25 fires once (K = 1) | 0.25
    ((1, 0), [0.75, 0.75, 0.5, 2.0, 0.25], "hard", [0, 1, 0, 1, 0], [0.75, 1.125, 0.5, 2.25, 0.25]),
    # subtract keeps the residue: 1.125 − 1 = 0.125 → 0.0625+0.5 | 0.28125+2 → keeps 1.28125 → 0.640625+0.25
    ((1, 0), [0.75, 0.75, 0.5, 2.0, 0.25], "subtract", [0, 1, 0, 1, 0], [0.75, 1.125, 0.5625, 2.28125, 0.890625]),
    # 2+0: K = 3, q = 1, s = k. hard: 2.5 → 2 | 0.5 | 0.25+1 → 1 | 5 → 3 (clipped) | 0.25
    ((2, 0), [2.5, 0.5, 1.0, 5.0, 0.25], "hard", [2, 0, 1, 3, 0], [2.5, 0.5, 1.25, 5.0, 0.25]),
    # subtract: 2.5−2 = 0.5 → 0.25+0.5 = 0.75 | 0.375+1 = 1.375 → 1, keeps 0.375 | 0.1875+5 → 3, keeps 2.1875
    # | 1.09375+0.25 = 1.34375 → 1
    ((2, 0), [2.5, 0.5, 1.0, 5.0, 0.25], "subtract", [2, 0, 1, 3, 1], [2.5, 0.75, 1.375, 5.1875, 1.34375]),
    # 1+1: K = 3, q = ½, s = k/2. hard: 1.25 → k 2, s 1 | 0.25 | 0.125+0.5 = 0.625 → k 1 | 3 → k 3, s 1.5 | 0.125
    ((1, 1), [1.25, 0.25, 0.5, 3.0, 0.125], "hard", [1.0, 0, 0.5, 1.5, 0], [1.25, 0.25, 0.625, 3.0, 0.125]),
    # subtract: 1.25 − 2·½ = 0.25 → 0.375 | 0.1875+0.5 = 0.6875 → k 1, keeps 0.1875 | 3.09375 → k 3, keeps
    # 1.59375 | 0.796875+0.125 = 0.921875 → k 1
    ((1, 1), [1.25, 0.25, 0.5, 3.0, 0.125], "subtract", [1.0, 0, 0.5, 1.5, 0.5],
     [1.25, 0.375, 0.6875, 3.09375, 0.921875]),
    # 2+1: K = 7, q = ½, s = k/2. hard: 1.75 → k 3 | 0.25 | 0.125+5 → k 7 (clipped), s 3.5 | 0.5 → k 1 | 0
    ((2, 1), [1.75, 0.25, 5.0, 0.5, 0.0], "hard", [1.5, 0, 3.5, 0.5, 0], [1.75, 0.25, 5.125, 0.5, 0.0]),
    # subtract: 1.75 − 1.5 = 0.25 → 0.375 | 0.1875+5 → k 7, keeps 1.6875 | 0.84375+0.5 = 1.34375 → k 2, keeps
    # 0.34375 | 0.171875
    ((2, 1), [1.75, 0.25, 5.0, 0.5, 0.0], "subtract", [1.5, 0, 3.5, 1.0, 0], [1.75, 0.375, 5.1875, 1.34375, 0.171875]),
]


@pytest.mark.parametrize("bits,x,reset,spikes,potentials", TRACES,
                         ids=[f"{b[0]}+{b[1]}-{r}" for b, _, r, _, _ in TRACES])
def test_hand_computed_traces(bits, x, reset, spikes, potentials):
    s, u = run(MBLIF(*bits, tau=2.0, v_th=1.0, reset=reset), x)
    assert s == spikes
    assert u == potentials


def test_spike_values_are_counts_not_multiples_of_v_th():
    # seed defaults (V_th 0.6, τ 4), 2+1: q = 0.3; u = 1.0 → k = 3 → s = 1.5 (not 3·0.3 = 0.9)
    # then hard reset; u = −0.4 → 0; u = 0.75·(−0.4) + 0.7 = 0.4 → k 1 → s 0.5
    s, u = run(MBLIF(2, 1, tau=4.0, v_th=0.6), [1.0, 0.0, -0.4, 0.7])
    assert s == [1.5, 0.0, 0.0, 0.5]
    assert u == pytest.approx([1.0, 0.0, -0.4, 0.4], abs=1e-6)
    # subtract removes k·V_th·2^-n = 3·0.3 = 0.9 of potential, not s = 1.5
    s, u = run(MBLIF(2, 1, tau=4.0, v_th=0.6, reset="subtract"), [1.0, 0.0])
    assert s == [1.5, 0.0] and u == pytest.approx([1.0, 0.075], abs=1e-6)


def test_lif_hard_reset_is_the_seeds_formula():
    """u_t = (1 − 1/τ)·u_{t−1}·(1 − s_{t−1}) + x_t, s_t = [u_t ≥ V_th], on random currents (bit-exact)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 50, generator=g)
    lif = LIF(tau=4.0, v_th=0.6)
    assert (lif.int_bits, lif.frac_bits, lif.k_max) == (1, 0, 1)
    s = lif(x)
    u_prev = torch.zeros(50)
    s_prev = torch.zeros(50)
    for t in range(8):
        u = 0.75 * (u_prev * (1 - s_prev)) + x[t]
        s_t = (u >= 0.6).float()
        assert torch.equal(s[t], s_t)
        u_prev, s_prev = u, s_t
    assert 0 < s.mean() < 1  # the trace is not trivial


def test_no_state_between_calls_and_batch_independence():
    x = torch.rand(4, 6, 3) * 2
    n = MBLIF(2, 1)
    first = n(x)
    assert torch.equal(n(x), first)
    assert torch.equal(n(x[:, :2]), first[:, :2])


@pytest.mark.parametrize("kwargs,msg", [
    ({"tau": 0.5}, "tau must be >= 1"), ({"v_th": 0.0}, "v_th must be a positive number"),
    ({"reset": "zero"}, "unknown reset"), ({"int_bits": 0, "frac_bits": 0}, "bad bit widths"),
    ({"surrogate_alpha": -1}, "surrogate_alpha must be a positive number"),
])
def test_bad_neuron_settings(kwargs, msg):
    with pytest.raises(UserError, match=msg):
        MBLIF(**kwargs)


# ---------------------------------------------------------------- surrogate gradient
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bits", BITS)
def test_surrogate_gradient_finite_from_minus_100_to_100(bits, dtype):
    n = MBLIF(*bits, v_th=0.6)
    u = torch.linspace(-100, 100, 20001).to(dtype)
    extremes = torch.tensor([-3e38, -1e30, 1e30, 3e38, float("-inf"), float("inf")]).to(dtype)
    u = torch.cat([u, extremes]).requires_grad_(True)
    k = multilevel_spike(u, n.quantum, n.k_max, n.surrogate_alpha)
    k.sum().backward()
    assert u.grad.dtype == dtype
    assert torch.isfinite(u.grad).all()
    assert (u.grad >= 0).all() and u.grad.float().max() > 0
    # through the whole neuron, with the reset and leak, on potentials in the same range
    x = (torch.linspace(-100, 100, 401).to(dtype)).view(1, -1).repeat(4, 1).requires_grad_(True)
    n(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("bits", BITS)
def test_surrogate_is_a_sum_of_unit_area_bumps_at_the_edges(bits):
    n = MBLIF(*bits, v_th=0.6)
    q, K = n.quantum, n.k_max
    z = torch.linspace(-2000, 2000 + K, 2_000_001, dtype=torch.float64)
    g = surrogate_derivative(z * q, q, K).double()
    area = torch.trapezoid(g, z * q).item()  # ∫ dk/du du = K, up to the 1/u² tails beyond ±2000 quanta
    assert area == pytest.approx(K, rel=2e-3)
    edges = surrogate_derivative(torch.arange(1, K + 1) * q, q, K)
    mids = surrogate_derivative((torch.arange(1, K) + 0.5) * q, q, K)
    assert (edges > 0.9 * edges.max()).all()
    if K > 1:
        assert (mids < edges.min()).all()
    # half width at half maximum of one bump: 2/(π·α) quanta
    one = surrogate_derivative(torch.tensor([1.0, 1.0 + 2 / (math.pi * 2.0)]) * q, q, 1)
    assert one[1] / one[0] == pytest.approx(0.5, rel=1e-5)


# ---------------------------------------------------------------- ECA
def test_eca_kernel_size_rule_and_shapes():
    # k = |log2(C)/2 + 1/2|_odd
    assert {c: eca_kernel_size(c) for c in (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)} == \
        {4: 1, 8: 3, 16: 3, 32: 3, 64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    for c in (16, 128, 256):
        eca = ECA(c)
        assert eca.kernel_size == eca_kernel_size(c) and sum(p.numel() for p in eca.parameters()) == eca.kernel_size
        x = torch.randn(3, c, 5, 7)
        gate = eca.gate(x)
        assert gate.shape == (3, c, 1, 1) and ((gate > 0) & (gate < 1)).all()
        assert eca(x).shape == x.shape and torch.allclose(eca(x), x * gate)
    # the gate depends only on channel means, mixed across k neighbouring channels
    eca = ECA(16)
    x = torch.zeros(1, 16, 4, 4)
    x[0, 8] = 1.0
    changed = (eca.gate(x) != eca.gate(torch.zeros_like(x))).flatten().nonzero().flatten().tolist()
    assert changed == [7, 8, 9]


# ---------------------------------------------------------------- spiking ResNet and the interlaminar block
def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("c_in,c_out,stride", [(16, 16, 1), (16, 32, 2)])
def test_ic_block_shape_and_parameter_ratio(c_in, c_out, stride):
    torch.manual_seed(0)
    neuron = mblif_factory(2, 1)
    plain = SpikingBasicBlock(c_in, c_out, stride, neuron, ic=False)
    ic = SpikingBasicBlock(c_in, c_out, stride, neuron, ic=True)
    T, B = 2, 3
    x = torch.rand(T * B, c_in, 8, 8)
    assert ic(x, T).shape == plain(x, T).shape == (T * B, c_out, 8 // stride, 8 // stride)
    extra = n_params(ic) - n_params(plain)
    k = eca_kernel_size(c_out)
    assert extra == 2 * c_out * c_out + 2 * c_out + k  # 1×1 conv 2C→C, its BN, ECA's k weights
    ratio = extra / n_params(plain)
    # 16→16: 547 / 4672 = 0.117; 16→32 with the down-sampling shortcut: 2115 / 14528 = 0.146
    assert ratio == pytest.approx({16: 547 / 4672, 32: 2115 / 14528}[c_out])
    assert ratio < 0.15
    # whole ResNet-20: about +12 %
    net_ratio = n_params(spiking_resnet20(10, neuron, width=1, ic=True)) / n_params(spiking_resnet20(10, neuron, width=1))
    assert 1.10 < net_ratio < 1.13


def test_spiking_resnet_shapes_sites_and_causality():
    torch.manual_seed(0)
    model = spiking_resnet20(10, mblif_factory(2, 1), width=0.25, T=4, ic=True).eval()
    sites = [m for m in model.modules() if isinstance(m, MBLIF)]
    assert len(sites) == 19 and len({id(m) for m in sites}) == 19
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        steps4 = model.forward_steps(x)
        steps2 = model.forward_steps(x, T=2)
        assert steps4.shape == (4, 3, 10) and model(x).shape == (3, 10)
        assert torch.allclose(model(x), steps4.mean(0))
        assert torch.allclose(steps4[:2], steps2, atol=1e-6)  # causal: step t sees only steps ≤ t
        # direct encoding = the image given explicitly at every step
        assert torch.allclose(model.forward_steps(x.unsqueeze(0).repeat(4, 1, 1, 1, 1)), steps4, atol=1e-6)
        # eval mode: per-sample (no state or statistics shared across the batch)
        assert torch.allclose(model.forward_steps(x[:1]), steps4[:, :1], atol=1e-5)


def test_evaluate_steps_uses_the_mean_over_the_first_t_steps():
    torch.manual_seed(0)
    model = spiking_resnet20(10, mblif_factory(2, 1), width=0.25, T=3).eval()
    x, y = torch.randn(7, 3, 16, 16), torch.randint(0, 10, (7,))
    correct, total = evaluate_steps(model, [(x, y)], chunk=3)
    with torch.no_grad():
        out = model.forward_steps(x)
    want = [int((out[:t].mean(0).argmax(1) == y).sum()) for t in (1, 2, 3)]
    assert total == 7 and correct.tolist() == want


def templated_images(n=64, size=16, seed=0):
    """Images of 10 classes: a smooth class template plus noise (labels fixed: i mod 10)."""
    g = torch.Generator().manual_seed(seed)
    tmpl = torch.nn.functional.interpolate(torch.randn(10, 3, 4, 4, generator=g), size=size, mode="bilinear")
    y = torch.arange(n) % 10
    return tmpl[y] + 0.5 * torch.randn(n, 3, size, size, generator=g), y


def test_one_step_decreases_the_loss():
    torch.manual_seed(0)
    model = spiking_resnet20(10, mblif_factory(2, 1), width=0.25, T=2, ic=True).train()
    x, y = templated_images(16)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    loss0 = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss0.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    opt.step()
    with torch.no_grad():
        loss1 = torch.nn.functional.cross_entropy(model(x), y)
    assert loss1 < loss0


def test_overfits_64_images():
    """MBLIF 2+1 with IC, width 0.5, T = 2, 16×16 images: ≥ 95 % training accuracy within 40 SGD steps
    (it takes 16 here, about 2 s on one core)."""
    torch.manual_seed(0)
    model = spiking_resnet20(10, mblif_factory(2, 1), width=0.5, T=2, ic=True).train()
    x, y = templated_images(64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    best = 0.0
    for _ in range(40):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = max(best, float((out.argmax(1) == y).float().mean()))
        if best >= 0.95:
            break
    assert best >= 0.95


# ---------------------------------------------------------------- train_snn: checkpoints and resume


def tiny_config(fake_cifar, **extra):
    return {"width": 0.25, "T": 2, "epochs": 2, "batch_size": 25, "data_dir": fake_cifar, "skip_md5": True,
            "neuron": "mblif", "int_bits": 1, "frac_bits": 1, "ic": True, **extra}


def test_checkpoint_and_resume_give_identical_weights(tmp_path, fake_cifar):
    cfg = tiny_config(fake_cifar)
    full = train_snn(cfg, str(tmp_path / "full"), progress=False)
    train_snn(cfg, str(tmp_path / "part"), stop_after=1, progress=False)
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    part = train_snn(cfg, str(tmp_path / "part"), resume=True, explicit={"T", "width"}, progress=False)
    a = torch.load(full, weights_only=True)
    b = torch.load(part, weights_only=True)
    assert a["kind"] == "direct-snn" and a["complete"] and a["epoch"] == 2
    assert a["model_state"].keys() == b["model_state"].keys()
    for key in a["model_state"]:
        assert torch.equal(a["model_state"][key], b["model_state"][key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a["metrics"]) == strip(b["metrics"])
    # the stored config is resolved (bits, width) and the metrics hold accuracy at every t ≤ T
    assert (a["config"]["int_bits"], a["config"]["frac_bits"], a["config"]["width"]) == (1, 1, 0.25)
    metrics = pd.read_csv(tmp_path / "full" / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "loss", "train_acc", "test_acc", "test_acc_t1", "test_acc_t2", "lr",
                                     "seconds"]
    assert (metrics["test_acc"] == metrics["test_acc_t2"]).all()
    table = pd.read_csv(tmp_path / "full" / "accuracy.csv")
    assert list(table.columns)[-2:] == ["T=1", "T=2"] and table.loc[0, "neuron"] == "MBLIF 1+1"
    assert os.path.isfile(tmp_path / "full" / "accuracy.md") and os.path.isfile(tmp_path / "full" / "accuracy.json")
    # the loaded model reproduces the stored test accuracy
    model, ckpt = load_direct_snn(str(tmp_path / "full"))
    assert ckpt["epoch"] == 2 and isinstance(model.blocks[0].eca, ECA)
    correct, total = evaluate_steps(model, load_data(ckpt["config"])[1])
    assert (correct.double() / total).tolist() == [a["metrics"][-1]["test_acc_t1"], a["metrics"][-1]["test_acc_t2"]]


def test_run_folder_rules(tmp_path, fake_cifar):
    out = str(tmp_path / "run")
    cfg = tiny_config(fake_cifar, epochs=1)
    train_snn(cfg, out, progress=False)
    with pytest.raises(UserError, match="already holds a run; pass `resume`"):
        train_snn(cfg, out, progress=False)
    with pytest.raises(UserError, match="`T` 3 differs from the resumed run's 2"):
        train_snn({**cfg, "T": 3}, out, resume=True, explicit={"T"}, progress=False)
    with pytest.raises(UserError, match="no checkpoint.pt"):
        train_snn(cfg, str(tmp_path / "other"), resume=True, progress=False)
    # convert / sweep refuse a directly trained SNN with a clear message
    with pytest.raises(UserError, match=r"is a directly trained SNN \(from `ann2snn train-snn`\); convert and sweep"):
        load_checkpoint(os.path.join(out, "checkpoint.pt"))


def test_resolve_config_defaults_are_the_seeds():
    c = resolve_config({})
    assert (c["tau"], c["v_th"], c["T"], c["lr"], c["batch_size"], c["weight_decay"], c["epochs"]) == \
        (4.0, 0.6, 4, 0.1, 64, 1e-4, 100)
    assert (c["neuron"], c["int_bits"], c["frac_bits"], c["ic"], c["reset"], c["width"]) == \
        ("mblif", 2, 1, True, "hard", 4.0)
    assert (resolve_config({"neuron": "lif"})["int_bits"], resolve_config({"neuron": "lif"})["frac_bits"]) == (1, 0)


@pytest.mark.parametrize("flags,msg", [
    (["--v-th", "inf"], "Invalid value for '--v-th': inf is not a finite number"),
    (["--weight-decay", "nan"], "Invalid value for '--weight-decay': nan is not a finite number"),
    (["--T", "99999999999999999999"], "Invalid value for '--T'"),
    (["--tau", "1e300"], "Invalid value for '--tau'"),
    (["--width", "1e9"], "Invalid value for '--width'"),
])
def test_cli_rejects_out_of_range_numbers_before_any_work(tmp_path, capsys, flags, msg):
    from ann2snn.cli.main import main

    assert main(["train-snn", *flags, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err
    assert not os.path.exists(tmp_path / "run")



# ---------------------------------------------------------------- the train-snn command
@pytest.mark.parametrize("flags,msg", [
    (["--neuron", "lif", "--int-bits", "2"], "--neuron lif is MBLIF 1+0; it cannot take --int-bits 2 (use"),
    (["--int-bits", "0", "--frac-bits", "0"], "bad bit widths m=0, n=0"),
    (["--int-bits", "5", "--frac-bits", "4"], "--neuron mblif:5+4 has too many bits for direct training"),
    (["--neuron", "mblif:5+4"], "--neuron mblif:5+4 has too many bits for direct training"),
    (["--dataset", "dvs-gesture", "--augment", "crop-flip"], "--augment crop-flip is for CIFAR"),
])
def test_cli_rejects_bad_settings(tmp_path, flags, msg):
    result = CliRunner().invoke(train_snn_cmd, [*flags, "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code != 0
    assert isinstance(result.exception, UserError), result.output
    assert msg in str(result.exception)
    assert not os.path.exists(tmp_path / "run")  # refused before anything was written


@pytest.mark.parametrize("flags,msg", [
    (["--T", "0"], "Invalid value for '--T': 0 is not in the range 1<=x<=10000"),
    (["--tau", "0.5"], "Invalid value for '--tau': 0.5 is not in the range 1 <= x <= 1e+06"),
    (["--v-th", "-0.6"], "Invalid value for '--v-th': -0.6 is not in the range 0 < x <= 1e+06"),
    (["--v-th", "0"], "Invalid value for '--v-th': 0 is not in the range 0 < x <= 1e+06"),
    (["--width", "0"], "Invalid value for '--width': 0 is not in the range 0 < x <= 64"),
    (["--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range 1<=x<=100000"),
    (["--lr", "0"], "Invalid value for '--lr': 0 is not in the range 0 < x <= 1e+06"),
    (["--weight-decay", "-1"], "Invalid value for '--weight-decay': -1 is not in the range 0 <= x <= 1000"),
    (["--momentum", "1.5"], "Invalid value for '--momentum': 1.5 is not in the range 0 <= x < 1"),
    (["--surrogate-alpha", "0"], "Invalid value for '--surrogate-alpha': 0 is not in the range 0 < x <= 1e+06"),
    (["--subset", "0"], "Invalid value for '--subset': must be a number of samples >= 1 or 'all', got 0"),
    (["--neuron", "lif:2+1"], "bad --neuron 'lif:2+1': lif is mblif:1+0 (one-bit spikes); write lif, or mblif:2+1"),
    (["--neuron", "mblif:0+0"], "--neuron mblif:0+0: bad bit widths m=0, n=0"),
])
def test_cli_option_types_refuse_bad_settings(tmp_path, flags, msg):
    """The same checks in the options themselves: click's one-line usage error (exit 2), before any work."""
    result = CliRunner().invoke(train_snn_cmd, [*flags, "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and msg in result.output, result.output
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("flags,msg", [
    (["--neuron", "if"], "bad --neuron 'if'"),
    (["--arch", "vgg16"], "Invalid value for '--arch'"),
    (["--dataset", "mnist"], "Invalid value for '--dataset'"),
    (["--reset", "zero"], "Invalid value for '--reset'"),
    (["--T", "four"], "Invalid value for '--T'"),
    ([], "Missing option '--out'"),
])
def test_cli_rejects_bad_flags(tmp_path, flags, msg):
    result = CliRunner().invoke(train_snn_cmd, flags + (["--out", str(tmp_path / "r")] if flags else []))
    assert result.exit_code == 2 and msg in result.output


def test_cli_missing_data_and_a_tiny_run(tmp_path, fake_cifar):
    result = CliRunner().invoke(train_snn_cmd, ["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a")])
    assert isinstance(result.exception, UserError) and "cifar10 not found" in str(result.exception)
    out = tmp_path / "b"
    args = ["--data-dir", fake_cifar, "--skip-md5", "--width", "0.25", "--T", "2", "--epochs", "1",
            "--batch-size", "25", "--neuron", "lif", "--no-ic", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(train_snn_cmd, args)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (ckpt["config"]["neuron"], ckpt["config"]["int_bits"], ckpt["config"]["ic"], ckpt["config"]["T"]) == \
        ("lif", 1, False, 2)
    # resuming with a contradicting explicit flag is refused
    result = CliRunner().invoke(train_snn_cmd, args + ["--resume", "--tau", "2"])
    assert isinstance(result.exception, UserError) and "--tau 2.0 differs" in str(result.exception)


def test_reset_gradient_option_keeps_the_forward():
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(5, 40, generator=g) * 2).requires_grad_(True)
    for reset in ("hard", "subtract"):
        a = MBLIF(2, 1, reset=reset)(x)
        b = MBLIF(2, 1, reset=reset, detach_reset=False)(x)
        assert torch.equal(a, b)
        (gb,) = torch.autograd.grad(b.sum(), x)
        assert torch.isfinite(gb).all()
