"""The training loop shared by ANN and direct SNN training, with exact resume (runs: ann2snn.pipelines).

Defaults follow QCFS for CIFAR (Bu et al., ICLR 2022): SGD with momentum 0.9, lr 0.1, weight decay
5e-4 on every parameter, cosine schedule over all epochs, batch 128, 300 epochs. Each epoch ends
with a test evaluation, an atomically written checkpoint (weights, λs, optimizer, scheduler, RNG
state, full config) and an atomically rewritten ``metrics.csv``. The last epoch's checkpoint is the
one that is converted: nothing is selected on the test set. Within an epoch, a checkpoint is also
written every :data:`CHECKPOINT_MINUTES` minutes and on SIGINT / SIGTERM, and resumes mid-epoch
exactly (see :func:`fit`).
"""

from __future__ import annotations

import os
import sys
import time

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ann2snn.ann.evaluate import evaluate_ann
from ann2snn.plumbing.checkpoint import FORMAT, atomic_write_text, load_state_strict, save_checkpoint
from ann2snn.plumbing.data import FOLDER, CifarBatches, balanced_subset, dataset_info, holdout_split, load_split
from ann2snn.plumbing.device import autocast, check_amp, place
from ann2snn.plumbing.distributed import Dist, all_reduce_sum, barrier, local_batch
from ann2snn.plumbing import fuse
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.progress import progress_bar

DEFAULTS = {
    "arch": "vgg16", "dataset": "cifar10", "activation": "qcfs", "levels": 4, "int_bits": 1, "frac_bits": 3,
    "lambda_init": "auto", "epochs": 300, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
    "width": 1.0, "seed": 0, "subset": None, "test_subset": None, "augment": "crop-flip",
    "data_dir": "./data", "skip_md5": False, "download": False, "device": "auto", "amp": "none",
    "fuse": "auto", "weights": None, "maxpool": "keep", "holdout": None,
    # num_classes: the network's outputs (default: the dataset's; an image folder's class count). Dataset
    # "imagefolder" only (ann2snn.plumbing.folder): input settings (None: 224-pixel crops, resize 256,
    # ImageNet's mean/std), decoding processes, and whether unreadable files are skipped
    "num_classes": None, "image_size": None, "resize": None, "mean": None, "std": None, "workers": "auto",
    "skip_bad_images": False,
}
#: config keys that may differ when resuming (they do not change what is computed, only where)
RESUME_FREE = {"data_dir", "download", "skip_md5", "device", "workers", "skip_bad_images"}
#: config keys that only dataset "imagefolder" reads
FOLDER_ONLY = ("image_size", "resize", "mean", "std")

CKPT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
#: test images per batch (per process under torchrun) in a training run's per-epoch test evaluation
EVAL_BATCH = 500
#: minutes of training between mid-epoch checkpoints by default (an ImageNet epoch takes hours)
CHECKPOINT_MINUTES = 30.0
#: under DDP, the ranks agree on a stop signal or a due checkpoint once per this many steps
DDP_CHECK_STEPS = 50
#: the clock of the time-based checkpoints, in seconds (a module attribute, so that tests can replace it)
clock = time.monotonic


def load_data(config: dict, device: torch.device | str = "cpu", d: Dist = Dist()):
    """Train and test batches for a config (held-out images removed, train subset / test subset
    applied), kept on ``device``. ``holdout`` N: the N training images of
    :func:`ann2snn.plumbing.data.holdout_split` are never trained on (a ``subset`` is drawn from the rest).

    Under distributed training (``d.world > 1``) each rank gets its share of both splits and
    ``batch_size / world`` samples per training batch (see :mod:`ann2snn.plumbing.distributed`).

    For ``dataset="imagefolder"`` (a config resolved by :func:`ann2snn.plumbing.folder.resolve_folder_config`)
    the batches are :class:`ann2snn.plumbing.folder.FolderBatches` of ``data_dir/train`` and
    ``data_dir/val``.
    """
    if config["dataset"] == FOLDER:
        from ann2snn.plumbing.folder import load_folder_data

        train, test, _ = load_folder_data(config, device, d.rank, d.world, local_batch(d, config["batch_size"]),
                                          EVAL_BATCH)
        return train, test
    info = dataset_info(config["dataset"])
    xtr, ytr = load_split(config["dataset"], config["data_dir"], True, config["download"], config["skip_md5"])
    xte, yte = load_split(config["dataset"], config["data_dir"], False, config["download"], config["skip_md5"])
    if config.get("holdout"):  # images kept apart from training (and from the test set), the same for every run
        kept, _ = holdout_split(ytr, config["holdout"], info.num_classes)
        xtr, ytr = xtr[kept], ytr[kept]
    if config.get("subset"):
        idx = balanced_subset(ytr, config["subset"], config["seed"], info.num_classes)
        xtr, ytr = xtr[idx], ytr[idx]
    if config.get("test_subset"):
        idx = balanced_subset(yte, config["test_subset"], 0, info.num_classes)
        xte, yte = xte[idx], yte[idx]
    train = CifarBatches(xtr, ytr, info, local_batch(d, config["batch_size"]), config["augment"], shuffle=True,
                         seed=config["seed"], device=device, rank=d.rank, world=d.world)
    return train, test_batches(xte, yte, info, device, d)


