"""Directly train a spiking ResNet (LIF / MBLIF neurons, optional interlaminar connection) on CIFAR.

The conventions are those of :func:`ann2snn.pipelines.train_ann.train_ann`: the same data pipeline
(:func:`ann2snn.ann.train.load_data`), a run folder with an atomically written ``checkpoint.pt`` (weights,
optimizer, scheduler, RNG state, full config, metrics) and ``metrics.csv`` after every epoch, exact
resume (``resume=True``) with explicit settings checked against the stored ones, and progress bars.

Defaults are the seed's settings (docs/design.md §3.9): τ = 4, V_th = 0.6, T = 4, SGD lr 0.1, batch 64, weight
decay 1e-4, 100 epochs, MBLIF 2+1 with the interlaminar connection (the seed's full method, Table 3's
last row). Not stated by the seed, and taken from :mod:`ann2snn.ann.train`: momentum 0.9, a cosine
schedule over all epochs, crop-flip augmentation, weight decay on every parameter. The width
default is explained in :mod:`ann2snn.direct.spiking_resnet`.

The loss is the cross-entropy of the mean output over T steps. Every epoch ends with a test
evaluation at every t ≤ T (the prediction at t is the argmax of the mean output over steps 1..t;
the network is causal, so one run of T steps gives them all): ``metrics.csv`` gets ``test_acc_t1`` …
``test_acc_tT`` (``test_acc`` is the one at T), and ``accuracy.csv`` / ``accuracy.md`` /
``accuracy.json`` hold the latest epoch's curve as a table with one ``T=t`` column per step, in the
format of the conversion sweep tables. The last epoch's checkpoint is the result: nothing is
selected on the test set.

Checkpoints have ``kind = "direct-snn"``; ``convert`` and ``sweep`` reject them with a clear message
(they read "ann" / "snn" checkpoints only).
"""

from __future__ import annotations

import json
import os

import pandas as pd
import torch
from torch import nn

from ann2snn.plumbing.checkpoint import atomic_write_text, check_format, load_state_strict
from ann2snn.plumbing.data import AUGMENTS, dataset_info
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.progress import progress_bar
from ann2snn.direct.mblif import MBLIF, RESET_MODES, describe_mblif
from ann2snn.plumbing import fuse
from ann2snn.ann.quantizer import check_bits
from ann2snn.ann.spec import DIRECT_NEURONS
from ann2snn.plumbing.device import autocast, check_amp, resolve_device
from ann2snn.plumbing.distributed import Dist, all_reduce_sum, device_for, setup
from ann2snn.ann.train import (CHECKPOINT_MINUTES, CKPT_NAME, check_checkpoint_minutes, check_train_config, fit,
                               load_data, open_run)

KIND = "direct-snn"
NEURONS = DIRECT_NEURONS  # ("lif", "mblif"), written NAME[:M+N] on the command line (ann2snn.ann.spec)
#: MBLIF's bits when --neuron mblif is given without them: the seed's best (Table 3)
DEFAULT_MBLIF_BITS = (2, 1)
#: the surrogate's backward pass costs O(2^(m+n)); direct training is limited to m+n <= this
MAX_TRAIN_BITS = 8
#: test images per forward pass in evaluation (memory only: results do not depend on it)
EVAL_CHUNK = 100
TABLE_NAME = "accuracy"

DEFAULTS = {
    "arch": "resnet20", "dataset": "cifar10", "neuron": "mblif", "int_bits": None, "frac_bits": None,
    "reset": "hard", "ic": True, "T": 4, "tau": 4.0, "v_th": 0.6, "surrogate_alpha": 2.0, "detach_reset": True,
    "epochs": 100, "batch_size": 64, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "width": None,
    "seed": 0, "subset": None, "test_subset": None, "augment": None, "dvs_size": 128,
    "data_dir": "./data", "skip_md5": False, "download": False, "device": "auto", "amp": "none",
    "fuse": "auto",
}
#: event data sets (frames as input, 2 polarity channels) beside CIFAR
EVENT_DATASETS = ("dvs-gesture",)


