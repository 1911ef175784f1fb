"""One grammar for the command line.

- a neuron is written ``NAME[:M+N]`` and bits alone ``M+N``; the earlier ``--int-bits/--frac-bits``
  (and the ablation's ``mblif2+1`` rows) still work, with one deprecation note, and give the same
  settings; both spellings at once are refused;
- ``--subset`` / ``--test-subset`` take N >= 1 or ``all`` on every command; 0 is an error;
- ``--threads`` and ``--quiet`` on every command that computes, ``--device`` where it can be used;
- paths are ``click.Path``; a mistyped option names the command that has it;
- progress bars are a few plain lines when stderr is no terminal;
- shell completion prints a script and completes without starting any torch work.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import click
import pytest
import torch

from ann2snn.ann.spec import DIRECT_NEURONS, format_neuron, parse_bits, parse_neuron
from ann2snn.ann.train import DEFAULTS
from ann2snn.cli import types as T
from ann2snn.cli.main import cli, main
from ann2snn.plumbing.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.progress import LineProgress, progress_bar

from helpers import tiny_ann

#: the commands that compute, and whether each can use a GPU (--device)
COMPUTING = {"train-ann": True, "convert": False, "sweep": True, "train-snn": True, "eval-snn": True,
             "ablate": True, "entropy": False, "plan": False}


def run_cli(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(capsys, argv, *fragments):
    code, out, err = run_cli(capsys, argv)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def save_ann(path, activation="qcfs", **config):
    """A tiny untrained ANN saved in train-ann's checkpoint format."""
    cfg = {**DEFAULTS, "arch": "resnet20", "width": 0.25, "lambda_init": 1.0, "activation": activation, **config}
    extra = {k: config[k] for k in ("int_bits", "frac_bits") if k in config}
    model = tiny_ann("resnet20", activation, width=0.25, **extra)
    save_checkpoint({"kind": "ann", "format": FORMAT, "config": cfg, "epoch": 1, "complete": True,
                     "model_state": model.state_dict(), "metrics": []}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def qcfs_ann(tmp_path_factory):
    return save_ann(tmp_path_factory.mktemp("grammar") / "ann.pt")


# --- the parser ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, names, want", [
    ("if", ("if", "mbif"), {"neuron": "if"}),
    ("if:1+0", ("if", "mbif"), {"neuron": "if", "int_bits": 1, "frac_bits": 0}),
    ("mbif", ("if", "mbif"), {"neuron": "mbif"}),
    ("mbif:1+3", ("if", "mbif"), {"neuron": "mbif", "int_bits": 1, "frac_bits": 3}),
    ("mbif:8+8", ("if", "mbif"), {"neuron": "mbif", "int_bits": 8, "frac_bits": 8}),
    (" mbif:0+1 ", ("if", "mbif"), {"neuron": "mbif", "int_bits": 0, "frac_bits": 1}),
    ("lif", DIRECT_NEURONS, {"neuron": "lif"}),
    ("mblif:2+1", DIRECT_NEURONS, {"neuron": "mblif", "int_bits": 2, "frac_bits": 1}),
])
def test_parse_neuron(spec, names, want):
    assert parse_neuron(spec, names) == want


