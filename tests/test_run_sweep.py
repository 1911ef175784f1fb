"""The sweep as a library function (ann2snn.run_sweep): the grid, one read per checkpoint, the CLI as its wrapper."""

import json

import pytest
import torch

import ann2snn
from ann2snn.cli.main import main
from ann2snn.plumbing.data import DATASETS, load_split
from ann2snn.plumbing.errors import UserError


@pytest.fixture(scope="module")
def qcfs_run(fake_cifar, tmp_path_factory):
    """A QCFS(L=4) ResNet-20 (¼ width) trained one epoch on the stand-in CIFAR-10."""
    run = tmp_path_factory.mktemp("runs") / "qcfs"
    assert main(["train-ann", "--arch", "resnet20", "--width", "0.25", "--epochs", "1", "--batch-size", "10",
                 "--data-dir", fake_cifar, "--skip-md5", "--out", str(run), "--quiet"]) == 0
    return str(run)


def test_grid_rows_ann_column_and_no_files_without_out(qcfs_run, fake_cifar, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = ann2snn.run_sweep([qcfs_run], [1, 2], neurons=["if", "mbif:1+2"], v_inits=["half-lsb", "half-threshold"],
                            caps=["full", 4], data_dir=fake_cifar, skip_md5=True, ops=False)
    # by hand: IF ignores the cap and its half-threshold start is its half-lsb start (1 row);
    # MBIF 1+2: 2 starts × 2 caps (4 rows)
    assert [(r["neuron"], r["v_init"]) for r in res["rows"]] == [
        ("IF", "half-lsb"), ("MBIF 1+2", "half-lsb"), ("MBIF 1+2 K=4", "half-lsb"),
        ("MBIF 1+2", "half-threshold"), ("MBIF 1+2 K=4", "half-threshold")]
    assert res["T"] == [1, 2] and res["paths"] == [] and list(tmp_path.iterdir()) == []
    assert res["provenance"]["command"].startswith("python: ann2snn.run_sweep(")
    # the ANN column, counted by hand from the checkpoint's network on the 10 test images
    ann, ckpt = ann2snn.ann.build.load_ann(qcfs_run)
    x, y = load_split("cifar10", fake_cifar, False, skip_md5=True)
    info = DATASETS["cifar10"]
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        correct = int((ann((x.float() / 255 - mean) / std).argmax(1) == y).sum())
    assert all(c["ann_acc"] == correct / 10 and c["samples"] == 10 for c in res["curves"]) and len(res["curves"]) == 5


def test_cli_sweep_is_the_library_sweep(qcfs_run, fake_cifar, tmp_path):
    args = dict(neurons=["if", "mbif:1+3"], data_dir=fake_cifar, skip_md5=True, ops=True)
    res = ann2snn.run_sweep([qcfs_run], "1,3", out=str(tmp_path / "lib"), **args)
    assert main(["sweep", "--checkpoint", qcfs_run, "--T", "1,3", "--neuron", "if", "--neuron", "mbif:1+3",
                 "--data-dir", fake_cifar, "--skip-md5", "--quiet", "--out", str(tmp_path / "cli")]) == 0
    lib = json.loads((tmp_path / "lib" / "sweep.json").read_text())
    cli = json.loads((tmp_path / "cli" / "sweep.json").read_text())
    assert [r["curve"] for r in cli["rows"]] == [r["curve"] for r in lib["rows"]] == [c["curve"] for c in res["curves"]]
    assert [r["ops"] for r in cli["rows"]] == [r["ops"] for r in lib["rows"]]
    assert cli["provenance"]["command"].startswith("ann2snn sweep --checkpoint")
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == ["sweep.csv", "sweep.json", "sweep.md",
                                                                   "sweep_ops.csv"]


def test_each_checkpoint_is_read_once(qcfs_run, fake_cifar, tmp_path, monkeypatch):
    snn = str(tmp_path / "if.pt")
    assert main(["convert", "--checkpoint", qcfs_run, "--neuron", "if", "--out", snn]) == 0
    reads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda path, *a, **k: reads.append(str(path)) or real(path, *a, **k))
    res = ann2snn.run_sweep([qcfs_run, snn], 2, neurons=["mbif"], caps=["full", "theta"], data_dir=fake_cifar,
                            skip_md5=True, ops=False)
    assert len(res["rows"]) == 3  # the SNN file, and the ANN as MBIF 1+3 uncapped and capped at θ
    assert sorted(reads) == sorted([qcfs_run + "/checkpoint.pt", snn])
    # paths as pathlib.Path, one of them given twice: one row per occurrence, as each --checkpoint is a row
    from pathlib import Path

    res = ann2snn.run_sweep(Path(snn), 2, data_dir=fake_cifar, skip_md5=True, ops=False, out=str(tmp_path / "p"))
    again = ann2snn.run_sweep([Path(snn), snn], 2, data_dir=fake_cifar, skip_md5=True, ops=False)
    assert [c["curve"] for c in again["curves"]] == [res["curves"][0]["curve"]] * 2
    assert json.loads((tmp_path / "p" / "sweep.json").read_text())["rows"][0]["checkpoint"] == snn