def resolve_config(config: dict) -> dict:
    """Fill :data:`DEFAULTS`, resolve the neuron's bits and the width, and check every setting.

    ``neuron="lif"`` is MBLIF(1, 0): bits other than 1+0 are refused. ``neuron="mblif"`` without bits
    takes :data:`DEFAULT_MBLIF_BITS`. ``width=None`` takes the arch's default width.

    Raises:
        UserError: naming the setting at fault.
    """
    from ann2snn.direct.spiking_resnet import DEFAULT_WIDTH, SPIKING_ARCHS

    c = {**DEFAULTS, **config}
    if c["arch"] not in SPIKING_ARCHS:
        raise UserError(f"unknown `arch` {c['arch']!r} for train-snn: use one of {', '.join(SPIKING_ARCHS)}")
    if c["dataset"] in EVENT_DATASETS:
        from ann2snn.direct.dvs_gesture import check_frame_settings

        check_frame_settings(c["T"] if isinstance(c["T"], int) else 1, c["dvs_size"])
        if c["augment"] not in (None, "none"):
            raise UserError(f"`augment` {c['augment']} is for CIFAR; dvs-gesture takes none (a flip would turn "
                            "left-hand gestures into right-hand ones)")
        c["augment"] = "none"
    else:
        dataset_info(c["dataset"])
        c["augment"] = "crop-flip" if c["augment"] is None else c["augment"]
    if c["neuron"] not in NEURONS:
        raise UserError(f"unknown `neuron` {c['neuron']!r}: use lif or mblif")
    if c["neuron"] == "lif":
        bad = [f"`{k}` {c[k]}" for k, ok in (("int_bits", 1), ("frac_bits", 0))
               if c[k] not in (None, ok)]
        if bad:
            raise UserError(f"`neuron` lif is MBLIF 1+0; it cannot take {' and '.join(bad)} "
                            "(use `neuron` mblif for multi-bit spikes)")
        c["int_bits"], c["frac_bits"] = 1, 0
    else:
        c["int_bits"] = DEFAULT_MBLIF_BITS[0] if c["int_bits"] is None else c["int_bits"]
        c["frac_bits"] = DEFAULT_MBLIF_BITS[1] if c["frac_bits"] is None else c["frac_bits"]
    check_bits(c["int_bits"], c["frac_bits"])
    if c["int_bits"] + c["frac_bits"] > MAX_TRAIN_BITS:
        raise UserError(f"`neuron` {c['neuron']}:{c['int_bits']}+{c['frac_bits']} has too many bits for direct "
                        f"training (M+N at most {MAX_TRAIN_BITS}: the surrogate gradient costs one term per spike level)")
    if not (isinstance(c["T"], int) and not isinstance(c["T"], bool) and c["T"] >= 1):
        raise UserError(f"`T` must be a whole number >= 1, got {c['T']!r}")
    if not (isinstance(c["tau"], (int, float)) and c["tau"] >= 1):
        raise UserError(f"`tau` must be >= 1 (the leak keeps 1 - 1/tau of the potential each step), got {c['tau']!r}")
    for key in ("v_th", "surrogate_alpha"):
        v = c[key]
        if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
            raise UserError(f"`{key}` must be a positive number, got {v!r}")
    if c["reset"] not in RESET_MODES:
        raise UserError(f"unknown `reset` {c['reset']!r}: use one of {', '.join(RESET_MODES)}")
    if c["augment"] not in AUGMENTS:
        raise UserError(f"unknown `augment` {c['augment']!r}: use one of {', '.join(AUGMENTS)}")
    if c["width"] is None:
        c["width"] = DEFAULT_WIDTH[c["arch"]]
    if not (isinstance(c["width"], (int, float)) and 0 < c["width"] < float("inf")):
        raise UserError(f"`width` must be > 0, got {c['width']!r}")
    c["width"], c["tau"], c["v_th"] = float(c["width"]), float(c["tau"]), float(c["v_th"])
    c["ic"], c["detach_reset"] = bool(c["ic"]), bool(c["detach_reset"])
    for key in ("subset", "test_subset"):
        if c[key] is not None and not (isinstance(c[key], int) and c[key] >= 1):
            raise UserError(f"`{key}` must be a positive number of samples, got {c[key]!r}")
    if not (isinstance(c["momentum"], (int, float)) and 0 <= c["momentum"] < 1):
        raise UserError(f"`momentum` must be in [0, 1), got {c['momentum']!r}")
    check_train_config(c)
    check_amp(c["amp"])
    if isinstance(c["fuse"], bool):
        c["fuse"] = "on" if c["fuse"] else "off"
    if c["fuse"] == "on" and not c["detach_reset"]:
        raise UserError("`fuse` on needs `detach_reset` (the fused step keeps the reset out of the gradient): "
                        "drop one of them")
    return c


