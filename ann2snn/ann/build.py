"""Build an ANN from a run config, and load it back from a train-ann checkpoint."""

from __future__ import annotations

from torch import nn

from ann2snn.ann.activations import activation_factory
from ann2snn.ann.relu_sites import activation_sites
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.checkpoint import load_checkpoint, load_state_strict
from ann2snn.plumbing.data import FOLDER, dataset_info


def num_classes_of(config: dict) -> int:
    """The class count of a run config: its ``num_classes`` if set, else its dataset's (an image
    folder's: the number of its stored ``classes``).

    Raises:
        UserError: an unknown dataset, or an image-folder config with neither.
    """
    if config.get("num_classes"):
        return int(config["num_classes"])
    if config.get("dataset") == FOLDER:
        if not config.get("classes"):
            raise UserError("an imagefolder config needs its `num_classes` (train-ann stores it with the classes)")
        return len(config["classes"])
    return dataset_info(config["dataset"]).num_classes


def build_ann(config: dict, weights: str | None = None) -> nn.Module:
    """The model a run config describes (fresh weights; λ at ``lambda_init`` or 1.0 for ``auto``).

    Keys used: arch, dataset, num_classes (default: the dataset's; an image folder's: its stored
    ``classes``), width, activation, levels, int_bits, frac_bits, lambda_init, maxpool (``keep`` or
    ``avg``: torchvision networks only).

    ``arch = "torchvision:<name>"``: torchvision's network (:mod:`ann2snn.models.torchvision_arch`).
    ``weights``, a ``state_dict`` file of that network trained elsewhere, is loaded first (strictly,
    ``weights_only=True``, ``module.`` / ``_orig_mod.`` prefixes stripped). Then, for a QCFS or matched
    activation, every ReLU call site gets its own activation module ``act_site_<i>``
    (:func:`ann2snn.ann.relu_sites.activation_sites`); ``relu`` keeps the network as it is. With
    ``maxpool: avg`` every max-pool is swapped for the average pool of the same geometry (after the
    weights are loaded), as QCFS trains; ``keep`` (default) trains with the max-pool, which conversion
    then keeps as a spiking max-pool (``maxpool="spiking"``).

    Raises:
        UserError: for an unknown arch / dataset / activation, bad levels, bits or λ, ``weights`` for
            a preset arch, or a weights file that does not match (keys or shapes named).
    """
    from ann2snn.models import build_model, is_torchvision

    lam = config.get("lambda_init", 8.0)
    lam = 1.0 if lam == "auto" else float(lam)
    activation = config.get("activation", "qcfs")
    act = activation_factory(activation, levels=config.get("levels", 4), int_bits=config.get("int_bits", 1),
                             frac_bits=config.get("frac_bits", 3), lambda_init=lam)
    num_classes = num_classes_of(config)
    if not is_torchvision(config["arch"]):
        if config.get("maxpool", "keep") != "keep":
            raise UserError(f"`maxpool` avg swaps a torchvision network's max-pools; {config['arch']} has average "
                            "pools already")
        if weights is not None:
            raise UserError(f"`weights` loads a network trained elsewhere into torchvision:<name>; {config['arch']} "
                            "is this project's own (load its train-ann checkpoint instead)")
        return build_model(config["arch"], num_classes, act, width=config.get("width", 1.0))
    model = build_model(config["arch"], num_classes, None, width=config.get("width", 1.0))
    if weights is not None:
        load_weights(model, weights, config["arch"], num_classes)
    if config.get("maxpool", "keep") == "avg":  # QCFS's way: average pools, trained with them
        from ann2snn.ann.pools import swap_maxpool_for_avgpool

        swap_maxpool_for_avgpool(model)
    return model if activation == "relu" else activation_sites(model, act)