def lambda_init_batches(config: dict, train, device: torch.device | str = "cpu", d: Dist = Dist()):
    """The batches λ initialisation (``lambda_init="auto"``) reads: ``train`` itself for CIFAR (as
    augmented for training); for an image folder the same training images in the same order under the
    evaluation transform (:func:`ann2snn.plumbing.folder.load_folder_data`)."""
    if config["dataset"] != FOLDER:
        return train
    from ann2snn.plumbing.folder import load_folder_data

    return load_folder_data(config, device, d.rank, d.world, local_batch(d, config["batch_size"]), EVAL_BATCH)[2]


def test_batches(images: torch.Tensor, labels: torch.Tensor, info, device: torch.device | str = "cpu",
                 d: Dist = Dist()) -> CifarBatches:
    """The batches a training run computes its test accuracy on: :data:`EVAL_BATCH` images per
    batch and process, un-augmented, in order; under torchrun each rank takes samples ``rank, rank +
    world, ...`` (:class:`~ann2snn.plumbing.data.CifarBatches`). ``images`` uint8 ``[N, 3, 32, 32]``,
    ``labels`` int64 ``[N]``, ``info`` the dataset's :class:`~ann2snn.plumbing.data.DatasetInfo`."""
    return CifarBatches(images, labels, info, EVAL_BATCH, device=device, rank=d.rank, world=d.world)


def count_correct(model: nn.Module, test, device: torch.device, d: Dist = Dist(),
                  progress: bool = False) -> tuple[int, int]:
    """``(correct, total)`` top-1 counts of ``model`` on ``test``, summed over the torchrun ranks: the
    test evaluation of ``train-ann`` after each epoch (its ``test_acc`` is ``correct / total``).

    The caller sets the arithmetic: :func:`fit` places the model with
    :func:`~ann2snn.plumbing.device.place` (``channels_last`` on CUDA only) and runs this under the
    run's ``--amp`` autocast, on :func:`test_batches`. :func:`evaluate_as_trained` does the same for a
    model loaded from a checkpoint.
    """
    correct, total = evaluate_ann(model, test, progress)
    correct, total = all_reduce_sum(d, torch.tensor([correct, total], dtype=torch.int64, device=device)).tolist()
    return int(correct), int(total)


def evaluate_as_trained(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, info, config: dict,
                        device: torch.device, d: Dist = Dist(), progress: bool = False) -> tuple[int, int]:
    """``(correct, total)`` of a trained model on ``images``/``labels``, computed exactly as its
    training run computed its test accuracy: the model in its stored dtype (float32), in the memory
    layout :func:`fit` gives it on ``device`` (:func:`~ann2snn.plumbing.device.place`: ``channels_last``
    on CUDA only), under the run's ``config["amp"]`` autocast, on :func:`test_batches` (
    :data:`EVAL_BATCH` images per batch and process), through :func:`count_correct`.

    A float32 convolution may round differently in another memory layout or at another batch size, and
    a quantizer's floor can turn that last bit into another level, so a network evaluated any other way
    may score an image or two differently on a large test set. Evaluated this way (same device, thread
    count and torch build), it reproduces the run's recorded ``test_acc`` on its test images.
    ``model`` is moved (and on CUDA re-laid out) in place: pass a copy to keep the original.

    Shapes: ``images`` uint8 ``[N, 3, 32, 32]``, ``labels`` int64 ``[N]``.
    """
    return evaluate_batches_as_trained(model, test_batches(images, labels, info, device, d), config, device, d,
                                       progress)


def evaluate_batches_as_trained(model: nn.Module, test, config: dict, device: torch.device, d: Dist = Dist(),
                                progress: bool = False) -> tuple[int, int]:
    """:func:`evaluate_as_trained` on ready test batches (an image folder's: its val batches of
    :data:`EVAL_BATCH` images per process, :meth:`ann2snn.plumbing.folder.FolderBatches.rebatched`)."""
    model = place(model, device)
    with autocast(device, config.get("amp", "none")):
        return count_correct(model, test, device, d, progress)