@pytest.mark.parametrize("spec, names, fragment", [
    ("lif", ("if", "mbif"), "write NAME[:M+N]: if, mbif or mbif:M+N"),
    ("mbif", DIRECT_NEURONS, "write NAME[:M+N]: lif, mblif or mblif:M+N"),
    ("mbif:", ("if", "mbif"), "write NAME[:M+N]"),
    ("mbif:1", ("if", "mbif"), "write NAME[:M+N]"),
    ("mbif:1+3+ic", ("if", "mbif"), "write NAME[:M+N]"),
    ("mbif:-1+3", ("if", "mbif"), "write NAME[:M+N]"),
    ("MBIF:1+3", ("if", "mbif"), "write NAME[:M+N]"),
    ("if:1+3", ("if", "mbif"), "if is mbif:1+0 (one-bit spikes); write if, or mbif:1+3 for multi-bit spikes"),
    ("lif:2+1", DIRECT_NEURONS, "lif is mblif:1+0 (one-bit spikes); write lif, or mblif:2+1"),
    ("mbif:9+8", ("if", "mbif"), "bad bit widths m=9, n=8"),
    ("mblif:0+0", DIRECT_NEURONS, "bad bit widths m=0, n=0"),
])
def test_parse_neuron_errors_show_the_grammar(spec, names, fragment):
    with pytest.raises(UserError) as e:
        parse_neuron(spec, names)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_parse_bits_and_format():
    assert parse_bits("1+3") == (1, 3) and parse_bits(" 2 + 0") == (2, 0)
    for bad in ("1", "1+", "+3", "a+b", "1-3", "1+3+1"):
        with pytest.raises(UserError, match=r"bits are written M\+N"):
            parse_bits(bad)
    with pytest.raises(UserError, match="m=0, n=0"):
        parse_bits("0+0")
    assert format_neuron("mbif", 1, 3) == "mbif:1+3" and format_neuron("if", 1, 0) == "if"
    assert format_neuron("mblif", None, 1) == "mblif"
    # round trip
    assert parse_neuron(format_neuron("mblif", 2, 1), DIRECT_NEURONS) == {"neuron": "mblif", "int_bits": 2,
                                                                           "frac_bits": 1}


def test_the_sweep_reads_the_same_grammar():
    from ann2snn.conversion.snn import parse_neuron_spec

    for spec in ("if", "if:1+0", "mbif", "mbif:2+1"):
        assert parse_neuron_spec(spec) == parse_neuron(spec)
    with pytest.raises(UserError, match="bad `neurons` 'if:2"):
        parse_neuron_spec("if:2+1")


# --- convert: one spelling, and the old one gives the same checkpoint ---------------------------------------


def converted(capsys, ann, out, *flags):
    code, stdout, err = run_cli(capsys, ["convert", "--checkpoint", ann, *flags, "--out", out])
    assert code == 0, err
    return load_checkpoint(str(out), kind="snn"), err


@pytest.mark.parametrize("new, old, note", [
    (["--neuron", "mbif:1+3"], ["--neuron", "mbif", "--int-bits", "1", "--frac-bits", "3"],
     "note: --int-bits/--frac-bits are deprecated; write --neuron mbif:1+3"),
    (["--neuron", "mbif:2+1"], ["--int-bits", "2", "--frac-bits", "1"],
     "note: --int-bits/--frac-bits are deprecated; write --neuron mbif:2+1"),
    (["--neuron", "mbif:1+2"], ["--neuron", "mbif", "--frac-bits", "2"],
     "note: --frac-bits is deprecated; write --neuron mbif:M+2"),
    (["--neuron", "if:1+0"], ["--neuron", "if", "--int-bits", "1", "--frac-bits", "0"],
     "note: --int-bits/--frac-bits are deprecated; write --neuron if"),
])
def test_convert_old_and_new_spellings_give_the_same_checkpoint(capsys, tmp_path, qcfs_ann, new, old, note):
    a, err_new = converted(capsys, qcfs_ann, tmp_path / "new.pt", *new)
    b, err_old = converted(capsys, qcfs_ann, tmp_path / "old.pt", *old)
    assert err_new == ""
    assert err_old.splitlines() == [note]
    assert a["conversion"] == b["conversion"] and a["config"] == b["config"]
    assert a["model_state"].keys() == b["model_state"].keys()
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])


