"""User mistakes on the command line: exit status 2, one ``Error: ...`` line on stderr, no traceback.

Checkpoints are built without any training (a fresh tiny ResNet-20 saved in train-ann's format). No
test uses the real CIFAR-10; where a command must get past its data check, a 60-image stand-in in
torchvision's file format is used (``fake_cifar``, loaded with --skip-md5).
"""

import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from ann2snn.ann.build import build_ann
from ann2snn.plumbing.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from ann2snn.cli.main import main, parse_lambda_init
from ann2snn.conversion.snn import convert_checkpoint
from ann2snn.pipelines.sweep import parse_T
from ann2snn.ann.train import DEFAULTS

TINY = {"arch": "resnet20", "dataset": "cifar10", "width": 0.25, "lambda_init": 1.0}
#: flags that keep a train-ann call cheap (tiny model, no data-driven λ, no progress bars)
TINY_FLAGS = ["--arch", "resnet20", "--width", "0.25", "--lambda-init", "1", "--quiet"]
N_SITES = 19  # activation sites of ResNet-20: the stem, two per block (9 blocks)




def make_ann_checkpoint(path, **config):
    """Save a fresh (untrained) tiny ANN exactly as train-ann saves its checkpoints; returns the dict."""
    cfg = {**DEFAULTS, **TINY, "epochs": 2, **config}
    torch.manual_seed(0)
    model = build_ann(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                                weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["epochs"])
    ckpt = {
        "kind": "ann", "format": FORMAT, "config": cfg, "epoch": 1, "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(), "scheduler_state": scheduler.state_dict(),
        "rng_state": torch.get_rng_state(),
        "metrics": [{"epoch": 1, "loss": 2.3, "train_acc": 0.1, "test_acc": 0.1, "lr": cfg["lr"], "seconds": 1.0}],
        "complete": False,
    }
    save_checkpoint(ckpt, str(path))
    return ckpt


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A tiny ANN checkpoint, its SNN conversion, and broken files (tests must not modify them)."""
    d = tmp_path_factory.mktemp("ckpts")
    ann, snn = d / "ann.pt", d / "snn.pt"
    make_ann_checkpoint(ann)
    convert_checkpoint(str(ann), {"neuron": "mbif", "int_bits": None, "frac_bits": None, "v_init": "half-lsb"},
                       str(snn))
    rand = d / "random.pt"
    rand.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1),
                                   dtype=torch.uint8).numpy().tobytes())
    data = ann.read_bytes()
    trunc = d / "truncated.pt"
    trunc.write_bytes(data[:len(data) // 2])
    raw = d / "state_dict.pt"  # a plain model.state_dict(), the usual thing users try
    torch.save(build_ann({**DEFAULTS, **TINY}).state_dict(), raw)
    return SimpleNamespace(ann=str(ann), snn=str(snn), random=str(rand), truncated=str(trunc), raw=str(raw))


def run_cli(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(capsys, argv, *fragments):
    """Run ``argv``; check status 2 and exactly one ``Error:`` line naming every fragment; return it."""
    code, out, err = run_cli(capsys, argv)
    lines = err.splitlines()
    assert code == 2, f"exit status {code}, stderr:\n{err}"
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err}"
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in out + err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# --- click-level mistakes ------------------------------------------------------------------------


def test_unknown_arch(capsys, tmp_path):
    out = tmp_path / "run"
    line = assert_user_error(capsys, ["train-ann", "--arch", "vgg19", "--out", out], "--arch", "'vgg19'")
    assert "resnet20" in line  # lists the valid choices
    assert not out.exists()


@pytest.mark.parametrize("argv, fragments", [
    (["train-ann", "--epoch", "3", "--out", "x"], ["No such option", "--epoch", "--epochs"]),
    (["train-ann", "--lr", "abc", "--out", "x"], ["--lr", "'abc'", "not a valid float"]),
    (["train-ann", "--arch", "vgg16"], ["Missing option", "--out"]),
    # (click checks options in command-line order: the bad value comes before the missing a.pt)
    (["convert", "--v-init", "half", "--checkpoint", "a.pt", "--out", "b.pt"], ["--v-init", "'half'"]),
    (["convert", "--neuron", "lif", "--checkpoint", "a.pt", "--out", "b.pt"], ["--neuron", "'lif'", "NAME[:M+N]"]),
    (["trian-ann"], ["No such command", "trian-ann"]),
], ids=["typo-option", "non-float", "missing-out", "bad-v-init", "bad-neuron", "typo-command"])
def test_click_usage_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    assert_user_error(capsys, argv, *fragments)
    assert os.listdir(tmp_path) == []  # nothing written


def test_bare_command_is_help_not_a_multiline_error(capsys):
    code, out, err = run_cli(capsys, [])
    assert "Commands:" in out + err  # the help is shown
    assert not err.startswith("Error: Usage:")
    if code == 2:
        assert len(err.splitlines()) == 1
    else:
        assert code == 0 and "train-ann" in out


# --- --T ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["4,,16", "0", "-1", "abc", "4,16,", "2.5", "²"])
def test_bad_T_list(capsys, tmp_path, ckpts, text):
    out = tmp_path / "sweep"
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--T", text, "--out", out],
                      "--T", repr(text))
    assert not out.exists()


def test_T_parser_accepts_good_lists():
    assert parse_T("4,16,64,128") == [4, 16, 64, 128]
    assert parse_T(" 16, 4,4 ,+1") == [1, 4, 16]  # sorted, unique, spaces allowed
    assert parse_T("1") == [1]


# --- bit widths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, fragments", [
    (["--neuron", "mbif", "--int-bits", "0", "--frac-bits", "0"], ["m=0, n=0", "1 <= m+n <= 16"]),
    (["--neuron", "mbif", "--int-bits", "9", "--frac-bits", "9"], ["m=9, n=9", "1 <= m+n <= 16"]),
    (["--neuron", "mbif", "--int-bits", "-1", "--frac-bits", "3"], ["m=-1, n=3", "m >= 0"]),
    (["--neuron", "mbif", "--int-bits", "2", "--frac-bits", "-2"], ["m=2, n=-2", "n >= 0"]),
    (["--neuron", "if", "--frac-bits", "3"], ["--neuron if is MBIF(1,0)", "--neuron mbif"]),
    (["--neuron", "if", "--int-bits", "2"], ["--neuron if is MBIF(1,0)"]),
], ids=["0+0", "9+9", "negative-m", "negative-n", "if-with-frac-bits", "if-with-int-bits"])
def test_convert_bits_out_of_range(capsys, tmp_path, ckpts, flags, fragments):
    out = tmp_path / "snn.pt"
    assert_user_error(capsys, ["convert", "--checkpoint", ckpts.ann, "--out", out, *flags], *fragments)
    assert not out.exists()
    assert [f for f in os.listdir(tmp_path)] == []  # no temporary file either


def test_convert_accepts_the_widest_bits(capsys, tmp_path, ckpts):
    """Control for the cases above: 8+8 (m+n = 16) is the largest allowed format, and it converts."""
    out = tmp_path / "snn16.pt"
    code, stdout, err = run_cli(capsys, ["convert", "--checkpoint", ckpts.ann, "--neuron", "mbif:8+8", "--out", out])
    assert (code, err) == (0, "")
    assert f"({N_SITES} neurons, MBIF 8+8, v_init half-lsb)" in stdout
    ckpt = load_checkpoint(str(out), kind="snn")
    assert ckpt["conversion"] == {"neuron": "mbif", "int_bits": 8, "frac_bits": 8, "v_init": "half-lsb", "cap": None,
                                  "maxpool": "refuse"}
    assert sum(k.endswith(".theta") for k in ckpt["model_state"]) == N_SITES
    assert ckpt["source"]["epoch"] == 1


@pytest.mark.parametrize("bits, fragment", [(("0", "0"), "m=0, n=0"), (("9", "8"), "m=9, n=8"),
                                            (("-1", "2"), "m=-1, n=2")])
def test_train_matched_bits_out_of_range(capsys, tmp_path, bits, fragment):
    out = tmp_path / "run"
    assert_user_error(capsys, ["train-ann", *TINY_FLAGS, "--activation", "matched", "--int-bits", bits[0],
                               "--frac-bits", bits[1], "--out", out], fragment)
    assert not out.exists()


# --- --lambda-init -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", "-inf", "1e999", ""])
def test_bad_lambda_init(capsys, tmp_path, value):
    out = tmp_path / "run"
    assert_user_error(capsys, ["train-ann", "--arch", "resnet20", "--lambda-init", value, "--out", out],
                      "--lambda-init", repr(value), "'auto'")
    assert not out.exists()


def test_lambda_init_parser_accepts_good_values():
    assert parse_lambda_init("auto") == "auto"
    assert parse_lambda_init("8") == 8.0
    assert parse_lambda_init("0.25") == 0.25
    assert parse_lambda_init("1e-3") == 1e-3


# --- other train-ann settings ----------------------------------------------------------------------


@pytest.mark.parametrize("flags, fragment", [
    (["--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range 1<=x<=100000"),
    (["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range 1<=x<=1000000"),
    (["--lr", "0"], "Invalid value for '--lr': 0 is not in the range 0 < x <= 1e+06"),
    (["--lr", "nan"], "Invalid value for '--lr': nan is not a finite number"),
    (["--lr", "inf"], "Invalid value for '--lr': inf is not a finite number"),
    (["--lr", "1e30"], "Invalid value for '--lr': 1e30 is not in the range 0 < x <= 1e+06"),
    (["--levels", "99999999999999999999"], "Invalid value for '--levels' / '-L': 99999999999999999999 is not in the range 1<=x<=65536"),
    (["--epochs", "99999999999999999999"], "Invalid value for '--epochs'"),
    (["--width", "1e9"], "Invalid value for '--width'"),
    (["--seed", "-1"], "Invalid value for '--seed'"),
    (["--subset", "99999999999999999999"], "Invalid value for '--subset'"),
    (["--weight-decay", "-0.1"], "Invalid value for '--weight-decay': -0.1 is not in the range 0 <= x <= 1000"),
    (["--weight-decay", "nan"], "Invalid value for '--weight-decay': nan is not a finite number"),
    (["--momentum", "1"], "Invalid value for '--momentum': 1 is not in the range 0 <= x < 1"),
    (["--device", "tpu"], "Invalid value for '--device'"),
    (["--amp", "fp8"], "Invalid value for '--amp'"),
    (["--width", "0"], "Invalid value for '--width': 0 is not in the range 0 < x <= 64"),
    (["--levels", "0"], "Invalid value for '--levels' / '-L': 0 is not in the range 1<=x<=65536"),
])
def test_bad_training_settings(capsys, tmp_path, flags, fragment):
    out = tmp_path / "run"
    assert_user_error(capsys, ["train-ann", *TINY_FLAGS, *flags, "--data-dir", tmp_path, "--out", out], fragment)
    assert not os.path.exists(out / "checkpoint.pt")


# --- data ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_train_missing_data_dir(capsys, tmp_path, dataset, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    line = assert_user_error(capsys, ["train-ann", *TINY_FLAGS, "--dataset", dataset, "--data-dir", empty,
                                      "--out", out], f"{dataset} not found in {empty}", "--download",
                             f"torchvision's {folder}/ in {empty}")
    assert "$ANN2SNN_DATA" in line
    assert os.listdir(empty) == []  # nothing downloaded or created
    assert not os.path.exists(out / "checkpoint.pt")


def test_sweep_missing_data_dir(capsys, tmp_path, ckpts):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "sweep"
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--T", "4", "--data-dir", empty, "--out", out,
                               "--quiet"], "cifar10 not found", "--download")
    assert not out.exists()


def test_train_incomplete_data_dir_suggests_skip_md5(capsys, tmp_path):
    data = tmp_path / "data"
    (data / "cifar-10-batches-py").mkdir(parents=True)
    assert_user_error(capsys, ["train-ann", *TINY_FLAGS, "--data-dir", data, "--out", tmp_path / "run"],
                      "incomplete or fails torchvision's MD5 check", "--skip-md5")


def test_train_corrupt_data_file_with_skip_md5(capsys, tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"\xff" * 100)  # present, but not pickles
    code, out, err = run_cli(capsys, ["train-ann", *TINY_FLAGS, "--skip-md5", "--data-dir", tmp_path / "data",
                                      "--out", tmp_path / "run"])
    lines = err.splitlines()
    assert lines[0].startswith("warning: loading cifar10")  # the logged --skip-md5 line
    assert code == 2 and len(lines) == 2 and lines[1].startswith("Error: ")




def split_warnings(err):
    """stderr lines → (the --skip-md5 warning lines, the other lines)."""
    lines = err.splitlines()
    return [x for x in lines if x.startswith("warning: ")], [x for x in lines if not x.startswith("warning: ")]


def test_subset_larger_than_the_data(capsys, tmp_path, fake_cifar):
    code, out, err = run_cli(capsys, ["train-ann", *TINY_FLAGS, "--data-dir", fake_cifar, "--skip-md5",
                                      "--subset", "100", "--out", tmp_path / "run"])
    warnings, rest = split_warnings(err)
    assert code == 2 and len(warnings) == 2  # train and test split, each logged
    assert "WITHOUT torchvision's MD5 check (--skip-md5)" in warnings[0]
    assert rest == ["Error: --subset 100 asks for 10 samples of class 0, which has only 5"]


def test_train_out_is_a_file(capsys, tmp_path, fake_cifar):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    code, stdout, err = run_cli(capsys, ["train-ann", *TINY_FLAGS, "--data-dir", fake_cifar, "--skip-md5",
                                         "--epochs", "1", "--batch-size", "25", "--out", out])
    _, rest = split_warnings(err)
    assert code == 2 and len(rest) == 1 and rest[0].startswith("Error: ") and str(out) in rest[0]
    assert out.read_text() == "mine"


def test_sweep_control_on_fake_data(capsys, tmp_path, ckpts, fake_cifar):
    """Control for the next test: the same sweep into a fresh folder succeeds and writes its tables."""
    out = tmp_path / "sweep"
    code, stdout, err = run_cli(capsys, ["sweep", "--checkpoint", ckpts.snn, "--T", "1,2", "--data-dir", fake_cifar,
                                         "--skip-md5", "--quiet", "--out", out])
    warnings, rest = split_warnings(err)
    assert code == 0 and len(warnings) == 1 and rest == []
    assert sorted(os.listdir(out)) == ["sweep.csv", "sweep.json", "sweep.md", "sweep_ops.csv"]
    header = (out / "sweep.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["T=1", "T=2", "ANN"]


def test_sweep_out_is_a_file(capsys, tmp_path, ckpts, fake_cifar):
    out = tmp_path / "table.csv"
    out.write_text("mine")
    code, stdout, err = run_cli(capsys, ["sweep", "--checkpoint", ckpts.snn, "--T", "2", "--data-dir", fake_cifar,
                                         "--skip-md5", "--quiet", "--out", out])
    _, rest = split_warnings(err)
    assert code == 2 and len(rest) == 1 and rest[0].startswith("Error: ") and str(out) in rest[0]
    assert out.read_text() == "mine"


# --- checkpoints ---------------------------------------------------------------------------------------


def test_convert_refuses_snn_checkpoint(capsys, tmp_path, ckpts):
    out = tmp_path / "again.pt"
    assert_user_error(capsys, ["convert", "--checkpoint", ckpts.snn, "--out", out],
                      ckpts.snn, "is an SNN checkpoint", "an ANN checkpoint (from `ann2snn train-ann`)")
    assert not out.exists()


def test_sweep_refuses_ann_checkpoint_without_neuron(capsys, tmp_path, ckpts):
    out = tmp_path / "sweep"
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.ann, "--T", "4", "--out", out],
                      ckpts.ann, "is an ANN checkpoint", "--neuron")
    assert not out.exists()


def test_sweep_refuses_neuron_flags_for_snn_checkpoints(capsys, tmp_path, ckpts):
    out = tmp_path / "sweep"
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--neuron", "if", "--out", out],
                      "every --checkpoint is an SNN checkpoint")
    assert not out.exists()


@pytest.mark.parametrize("spec", ["mbif:1+", "if:1+3", "if:2+0", "lif", "mbif:a+b", "mbif:1-3", "mbif:²+1", "mbif:"])
def test_sweep_bad_neuron_spec(capsys, tmp_path, ckpts, spec):
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.ann, "--neuron", spec, "--out", tmp_path / "s"],
                      "bad --neuron", repr(spec))
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value", ["0", "-3", "abc", "²", "1.5"])
def test_sweep_bad_time_chunk(capsys, tmp_path, ckpts, value):
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--time-chunk", value, "--no-ops",
                               "--out", tmp_path / "s"], "--time-chunk must be 'auto' or a whole number >= 1")
    assert not (tmp_path / "s").exists()


def test_sweep_on_a_missing_gpu(capsys, tmp_path, ckpts):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--device", "cuda", "--out", tmp_path / "s"],
                      "--device cuda: this machine has no CUDA GPU")


def test_sweep_bad_batch_size(capsys, tmp_path, ckpts):
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--batch-size", "0", "--out", tmp_path / "s"],
                      "Invalid value for '--batch-size': must be a whole number from 1 to 1000000 or 'auto', got 0")


def test_plain_state_dict_is_not_a_checkpoint(capsys, tmp_path, ckpts):
    assert_user_error(capsys, ["convert", "--checkpoint", ckpts.raw, "--out", tmp_path / "snn.pt"],
                      ckpts.raw, "is not an ann2snn checkpoint")


@pytest.mark.parametrize("which", ["random", "truncated"])
@pytest.mark.parametrize("command", ["convert", "sweep"])
def test_corrupt_checkpoint(capsys, tmp_path, ckpts, which, command):
    path = getattr(ckpts, which)
    out = tmp_path / "out"
    assert_user_error(capsys, [command, "--checkpoint", path, "--out", out],
                      path, "is not a readable checkpoint (corrupt or truncated?)")
    assert not out.exists()


@pytest.mark.parametrize("command", ["convert", "sweep"])
def test_nonexistent_checkpoint(capsys, tmp_path, command):
    path = str(tmp_path / "no" / "such.pt")
    assert_user_error(capsys, [command, "--checkpoint", path, "--out", tmp_path / "out"],
                      f"Invalid value for '--checkpoint': Path '{path}' does not exist")
    assert os.listdir(tmp_path) == []


def test_sweep_second_bad_checkpoint_is_caught_before_any_simulation(capsys, tmp_path, ckpts):
    """All --checkpoint files are validated before the (long) simulations start."""
    missing = str(tmp_path / "missing.pt")
    assert_user_error(capsys, ["sweep", "--checkpoint", ckpts.snn, "--checkpoint", missing, "--data-dir",
                               tmp_path / "nodata", "--out", tmp_path / "s"], missing, "does not exist")


def test_convert_out_without_extension(capsys, tmp_path, ckpts):
    out = tmp_path / "mysnn"
    code, stdout, err = run_cli(capsys, ["convert", "--checkpoint", ckpts.ann, "--out", out])
    assert (code, err) == (0, "")
    assert load_checkpoint(str(out), kind="snn")["conversion"]["int_bits"] == 1


def test_convert_out_is_a_directory(capsys, tmp_path, ckpts):
    out = tmp_path / "folder.d"
    out.mkdir()
    assert_user_error(capsys, ["convert", "--checkpoint", ckpts.ann, "--out", out], str(out))


def test_convert_out_onto_its_own_ann(capsys, tmp_path, ckpts):
    ann = tmp_path / "ann.pt"
    shutil.copy(ckpts.ann, ann)
    before = ann.read_bytes()
    assert_user_error(capsys, ["convert", "--checkpoint", ann, "--out", ann], str(ann))
    assert ann.read_bytes() == before


# --- run folders and --resume --------------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path, ckpts):
    """A run folder holding a (fake, untrained) train-ann checkpoint at epoch 1 of 2."""
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(ckpts.ann, out / "checkpoint.pt")
    return out


def test_out_already_holds_a_run(capsys, tmp_path, run_dir):
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert_user_error(capsys, ["train-ann", *TINY_FLAGS, "--data-dir", tmp_path, "--out", run_dir],
                      f"{run_dir} already holds a run", "--resume")
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert sorted(os.listdir(run_dir)) == ["checkpoint.pt"]


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "0.05", "--lr 0.05 differs from the resumed run's 0.1"),
    ("--arch", "vgg16", "--arch vgg16 differs from the resumed run's resnet20"),
    ("--width", "0.5", "--width 0.5 differs from the resumed run's 0.25"),
    ("--lambda-init", "2", "--lambda-init 2.0 differs from the resumed run's 1.0"),
    ("--seed", "3", "--seed 3 differs from the resumed run's 0"),
])
def test_resume_with_a_different_flag(capsys, run_dir, flag, value, message):
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert_user_error(capsys, ["train-ann", "--resume", flag, value, "--out", run_dir],
                      message, "a resumed run keeps its settings")
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_resume_with_equal_flags_passes_the_settings_check(capsys, tmp_path, run_dir):
    """Control: repeating the stored --lr, and changing a free setting (--data-dir), are allowed; the run
    then gets as far as loading its data (missing here)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    line = assert_user_error(capsys, ["train-ann", "--resume", "--lr", "0.1", "--arch", "resnet20", "--data-dir", empty,
                                      "--out", run_dir], "cifar10 not found", "--download")
    assert "differs" not in line