def check_train_config(config: dict) -> None:
    if config.get("holdout") is not None:
        if not (isinstance(config["holdout"], int) and config["holdout"] >= 1):
            raise UserError(f"`holdout` must be a number of images >= 1 (leave it out to train on all), "
                            f"got {config['holdout']!r}")
        if config["dataset"] == FOLDER:
            raise UserError("`holdout` keeps CIFAR training images apart; for an image folder, keep them in a "
                            "folder of their own")
    for key in ("subset", "test_subset"):
        if config.get(key) is not None and not (isinstance(config[key], int) and config[key] >= 1):
            raise UserError(f"`{key}` must be a number of images >= 1 (leave it out for all), "
                            f"got {config[key]!r}")
    for key in ("epochs", "batch_size"):
        if not (isinstance(config[key], int) and config[key] >= 1):
            raise UserError(f"`{key}` must be a whole number >= 1, got {config[key]!r}")
    if not 0 < config["lr"] < float("inf"):
        raise UserError(f"`lr` must be a finite number > 0, got {config['lr']}")
    if not 0 <= config["weight_decay"] < float("inf"):
        raise UserError(f"`weight_decay` must be a finite number >= 0, got {config['weight_decay']}")
    if not 0 <= config["momentum"] < 1:
        raise UserError(f"`momentum` must be in [0, 1), got {config['momentum']}")
    check_amp(config.get("amp"))
    fuse.resolve(config.get("fuse", "off"))
    if config.get("dataset") == FOLDER:
        from ann2snn.plumbing.folder import resolve_settings, resolve_workers

        resolve_settings(*(config.get(k) for k in ("image_size", "resize", "mean", "std")))
        resolve_workers(config.get("workers"))
    else:
        given = [k for k in FOLDER_ONLY if config.get(k) is not None]
        if given:
            raise UserError(f"`{given[0]}` applies to `dataset` imagefolder only; {config['dataset']} has "
                            "fixed classes, 32-pixel images and its own mean and std")


def open_run(config: dict, out_dir: str, resume: bool, explicit: set | None, load) -> tuple[dict, dict | None, str]:
    """Check a run folder and, with ``resume``, load its checkpoint.

    Args:
        config: the full requested settings (defaults filled in).
        load: ``load(path) -> checkpoint dict`` for this kind of run.

    Returns:
        ``(config, state, ckpt_path)``: on resume the stored config (only :data:`RESUME_FREE` keys
        taken from ``config``) and the stored checkpoint; else ``config`` and None.

    Raises:
        UserError: ``out_dir`` is a file, holds a run without ``resume`` (or none with it), or an
            explicit setting contradicts the stored one.
    """
    from ann2snn.plumbing.checkpoint import check_output_dir

    check_output_dir(out_dir, "`out_dir`")
    ckpt_path = os.path.join(out_dir, CKPT_NAME)
    if not resume:
        if os.path.exists(ckpt_path):
            raise UserError(f"{out_dir} already holds a run; pass `resume` to continue it, or choose another `out_dir`")
        return config, None, ckpt_path
    if not os.path.isfile(ckpt_path):
        raise UserError(f"`resume`: no {CKPT_NAME} in {out_dir} to resume")
    state = load(ckpt_path)
    stored = state["config"]
    clash = [k for k in (explicit or set()) if k not in RESUME_FREE and k in stored and config[k] != stored[k]]
    if clash:
        k = sorted(clash)[0]
        raise UserError(f"`{k}` {config[k]} differs from the resumed run's {stored[k]}; "
                        f"a resumed run keeps its settings (drop `{k}`, or start a new `out_dir`)")
    return {**stored, **{k: config[k] for k in RESUME_FREE if k in config}}, state, ckpt_path


