"""Mid-epoch checkpoints: on SIGINT / SIGTERM and every N minutes; resume continues exactly.

The stand-in CIFAR-10 (``fake_cifar``: 50 training images, 10 test images) with batches of 8 gives 7
batches per epoch (6 of 8, then 2). An interrupted run is stopped by a real signal sent to this process
(:class:`SignalAt`) while the training loop draws a batch, so the handler of
:mod:`ann2snn.plumbing.interrupt` is the one that runs. Exactness (``torch.equal`` weights) holds on the
same machine, thread count and kernels as the uninterrupted run; conftest runs the tests at 1 thread.
"""

import os
import re
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch

import ann2snn.ann.train as train_mod
import ann2snn.pipelines.train_ann as train_ann_mod
import ann2snn.pipelines.train_snn as train_snn_mod
from ann2snn.cli.main import main
from ann2snn.direct.dvs_gesture import FrameBatches
from ann2snn.pipelines.train_ann import train_ann
from ann2snn.pipelines.train_snn import train_snn
from ann2snn.plumbing.checkpoint import FORMAT, MIDEPOCH_FORMAT
from ann2snn.plumbing.data import DATASETS, CifarBatches
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.interrupt import StopSignals, TrainingInterrupted

from conftest import write_fake_cifar10

BATCHES = 7  # ceil(50 / 8)
#: the keys of an epoch-end checkpoint, as versions before mid-epoch checkpoints wrote them
EPOCH_END_KEYS = {"kind", "format", "config", "epoch", "model_state", "optimizer_state", "scheduler_state",
                  "rng_state", "cuda_rng_state", "metrics", "complete"}


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    """SIGINT as an interactive Python has it, also where the tests run as a script's background job
    (which ignores SIGINT, and the training loop then leaves it ignored)."""
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def ann_config(data_dir, **extra):
    return {"arch": "resnet20", "width": 0.25, "epochs": 2, "batch_size": 8, "data_dir": data_dir, "skip_md5": True,
            **extra}


class SignalAt:
    """A training batches object that sends ``signum`` to this process as it hands out batch ``batch``
    (0-based) of epoch ``epoch`` (0-based), once; armed by the training loop's first ``set_epoch`` (so
    λ initialisation, which iterates the batches before, sends nothing). ``on_batch(epoch, i)`` is
    called as each batch is handed out."""

    def __init__(self, inner, epoch=None, batch=None, signum=signal.SIGINT, on_batch=None):
        self.inner, self.at, self.signum, self.on_batch = inner, (epoch, batch), signum, on_batch
        self.armed, self.epoch, self.start = False, 0, 0

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)
        self.armed, self.epoch, self.start = True, epoch, 0

    def set_position(self, batch):
        self.inner.set_position(batch)
        self.start = batch

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        for i, item in enumerate(self.inner, start=self.start):
            if self.armed and self.on_batch is not None:
                self.on_batch(self.epoch, i)
            if self.armed and (self.epoch, i) == self.at:
                self.at = None
                os.kill(os.getpid(), self.signum)
            yield item


def wrap_loader(monkeypatch, module, name, **signal_at):
    """Make ``module.name`` (a load_data function) hand out its training batches through :class:`SignalAt`."""
    original = getattr(module, name)

    def load(*args, **kwargs):
        train, test = original(*args, **kwargs)
        return SignalAt(train, **signal_at), test
    monkeypatch.setattr(module, name, load)


def load(path):
    return torch.load(path, weights_only=True)


def assert_same_run(a, b):
    """Equal weights and buffers, optimizer state and metrics rows (all but the wall-clock seconds)."""
    assert a["model_state"].keys() == b["model_state"].keys()
    for k in a["model_state"]:
        assert torch.equal(a["model_state"][k], b["model_state"][k]), k
    for k, sa in a["optimizer_state"]["state"].items():
        assert torch.equal(sa["momentum_buffer"], b["optimizer_state"]["state"][k]["momentum_buffer"]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a["metrics"]) == strip(b["metrics"])
    assert torch.equal(a["rng_state"], b["rng_state"])


