"""End to end on real CIFAR-10: train-ann → convert → sweep, exact resume, and the matched T = 1 identity."""

import json

import pandas as pd
import pytest
import torch

from ann2snn.ann.build import load_ann
from ann2snn.cli.main import main
from ann2snn.plumbing.data import CifarBatches, DATASETS, balanced_subset, load_split
from ann2snn.conversion.snn import convert_ann, load_snn, neuron_settings
from ann2snn.pipelines.train_ann import train_ann

pytestmark = [pytest.mark.integration, pytest.mark.real_data]


@pytest.mark.slow
def test_train_convert_sweep_cli(cifar10_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train-ann", "--arch", "resnet20", "--epochs", "1", "--subset", "4000", "--test-subset", "500",
                 "--batch-size", "64", "--data-dir", cifar10_dir, "--out", str(run), "--quiet"]) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "loss", "train_acc", "test_acc", "lr", "seconds"]
    assert len(metrics) == 1
    for neuron in ("if", "mbif"):
        assert main(["convert", "--checkpoint", str(run), "--neuron", neuron, "--out", str(tmp_path / f"{neuron}.pt")]) == 0
    out = tmp_path / "sweep"
    assert main(["sweep", "--checkpoint", str(tmp_path / "if.pt"), "--checkpoint", str(tmp_path / "mbif.pt"),
                 "--T", "1,2,4", "--subset", "500", "--data-dir", cifar10_dir, "--out", str(out), "--quiet",
                 "--diagnostics", "--plots"]) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert table["neuron"].tolist() == ["IF", "MBIF 1+3"]
    assert [c for c in table.columns if c.startswith("T=")] == ["T=1", "T=2", "T=4"]
    assert (table["ANN"] > 15).all()  # chance is 10%
    assert (table["ANN"] == table["ANN"][0]).all()  # the same source ANN
    md = (out / "sweep.md").read_text()
    assert "| IF" in md and "MBIF 1+3" in md and "test samples: 500" in md
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["T"] == [1, 2, 4]
    assert doc["provenance"]["command"].startswith("ann2snn sweep")
    for row, csv_row in zip(doc["rows"], table.to_dict("records")):
        assert len(row["curve"]) == 4 and row["samples"] == 500
        assert row["T=4"] == pytest.approx(csv_row["T=4"]) == pytest.approx(round(100 * row["curve"][3], 2))
        assert len(row["checkpoint_sha256"]) == 64 and len(row["source_ann_sha256"]) == 64
    ops = pd.read_csv(out / "sweep_ops.csv")
    assert len(ops) == 6 and ops["T"].tolist() == [1, 2, 4] * 2
    assert ops["accuracy"].tolist() == table[["T=1", "T=2", "T=4"]].values.flatten().tolist()
    if_ops = ops[ops.neuron == "IF"]
    assert (if_ops["events"] == if_ops["bit_acs"]).all() and if_ops["events"].is_monotonic_increasing
    layers = pd.read_csv(out / "sweep_layers.csv")
    assert len(layers) == 2 * 19 and layers["firing_rate"].between(0, 1).all()
    for png in ("accuracy_vs_T.png", "firing_rates.png", "energy_vs_accuracy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the ANN column equals the ANN itself, evaluated on its own
    ann, ckpt = load_ann(str(run))
    x, y = load_split("cifar10", cifar10_dir, False)
    idx = balanced_subset(y, 500, 0, 10)
    with torch.no_grad():
        acc = float((ann(CifarBatches(x[idx], y[idx], DATASETS["cifar10"], 500).__iter__().__next__()[0]).argmax(1)
                     == y[idx]).double().mean())
    assert table["ANN"][0] == round(100 * acc, 2)
    # an ANN checkpoint can also be swept directly, converting in memory
    assert main(["sweep", "--checkpoint", str(run), "--neuron", "if", "--neuron", "mbif:1+3", "--T", "2",
                 "--subset", "500", "--data-dir", cifar10_dir, "--out", str(tmp_path / "sweep2"), "--quiet"]) == 0
    table2 = pd.read_csv(tmp_path / "sweep2" / "sweep.csv")
    assert table2["T=2"].tolist() == table["T=2"].tolist()


@pytest.mark.slow  # three training runs: about 14 s on one core, 20 to 40 s with -n 2 on a busy machine
def test_resume_continues_exactly(cifar10_dir, tmp_path):
    cfg = {"arch": "resnet20", "width": 0.25, "epochs": 2, "subset": 256, "test_subset": 100, "batch_size": 64,
           "data_dir": cifar10_dir, "lambda_init": "auto"}
    straight = train_ann(cfg, str(tmp_path / "a"), progress=False)
    train_ann(cfg, str(tmp_path / "b"), stop_after=1, progress=False)  # "killed" after epoch 1
    resumed = train_ann(cfg, str(tmp_path / "b"), resume=True, progress=False)
    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    assert [r["test_acc"] for r in a["metrics"]] == [r["test_acc"] for r in b["metrics"]]


@pytest.mark.slow  # two training runs each: 10 to 13 s on one core, 23 to 44 s with -n 2
@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_matched_identity_at_T1_on_real_images(cifar10_dir, tmp_path, arch):
    """A matched ANN and its MBIF SNN (same bits, v_init half-lsb) give equal logits at T = 1, at
    initialisation and after training, for 1+3 and 2+2."""
    x, y = load_split("cifar10", cifar10_dir, False)
    images = next(iter(CifarBatches(x[:64], y[:64], DATASETS["cifar10"], 64)))[0]
    for m, n in [(1, 3), (2, 2)]:
        cfg = {"arch": arch, "width": 0.125, "epochs": 1, "subset": 500, "test_subset": 100, "batch_size": 50,
               "data_dir": cifar10_dir, "activation": "matched", "int_bits": m, "frac_bits": n}
        path = train_ann(cfg, str(tmp_path / f"{arch}-{m}{n}"), progress=False)
        ann, ckpt = load_ann(path)
        settings = neuron_settings("mbif", ckpt["config"])
        assert (settings["int_bits"], settings["frac_bits"]) == (m, n)  # defaults to the ANN's bits
        snn = convert_ann(ann, settings)
        with torch.no_grad():
            assert torch.equal(snn(images), ann(images))
        # and after a save / load round trip of the SNN checkpoint
        from ann2snn.conversion.snn import convert_checkpoint
        convert_checkpoint(path, {"neuron": "mbif"}, str(tmp_path / "snn.pt"))
        snn2, _ = load_snn(str(tmp_path / "snn.pt"))
        with torch.no_grad():
            assert torch.equal(snn2(images), ann(images))
        # at initialisation (λ from data, before any step) too
        from ann2snn.ann.build import build_ann
        from ann2snn.ann.lambda_init import init_lambda_from_data
        torch.manual_seed(0)
        fresh = build_ann(ckpt["config"])
        init_lambda_from_data(fresh, [(images, None)], num_batches=1)
        fresh.eval()
        with torch.no_grad():
            assert torch.equal(convert_ann(fresh, settings)(images), fresh(images))


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_qcfs_identity_at_T1_with_the_cap_on_real_images(cifar10_dir, tmp_path, arch):
    """A QCFS(L=4) ANN and its MBIF(1+2) SNN capped at K = 4 (v_init half-lsb) give equal logits at
    T = 1, after training (also through a saved SNN checkpoint) and at initialisation."""
    from ann2snn.ann.build import build_ann
    from ann2snn.ann.lambda_init import init_lambda_from_data
    from ann2snn.conversion.snn import convert_checkpoint, exact_neuron_hint

    x, y = load_split("cifar10", cifar10_dir, False)
    images = next(iter(CifarBatches(x[:64], y[:64], DATASETS["cifar10"], 64)))[0]
    cfg = {"arch": arch, "width": 0.125, "epochs": 1, "subset": 500, "test_subset": 100, "batch_size": 50,
           "data_dir": cifar10_dir, "activation": "qcfs", "levels": 4}
    path = train_ann(cfg, str(tmp_path / arch), progress=False)
    ann, ckpt = load_ann(path)
    assert exact_neuron_hint(ckpt["config"]) == "--neuron mbif:1+2 --cap 4 --v-init half-lsb"
    settings = neuron_settings("mbif", ckpt["config"], 1, 2, cap=4)
    with torch.no_grad():
        logits = ann(images)
        assert logits.argmax(1).unique().numel() > 1
        assert torch.equal(convert_ann(ann, settings)(images), logits)
        assert torch.equal(convert_ann(ann, {**settings, "cap": "theta"})(images), logits)  # theta = 2^2 = 4
        assert not torch.equal(convert_ann(ann, {**settings, "cap": None})(images), logits)  # uncapped: not the ANN
    convert_checkpoint(path, {"neuron": "mbif", "int_bits": 1, "frac_bits": 2, "cap": "4"}, str(tmp_path / "snn.pt"))
    snn2, ckpt2 = load_snn(str(tmp_path / "snn.pt"))
    assert ckpt2["conversion"]["cap"] == 4
    with torch.no_grad():
        assert torch.equal(snn2(images), logits)
    torch.manual_seed(0)
    fresh = build_ann(ckpt["config"])
    init_lambda_from_data(fresh, [(images, None)], num_batches=1)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(convert_ann(fresh, settings)(images), fresh(images))


@pytest.mark.slow
def test_relu_network_calibrated_through_the_cli(cifar10_dir, tmp_path):
    run = tmp_path / "relu"
    assert main(["train-ann", "--arch", "resnet20", "--activation", "relu", "--epochs", "1", "--subset", "2000",
                 "--test-subset", "200", "--batch-size", "64", "--data-dir", cifar10_dir, "--out", str(run),
                 "--quiet"]) == 0
    assert main(["convert", "--checkpoint", str(run), "--neuron", "if", "--out", str(tmp_path / "x.pt")]) == 2
    assert main(["convert", "--checkpoint", str(run), "--neuron", "if", "--threshold", "percentile:99.9",
                 "--calib-batches", "2", "--fold-bn", "--data-dir", cifar10_dir, "--out", str(tmp_path / "if.pt")]) == 0
    snn, ckpt = load_snn(str(tmp_path / "if.pt"))
    assert ckpt["conversion"]["threshold"] == "percentile:99.9" and ckpt["conversion"]["fold_bn"]
    assert len(ckpt["conversion"]["thresholds"]) == 19
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in snn.modules())
    assert main(["convert", "--checkpoint", str(run), "--neuron", "mbif", "--cap", "theta", "--threshold",
                 "percentile:99.9", "--calib-batches", "2", "--fold-bn", "--data-dir", cifar10_dir,
                 "--out", str(tmp_path / "mbif.pt")]) == 0
    assert main(["sweep", "--checkpoint", str(tmp_path / "if.pt"), "--checkpoint", str(tmp_path / "mbif.pt"),
                 "--T", "1,8,64", "--subset", "200", "--data-dir", cifar10_dir, "--out", str(tmp_path / "sw"),
                 "--quiet", "--no-ops"]) == 0
    table = pd.read_csv(tmp_path / "sw" / "sweep.csv")
    assert table["neuron"].tolist() == ["IF", "MBIF 1+3 K=8"]
    assert (table["activation"] == "relu").all() and (table["threshold"] == "percentile:99.9 fold-bn").all()
    assert (table["ANN"] == table["ANN"][0]).all()  # one source ANN
    for i in range(2):
        assert abs(table["T=64"][i] - table["ANN"][i]) <= abs(table["T=1"][i] - table["ANN"][i]) + 1.0
    # MBIF capped at θ after T steps has IF's resolution after 8·T steps: it is ahead of IF at T = 8
    assert table["T=8"][1] >= table["T=8"][0] - 1.0