def test_convert_defaults(capsys, tmp_path, qcfs_ann):
    """mbif alone is 1+3 for a QCFS ANN; if and if:1+0 are MBIF(1,0)."""
    c, _ = converted(capsys, qcfs_ann, tmp_path / "a.pt")
    assert (c["conversion"]["neuron"], c["conversion"]["int_bits"], c["conversion"]["frac_bits"]) == ("mbif", 1, 3)
    for spec in ("if", "if:1+0"):
        c, _ = converted(capsys, qcfs_ann, tmp_path / f"{spec}.pt", "--neuron", spec)
        assert (c["conversion"]["neuron"], c["conversion"]["int_bits"], c["conversion"]["frac_bits"]) == ("if", 1, 0)


def test_convert_mbif_takes_a_matched_anns_bits(capsys, tmp_path):
    ann = save_ann(tmp_path / "matched.pt", "matched", int_bits=2, frac_bits=1)
    c, err = converted(capsys, ann, tmp_path / "snn.pt", "--neuron", "mbif")
    assert (c["conversion"]["int_bits"], c["conversion"]["frac_bits"]) == (2, 1) and err == ""


@pytest.mark.parametrize("flags, keep, drop", [
    (["--neuron", "mbif:1+3", "--frac-bits", "2"], "--neuron mbif:1+3", "--frac-bits"),
    (["--neuron", "mbif:1+3", "--int-bits", "1", "--frac-bits", "3"], "--neuron mbif:1+3", "--int-bits/--frac-bits"),
])
def test_convert_both_spellings_at_once_is_an_error(capsys, tmp_path, qcfs_ann, flags, keep, drop):
    out = tmp_path / "snn.pt"
    one_error_line(capsys, ["convert", "--checkpoint", qcfs_ann, *flags, "--out", out],
                   f"keep {keep} and drop {drop} (deprecated)")
    assert not out.exists()


@pytest.mark.parametrize("spec, fragment", [
    ("if:2+1", "bad --neuron 'if:2+1': if is mbif:1+0 (one-bit spikes); write if, or mbif:2+1"),
    ("mbif:0+0", "--neuron mbif:0+0: bad bit widths m=0, n=0"),
    ("mbif:1-3", "bad --neuron 'mbif:1-3': write NAME[:M+N]"),
])
def test_convert_bad_neuron_is_one_line(capsys, tmp_path, qcfs_ann, spec, fragment):
    out = tmp_path / "snn.pt"
    one_error_line(capsys, ["convert", "--checkpoint", qcfs_ann, "--neuron", spec, "--out", out], fragment)
    assert not out.exists()


# --- train-ann and train-snn: the same config and explicit settings from either spelling -------------------


@pytest.fixture
def captured_train(monkeypatch):
    """Replace train_ann / train_snn by recorders of (config, explicit): the CLI's resolution only."""
    import ann2snn.pipelines.train_ann as ta
    import ann2snn.pipelines.train_snn as ts

    calls = []

    def record(config, out, resume=False, explicit=None, progress=True, **_):
        calls.append((dict(config), set(explicit or ())))
        return os.path.join(str(out), "checkpoint.pt")

    monkeypatch.setattr(ta, "train_ann", record)
    monkeypatch.setattr(ts, "train_snn", record)
    return calls


@pytest.mark.parametrize("new, old, note", [
    (["--bits", "2+1"], ["--int-bits", "2", "--frac-bits", "1"],
     "note: --int-bits/--frac-bits are deprecated; write --bits 2+1"),
    (["--bits", "3+3"], ["--int-bits", "3"], "note: --int-bits is deprecated; write --bits 3+3"),
    (["--bits", "1+3"], ["--int-bits", "1", "--frac-bits", "3"],
     "note: --int-bits/--frac-bits are deprecated; write --bits 1+3"),
])
def test_train_ann_bits(capsys, tmp_path, captured_train, new, old, note):
    base = ["train-ann", "--activation", "matched", "--quiet"]
    code, _, err_new = run_cli(capsys, [*base, *new, "--out", tmp_path / "a"])
    assert code == 0 and err_new == ""
    code, _, err_old = run_cli(capsys, [*base, *old, "--out", tmp_path / "b"])
    assert code == 0 and err_old.splitlines() == [note]
    (cfg_new, explicit_new), (cfg_old, explicit_old) = captured_train
    assert cfg_new == cfg_old and "bits" not in cfg_new
    m, n = (int(x) for x in new[1].split("+"))
    assert (cfg_new["int_bits"], cfg_new["frac_bits"]) == (m, n)
    assert explicit_new == {"activation", "int_bits", "frac_bits"}
    assert explicit_old == {"activation"} | {k for k, f in (("int_bits", "--int-bits"), ("frac_bits", "--frac-bits"))
                                              if f in old}


