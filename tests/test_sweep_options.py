"""sweep straight from an ANN checkpoint with calibrated thresholds, BN folding and caps."""

import json

import pytest

import pandas as pd
import torch

from ann2snn.cli.main import main
from ann2snn.conversion.snn import calibrate_settings, convert_ann, neuron_settings
from ann2snn.ann.build import load_ann
from ann2snn.conversion.simulate import simulate_snn
from ann2snn.plumbing.data import DATASETS, CifarBatches, load_split


def train_tiny(fake_cifar, tmp_path, activation):
    run = tmp_path / activation
    assert main(["train-ann", "--arch", "resnet20", "--width", "0.25", "--activation", activation, "--epochs", "1",
                 "--batch-size", "10", "--data-dir", fake_cifar, "--skip-md5", "--out", str(run), "--quiet"]) == 0
    return run


def test_relu_sweep_calibrates_once_per_threshold(fake_cifar, tmp_path, capsys):
    run = train_tiny(fake_cifar, tmp_path, "relu")
    common = ["--T", "1,4", "--data-dir", fake_cifar, "--skip-md5", "--quiet", "--no-ops", "--calib-batches", "1"]
    # a ReLU network has no λ
    assert main(["sweep", "--checkpoint", str(run), "--neuron", "if", *common, "--out", str(tmp_path / "x")]) == 2
    assert "--threshold" in capsys.readouterr().err and not (tmp_path / "x" / "sweep.csv").exists()
    out = tmp_path / "sw"
    assert main(["sweep", "--checkpoint", str(run), "--neuron", "if", "--neuron", "mbif:1+3", "--v-init", "half-lsb",
                 "--v-init", "zero", "--cap", "full", "--cap", "theta", "--threshold", "max",
                 "--threshold", "percentile:99", "--fold-bn", *common, "--out", str(out)]) == 0
    table = pd.read_csv(out / "sweep.csv")
    # IF: 2 v_inits; MBIF: 2 v_inits × 2 caps; each for 2 thresholds
    assert len(table) == (2 + 4) * 2
    assert set(table["threshold"]) == {"max fold-bn", "percentile:99 fold-bn"}
    assert set(table["neuron"]) == {"IF", "MBIF 1+3", "MBIF 1+3 K=8"}
    doc = json.loads((out / "sweep.json").read_text())
    # the rows equal a separate conversion with the same calibration
    ann, ckpt = load_ann(str(run))
    cal = calibrate_settings(ann, ckpt["config"], neuron_settings("mbif", ckpt["config"], cap="theta"), "max", 1, True,
                             fake_cifar, skip_md5=True)
    row = next(r for r in doc["rows"] if r["neuron"] == "MBIF 1+3 K=8" and r["threshold"] == "max fold-bn"
               and r["v_init"] == "half-lsb")
    assert row["conversion"]["thresholds"] == cal["thresholds"] and row["conversion"]["cap"] == 8
    # and its accuracy curve is that conversion's, simulated here on the same 10 test images
    x, y = load_split("cifar10", fake_cifar, False, skip_md5=True)
    correct, total = simulate_snn(convert_ann(ann, cal), CifarBatches(x, y, DATASETS["cifar10"], 10), 4)
    assert total == row["samples"] == 10
    assert row["curve"] == (correct.double() / total).tolist()


def test_sweep_option_errors(fake_cifar, tmp_path, capsys):
    run = train_tiny(fake_cifar, tmp_path, "qcfs")
    base = ["sweep", "--checkpoint", str(run), "--T", "2", "--data-dir", fake_cifar, "--skip-md5", "--quiet",
            "--no-ops"]
    capsys.readouterr()
    for extra in (["--neuron", "if", "--threshold", "median"], ["--neuron", "if", "--threshold", "percentile:0"],
                  ["--neuron", "mbif", "--cap", "99"], ["--neuron", "if", "--cap", "theta"],
                  ["--neuron", "if", "--threshold", "max", "--calib-batches", "0"]):
        out = tmp_path / "bad"
        assert main([*base, *extra, "--out", str(out)]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1, err
        assert not (out / "sweep.csv").exists()
    # a QCFS ANN: lambda thresholds with folded BN equal the ANN column
    assert main([*base, "--neuron", "mbif:1+2", "--cap", "4", "--fold-bn", "--out", str(tmp_path / "ok")]) == 0
    row = pd.read_csv(tmp_path / "ok" / "sweep.csv").iloc[0]
    assert row["threshold"] == "lambda fold-bn" and row["neuron"] == "MBIF 1+2 K=4"


def test_absurd_T_is_refused_before_any_work(tmp_path, capsys):
    """The checkpoint is no checkpoint (--checkpoint only checks that the path exists): had the sweep opened
    it (or done anything later) first, the error would name it instead of --T."""
    (tmp_path / "none.pt").write_bytes(b"not a checkpoint")
    for t in ("99999999999999999999", "100001", "1,2,100001"):
        assert main(["sweep", "--checkpoint", str(tmp_path / "none.pt"), "--T", t, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "more than 100,000 steps" in err and "none.pt" not in err
        assert not (tmp_path / "o").exists()


def test_work_estimate_refuses_what_cannot_finish(monkeypatch):
    """The estimate is T × batches × (one timed forward pass) × 1.5; the clock is replaced by one whose
    forward pass takes exactly 1 s, so every number below is a hand count."""
    from types import SimpleNamespace

    from ann2snn.conversion.convert import convert
    from ann2snn.plumbing.errors import UserError
    from ann2snn.pipelines import sweep

    from helpers import random_batches, tiny_ann

    snn = convert(tiny_ann("resnet20"), torch.zeros(1, 3, 32, 32), 1, 0)
    batches = random_batches(8, 4)  # 2 batches
    ticks = iter(range(100))
    monkeypatch.setattr(sweep, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    assert sweep.check_work(snn, batches, 16, torch.device("cpu")) == 16 * 2 * 1.5
    # 7 days (the default limit) = 604,800 s: T = 201,600 is just within it, T = 300,000 is 900,000 s
    assert sweep.check_work(snn, batches, 201_600, torch.device("cpu")) == 604_800
    with pytest.raises(UserError, match=r"^`T` 300000 on 2 batches would take about 10 days of simulation here; "
                                        r"lower `T` or `subset`$"):
        sweep.check_work(snn, batches, 300_000, torch.device("cpu"))
    assert sweep.check_work(snn, batches, 16, torch.device("cpu"), max_seconds=48.0) == 48.0  # the limit itself passes
    with pytest.raises(UserError, match="`T` 16 on 2 batches would take"):
        sweep.check_work(snn, batches, 16, torch.device("cpu"), max_seconds=47.9)