@pytest.mark.parametrize("kwargs, words", [
    ({"T": "0"}, "bad `T` list"), ({"T": [4, 0]}, "bad `T` list"), ({"T": 100_001}, "more than 100,000 steps"),
    ({"subset": 0}, "`subset` must be"), ({"batch_size": 0}, "`batch_size` must be"),
    ({"time_chunk": "0"}, "`time_chunk` must be"), ({"precision": "float16"}, "unknown `precision`"),
    ({"neurons": ["lif"]}, "bad `neurons` 'lif'"), ({"neurons": ["if"], "caps": ["theta"]}, "drop `caps`"),
    ({"thresholds": ["median"]}, "threshold"), ({"time_chunk": 4}, "`time_chunk` > 1 runs without"),
    ({"fuse": "yes"}, "unknown `fuse`"), ({"amp": "fp16"}, "amp"), ({"T": [2, 4.5]}, r"bad `T` list \[2, 4.5\]"),
])
def test_bad_arguments_name_the_argument_and_write_nothing(tmp_path, kwargs, words):
    kwargs = {"T": 2, **kwargs}
    with pytest.raises(ValueError, match=words) as err:
        ann2snn.run_sweep([str(tmp_path / "missing.pt")], out=str(tmp_path / "out"), **kwargs)
    assert isinstance(err.value, UserError) and "--" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_snn_checkpoints_refuse_conversion_settings(qcfs_run, fake_cifar, tmp_path):
    snn = str(tmp_path / "if.pt")
    assert main(["convert", "--checkpoint", qcfs_run, "--neuron", "if", "--out", snn]) == 0
    with pytest.raises(UserError, match="every `checkpoints` is an SNN checkpoint"):
        ann2snn.run_sweep(snn, 2, v_inits="zero", data_dir=fake_cifar, skip_md5=True, out=str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_bad_grid_settings_are_refused_before_any_calibration(fake_cifar, tmp_path, monkeypatch):
    """A ReLU ANN swept with a calibrated threshold and a bad cap: refused before the calibration reads data."""
    run = tmp_path / "relu"
    assert main(["train-ann", "--arch", "resnet20", "--width", "0.25", "--activation", "relu", "--epochs", "1",
                 "--batch-size", "10", "--data-dir", fake_cifar, "--skip-md5", "--out", str(run), "--quiet"]) == 0
    import ann2snn.conversion.snn as snn_mod

    def no_calibration(*a, **k):
        raise AssertionError("calibrated before checking the grid")

    monkeypatch.setattr(snn_mod, "calibrate_settings", no_calibration)
    for bad, words in (({"caps": ["abc"]}, "cap"), ({"neurons": ["mbif:9+9"]}, "bit widths m=9, n=9")):
        with pytest.raises(UserError, match=words):
            ann2snn.run_sweep(str(run), 2, **{"neurons": ["mbif"], **bad}, thresholds=["max"], data_dir=fake_cifar,
                              skip_md5=True)