def test_train_ann_default_bits_and_mixing(capsys, tmp_path, captured_train):
    assert run_cli(capsys, ["train-ann", "--quiet", "--out", tmp_path / "a"])[0] == 0
    config, explicit = captured_train[0]
    assert (config["int_bits"], config["frac_bits"]) == (DEFAULTS["int_bits"], DEFAULTS["frac_bits"]) == (1, 3)
    assert not {"int_bits", "frac_bits"} & explicit
    one_error_line(capsys, ["train-ann", "--bits", "2+1", "--frac-bits", "1", "--out", tmp_path / "b"],
                   "keep --bits 2+1 and drop --frac-bits (deprecated)")
    one_error_line(capsys, ["train-ann", "--bits", "2-1", "--out", tmp_path / "c"], "bad --bits '2-1'", "M+N")
    assert len(captured_train) == 1


@pytest.mark.parametrize("new, old, note", [
    (["--neuron", "mblif:2+1"], ["--neuron", "mblif", "--int-bits", "2", "--frac-bits", "1"],
     "note: --int-bits/--frac-bits are deprecated; write --neuron mblif:2+1"),
    (["--neuron", "mblif:1+1"], ["--int-bits", "1", "--frac-bits", "1"],
     "note: --int-bits/--frac-bits are deprecated; write --neuron mblif:1+1"),
    (["--neuron", "mblif:3+1"], ["--int-bits", "3"], "note: --int-bits is deprecated; write --neuron mblif:3+1"),
    (["--neuron", "lif:1+0"], ["--neuron", "lif", "--int-bits", "1", "--frac-bits", "0"],
     "note: --int-bits/--frac-bits are deprecated; write --neuron lif"),
])
def test_train_snn_old_and_new_spellings_give_the_same_config(capsys, tmp_path, captured_train, new, old, note):
    from ann2snn.pipelines.train_snn import resolve_config

    code, _, err_new = run_cli(capsys, ["train-snn", *new, "--quiet", "--out", tmp_path / "a"])
    assert code == 0 and err_new == ""
    code, _, err_old = run_cli(capsys, ["train-snn", *old, "--quiet", "--out", tmp_path / "b"])
    assert code == 0 and err_old.splitlines() == [note]
    (cfg_new, explicit_new), (cfg_old, explicit_old) = captured_train
    assert resolve_config(cfg_new) == resolve_config(cfg_old)
    name, _, bits = new[1].partition(":")
    m, n = (int(x) for x in bits.split("+"))
    resolved = resolve_config(cfg_new)
    assert (resolved["neuron"], resolved["int_bits"], resolved["frac_bits"]) == (name, m, n)
    assert explicit_new >= {"neuron", "int_bits", "frac_bits"}
    assert explicit_old >= {k for k, f in (("int_bits", "--int-bits"), ("frac_bits", "--frac-bits")) if f in old}


def test_train_snn_plain_names(capsys, tmp_path, captured_train):
    """lif and mblif alone: no bits given, the library's defaults (1+0; the seed's 2+1) apply."""
    from ann2snn.pipelines.train_snn import resolve_config

    for spec, bits in (("lif", (1, 0)), ("mblif", (2, 1))):
        assert run_cli(capsys, ["train-snn", "--neuron", spec, "--quiet", "--out", tmp_path / spec])[0] == 0
        config, explicit = captured_train[-1]
        assert (config["int_bits"], config["frac_bits"]) == (None, None)
        assert (resolve_config(config)["int_bits"], resolve_config(config)["frac_bits"]) == bits
        assert not {"int_bits", "frac_bits"} & explicit