def build_snn(config: dict) -> nn.Module:
    """The spiking network a (resolved) train-snn config describes, with fresh weights."""
    from ann2snn.direct.spiking_resnet import build_spiking_resnet, mblif_factory

    neuron = mblif_factory(config["int_bits"], config["frac_bits"], tau=config["tau"], v_th=config["v_th"],
                           reset=config["reset"], surrogate_alpha=config["surrogate_alpha"],
                           detach_reset=config["detach_reset"])
    if config["dataset"] in EVENT_DATASETS:
        from ann2snn.direct.dvs_gesture import NUM_CLASSES

        num_classes, in_channels = NUM_CLASSES, 2
    else:
        num_classes, in_channels = dataset_info(config["dataset"]).num_classes, 3
    model = build_spiking_resnet(config["arch"], num_classes, neuron, width=config["width"], T=config["T"],
                                 ic=config["ic"], in_channels=in_channels)
    set_fused_mblif(model, config.get("fuse") == "on")
    return model


def set_fused_mblif(model: nn.Module, on: bool) -> None:
    """Give every :class:`~ann2snn.direct.mblif.MBLIF` of ``model`` the fused step (``on``) or the plain one."""
    for m in model.modules():
        if isinstance(m, MBLIF):
            m.fused = bool(on)


def load_snn_data(config: dict, device: torch.device | str = "cpu", d: Dist = Dist()):
    """Train and test batches of a (resolved) config: CIFAR as :func:`ann2snn.ann.train.load_data`, or
    DVS-Gesture event frames ``[T, B, 2, H, W]`` from ``<data_dir>/DvsGesture`` (subsets applied).

    Raises:
        UserError: DVS-Gesture under distributed training (it runs in one process).
    """
    if config["dataset"] not in EVENT_DATASETS:
        return load_data(config, device, d)
    if d.enabled:
        raise UserError("dvs-gesture training runs in one process (drop torchrun)")
    from ann2snn.plumbing.data import balanced_subset
    from ann2snn.direct.dvs_gesture import NUM_CLASSES, FrameBatches, load_dvs_frames

    root = os.path.join(config["data_dir"], "DvsGesture")
    (xtr, ytr), (xte, yte) = (load_dvs_frames(root, split, config["T"], config["dvs_size"]) for split in (True, False))
    if config.get("subset"):
        idx = balanced_subset(ytr, config["subset"], config["seed"], NUM_CLASSES)
        xtr, ytr = xtr[idx], ytr[idx]
    if config.get("test_subset"):
        idx = balanced_subset(yte, config["test_subset"], 0, NUM_CLASSES)
        xte, yte = xte[idx], yte[idx]
    return (FrameBatches(xtr, ytr, config["batch_size"], shuffle=True, seed=config["seed"], device=device),
            FrameBatches(xte, yte, EVAL_CHUNK, device=device))


