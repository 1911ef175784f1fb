"""The sweep's ANN column is train-ann's test accuracy whatever the SNN's speed options; the ANN in the
SNN's own arithmetic is kept apart for the T = 1 identity; a row above its ANN is explained."""

import json
import os
import pickle

import pandas as pd
import pytest
import torch

import ann2snn
from ann2snn.ann.build import load_ann
from ann2snn.conversion.snn import exact_at_T1, neuron_settings
from ann2snn.pipelines.sweep import ANN_COLUMN_NOTE, above_ann_note, write_tables
from ann2snn.plumbing.data import DATASETS, CifarBatches, load_split

N_TEST = 300


def write_learnable_cifar10(root, per_file):
    """A stand-in CIFAR-10 that a ¼-width ResNet-20 learns a little in one epoch: smooth random images
    with a colour cast per class (labels 0..9 in turn). Loads only with skip_md5."""
    folder = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(folder)
    g = torch.Generator().manual_seed(0)
    casts = torch.rand(10, 3, 1, 1, generator=g) * 200 - 100
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = torch.arange(per_file) % 10
        coarse = torch.rand(per_file, 3, 4, 4, generator=g) * 100 + 78
        img = (torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") + casts[labels]
               + 20 * torch.randn(per_file, 3, 32, 32, generator=g))
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": img.round().clamp(0, 255).to(torch.uint8).reshape(per_file, 3072).numpy(),
                         "labels": labels.tolist()}, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return str(root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data folder, QCFS(L=4) run folder, its test_acc from metrics.csv, its converted exact SNN file)."""
    from ann2snn.conversion.snn import convert_checkpoint
    from ann2snn.pipelines.train_ann import train_ann

    root = tmp_path_factory.mktemp("ann_column")
    data = write_learnable_cifar10(root / "data", N_TEST)
    run = str(root / "run")
    train_ann({"arch": "resnet20", "width": 0.25, "epochs": 1, "batch_size": 20, "subset": 600, "test_subset": N_TEST,
               "lr": 0.05, "lambda_init": "auto", "data_dir": data, "skip_md5": True, "device": "cpu"}, run,
              progress=False)
    test_acc = float(pd.read_csv(os.path.join(run, "metrics.csv"))["test_acc"].iloc[-1])
    snn = str(root / "exact.pt")  # QCFS(L=4) → MBIF(1+2) capped at K = 4: exact at T = 1
    convert_checkpoint(run, {"neuron": "mbif", "int_bits": 1, "frac_bits": 2, "cap": 4}, snn)
    return data, run, test_acc, snn


def _by_hand(model, data, batch, dtype=torch.float32, amp=False, channels_last=False):
    """Top-1 (a fraction) of ``model`` on the test split, evaluated here in the given arithmetic."""
    x, y = load_split("cifar10", data, False, skip_md5=True)
    model = model.to(dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    correct = 0
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=amp):
        for xb, yb in CifarBatches(x, y, DATASETS["cifar10"], batch):
            correct += int((model(xb.to(dtype)).argmax(1) == yb).sum())
    return correct / len(y)


@pytest.mark.parametrize("options", [
    {},
    {"channels_last": True, "batch_size": 7},
    {"batch_size": 64, "time_chunk": 2, "ops": False},
    {"precision": "float64", "channels_last": True},
    {"amp": "bf16", "diagnostics": True},
], ids=["default", "channels_last-batch7", "batch64-chunk2", "float64-channels_last", "bf16-diagnostics"])
def test_ann_column_is_train_anns_test_accuracy_whatever_the_speed_options(trained, tmp_path, options):
    """The ANN column equals metrics.csv's test_acc (same checkpoint, same test images) under every
    speed option, for the ANN checkpoint and for its SNN file. Float32 convolutions may round their last
    bit differently in another layout or at another batch size, so this equality does not come from the
    options leaving the numbers alone: the sweep computes its ANN column with train-ann's own
    evaluation (ann2snn.ann.train.evaluate_as_trained), which fixes layout, batch size, dtype and amp.
    The ANN in the SNN's own arithmetic is kept apart (ann_acc_simulated), and one step of the exact
    conversion equals it exactly."""
    data, run, test_acc, snn_file = trained
    assert 0.15 < test_acc < 0.9  # it learnt something, and still errs: predictions differ between images
    out = tmp_path / "sweep"
    res = ann2snn.run_sweep([run, snn_file], "1,2", neurons=["mbif:1+2", "if"], caps=[4], subset=N_TEST,
                            data_dir=data, skip_md5=True, device="cpu", out=str(out), **options)
    table = pd.read_csv(out / "sweep.csv")
    doc = json.loads((out / "sweep.json").read_text())
    assert table["neuron"].tolist() == ["MBIF 1+2 K=4", "IF", "MBIF 1+2 K=4"]
    assert (table["ANN"] == round(100 * test_acc, 2)).all()
    for row in doc["rows"]:
        assert row["ann_acc"] == test_acc and row["ann_train_recorded"] == test_acc and row["samples"] == N_TEST
    md = (out / "sweep.md").read_text()
    assert ANN_COLUMN_NOTE in md and "train-ann recorded" not in md
    # the T = 1 identity, in the SNN's own arithmetic: both exact rows (in memory, and the SNN file)
    exact = [r for r in doc["rows"] if r["neuron"] == "MBIF 1+2 K=4"]
    assert all(r["curve"][0] == r["ann_acc_simulated"] for r in exact)
    # ... which is the ANN computed by hand in that arithmetic
    ann, _ = load_ann(run)
    hand = _by_hand(ann, data, options.get("batch_size", 500),
                    torch.float64 if options.get("precision") == "float64" else torch.float32,
                    options.get("amp") == "bf16", options.get("channels_last", False))
    assert all(r["ann_acc_simulated"] == hand for r in doc["rows"])
    expected = []
    if options.get("precision") == "float64":
        expected.append("float64")
    if options.get("channels_last"):
        expected.append("channels_last layout")
    if options.get("batch_size", 500) < N_TEST:
        expected.append(f"batches of {options['batch_size']}")
    if options.get("amp"):
        expected.append("amp bf16")
    assert all(r["ann_simulated_options"] == expected for r in doc["rows"])
    # sweep.md names the ANN in the SNN's arithmetic exactly when it differs from the column
    differs = round(hand * N_TEST) != round(test_acc * N_TEST)
    assert (f"ANN in {', '.join(expected)} (the SNN's own arithmetic" in md) == differs
    assert res["notes"][0] == ANN_COLUMN_NOTE


def test_other_test_images_have_no_recorded_value(trained):
    data, run, test_acc, _ = trained
    res = ann2snn.run_sweep([run], 1, neurons=["if"], subset=100, data_dir=data, skip_md5=True, ops=False)
    curve = res["curves"][0]
    assert curve["ann_train_recorded"] is None and curve["samples"] == 100
    ann, _ = load_ann(run)
    x, y = load_split("cifar10", data, False, skip_md5=True)
    from ann2snn.plumbing.data import balanced_subset

    idx = balanced_subset(y, 100, 0, 10)
    with torch.inference_mode():
        xb = next(iter(CifarBatches(x[idx], y[idx], DATASETS["cifar10"], 100)))[0]
        assert curve["ann_acc"] == int((ann(xb).argmax(1) == y[idx]).sum()) / 100


def test_a_recorded_value_that_differs_is_named(trained, tmp_path):
    """A checkpoint whose recorded test_acc is not what its weights give here (as after training on
    another device): sweep.md gives both."""
    data, run, test_acc, _ = trained
    ckpt = torch.load(os.path.join(run, "checkpoint.pt"), weights_only=True)
    ckpt["metrics"][-1]["test_acc"] = test_acc + 1 / N_TEST
    os.makedirs(tmp_path / "other")
    torch.save(ckpt, tmp_path / "other" / "checkpoint.pt")
    res = ann2snn.run_sweep([str(tmp_path / "other")], 1, neurons=["if"], subset=N_TEST, data_dir=data,
                            skip_md5=True, ops=False, out=str(tmp_path / "sw"))
    assert res["curves"][0]["ann_acc"] == test_acc
    md = (tmp_path / "sw" / "sweep.md").read_text()
    assert f"train-ann recorded {100 * test_acc + 100 / N_TEST:.2f} % on these test images" in md
    assert f"the same way: {100 * test_acc:.2f} %" in md


# ---- why a row is above its ANN -------------------------------------------------------------------

QCFS4 = {"dataset": "cifar10", "arch": "vgg16", "activation": "qcfs", "levels": 4, "width": 1.0}


def _curve(curve, ann_acc, conv, cfg=QCFS4, samples=1000, sim=None, options=()):
    return {"dataset": "cifar10", "network": cfg["arch"], "width": 1.0, "epochs": 1, "activation": cfg["activation"],
            "L_or_bits": "L=4", "neuron": "x", "v_init": conv["v_init"], "threshold": "lambda", "curve": curve,
            "ann_acc": ann_acc, "ann_acc_simulated": ann_acc if sim is None else sim,
            "ann_simulated_options": list(options), "samples": samples, "train_config": cfg, "conversion": conv,
            "checkpoint": "run/checkpoint.pt", "checkpoint_kind": "ann", "source_ann_sha256": "a" * 64}


def _row(c):
    return {k: c[k] for k in ("dataset", "network", "width", "epochs", "activation", "L_or_bits", "neuron")}


MBIF13 = {"neuron": "mbif", "int_bits": 1, "frac_bits": 3, "v_init": "half-lsb", "cap": None}


def test_the_users_case_mbif_above_its_qcfs_ann():
    """QCFS(L=4) → uncapped MBIF(1+3): 29.3 % against 28.5 % at T = 1 on 1,000 images."""
    note = above_ann_note(_curve([0.293, 0.284], 0.285, MBIF13), [1, 2])
    assert note["T"] == [1] and note["images"] == 8 and note["points"] == 0.8 and note["samples"] == 1000
    text = note["text"]
    # one step: θ/8 against λ/4; per step up to (2 − 1/8)·θ = 15/8·θ against λ
    assert "each step rounds to multiples of θ/8 where the qcfs L=4 ANN rounds to λ/4" in text
    assert "sends up to 15/8·θ where the qcfs L=4 ANN clips at λ" in text
    # 8 of 1,000 images; binomial standard error sqrt(0.285·0.715/1000) = 1.43 points
    assert "8 of 1,000 test images" in text and "±1.43 points" in text


def test_no_note_when_no_row_is_above():
    assert above_ann_note(_curve([0.2, 0.285], 0.285, MBIF13), [1, 2]) is None
    # above only at a t that is not in the table
    assert above_ann_note(_curve([0.2, 0.3, 0.28], 0.285, MBIF13), [1, 3]) is None


@pytest.mark.parametrize("conv, cfg, T, curve, words", [
    # IF from QCFS(L=4): at T = 8 it resolves θ/8 (finer than λ/4), and never exceeds θ = λ
    ({"neuron": "if", "int_bits": 1, "frac_bits": 0, "v_init": "half-lsb", "cap": None}, QCFS4, [4, 8],
     [0.1] * 3 + [0.2, 0.25, 0.26, 0.27, 0.29], ["after T = 8 steps its neurons average to multiples of θ/8"]),
    # capped at K = L = 4 from v_0 = q/2: one step is the ANN; at T = 2: θ/8
    ({"neuron": "mbif", "int_bits": 1, "frac_bits": 2, "v_init": "half-lsb", "cap": 4}, QCFS4, [1, 2],
     [0.285, 0.29], ["one step is the ANN exactly, but after T = 2 steps", "θ/8 where the qcfs L=4 ANN rounds to λ/4"]),
    # matched 2+2: λ/4 and (4 − 1/4)·λ = 15/4·λ; MBIF 2+2 from θ/2: a start above q/2 = θ/8
    ({"neuron": "mbif", "int_bits": 2, "frac_bits": 2, "v_init": "half-threshold", "cap": None},
     {**QCFS4, "activation": "matched", "int_bits": 2, "frac_bits": 2}, [1], [0.3],
     ["v_0 = θ/2, not q/2 = θ/8"]),
    # ReLU with calibrated thresholds
    ({"neuron": "if", "int_bits": 1, "frac_bits": 0, "v_init": "zero", "cap": None, "threshold": "percentile:99.9",
      "thresholds": {"a": 1.0}}, {**QCFS4, "activation": "relu"}, [16], [0.3] * 16,
     ["the ReLU ANN neither rounds nor clips", "(percentile:99.9)", "θ/16 at T = 16", "round down"]),
])
def test_reasons_name_the_conversion(conv, cfg, T, curve, words):
    note = above_ann_note(_curve(curve, 0.285, conv, cfg), T)
    for w in words:
        assert w in note["text"], (w, note["text"])
    if cfg["activation"] == "matched":  # same step and ceiling as the ANN: neither is given as a reason
        assert "finer" not in note["text"] and "clips at" not in note["text"]


def test_exact_conversion_above_at_T1_is_float_rounding():
    """One step of an exact conversion is its ANN in the SNN's arithmetic: at T = 1 it can only be above
    the ANN column by the difference between the two arithmetics."""
    conv = {"neuron": "mbif", "int_bits": 1, "frac_bits": 2, "v_init": "half-lsb", "cap": 4}
    note = above_ann_note(_curve([0.287], 0.285, conv, sim=0.287, options=["channels_last layout"]), [1])
    assert "this conversion is its ANN exactly in the SNN's own arithmetic (channels_last layout)" in note["text"]
    assert "2 of 1,000 test images" in note["text"]


def test_exact_at_T1_by_hand():
    qcfs = {"activation": "qcfs", "levels": 4}
    s = neuron_settings("mbif", qcfs, 1, 2, cap=4)
    assert exact_at_T1(qcfs, s)
    assert not exact_at_T1(qcfs, {**s, "cap": None})  # K = 7 > L
    assert not exact_at_T1(qcfs, {**s, "v_init": "half-threshold"})  # θ/2 ≠ q/2 = θ/8
    assert not exact_at_T1(qcfs, {**s, "thresholds": {"a": 1.0}})  # θ ≠ λ
    assert exact_at_T1({"activation": "qcfs", "levels": 1}, neuron_settings("if", {}, v_init="half-threshold"))
    matched = {"activation": "matched", "int_bits": 2, "frac_bits": 2}
    assert exact_at_T1(matched, neuron_settings("mbif", matched, warn=lambda m: None))
    assert not exact_at_T1(matched, neuron_settings("mbif", matched, 1, 3, warn=lambda m: None))
    assert not exact_at_T1({"activation": "relu"}, neuron_settings("if", {}))


def test_the_note_is_written_exactly_when_a_row_is_above(tmp_path):
    prov = {"command": "ann2snn sweep ...", "git_commit": "0" * 40}

    def write(curves, name):
        write_tables([_row(c) for c in curves], curves, prov, str(tmp_path / name), [1, 2])
        return (tmp_path / name / "sweep.md").read_text(), json.loads((tmp_path / name / "sweep.json").read_text())

    below = _curve([0.2, 0.28], 0.285, MBIF13)
    above = _curve([0.293, 0.28], 0.285, MBIF13)
    md, doc = write([below, below], "none")
    assert "is above its ANN" not in md and [r["above_ann"] for r in doc["rows"]] == [None, None]
    assert doc["notes"] == [ANN_COLUMN_NOTE]
    md, doc = write([below, above], "one")
    assert md.count("is above its ANN") == 1 and "is above its ANN (28.50 %) at T = 1, by up to 0.80 points" in md
    assert doc["rows"][0]["above_ann"] is None and doc["rows"][1]["above_ann"]["images"] == 8
    assert doc["notes"][1] == doc["rows"][1]["above_ann"]["text"]


def test_ann_in_the_snns_arithmetic_is_named_where_it_differs(tmp_path):
    prov = {"command": "ann2snn sweep ...", "git_commit": "0" * 40}
    conv = {"neuron": "mbif", "int_bits": 1, "frac_bits": 2, "v_init": "half-lsb", "cap": 4}
    c = _curve([0.8841, 0.88], 0.884, conv, samples=10000, sim=0.8841, options=["float64"])
    write_tables([_row(c)], [c], prov, str(tmp_path / "a"), [1, 2])
    md = (tmp_path / "a" / "sweep.md").read_text()
    assert ("vgg16 qcfs L=4 (run/checkpoint.pt): ANN in float64 (the SNN's own arithmetic; the exact conversions' "
            "T = 1 equals this one): 88.41 % (the ANN column, as train-ann computes it: 88.40 %)") in md