def test_train_snn_mixing_is_an_error(capsys, tmp_path, captured_train):
    one_error_line(capsys, ["train-snn", "--neuron", "mblif:2+1", "--int-bits", "2", "--out", tmp_path / "a"],
                   "keep --neuron mblif:2+1 and drop --int-bits (deprecated)")
    one_error_line(capsys, ["train-snn", "--neuron", "mbif:2+1", "--out", tmp_path / "a"],
                   "bad --neuron 'mbif:2+1'", "lif, mblif or mblif:M+N")
    assert captured_train == []


def test_ablate_rows_old_names_note(capsys, tmp_path, monkeypatch):
    import ann2snn.pipelines.ablation as ab

    seen = []
    monkeypatch.setattr(ab, "run_ablation", lambda common, rows, seeds, out, progress: seen.append(rows) or
                        [os.path.join(out, "ablation.csv"), os.path.join(out, "ablation.md")])
    code, _, err = run_cli(capsys, ["ablate", "--rows", "lif,mblif2+1+ic,mblif1+1", "--quiet", "--out", tmp_path / "a"])
    assert code == 0 and err.splitlines() == ["note: row names mblif2+1+ic, mblif1+1 are deprecated; write "
                                              "mblif:2+1+ic, mblif:1+1"]
    code, _, err = run_cli(capsys, ["ablate", "--rows", "lif,mblif:2+1+ic,mblif:1+1", "--quiet", "--out",
                                    tmp_path / "b"])
    assert code == 0 and err == ""
    assert seen == [["lif", "mblif:2+1+ic", "mblif:1+1"]] * 2
    assert ab.run_dir("x", "mblif:2+1+ic", 0) == ab.run_dir("x", "mblif2+1+ic", 0) == os.path.join("x",
                                                                                                 "mblif2+1+ic-seed0")


# --- --subset / --test-subset ---------------------------------------------------------------------------


def subset_options():
    return [(name, p) for name, command in cli.commands.items() for p in command.params
            if p.name in ("subset", "test_subset")]


def test_every_subset_option_takes_n_or_all():
    found = subset_options()
    assert {name for name, _ in found} == {"train-ann", "sweep", "train-snn", "eval-snn", "ablate", "entropy"}
    for name, p in found:
        assert isinstance(p.type, T.Count), (name, p.name)
        assert p.default == (500 if name == "entropy" else None), (name, p.name)
        assert p.type.convert("all", p, None) is None and p.type.convert("ALL", p, None) is None
        assert p.type.convert("7", p, None) == 7
        for bad in ("0", "-1", "1.5", "x", ""):
            with pytest.raises(click.BadParameter, match=">= 1 or 'all'"):
                p.type.convert(bad, p, None)


@pytest.mark.parametrize("argv", [
    ["train-ann", "--subset", "0", "--out", "OUT"],
    ["train-ann", "--test-subset", "0", "--out", "OUT"],
    ["sweep", "--subset", "0", "--checkpoint", "CKPT", "--out", "OUT"],
    ["train-snn", "--subset", "0", "--out", "OUT"],
    ["train-snn", "--test-subset", "0", "--out", "OUT"],
    ["eval-snn", "--test-subset", "0", "--checkpoint", "CKPT", "--out", "OUT"],
    ["ablate", "--subset", "0", "--out", "OUT"],
    ["entropy", "--subset", "0", "--checkpoint", "CKPT", "--out", "OUT"],
])
def test_subset_zero_is_an_error_everywhere(capsys, tmp_path, qcfs_ann, argv):
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else qcfs_ann if a == "CKPT" else a for a in argv]
    one_error_line(capsys, argv, "Invalid value for '--", "subset': must be a number of", ">= 1 or 'all', got 0")
    assert not out.exists()