def load_snn_checkpoint(path: str) -> dict:
    """Load a train-snn checkpoint (``weights_only``) and check its kind and format.

    Raises:
        UserError: missing, unreadable or corrupt file, or a checkpoint of another kind.
    """
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, CKPT_NAME)):
        path = os.path.join(path, CKPT_NAME)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or not a torch file
        text = str(e).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        raise UserError(f"{path} is not a readable checkpoint (corrupt or truncated?): {msg}") from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        raise UserError(f"{path} is not an ann2snn checkpoint")
    if ckpt.get("kind") != KIND:
        raise UserError(f"{path} is a {ckpt.get('kind')!r} checkpoint, not a directly trained SNN "
                        "(from `ann2snn train-snn`)")
    check_format(ckpt, path)
    ckpt["path"] = path
    return ckpt


def load_direct_snn(path: str) -> tuple[nn.Module, dict]:
    """A train-snn checkpoint's model (eval mode, keys matched strictly) and the checkpoint dict."""
    ckpt = load_snn_checkpoint(path)
    model = build_snn(resolve_config(ckpt["config"]))
    load_state_strict(model, ckpt["model_state"], source=ckpt["path"])
    return model.eval(), ckpt


@torch.inference_mode()
def evaluate_steps(model: nn.Module, batches, T: int | None = None, progress: bool = False,
                   chunk: int = EVAL_CHUNK) -> tuple[torch.Tensor, int]:
    """Correct top-1 predictions at every step t ≤ T in one run of T steps.

    The prediction at t is the argmax of the mean output over steps 1..t.

    Returns:
        ``(correct, total)``: ``correct`` is an int64 tensor ``[T]`` (index t−1 for step t).
    """
    model.eval()
    correct, total = None, 0
    for x, y in progress_bar(batches, desc="test", disable=not progress):
        for xs, ys in zip(x.split(chunk, dim=1 if x.dim() == 5 else 0), y.split(chunk)):  # [T, B, ...] frames
            out = model.forward_steps(xs, T)                          # [T, B, classes]
            out = out.float()
            steps = torch.arange(1, out.shape[0] + 1, dtype=out.dtype, device=out.device).view(-1, 1, 1)
            pred = (out.cumsum(0) / steps).argmax(-1)                 # [T, B]
            hits = (pred == ys).sum(1)
            correct = hits if correct is None else correct + hits
            total += len(ys)
    return correct, total


def snn_row(config: dict, curve: list[float], epochs: int | None) -> dict:
    """One table row: the run's settings and the accuracy (%) at every T = t."""
    row = {"dataset": config["dataset"], "network": config["arch"], "width": config["width"], "epochs": epochs,
           "neuron": describe_mblif(config["int_bits"], config["frac_bits"]), "ic": config["ic"],
           "reset": config["reset"], "tau": config["tau"], "v_th": config["v_th"]}
    for t, acc in enumerate(curve, 1):
        row[f"T={t}"] = round(100 * acc, 2)
    return row


def write_snn_tables(rows: list[dict], details: list[dict], prov: dict, out_dir: str,
                     name: str = TABLE_NAME) -> list[str]:
    """Write ``<name>.csv``, ``<name>.md`` and ``<name>.json`` (rows, full curves, provenance) atomically."""
    df = pd.DataFrame(rows)
    samples = sorted({d["samples"] for d in details})
    md = ("Top-1 accuracy (%) of the directly trained SNN at each t ≤ T (prediction at t: argmax of the mean "
          "output over steps 1..t).\n\n" + df.to_markdown(index=False)
          + f"\n\n- test samples: {', '.join(map(str, samples))}; direct encoding; spikes are counts·2^-n"
          + f"\n- command: `{prov['command']}` (commit {prov['git_commit'][:12]})\n")
    paths = [os.path.join(out_dir, f"{name}.{ext}") for ext in ("csv", "md", "json")]
    atomic_write_text(paths[0], df.to_csv(index=False))
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[2], json.dumps({"provenance": prov, "rows": details}, indent=1) + "\n")
    return paths