def check_checkpoint_minutes(minutes) -> float:
    """``minutes`` as a float; UserError unless it is a number >= 0 (0: checkpoints at epoch ends only)."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 <= minutes < float("inf"):
        raise UserError(f"`checkpoint_minutes` must be a number of minutes >= 0 (0: only at the end of each epoch), "
                        f"got {minutes!r}")
    return float(minutes)


def _agree(d: Dist, device: torch.device, signum: int | None, timed: bool) -> tuple[int | None, bool]:
    """Under DDP, the largest signal number and any rank's due time (every rank stops and saves at the
    same step); unchanged in one process."""
    if not d.enabled:
        return signum, timed
    import torch.distributed as dist

    flags = torch.tensor([signum or 0, int(timed)], dtype=torch.int64, device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    s, t = flags.tolist()
    return (s or None), bool(t)


def fit(model: nn.Module, config: dict, train, test, evaluate, kind: str, state: dict | None, ckpt_path: str,
        progress: bool = True, stop_after: int | None = None, after_epoch=None,
        device: torch.device = torch.device("cpu"), d: Dist = Dist(),
        checkpoint_minutes: float = CHECKPOINT_MINUTES) -> str:
    """The training loop shared by ``train-ann`` and ``train-snn``.

    SGD (momentum, weight decay on every parameter) with a cosine schedule over ``config['epochs']``,
    cross-entropy on ``model(x)``. After each epoch: ``evaluate(model, test) -> dict`` of test
    columns (must hold ``test_acc``; under DDP it must sum its counts over ranks), then an atomic
    checkpoint (weights, optimizer, scheduler, RNG state, config, metrics) and ``metrics.csv``, then
    ``after_epoch(model, row)`` if given. ``state`` (from :func:`open_run`) restores all of that
    first, so a resumed run continues exactly.

    Mid-epoch checkpoints: every ``checkpoint_minutes`` minutes of training (0: never; the clock is
    :data:`clock`; one due at an epoch's last step is the epoch-end checkpoint), and when SIGINT or
    SIGTERM arrives (see :mod:`ann2snn.plumbing.interrupt`), the checkpoint is written after the
    optimizer step in progress: the same contents plus ``position``
    (``batch``: batches of the epoch done, ``batches``: batches per epoch, ``sums``: the epoch's
    running [loss·samples, correct, samples], ``seconds``: the epoch's training time so far), with
    ``format`` :data:`~ann2snn.plumbing.checkpoint.MIDEPOCH_FORMAT` and ``epoch`` the epochs complete.
    After a signal, the loop raises :class:`~ann2snn.plumbing.interrupt.TrainingInterrupted` (a signal
    during the epoch-end evaluation lets the epoch's checkpoint be written first). A resumed mid-epoch
    checkpoint continues with ``train.set_position(batch)``: the same samples, order, augmentation and
    global RNG stream, so (in one process, same machine, threads and kernels) the final weights and
    every metrics row but ``seconds`` equal an uninterrupted run's. A checkpoint without ``position``
    (every epoch-end checkpoint, and those of older versions) resumes at the start of the next epoch.

    ``train`` must provide ``set_epoch(e)``, ``set_position(batch)`` and ``len()`` (batches per epoch),
    as :class:`~ann2snn.plumbing.data.CifarBatches` does.

    The model runs on ``device`` (``channels_last`` on CUDA), under bfloat16 autocast when
    ``config['amp'] == 'bf16'``, and inside ``DistributedDataParallel`` when ``d.world > 1``; only
    rank 0 writes files and prints. Losses and accuracies are summed on the device and read once
    per epoch (and every 50 steps for the progress bar), so the step loop does not wait on the host.
    Under DDP the ranks agree on a signal or a due checkpoint every :data:`DDP_CHECK_STEPS` steps and
    at each epoch's last step; a resumed DDP run continues from rank 0's RNG state (not exact).

    Raises:
        UserError: a bad ``checkpoint_minutes``, or a mid-epoch checkpoint whose batches per epoch
            differ from ``len(train)``.
        TrainingInterrupted: after SIGINT / SIGTERM, once the checkpoint is written.
    """
    from ann2snn.plumbing.checkpoint import MIDEPOCH_FORMAT
    from ann2snn.plumbing.interrupt import StopSignals, TrainingInterrupted

    minutes = check_checkpoint_minutes(checkpoint_minutes)
    out_dir = os.path.dirname(ckpt_path)
    model = place(model, device)
    amp = config.get("amp", "none")
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    n_batches = len(train)
    metrics: list[dict] = []
    start = 0
    position = None
    if state is not None:
        load_state_strict(model, state["model_state"], source=ckpt_path)
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        torch.set_rng_state(state["rng_state"])
        if device.type == "cuda" and state.get("cuda_rng_state") is not None:
            torch.cuda.set_rng_state(state["cuda_rng_state"], device)
        metrics = list(state["metrics"])
        start = state["epoch"]
        position = state.get("position")  # absent: at an epoch's end (older checkpoints too)
        if position is not None and position["batches"] != n_batches:
            raise UserError(f"{ckpt_path} stopped at batch {position['batch']} of {position['batches']} per epoch, "
                            f"but this run has {n_batches} batches per epoch (other data?); resume it with the "
                            "data it was trained on, or start a new `out_dir`")
        if start >= config["epochs"]:
            if d.is_main:
                print(f"run in {out_dir} is already complete ({start} of {config['epochs']} epochs)")
            return ckpt_path
    net = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = nn.CrossEntropyLoss()
    from ann2snn.ann.activations import LambdaGuard

    guard = LambdaGuard(model)
    end = config["epochs"] if stop_after is None else min(stop_after, config["epochs"])
    show = progress and d.is_main

    def checkpoint(epoch: int, at: dict | None) -> None:
        """Write the checkpoint (rank 0): after ``epoch`` complete epochs, at ``at`` within the next if given."""
        if not d.is_main:
            return
        ckpt = {
            "kind": kind, "format": FORMAT if at is None else MIDEPOCH_FORMAT, "config": config, "epoch": epoch,
            "model_state": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": scheduler.state_dict(), "rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "metrics": metrics, "complete": epoch == config["epochs"],
        }
        if at is not None:
            ckpt["position"] = at
        save_checkpoint(ckpt, ckpt_path)

    with StopSignals(announce=d.is_main) as signals:
        last_save = clock()
        for epoch in range(start, end):
            net.train()
            train.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss·n, correct, seen
            skip, spent = 0, 0.0
            if position is not None and epoch == start:
                skip, spent = position["batch"], position["seconds"]
                if d.is_main:  # the stored sums are over all ranks: one rank takes them
                    sums += torch.tensor(position["sums"], dtype=torch.float64, device=device)
                train.set_position(skip)
            t0 = time.time() - spent
            bar = progress_bar(train, desc=f"epoch {epoch + 1}/{config['epochs']}", disable=not show,
                               total=n_batches, initial=skip)
            for step, (x, y) in enumerate(bar, start=skip):
                with autocast(device, amp):
                    out = net(x)
                loss = loss_fn(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                guard.after_step()
                sums += torch.stack([loss.detach().double() * len(y), (out.argmax(1) == y).sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
                if step % 50 == 0:
                    for line in guard.report():
                        if d.is_main:
                            tqdm.write(line, file=sys.stderr)
                    if show:
                        s = sums.tolist()
                        bar.set_postfix(loss=f"{s[0] / s[2]:.3f}", acc=f"{s[1] / s[2]:.3f}")
                done = step + 1
                if d.enabled and done % DDP_CHECK_STEPS and done != n_batches:
                    continue  # under DDP the ranks agree only every DDP_CHECK_STEPS steps (a host sync)
                # a due checkpoint waits for the epoch's end if this was its last step
                due = minutes > 0 and done < n_batches and clock() - last_save >= minutes * 60
                signum, timed = _agree(d, device, signals.signum, due)
                if signum is None and not timed:
                    continue
                at = {"batch": done, "batches": n_batches, "sums": all_reduce_sum(d, sums.clone()).tolist(),
                      "seconds": time.time() - t0}  # under DDP the sums of all ranks (rank 0 restores them)
                checkpoint(epoch, at)
                last_save = clock()
                if signum is not None:
                    barrier(d)
                    bar.close()
                    raise TrainingInterrupted(signum, epoch + 1, done, n_batches, ckpt_path, epoch_end=False)
                if show:
                    tqdm.write(f"checkpoint at epoch {epoch + 1}, batch {done}/{n_batches}: {ckpt_path}")
            scheduler.step()
            for line in guard.report():
                if d.is_main:
                    tqdm.write(line, file=sys.stderr)
            if d.enabled:  # each rank updated BN running stats with its own last batch: evaluate rank 0's model
                import torch.distributed as dist

                for buf in model.buffers():
                    dist.broadcast(buf, src=0)
            loss_sum, correct, seen = all_reduce_sum(d, sums).tolist()
            with autocast(device, amp):
                tests = evaluate(model, test)
            row = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen, **tests, "lr": lr,
                   "seconds": time.time() - t0}
            metrics.append(row)
            if d.is_main:
                checkpoint(epoch + 1, None)
                atomic_write_text(os.path.join(out_dir, METRICS_NAME), pd.DataFrame(metrics).to_csv(index=False))
                if after_epoch is not None:
                    after_epoch(model, row)
                # one line per epoch, also with --quiet (which only hides the progress bars)
                tqdm.write(f"epoch {epoch + 1}/{config['epochs']}: loss {row['loss']:.4f} train {row['train_acc']:.4f} "
                           f"test {row['test_acc']:.4f} lr {lr:.4g} ({row['seconds']:.0f} s)")
            last_save = clock()
            barrier(d)
            signum, _ = _agree(d, device, signals.signum, False)
            if signum is not None and epoch + 1 < config["epochs"]:
                raise TrainingInterrupted(signum, epoch + 1, n_batches, n_batches, ckpt_path, epoch_end=True)
    return ckpt_path