def test_entropy_subset_all(monkeypatch, tmp_path, qcfs_ann, capsys):
    """entropy measures 500 test images by default; --subset all asks for the whole test split (None)."""
    import ann2snn.pipelines.sweep as sw

    seen = []

    def fake_batches(config, data_dir, batch_size, subset, *args):
        seen.append(subset)
        raise UserError("stop here")

    monkeypatch.setattr(sw, "load_test_batches", fake_batches)
    for extra, want in (([], 500), (["--subset", "all"], None), (["--subset", "20"], 20)):
        one_error_line(capsys, ["entropy", "--checkpoint", qcfs_ann, *extra], "stop here")
        assert seen[-1] == want


# --- --threads, --device, --amp, --quiet ------------------------------------------------------------------


def test_compute_options_on_every_computing_command():
    for name, command in cli.commands.items():
        opts = {o for p in command.params for o in p.opts}
        if name not in COMPUTING:
            assert name == "export-nir" and not {"--threads", "--device", "--quiet"} & opts
            continue
        assert {"--threads", "--quiet"} <= opts, name
        assert ("--device" in opts) == COMPUTING[name], name
    # --amp where the library takes it (eval-snn evaluates under the run's own autocast)
    assert {n for n, c in cli.commands.items() if any("--amp" in p.opts for p in c.params)} == \
        {"train-ann", "sweep", "train-snn", "ablate"}


@pytest.mark.parametrize("command", sorted(COMPUTING))
def test_threads_is_checked_first_on_every_computing_command(capsys, command):
    one_error_line(capsys, [command, "--threads", "0"], "--threads must be 'auto' or a whole number")


def test_threads_sets_torch_threads(capsys, tmp_path, qcfs_ann):
    before = torch.get_num_threads()
    try:
        code, _, err = run_cli(capsys, ["convert", "--threads", "2", "--checkpoint", qcfs_ann,
                                        "--out", tmp_path / "s.pt"])
        assert code == 0 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_device_and_amp_reach_the_library(capsys, tmp_path, monkeypatch, captured_train, qcfs_ann):
    import ann2snn.pipelines.ablation as ab
    import ann2snn.pipelines.sweep as sw
    import ann2snn.pipelines.train_snn as ts

    got = {}

    def fake_sweep(checkpoints, T, **kw):
        got["sweep"] = (kw["device"], kw["amp"], kw["progress"])
        return {"rows": [], "paths": []}

    def fake_eval(checkpoint, T, **kw):
        got["eval-snn"] = (kw["device"], kw["progress"])
        raise UserError("stop here")

    def fake_ablation(common, rows, seeds, out, progress):
        got["ablate"] = (common["device"], common["amp"], progress)
        return ["a.csv", "a.md"]

    monkeypatch.setattr(sw, "run_sweep", fake_sweep)
    monkeypatch.setattr(ts, "evaluate_direct_snn", fake_eval)
    monkeypatch.setattr(ab, "run_ablation", fake_ablation)
    flags = ["--device", "cpu", "--amp", "bf16", "--quiet"]
    assert run_cli(capsys, ["sweep", "--checkpoint", qcfs_ann, *flags, "--out", tmp_path / "s"])[0] == 0
    assert run_cli(capsys, ["ablate", *flags, "--out", tmp_path / "a"])[0] == 0
    assert run_cli(capsys, ["train-ann", *flags, "--out", tmp_path / "t"])[0] == 0
    assert run_cli(capsys, ["train-snn", *flags, "--out", tmp_path / "u"])[0] == 0
    one_error_line(capsys, ["eval-snn", "--checkpoint", qcfs_ann, "--device", "cpu"], "stop here")
    assert got == {"sweep": ("cpu", "bf16", False), "ablate": ("cpu", "bf16", False), "eval-snn": ("cpu", True)}
    assert [(c["device"], c["amp"]) for c, _ in captured_train] == [("cpu", "bf16")] * 2


