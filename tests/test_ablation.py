"""`ann2snn ablate`: the seed's Table 3 rows over seeds, one table of mean ± std, resumable."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ann2snn.pipelines.ablation import ROWS, parse_rows, parse_seeds, run_ablation, run_configs, run_dir
from ann2snn.cli.ablate import ablate_cmd
from ann2snn.plumbing.errors import UserError


def common(fake_cifar, **extra):
    return {"width": 0.25, "T": 2, "epochs": 1, "batch_size": 25, "data_dir": fake_cifar, "skip_md5": True, **extra}


def test_rows_are_the_seeds_table3():
    assert list(ROWS) == ["lif", "lif+ic", "mblif:2+0", "mblif:1+1", "mblif:2+1", "mblif:2+1+ic"]
    configs = {row: cfg for row, _, cfg in run_configs({"width": 0.25}, parse_rows("all"), [0])}
    got = {row: (c["int_bits"], c["frac_bits"], c["ic"]) for row, c in configs.items()}
    assert got == {"lif": (1, 0, False), "lif+ic": (1, 0, True), "mblif:2+0": (2, 0, False),
                   "mblif:1+1": (1, 1, False), "mblif:2+1": (2, 1, False), "mblif:2+1+ic": (2, 1, True)}
    # every other setting is shared
    shared = [{k: v for k, v in c.items() if k not in ("neuron", "int_bits", "frac_bits", "ic")}
              for c in configs.values()]
    assert all(s == shared[0] for s in shared)


@pytest.mark.parametrize("text,msg", [
    ("lif,foo", "unknown ablation row 'foo'"), ("lif,lif", "names a row twice"), ("", "unknown ablation row ''"),
    ("mblif:2+1,mblif2+1", "names a row twice"), ("mblif:3+1", "unknown ablation row 'mblif:3+1'"),
])
def test_parse_rows_errors(text, msg):
    with pytest.raises(UserError, match=re.escape(msg)):
        parse_rows(text)


@pytest.mark.parametrize("text", ["", "a", "0,0", "-1", "0,,1", "1.5"])
def test_parse_seeds_errors(text):
    with pytest.raises(UserError, match="`seeds` must be distinct whole numbers"):
        parse_seeds(text)


def test_parse_ok():
    assert parse_rows("mblif:2+1+ic, lif") == ["mblif:2+1+ic", "lif"]
    # the names from before the neuron grammar NAME[:M+N] are read as the same rows
    assert parse_rows("mblif2+1+ic,mblif2+0,mblif1+1,mblif2+1") == ["mblif:2+1+ic", "mblif:2+0", "mblif:1+1",
                                                                     "mblif:2+1"]
    assert parse_seeds("3,0") == [3, 0]


def test_common_settings_may_not_set_row_keys():
    with pytest.raises(UserError, match="ablate sets int_bits, seed per row and seed itself"):
        run_configs({"int_bits": 2, "seed": 1}, ["lif"], [0])


def test_ablation_table_means_and_resume(tmp_path, fake_cifar):
    out = str(tmp_path / "abl")
    rows, seeds = ["lif", "mblif:2+1+ic"], [0, 1]
    # a run cut off after epoch 1 of 2 is reported as not finished and left out of the means
    run_ablation(common(fake_cifar, epochs=2), rows, seeds, out, progress=False, stop_after=1)
    md = open(os.path.join(out, "ablation.md")).read()
    assert "NOT FINISHED" in md and "lif seed 0 (1/2 epochs)" in md
    assert (pd.read_csv(os.path.join(out, "ablation.csv"))["acc"] == "not run").all()
    # the same command again resumes every run and finishes the table
    paths = run_ablation(common(fake_cifar, epochs=2), rows, seeds, out, progress=False)
    table = pd.read_csv(paths[0])
    assert list(table["row"]) == rows and list(table["seeds"]) == [2, 2]
    for _, r in table.iterrows():
        accs = []
        for seed in seeds:
            ckpt = torch.load(os.path.join(run_dir(out, r["row"], seed), "checkpoint.pt"), weights_only=True)
            assert ckpt["epoch"] == 2 and ckpt["config"]["seed"] == seed
            accs.append(100 * ckpt["metrics"][-1]["test_acc"])
        assert r["acc_mean"] == pytest.approx(np.mean(accs), abs=0.006)
        assert r["acc_std"] == pytest.approx(np.std(accs, ddof=1), abs=0.006)
        assert r["acc"] == f"{np.mean(accs):.2f} ± {np.std(accs, ddof=1):.2f}"
    assert "NOT FINISHED" not in open(paths[1]).read()
    details = json.load(open(paths[2]))
    assert len(details["runs"]) == 4 and all(d["complete"] for d in details["runs"])
    assert table.loc[1, "neuron"] == "MBLIF 2+1" and bool(table.loc[1, "ic"]) is True
    # a finished ablation run again only rewrites the table; other settings in the same --out are refused
    # (the file's times are set far in the past, so that a rewrite shows whatever the clock's resolution;
    # a rewrite is a rename of a new file, so the inode would change too)
    ckpt = os.path.join(run_dir(out, "lif", 0), "checkpoint.pt")
    os.utime(ckpt, (1_000_000, 1_000_000))
    before = os.stat(ckpt)
    run_ablation(common(fake_cifar, epochs=2), rows, seeds, out, progress=False)
    after = os.stat(ckpt)
    assert (after.st_mtime, after.st_ino) == (1_000_000, before.st_ino)
    with pytest.raises(UserError, match=r"holds an ablation run \(.*lif-seed0\) with `T` = 2, not 3"):
        run_ablation(common(fake_cifar, epochs=2, T=3), rows, seeds, out, progress=False)


def test_a_clashing_folder_is_refused_before_anything_trains(tmp_path, fake_cifar):
    out = str(tmp_path / "abl")
    run_ablation(common(fake_cifar), ["lif"], [0], out, progress=False)
    with pytest.raises(UserError, match="with `T` = 2, not 3"):
        run_ablation(common(fake_cifar, T=3), ["mblif:2+0", "lif"], [0], out, progress=False)
    assert not os.path.exists(run_dir(out, "mblif:2+0", 0))  # nothing new was trained


def test_cli(tmp_path, fake_cifar):
    out = tmp_path / "abl"
    args = ["--rows", "lif,mblif:1+1", "--seeds", "0", "--data-dir", fake_cifar, "--skip-md5", "--width", "0.25",
            "--T", "2", "--epochs", "1", "--batch-size", "25", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(ablate_cmd, args)
    assert result.exit_code == 0, result.output
    assert "ablation table:" in result.output
    assert list(pd.read_csv(out / "ablation.csv")["row"]) == ["lif", "mblif:1+1"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["lif-seed0", "mblif1+1-seed0"]  # no colon


@pytest.mark.parametrize("flags,msg", [
    (["--rows", "lif,bad"], "unknown ablation row 'bad'"),
    (["--seeds", "x"], "--seeds must be distinct"),
    (["--dataset", "dvs-gesture", "--augment", "crop-flip"], "--augment crop-flip is for CIFAR"),
])
def test_cli_rejects_bad_input_before_writing(tmp_path, flags, msg):
    result = CliRunner().invoke(ablate_cmd, [*flags, "--out", str(tmp_path / "abl"), "--quiet"])
    assert isinstance(result.exception, UserError) and msg in str(result.exception)
    assert not os.path.exists(tmp_path / "abl")


@pytest.mark.parametrize("flags,msg", [
    (["--T", "0"], "Invalid value for '--T': 0 is not in the range 1<=x<=10000"),
    (["--width", "-1"], "Invalid value for '--width': -1 is not in the range 0 < x <= 64"),
])
def test_cli_option_types_refuse_before_writing(tmp_path, flags, msg):
    result = CliRunner().invoke(ablate_cmd, [*flags, "--out", str(tmp_path / "abl"), "--quiet"])
    assert result.exit_code == 2 and msg in result.output
    assert not os.path.exists(tmp_path / "abl")


def test_cli_has_no_per_row_flags(tmp_path):
    result = CliRunner().invoke(ablate_cmd, ["--neuron", "lif", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "No such option '--neuron'" in result.output