def load_weights(model: nn.Module, path: str, arch: str, num_classes: int) -> None:
    """Load a ``state_dict`` file (``weights_only=True``) into ``model`` strictly.

    Raises:
        UserError: a missing or unreadable file, a file that is not a state_dict, or keys / shapes that
            do not match (named; a head of another size says so, with the class count it implies).
    """
    import os

    import torch

    if not os.path.isfile(path):
        raise UserError(f"`weights` file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors of many types
        raise UserError(f"cannot read `weights` file {path} as a state_dict ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training-script checkpoint that wraps its state_dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"`weights` file {path} holds no state_dict (a dict of tensors); save it with "
                        "torch.save(model.state_dict(), path)")
    own = model.state_dict()
    head = [k for k, v in own.items() if v.dim() >= 1 and v.shape[0] == num_classes and k.endswith(".weight")]
    for k in head[-1:]:
        if k in state and state[k].shape[0] != num_classes and state[k].shape[1:] == own[k].shape[1:]:
            raise UserError(f"`weights` {path} has a {state[k].shape[0]}-class head ({k}), the model {num_classes} "
                            f"classes: set `num_classes` {state[k].shape[0]}, or train a new head")
    load_state_strict(model, state, source=f"`weights` {path} ({arch})")


def load_ann(path: str) -> tuple[nn.Module, dict]:
    """Load a train-ann checkpoint into a fresh model (eval mode), strictly.

    Returns:
        ``(model, checkpoint_dict)``.

    Raises:
        UserError: missing/corrupt file, an SNN checkpoint, or keys that do not match.
    """
    return ann_from_checkpoint(load_checkpoint(path, kind="ann"))


def ann_from_checkpoint(ckpt: dict) -> tuple[nn.Module, dict]:
    """:func:`load_ann` for a checkpoint dict already read by
    :func:`ann2snn.plumbing.checkpoint.load_checkpoint` (so a caller reads each file once).

    Raises:
        UserError: keys that do not match the architecture its config describes.
    """
    model = build_ann(ckpt["config"])
    load_state_strict(model, ckpt["model_state"], source=ckpt["path"])
    return model.eval(), ckpt


def weights_checkpoint(arch: str, weights: str, dataset: str, num_classes: int | None = None,
                       extra_config: dict | None = None) -> dict:
    """An ANN checkpoint dict, in memory, for a network trained elsewhere: what ``ann2snn convert`` and
    ``ann2snn sweep`` read from a train-ann checkpoint, built from ``arch = "torchvision:<name>"`` and its
    ``state_dict`` file ``weights`` (as a plain ReLU network: convert it with calibrated thresholds).

    Args:
        arch: ``torchvision:<name>``.
        weights: the state_dict file (loaded as :func:`load_weights` does).
        dataset: the dataset its test / training images come from (e.g. ``cifar10``).
        num_classes: the head's class count (default: the dataset's).
        extra_config: more config keys to record (e.g. an image folder's class names).

    Returns:
        ``{"kind": "ann", "path": weights, "config": {...}, "model_state": ..., "epoch": None,
        "metrics": []}``; the config records the file's SHA-256.

    Raises:
        UserError: as :func:`build_ann` and :func:`load_weights`.
    """
    from ann2snn.models import is_torchvision
    from ann2snn.plumbing.checkpoint import FORMAT, file_sha256

    if not is_torchvision(arch):
        raise UserError(f"`weights` needs `arch` torchvision:<name>, got {arch!r} (this project's own networks are "
                        "read from their train-ann checkpoint)")
    config = {"arch": arch, "dataset": dataset, "activation": "relu", "width": 1.0, **(extra_config or {})}
    if num_classes is not None:
        config["num_classes"] = int(num_classes)
    config["weights"] = str(weights)
    classes = config.get("classes")
    if classes is not None and num_classes is not None and int(num_classes) != len(classes):
        raise UserError(f"`num_classes` {num_classes} does not match the image folder's {len(classes)} classes: "
                        "the head must have one output per class folder")
    model = build_ann(config, weights=str(weights))
    config["weights_sha256"] = file_sha256(str(weights))
    return {"kind": "ann", "format": FORMAT, "path": str(weights), "config": config,
            "model_state": model.state_dict(), "epoch": None, "metrics": [], "complete": True}