@pytest.fixture(scope="module")
def straight(fake_cifar, tmp_path_factory):
    """Uninterrupted 2-epoch ANN runs, by augmentation: the reference checkpoint dict and its metrics.csv."""
    runs = {}

    def get(augment):
        if augment not in runs:
            out = tmp_path_factory.mktemp(f"straight-{augment}")
            path = train_ann(ann_config(fake_cifar, augment=augment), str(out), progress=False, checkpoint_minutes=0)
            runs[augment] = (load(path), pd.read_csv(out / "metrics.csv"))
        return runs[augment]
    return get


# ---------------------------------------------------------------- the batches: set_position


def draw(batches, epoch, start=0, rng_states=None):
    """The batches of ``epoch`` from ``start``; ``rng_states[i]``: torch's global RNG state before batch i."""
    batches.set_epoch(epoch)
    if start:
        batches.set_position(start)
    out = []
    it = iter(batches)
    while True:
        if rng_states is not None:
            rng_states.append(torch.get_rng_state())
        try:
            out.append(next(it))
        except StopIteration:
            return out


@pytest.mark.parametrize("augment", ["none", "crop-flip", "autoaugment"])
@pytest.mark.parametrize("rank,world", [(0, 1), (1, 2)])
def test_set_position_continues_the_epochs_streams(augment, rank, world):
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (43, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(43) % 10
    batches = CifarBatches(images, labels, DATASETS["cifar10"], 8, augment, shuffle=True, seed=3, rank=rank,
                           world=world)
    n = len(batches)
    assert n == (6 if world == 1 else 3)  # 43 images in 8s; 21 a rank (DistributedSampler drops the 43rd)
    torch.manual_seed(11)
    states = []
    full = draw(batches, 2, rng_states=states)
    assert len(full) == n
    for k in (1, n - 1, n):
        torch.set_rng_state(states[k])  # AutoAugment's draws come from the global RNG, restored by the caller
        rest = draw(batches, 2, start=k)
        assert len(rest) == n - k
        for (x, y), (xf, yf) in zip(rest, full[k:]):
            assert torch.equal(x, xf) and torch.equal(y, yf)
    # set_epoch goes back to the first batch; the epoch's batches differ from the next epoch's
    torch.set_rng_state(states[0])
    again = draw(batches, 2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, full))
    assert not torch.equal(draw(batches, 3)[0][0], full[0][0])
    with pytest.raises(ValueError, match=rf"set_position: batch {n + 1} is outside 0..{n}"):
        batches.set_position(n + 1)


def test_set_position_of_event_frames():
    frames = torch.arange(9 * 2 * 2 * 2 * 2, dtype=torch.float32).view(9, 2, 2, 2, 2)  # [N, T, 2, H, W]
    batches = FrameBatches(frames, torch.arange(9), 4, shuffle=True, seed=1)
    full = draw(batches, 1)
    assert [len(y) for _, y in full] == [4, 4, 1]
    rest = draw(batches, 1, start=1)
    assert [y.tolist() for _, y in rest] == [y.tolist() for _, y in full[1:]]
    assert draw(batches, 1, start=3) == []
    with pytest.raises(ValueError):
        batches.set_position(-1)


# ---------------------------------------------------------------- interrupted and resumed = uninterrupted


