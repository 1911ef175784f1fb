"""Distributed runs on torchrun with the gloo backend, two CPU processes: the sweep's accuracies
equal one process's, and a distributed training run's stored test accuracy is the whole test set's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from ann2snn.cli.main import main
from ann2snn.ann.evaluate import evaluate_ann
from ann2snn.ann.train import load_data
from ann2snn.pipelines.train_ann import train_ann

from conftest import write_fake_cifar10

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ann2snn",
           *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fake_cifar):
    out = str(tmp_path_factory.mktemp("ddp") / "ann")
    train_ann({"arch": "resnet20", "width": 0.25, "epochs": 1, "batch_size": 10, "data_dir": fake_cifar,
               "skip_md5": True, "lambda_init": "auto", "device": "cpu"}, out, progress=False)
    return out


@pytest.mark.slow
def test_two_process_sweep_equals_one_process(tiny_run, tmp_path):
    """300 test images (30 per class; smooth random ones, so that the predictions differ between images
    and a lost or doubled shard changes the accuracy), split over two processes."""
    data = write_fake_cifar10(tmp_path / "data", per_file=300, smooth=True)
    args = ["sweep", "--checkpoint", tiny_run, "--neuron", "if", "--neuron", "mbif:1+3", "--T", "1,4,16",
            "--data-dir", data, "--skip-md5", "--subset", "300", "--batch-size", "64", "--no-ops", "--device", "cpu",
            "--quiet"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    torchrun(*args, "--out", str(tmp_path / "two"))
    one = json.load(open(tmp_path / "one" / "sweep.json"))
    two = json.load(open(tmp_path / "two" / "sweep.json"))
    assert len(one["rows"]) == len(two["rows"]) == 2
    assert [r["curve"] for r in one["rows"]] == [r["curve"] for r in two["rows"]]
    assert [r["ann_acc"] for r in one["rows"]] == [r["ann_acc"] for r in two["rows"]]
    assert all(r["samples"] == 300 for r in two["rows"]) and all(r["processes"] == 2 for r in two["rows"])
    a, b = pd.read_csv(tmp_path / "one" / "sweep.csv"), pd.read_csv(tmp_path / "two" / "sweep.csv")
    pd.testing.assert_frame_equal(a, b)


def test_distributed_sweep_refuses_per_step_observers(tiny_run, fake_cifar, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ann2snn",
           "sweep", "--checkpoint", tiny_run, "--neuron", "if", "--T", "2", "--data-dir", fake_cifar, "--skip-md5",
           "--device", "cpu", "--out", str(tmp_path / "x")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode != 0
    assert "a distributed sweep (torchrun) counts accuracy only: switch off --ops" in out.stderr
    assert not os.path.exists(tmp_path / "x" / "sweep.csv")


def test_two_process_training_reports_whole_test_set_accuracy(fake_cifar, tmp_path):
    out = tmp_path / "ddp"
    torchrun("train-ann", "--arch", "resnet20", "--width", "0.25", "--epochs", "2", "--batch-size", "10",
             "--data-dir", fake_cifar, "--skip-md5", "--device", "cpu", "--quiet", "--out", str(out))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["complete"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 2  # one writer: no duplicated rows
    from ann2snn.ann.build import load_ann

    model, _ = load_ann(str(out))
    correct, total = evaluate_ann(model, load_data(ckpt["config"])[1])
    assert total == 10 and metrics["test_acc"].iloc[-1] == correct / total


def test_global_batch_must_split_evenly(fake_cifar, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ann2snn",
           "train-ann", "--arch", "resnet20", "--width", "0.25", "--epochs", "1", "--batch-size", "7",
           "--data-dir", fake_cifar, "--skip-md5", "--device", "cpu", "--quiet", "--out", str(tmp_path / "r")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode != 0 and "--batch-size 7 must be a multiple of the 2 processes" in out.stderr