# --- paths --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["convert", "sweep", "eval-snn", "export-nir", "entropy"])
def test_a_missing_checkpoint_is_a_click_path_error(capsys, tmp_path, command):
    missing = tmp_path / "no.pt"
    one_error_line(capsys, [command, "--checkpoint", missing, "--out", tmp_path / "o"],
                   f"Invalid value for '--checkpoint': Path '{missing}' does not exist")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["train-ann", "sweep", "train-snn", "eval-snn", "ablate", "entropy"])
def test_an_output_folder_that_is_a_file(capsys, tmp_path, qcfs_ann, command):
    out = tmp_path / "file.txt"
    out.write_text("mine")
    argv = [command, "--out", out] + (["--checkpoint", qcfs_ann] if command in ("sweep", "eval-snn") else [])
    one_error_line(capsys, argv, "Invalid value for '--out'", f"'{out}' is a file")
    assert out.read_text() == "mine"


def test_output_file_and_data_dir_kinds(capsys, tmp_path, qcfs_ann):
    folder = tmp_path / "folder"
    folder.mkdir()
    one_error_line(capsys, ["convert", "--checkpoint", qcfs_ann, "--out", folder], "Invalid value for '--out'",
                   f"'{folder}' is a directory")
    data = tmp_path / "data.txt"
    data.write_text("x")
    one_error_line(capsys, ["train-ann", "--data-dir", data, "--out", tmp_path / "r"],
                   "Invalid value for '--data-dir'", "is a file")


def test_ranges_are_in_the_options():
    """Every whole-number option of a computing command has a range type (no bare INT), but the
    deprecated bits (checked by check_bits with its own message)."""
    for name, command in cli.commands.items():
        for p in command.params:
            if isinstance(p, click.Option) and p.type is click.INT:
                assert p.name in ("int_bits", "frac_bits") and p.hidden, (name, p.name)


# --- a mistyped option names the command that has it -------------------------------------------------------


def test_an_option_of_another_command_is_named(capsys):
    line = one_error_line(capsys, ["convert", "--time-chunk", "4"], "No such option '--time-chunk'.")
    assert line.endswith("`ann2snn sweep` takes --time-chunk (steps merged into one network call).")
    line = one_error_line(capsys, ["convert", "--T", "4,16"], "No such option '--T'.")
    for command in ("sweep", "train-snn", "eval-snn", "ablate", "entropy"):
        assert f"`ann2snn {command}`" in line
    assert "`ann2snn convert`" not in line and line.endswith("take --T.")


def test_near_misses_keep_clicks_suggestion(capsys):
    line = one_error_line(capsys, ["train-ann", "--epoch", "3", "--out", "x"], "No such option '--epoch'",
                          "Did you mean", "'--epochs'")
    assert "`ann2snn" not in line  # no other command has --epoch (--epochs is no exact match)
    line = one_error_line(capsys, ["sweep", "--int-bits", "2"], "No such option '--int-bits'")
    assert "ann2snn convert" not in line  # a deprecated (hidden) option is not suggested
    assert "`ann2snn" not in one_error_line(capsys, ["convert", "--nosuch-option"], "No such option '--nosuch-option'")


# --- progress: plain lines when stderr is no terminal ------------------------------------------------------


class Clock:
    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


@pytest.mark.parametrize("seconds_per_update, most", [(1.0, 11), (0.001, 1), (100.0, 10)])
def test_line_progress_writes_few_plain_lines(seconds_per_update, most):
    stream = io.StringIO()
    bar = LineProgress(total=1000, desc="SNN T=4", unit="step", file=stream, clock=Clock(seconds_per_update))
    for _ in range(1000):
        bar.update(1)
    bar.set_postfix_str("12.0 images/s")
    bar.close()
    bar.close()  # once only
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert 1 <= len(lines) <= most
    assert lines[-1].startswith("SNN T=4: 1000/1000 step (100%)") and lines[-1].endswith(", 12.0 images/s")
    counts = [int(line.split(": ")[1].split("/")[0]) for line in lines]
    assert counts == sorted(counts) and all(b - a >= 100 for a, b in zip(counts, counts[1:]))


