"""Output folders: writable before any work, one writer at a time, stale temporaries removed."""

import os
import signal
import subprocess
import sys

import pytest

from ann2snn.cli.main import main
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.outputs import LOCK_NAME, claim_output

TRAIN = ["train-ann", "--arch", "resnet20", "--width", "0.25", "--epochs", "1", "--batch-size", "5", "--skip-md5",
         "--quiet"]


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def unwritable(tmp_path):
    """A folder path that cannot be written by this user (root ignores permission bits: use /proc)."""
    if os.geteuid() == 0:
        return "/proc/ann2snn-cannot-write/out"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return str(ro / "out")


@pytest.mark.parametrize("command", ["sweep", "train-ann", "convert"])
def test_unwritable_out_is_refused_before_any_work(capsys, tmp_path, command):
    """The checkpoint is no checkpoint (--checkpoint only checks that the path exists) and the data folder
    does not exist: had the command opened either first, the error would name it instead of --out."""
    (tmp_path / "none.pt").write_bytes(b"not a checkpoint")
    out = unwritable(tmp_path)
    args = {"sweep": ["sweep", "--checkpoint", str(tmp_path / "none.pt"), "--T", "4"],
            "train-ann": TRAIN + ["--data-dir", str(tmp_path / "nodata")],
            "convert": ["convert", "--checkpoint", str(tmp_path / "none.pt")]}[command]
    assert main(args + ["--out", out + (".pt" if command == "convert" else "")]) == 2
    err = one_error_line(capsys)
    assert "cannot be written" in err and "none.pt" not in err and "nodata" not in err


def test_stale_temporaries_are_removed_and_others_kept(fake_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    stale = ["checkpoint.pt.ab12cd_9.tmp", "metrics.csv.zzzzzzzz.tmp"]
    keep = ["notes.tmp", "mine.txt", "checkpoint.pt.toolongname1.tmp"]
    for name in stale + keep:
        (run / name).write_text("x")
    assert main(TRAIN + ["--data-dir", fake_cifar, "--out", str(run)]) == 0
    names = set(os.listdir(run))
    assert not names & set(stale) and set(keep) <= names
    assert {"checkpoint.pt", "metrics.csv"} <= names and LOCK_NAME not in names


def test_convert_removes_only_its_own_stale_temporary(tmp_path):
    folder = tmp_path / "snns"
    folder.mkdir()
    (folder / "a.pt.k3j4h5g6.tmp").write_text("x")
    (folder / "b.pt.k3j4h5g6.tmp").write_text("x")
    with claim_output(str(folder / "a.pt"), "file"):
        assert os.path.exists(folder / ".a.pt.lock")
    assert sorted(os.listdir(folder)) == ["b.pt.k3j4h5g6.tmp"]


HOLD = ("import sys, time\nfrom ann2snn.plumbing.outputs import claim_output\n"
        "with claim_output(sys.argv[1], sys.argv[2]):\n    print('held', flush=True)\n    time.sleep(60)\n")


def hold(path, kind="dir"):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), kind], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_second_writer_is_refused_and_a_killed_holder_frees_the_lock(tmp_path, kind):
    path = tmp_path / ("run" if kind == "dir" else "snn.pt")
    proc = hold(path, kind)
    try:
        with pytest.raises(UserError, match=rf"another ann2snn run \(pid {proc.pid}\) is writing to"):
            with claim_output(str(path), kind):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up code runs
        proc.wait()
    with claim_output(str(path), kind):  # the kernel freed the lock with the process
        pass


def test_two_train_runs_into_one_folder_one_is_refused(fake_cifar, tmp_path):
    out = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-m", "ann2snn", *TRAIN, "--epochs", "3", "--seed", str(seed),
                               "--data-dir", fake_cifar, "--out", str(out)], stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "is writing to" in loser or "already holds a run" in loser


def test_folder_created_for_a_failed_run_is_removed(tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    assert main(["sweep", "--checkpoint", str(tmp_path / "none.pt"), "--T", "4", "--out", str(out)]) == 2
    one_error_line(capsys)
    assert not (tmp_path / "new").exists()