def train_snn(config: dict, out_dir: str, resume: bool = False, explicit: set | None = None,
              stop_after: int | None = None, progress: bool = True,
              checkpoint_minutes: float = CHECKPOINT_MINUTES) -> str:
    """Train (or resume) one directly trained SNN run into ``out_dir``; returns the checkpoint path.

    Args:
        config: run settings; missing keys take :data:`DEFAULTS` (see :func:`resolve_config`).
        out_dir: run folder; holds ``checkpoint.pt``, ``metrics.csv`` and ``accuracy.{csv,md,json}``.
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
    from ann2snn.plumbing.provenance import provenance

    check_checkpoint_minutes(checkpoint_minutes)
    if config.get("fuse", "auto") == "auto" and explicit:
        explicit = set(explicit) - {"fuse"}  # auto never contradicts the choice a resumed run made
    full, state, ckpt_path = open_run({**DEFAULTS, **config}, out_dir, resume, explicit, load_snn_checkpoint)
    if state is not None and "fuse" not in state["config"]:
        if config.get("fuse") == "on" and explicit and "fuse" in explicit:
            raise UserError(f"the run in {out_dir} was trained before the fused step existed, with the plain step; "
                            "it resumes with that step: drop `fuse`")
        full["fuse"] = "off"  # runs from before the fused step resume with the plain step they trained with
    config = resolve_config(full)
    d = setup(config["device"])
    device = device_for(d, resolve_device(config["device"]))
    torch.manual_seed(config["seed"])
    model = build_snn(config)
    train, test = load_snn_data(config, device, d)
    # the resolved choice is stored in the run's config, so a resumed run takes the same step
    config["fuse"] = "on" if config["detach_reset"] and fuse.resolve(
        config["fuse"], device, config["epochs"] * len(train) >= fuse.MIN_TRAIN_STEPS) else "off"
    set_fused_mblif(model, config["fuse"] == "on")
    T = config["T"]

    last = {}

    def evaluate(model, test):
        correct, total = evaluate_steps(model, test, T, progress and d.is_main)
        correct = all_reduce_sum(d, correct.to(device))
        total = int(all_reduce_sum(d, torch.tensor(total, device=device)))
        curve = (correct.double().cpu() / total).tolist()
        last.update(curve=curve, samples=total)
        return {"test_acc": curve[-1], **{f"test_acc_t{t}": acc for t, acc in enumerate(curve, 1)}}

    def after_epoch(model, row):
        curve, total = last["curve"], last["samples"]
        table_row = snn_row(config, curve, row["epoch"])
        write_snn_tables([table_row], [{**table_row, "curve": curve, "samples": total, "checkpoint": ckpt_path,
                                        "train_config": config}], provenance(), out_dir)

    return fit(model, config, train, test, evaluate, KIND, state, ckpt_path, progress, stop_after, after_epoch,
               device=device, d=d, checkpoint_minutes=checkpoint_minutes)



def load_test_split(config: dict, data_dir: str, download: bool, skip_md5: bool, test_subset: int | None,
                    device: torch.device | str = "cpu"):
    """The test batches of a (resolved) train-snn config only: CIFAR's test split, or DVS-Gesture's test
    recordings as frames for the config's T (a class-balanced subset of ``test_subset`` samples)."""
    if config["dataset"] in EVENT_DATASETS:
        from ann2snn.direct.dvs_gesture import NUM_CLASSES, FrameBatches, load_dvs_frames

        x, y = load_dvs_frames(os.path.join(data_dir, "DvsGesture"), False, config["T"], config["dvs_size"])
        num_classes = NUM_CLASSES
    else:
        from ann2snn.plumbing.data import CifarBatches, load_split

        x, y = load_split(config["dataset"], data_dir, False, download, skip_md5)
        num_classes = dataset_info(config["dataset"]).num_classes
    if test_subset:
        from ann2snn.plumbing.data import balanced_subset

        idx = balanced_subset(y, test_subset, 0, num_classes)
        x, y = x[idx], y[idx]
    if config["dataset"] in EVENT_DATASETS:
        return FrameBatches(x, y, EVAL_CHUNK, device=device)
    return CifarBatches(x, y, dataset_info(config["dataset"]), 500, device=device)  # as ann.train.load_data