@pytest.mark.exactness  # equal to the uninterrupted run's at the same kernels and threads
@pytest.mark.parametrize("augment,epoch,batch,signum", [
    ("crop-flip", 0, 2, signal.SIGINT),        # 3 batches into the first epoch
    ("autoaugment", 0, 4, signal.SIGTERM),     # global-RNG augmentation and Cutout's generator draws
    ("crop-flip", 1, BATCHES - 1, signal.SIGINT),  # at the last step of the last epoch: the epoch end is left
])
def test_interrupted_ann_resumes_exactly(straight, fake_cifar, tmp_path, monkeypatch, augment, epoch, batch, signum):
    reference, reference_csv = straight(augment)
    cfg = ann_config(fake_cifar, augment=augment)
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        wrap_loader(m, train_ann_mod, "load_data", epoch=epoch, batch=batch, signum=signum)
        with pytest.raises(TrainingInterrupted) as info:
            train_ann(cfg, str(out), progress=False, checkpoint_minutes=0)
    e = info.value
    assert (e.signum, e.epoch, e.batch, e.batches) == (signum, epoch + 1, batch + 1, BATCHES)
    assert e.exit_status == 128 + signum
    assert e.message == (f"interrupted at epoch {epoch + 1}, batch {batch + 1}/{BATCHES}: checkpoint "
                         f"{out / 'checkpoint.pt'}; continue with the same command and `resume`")
    ckpt = load(out / "checkpoint.pt")
    assert ckpt["format"] == MIDEPOCH_FORMAT and ckpt["epoch"] == epoch and not ckpt["complete"]
    assert set(ckpt) == EPOCH_END_KEYS | {"position"}
    pos = ckpt["position"]
    assert (pos["batch"], pos["batches"]) == (batch + 1, BATCHES)
    assert pos["sums"][2] == 8 * (batch + 1) - (6 if batch + 1 == BATCHES else 0)  # samples seen: 8 a batch, 2 last
    assert len(ckpt["metrics"]) == epoch
    assert os.path.exists(out / "metrics.csv") == (epoch > 0)
    resumed = load(train_ann(cfg, str(out), resume=True, progress=False, checkpoint_minutes=0))
    assert resumed["format"] == FORMAT and "position" not in resumed and resumed["complete"]
    assert_same_run(reference, resumed)
    csv = pd.read_csv(out / "metrics.csv")
    pd.testing.assert_frame_equal(csv.drop(columns="seconds"), reference_csv.drop(columns="seconds"))


def test_resuming_at_the_batch_after_the_checkpoint_matters(straight, fake_cifar, tmp_path, monkeypatch):
    """The exactness above is not vacuous: a mid-epoch checkpoint resumed from the epoch's first batch
    (as an older ann2snn would, reading it as an epoch-end checkpoint) ends with other weights."""
    reference, _ = straight("crop-flip")
    cfg = ann_config(fake_cifar, augment="crop-flip")
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        wrap_loader(m, train_ann_mod, "load_data", epoch=0, batch=2)
        with pytest.raises(TrainingInterrupted):
            train_ann(cfg, str(out), progress=False)
    ckpt = load(out / "checkpoint.pt")
    del ckpt["position"]
    ckpt["format"] = FORMAT
    torch.save(ckpt, out / "checkpoint.pt")
    wrong = load(train_ann(cfg, str(out), resume=True, progress=False))
    assert not all(torch.equal(reference["model_state"][k], wrong["model_state"][k]) for k in wrong["model_state"])


@pytest.mark.exactness  # equal to the uninterrupted run's at the same kernels and threads
def test_epoch_end_checkpoint_keeps_its_format_and_resumes(straight, fake_cifar, tmp_path):
    """Checkpoints without a position (every epoch-end one, and those of older versions) resume at the
    start of the next epoch, as before."""
    reference, _ = straight("crop-flip")
    cfg = ann_config(fake_cifar, augment="crop-flip")
    train_ann(cfg, str(tmp_path), stop_after=1, progress=False)
    ckpt = load(tmp_path / "checkpoint.pt")
    assert set(ckpt) == EPOCH_END_KEYS and ckpt["format"] == FORMAT == 1 and ckpt["epoch"] == 1
    assert_same_run(reference, load(train_ann(cfg, str(tmp_path), resume=True, progress=False)))


@pytest.mark.exactness  # equal to the uninterrupted run's at the same kernels and threads
def test_interrupted_snn_resumes_exactly(fake_cifar, tmp_path, monkeypatch):
    cfg = {"width": 0.25, "T": 2, "epochs": 2, "batch_size": 10, "data_dir": fake_cifar, "skip_md5": True,
           "neuron": "mblif", "int_bits": 1, "frac_bits": 1, "ic": True}
    reference = load(train_snn(cfg, str(tmp_path / "full"), progress=False))
    with monkeypatch.context() as m:
        wrap_loader(m, train_snn_mod, "load_snn_data", epoch=1, batch=1)
        with pytest.raises(TrainingInterrupted) as info:
            train_snn(cfg, str(tmp_path / "part"), progress=False)
    assert (info.value.epoch, info.value.batch, info.value.batches) == (2, 2, 5)
    ckpt = load(tmp_path / "part" / "checkpoint.pt")
    assert ckpt["kind"] == "direct-snn" and ckpt["format"] == MIDEPOCH_FORMAT and ckpt["position"]["batch"] == 2
    resumed = load(train_snn(cfg, str(tmp_path / "part"), resume=True, progress=False))
    assert_same_run(reference, resumed)
    for name in ("metrics.csv", "accuracy.csv"):
        a, b = (pd.read_csv(tmp_path / run / name) for run in ("full", "part"))
        pd.testing.assert_frame_equal(a.drop(columns="seconds", errors="ignore"),
                                      b.drop(columns="seconds", errors="ignore"))


