"""One ANN training run: data, model, λ initialisation and the shared training loop, into a run folder.

The loop, its checkpoints and exact resume are :func:`ann2snn.ann.train.fit`; this module wires a
QCFS / matched / ReLU ANN into it (see :mod:`ann2snn.ann.train` for the defaults and their sources).
"""

from __future__ import annotations

import torch

from ann2snn.ann.activations import QuantClip
from ann2snn.ann.build import build_ann
from ann2snn.ann.train import (CHECKPOINT_MINUTES, DEFAULTS, check_checkpoint_minutes, check_train_config,
                               count_correct, fit, lambda_init_batches, load_data, open_run)
from ann2snn.plumbing import fuse
from ann2snn.plumbing.checkpoint import load_checkpoint
from ann2snn.plumbing.data import FOLDER
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.folder import resolve_folder_config
from ann2snn.plumbing.device import resolve_device
from ann2snn.plumbing.distributed import device_for, setup


def check_input_size(model: torch.nn.Module, config: dict) -> None:
    """Refuse an architecture that cannot take ``config["image_size"]``-pixel images (VGG-16's classifier
    expects 32), by a forward pass of a copy on the meta device (no memory, no arithmetic).

    Raises:
        UserError: the pass fails at that size but runs at 32 pixels.
    """
    import copy

    size = config["image_size"]
    probe = copy.deepcopy(model).to("meta").eval()

    def fails(side: int) -> str | None:
        try:
            with torch.no_grad():
                probe(torch.zeros(1, 3, side, side, device="meta"))
        except Exception as e:  # a shape error, whatever the layer raises
            return (str(e).strip().splitlines() or [type(e).__name__])[0]
        return None

    error = fails(size)
    if error is not None and fails(32) is None:
        raise UserError(f"`arch` {config['arch']} cannot take {size}×{size} images ({error}); use `image_size` 32, "
                        "or an architecture with global pooling (resnet18, resnet20)")


def train_ann(config: dict, out_dir: str, resume: bool = False, explicit: set | None = None,
              stop_after: int | None = None, progress: bool = True,
              checkpoint_minutes: float = CHECKPOINT_MINUTES) -> str:
    """Train (or resume) one ANN run into ``out_dir``; returns the checkpoint path.

    Args:
        config: run settings; missing keys take :data:`DEFAULTS`.
        out_dir: run folder; holds ``checkpoint.pt`` and ``metrics.csv``.
        resume: continue the run in ``out_dir`` exactly where its last checkpoint left off.
        explicit: config keys the user set explicitly; on resume they must equal the stored ones.
        stop_after: stop after this many epochs in total (used to emulate a killed run).
        checkpoint_minutes: also write a checkpoint every this many minutes within an epoch (0: at epoch
            ends only). SIGINT / SIGTERM write one too and raise
            :class:`~ann2snn.plumbing.interrupt.TrainingInterrupted`; ``resume`` continues from it exactly
            (see :func:`ann2snn.ann.train.fit`).

    Raises:
        UserError: bad settings, a run folder that already holds a checkpoint without ``resume``
            (or none with it), or explicit settings that contradict the run being resumed.
        TrainingInterrupted: SIGINT or SIGTERM stopped the run after writing a checkpoint.
    """
    check_checkpoint_minutes(checkpoint_minutes)
    config, state, ckpt_path = open_run({**DEFAULTS, **config}, out_dir, resume, explicit,
                                        lambda path: load_checkpoint(path, kind="ann"))
    check_train_config(config)
    if state is None and config.get("weights"):  # which file the fine-tuning started from
        from ann2snn.plumbing.checkpoint import file_sha256

        config = {**config, "weights_sha256": file_sha256(config["weights"])}
    if config["dataset"] == FOLDER:  # the classes and input settings go into the checkpoint's config
        config = resolve_folder_config(config)
    d = setup(config["device"])
    device = device_for(d, resolve_device(config["device"]))
    torch.manual_seed(config["seed"])
    model = build_ann(config, weights=config.get("weights") if state is None else None)  # a resume has its state
    if config["dataset"] == FOLDER:
        check_input_size(model, config)
    train, test = load_data(config, device, d)
    # runs from before --fuse existed resume with the plain activation they were trained with
    fused = fuse.resolve(config.get("fuse", "off"), device, config["epochs"] * len(train) >= fuse.MIN_TRAIN_STEPS)
    for m in model.modules():
        if isinstance(m, QuantClip):
            m.fused = fused
    if config["lambda_init"] == "auto" and state is None:
        from ann2snn.ann.lambda_init import init_lambda_from_data
        # under DDP, rank 0's λs reach every rank in fit(); an image folder's λs come from the evaluation transform
        init_lambda_from_data(model.to(device), lambda_init_batches(config, train, device, d))

    def evaluate(model, test):  # fit() runs this under the run's autocast (ann.train.evaluate_as_trained)
        correct, total = count_correct(model, test, device, d)
        return {"test_acc": correct / total}

    return fit(model, config, train, test, evaluate, "ann", state, ckpt_path, progress, stop_after,
               device=device, d=d, checkpoint_minutes=checkpoint_minutes)