def test_resume_without_a_run(capsys, tmp_path):
    out = tmp_path / "fresh"
    assert_user_error(capsys, ["train-ann", "--resume", "--out", out], "--resume: no checkpoint.pt in", str(out))


def test_resume_from_an_snn_checkpoint(capsys, tmp_path, ckpts):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(ckpts.snn, out / "checkpoint.pt")
    assert_user_error(capsys, ["train-ann", "--resume", "--out", out], "is an SNN checkpoint")


def test_resume_from_a_corrupt_checkpoint(capsys, tmp_path, ckpts):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(ckpts.truncated, out / "checkpoint.pt")
    assert_user_error(capsys, ["train-ann", "--resume", "--out", out], "is not a readable checkpoint")


# --- through a real process: nothing but the one line reaches the terminal -----------------------------


def console_script():
    here = os.path.join(os.path.dirname(sys.executable), "ann2snn")
    return here if os.path.isfile(here) else shutil.which("ann2snn")


def run_process(argv, cwd):
    env = {k: v for k, v in os.environ.items() if k != "ANN2SNN_DATA"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_process_corrupt_checkpoint(tmp_path, ckpts):
    """``python -m ann2snn.cli.main``: torch.load on random bytes must not leak warnings or a traceback."""
    r = run_process([sys.executable, "-m", "ann2snn.cli.main", "convert", "--checkpoint", ckpts.random,
                     "--out", "snn.pt"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {ckpts.random} is not a readable checkpoint"), r.stderr
    assert os.listdir(tmp_path) == []


def test_process_missing_data_dir(tmp_path):
    """The ``ann2snn`` console script, through model building up to the data check."""
    script = console_script()
    if script is None:
        pytest.skip("the ann2snn console script is not installed")
    r = run_process([script, "train-ann", *TINY_FLAGS, "--data-dir", "nodata", "--out", "run"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: cifar10 not found") and "--download" in lines[0]
    assert "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoint.pt")


@pytest.mark.parametrize("argv", [
    ["train-ann", "--subset", "0", "--out", "RUN"],
    ["train-ann", "--test-subset", "0", "--out", "RUN"],
    ["sweep", "--checkpoint", "CKPT", "--subset", "0", "--out", "SW"],
])
def test_subset_zero_is_refused_not_taken_as_all(capsys, tmp_path, ckpts, argv):
    argv = [str(tmp_path / "run") if a == "RUN" else str(tmp_path / "sw") if a == "SW" else ckpts.snn if a == "CKPT"
            else a for a in argv]
    assert_user_error(capsys, argv, "must be a number", ">= 1")
    assert not (tmp_path / "run").exists()