def test_an_interrupted_ablation_says_to_run_it_again(fake_cifar, tmp_path, monkeypatch):
    from ann2snn.pipelines.ablation import run_ablation, run_dir

    common = {"width": 0.25, "T": 2, "epochs": 1, "batch_size": 10, "data_dir": fake_cifar, "skip_md5": True}
    out = tmp_path / "abl"
    with monkeypatch.context() as m:
        wrap_loader(m, train_snn_mod, "load_snn_data", epoch=0, batch=1)
        with pytest.raises(TrainingInterrupted) as info:
            run_ablation(common, ["lif"], [0], str(out), progress=False)
    ckpt = os.path.join(run_dir(str(out), "lif", 0), "checkpoint.pt")
    assert info.value.message == (f"interrupted at epoch 1, batch 2/5: checkpoint {ckpt}; "
                                  "run the same command again to continue")
    run_ablation(common, ["lif"], [0], str(out), progress=False)
    assert load(ckpt)["complete"]


def test_a_signal_during_the_epoch_end_stops_after_its_checkpoint(fake_cifar, tmp_path, monkeypatch):
    """A signal while the epoch ends (here: during the test evaluation of epoch 1 of 3) lets that epoch's
    checkpoint be written, and the run stops there."""
    count_correct = train_ann_mod.count_correct
    calls = []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return count_correct(*args, **kwargs)
    monkeypatch.setattr(train_ann_mod, "count_correct", evaluate)
    with pytest.raises(TrainingInterrupted) as info:
        train_ann(ann_config(fake_cifar, epochs=3), str(tmp_path), progress=False)
    assert info.value.message == (f"interrupted after epoch 1: checkpoint {tmp_path / 'checkpoint.pt'}; "
                                  "continue with the same command and `resume`")
    ckpt = load(tmp_path / "checkpoint.pt")
    assert ckpt["format"] == FORMAT and ckpt["epoch"] == 1 and "position" not in ckpt
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1


def test_an_ignored_signal_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # restored by sigint_not_ignored
    with StopSignals(announce=False) as signals:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signals._handle
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.signum is None


def test_a_second_signal_stops_at_once():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopSignals(announce=False) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt) as info:
            os.kill(os.getpid(), signal.SIGINT)
        assert type(info.value) is KeyboardInterrupt
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # the handlers are back


# ---------------------------------------------------------------- checkpoints every N minutes


@pytest.mark.exactness  # equal to the uninterrupted run's at the same kernels and threads
@pytest.mark.parametrize("minutes,expected", [
    # the clock reads 60 s × (batches handed out so far); a checkpoint is due 150 s after the last one,
    # checked after each step but the epoch's last (the epoch-end checkpoint follows it)
    (2.5, [(0, 4), (1, None), (1, 3), (1, 6), (2, None)]),
    (0, [(1, None), (2, None)]),
])
def test_time_based_checkpoints(straight, fake_cifar, tmp_path, monkeypatch, minutes, expected):
    now = [0.0]

    def tick(epoch, i):
        now[0] = 60.0 * (epoch * BATCHES + i)
    monkeypatch.setattr(train_mod, "clock", lambda: now[0])
    saves = []
    save = train_mod.save_checkpoint

    def spy(obj, path):
        saves.append((obj["epoch"], obj["position"]["batch"] if "position" in obj else None))
        save(obj, path)
    monkeypatch.setattr(train_mod, "save_checkpoint", spy)
    wrap_loader(monkeypatch, train_ann_mod, "load_data", on_batch=tick)
    path = train_ann(ann_config(fake_cifar, augment="crop-flip"), str(tmp_path), progress=False,
                     checkpoint_minutes=minutes)
    assert saves == expected
    assert_same_run(straight("crop-flip")[0], load(path))  # writing checkpoints changes nothing