def evaluate_direct_snn(checkpoint: str, T, data_dir: str | None = None, download: bool = False,
                        skip_md5: bool = False, test_subset: int | None = None, device: str = "auto",
                        out: str | None = None, progress: bool = False, argv: list[str] | None = None) -> dict:
    """Evaluate a directly trained SNN (a train-snn run) at other numbers of time steps.

    One run of ``max(T)`` steps gives the accuracy at every t ≤ max(T) (the network is causal; the
    prediction at t is the argmax of the mean output over steps 1..t, as in training). A CIFAR
    network takes any T (the image is the input current at every step); a DVS-Gesture network reads
    event frames binned for its own T, so it is evaluated at that T only.

    Args:
        checkpoint: a train-snn run folder or its ``checkpoint.pt``.
        T: the steps to report: ``"1,2,4"``, an int or a list of ints.
        out: folder for ``accuracy.csv/.md/.json`` (the curve at every t ≤ max(T)); None writes nothing.

    Returns:
        ``{"T": [...], "row": {...}, "curve": [...], "samples": N}``: accuracies in percent at each T of
        ``T`` in ``row``, and as fractions at every t ≤ max(T) in ``curve``.

    Raises:
        UserError: not a train-snn checkpoint, a bad ``T``, a ``T`` a DVS network cannot take, or data problems.
    """
    import contextlib

    from ann2snn.pipelines.sweep import _as_T_list
    from ann2snn.plumbing.data import default_data_dir
    from ann2snn.plumbing.outputs import claim_output
    from ann2snn.plumbing.provenance import provenance

    T_list = _as_T_list(T)
    ckpt = load_snn_checkpoint(os.fspath(checkpoint))
    config = resolve_config(ckpt["config"])
    if config["dataset"] in EVENT_DATASETS and T_list != [config["T"]]:
        raise UserError(f"this {config['dataset']} network reads event frames binned for T = {config['T']}; "
                        f"it cannot be evaluated at `T` {','.join(map(str, T_list))} (give `T` {config['T']})")
    if test_subset is not None and (isinstance(test_subset, bool) or not isinstance(test_subset, int)
                                    or test_subset < 1):
        raise UserError(f"`test_subset` must be a number of images >= 1 (leave it out for all), got {test_subset!r}")
    command = None if argv is not None else f"python: evaluate_direct_snn({checkpoint!r}, T={T_list!r})"
    prov = provenance(argv, command=command)
    dev = resolve_device(device)
    data_dir = default_data_dir() if data_dir is None else data_dir
    with claim_output(out, "dir", what="`out`") if out is not None else contextlib.nullcontext():
        model = build_snn(config)
        load_state_strict(model, ckpt["model_state"], source=ckpt["path"])
        set_fused_mblif(model, False)  # one pass: not worth compiling, and the plain step on any device
        model = model.to(dev).eval()
        test = load_test_split(config, data_dir, download, skip_md5, test_subset, dev)
        # memory grows with images × T: evaluate fewer images at once for a longer T than trained
        chunk = max(1, EVAL_CHUNK * config["T"] // max(T_list))
        with autocast(dev, config["amp"]):  # as training evaluated it
            correct, total = evaluate_steps(model, test, max(T_list), progress, chunk=chunk)
        curve = (correct.double().cpu() / total).tolist()
        row = snn_row(config, curve, ckpt.get("epoch"))
        row = {k: v for k, v in row.items() if not k.startswith("T=")} | {"trained_T": config["T"]} | {
            f"T={t}": round(100 * curve[t - 1], 2) for t in T_list}
        if out is not None:
            write_snn_tables([row], [{**row, "curve": curve, "samples": total, "checkpoint": ckpt["path"],
                                      "train_config": config}], prov, out)
    return {"T": T_list, "row": row, "curve": curve, "samples": total}