def test_line_progress_without_a_total_and_as_an_iterable():
    stream = io.StringIO()
    items = list(LineProgress(iter(range(50)), desc="test", file=stream, clock=Clock(40.0)))
    assert items == list(range(50))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 50 and lines[-1].startswith("test: 50 it,")  # every 30 s: each 40 s update, then the end
    stream = io.StringIO()
    assert list(LineProgress([1, 2, 3], desc="x", file=stream)) == [1, 2, 3]
    assert stream.getvalue().splitlines() == ["x: 3/3 it (100%), 0 s"]
    stream = io.StringIO()
    LineProgress(total=10, file=stream).close()  # nothing counted: nothing written
    assert stream.getvalue() == ""


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_is_tqdm_on_a_terminal_only():
    from tqdm.auto import tqdm

    terminal, log = Terminal(), io.StringIO()
    bar = progress_bar(total=5, desc="x", file=terminal)
    assert isinstance(bar, tqdm)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert "\r" in terminal.getvalue()  # tqdm redraws its line
    assert isinstance(progress_bar(total=5, file=log), LineProgress)
    silent = progress_bar(range(3), disable=True, file=log)
    assert list(silent) == [0, 1, 2] and log.getvalue() == ""


def test_a_progress_site_writes_plain_lines_into_a_log(capsys):
    """evaluate_ann with progress under pytest's captured (non-terminal) stderr."""
    from ann2snn.ann.evaluate import evaluate_ann
    from helpers import random_batches

    model = tiny_ann()
    capsys.readouterr()
    evaluate_ann(model, random_batches(32, 8), progress=True)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 1 and lines[0].startswith("ANN: 4/4 it (100%), ")


# --- shell completion ---------------------------------------------------------------------------------------


def console_script():
    import shutil

    here = os.path.join(os.path.dirname(sys.executable), "ann2snn")
    return here if os.path.isfile(here) else shutil.which("ann2snn")


def complete(env_value, words=None):
    script = console_script()
    if script is None:
        pytest.skip("the ann2snn console script is not installed")
    env = {**os.environ, "_ANN2SNN_COMPLETE": env_value, "OMP_NUM_THREADS": "1"}
    if words is not None:
        env.update(COMP_WORDS=" ".join(words), COMP_CWORD=str(len(words) - 1))
    return subprocess.run([script], env=env, capture_output=True, text=True, timeout=120)


def test_shell_completion():
    r = complete("bash_source")
    assert r.returncode == 0 and r.stderr == ""
    assert "_ann2snn_completion()" in r.stdout and "complete -o nosort -F _ann2snn_completion ann2snn" in r.stdout
    # options of a command, with --threads 0 on the line: its callback (measuring cores, setting torch's
    # threads, refusing 0) does not run while completing; click offers the options not given yet
    r = complete("bash_complete", ["ann2snn", "sweep", "--threads", "0", "--"])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    items = {line.split(",", 1)[1] for line in r.stdout.splitlines()}
    assert {"--neuron", "--device", "--quiet", "--subset", "--checkpoint"} <= items and "--threads" not in items
    r = complete("bash_complete", ["ann2snn", "convert", "--"])
    items = {line.split(",", 1)[1] for line in r.stdout.splitlines()}
    assert {"--neuron", "--threads", "--quiet"} <= items and not {"--int-bits", "--device"} & items
    r = complete("bash_complete", ["ann2snn", "train-snn", "--neuron", "mb"])
    assert r.stdout.splitlines() == ["plain,mblif"]
    r = complete("bash_complete", ["ann2snn", "train-ann", "--subset", ""])
    assert r.stdout.splitlines() == ["plain,all"]