@pytest.mark.parametrize("minutes", [-1, float("nan"), float("inf"), "30", True])
def test_checkpoint_minutes_is_checked(tmp_path, minutes):
    with pytest.raises(UserError, match=r"`checkpoint_minutes` must be a number of minutes >= 0"):
        train_ann({}, str(tmp_path / "run"), checkpoint_minutes=minutes)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the command line


def cli_args(data_dir, out, *extra):
    return ["train-ann", "--arch", "resnet20", "--width", "0.25", "--epochs", "2", "--batch-size", "8",
            "--data-dir", str(data_dir), "--skip-md5", "--out", str(out), *extra]


def test_cli_says_where_it_stopped_and_keeps_the_folder(fake_cifar, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs" / "x"
    with monkeypatch.context() as m:
        wrap_loader(m, train_ann_mod, "load_data", epoch=0, batch=2, signum=signal.SIGTERM)
        assert main(cli_args(fake_cifar, out, "--quiet")) == 143
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"interrupted at epoch 1, batch 3/{BATCHES}: checkpoint {out / 'checkpoint.pt'}; "
                    "continue with the same command and --resume")
    assert sorted(os.listdir(out)) == ["checkpoint.pt"]  # the lock is gone, the folder and checkpoint stay
    assert main(cli_args(fake_cifar, out, "--quiet", "--resume")) == 0
    assert load(out / "checkpoint.pt")["complete"]


def test_cli_removes_the_folder_when_nothing_was_saved(fake_cifar, tmp_path, monkeypatch, capsys):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_ann_mod, "load_data", interrupted)
    out = tmp_path / "runs" / "x"
    assert main(cli_args(fake_cifar, out)) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "Aborted."
    assert not (tmp_path / "runs").exists()


def test_cli_checkpoint_minutes_flag(fake_cifar, tmp_path, capsys):
    assert main(cli_args(fake_cifar, tmp_path / "a", "--checkpoint-minutes", "-1")) == 2
    assert "--checkpoint-minutes" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    for command in ("train-ann", "train-snn"):
        assert main([command, "--help"]) == 0
        assert "--checkpoint-minutes" in capsys.readouterr().out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_signal_from_outside(tmp_path, signum):
    """A real ``ann2snn train-ann`` process: the signal arrives once the first epoch's progress line is on
    stderr (a pipe: plain lines, the last as the epoch's batches end; the handlers are in place); it exits
    with 128 + signum, naming its checkpoint."""
    data = write_fake_cifar10(tmp_path / "data", per_file=64)  # 320 training images: 40 batches of 8
    out = tmp_path / "run"
    args = cli_args(data, out, "--epochs", "4", "--test-subset", "20", "--lambda-init", "1.0")
    child = subprocess.Popen([sys.executable, "-m", "ann2snn", *args], stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # see sigint_not_ignored
    seen = b""
    try:
        while b"epoch 1/4" not in seen:
            chunk = os.read(child.stderr.fileno(), 4096)
            assert chunk, f"the child ended before training: {seen.decode(errors='replace')}"
            seen += chunk
        child.send_signal(signum)
        rest = child.communicate(timeout=120)[1]
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signum
    last = (seen + rest).decode().replace("\r", "\n").strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted (at epoch (\d), batch (\d+)/40|after epoch (\d)): checkpoint (.+); "
                     r"continue with the same command and --resume", last)
    assert m, last
    assert m.group(5) == str(out / "checkpoint.pt")
    ckpt = load(out / "checkpoint.pt")
    if m.group(2):  # stopped within an epoch (the usual case: the signal arrives within a few steps)
        assert (ckpt["epoch"] + 1, ckpt["position"]["batch"]) == (int(m.group(2)), int(m.group(3)))
    else:
        assert ckpt["epoch"] == int(m.group(4))
    assert not os.path.exists(out / ".ann2snn.lock")


def test_a_resumed_epochs_progress_counts_from_its_position():
    import io

    from ann2snn.plumbing.progress import progress_bar

    log = io.StringIO()  # not a terminal: plain lines
    assert list(progress_bar(range(4), total=7, initial=3, desc="epoch 2/2", file=log)) == [0, 1, 2, 3]
    assert log.getvalue().splitlines()[-1].startswith("epoch 2/2: 7/7 it (100%)")
