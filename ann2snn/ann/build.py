"""Build an ANN from a run config, and load it back from a train-ann checkpoint."""

from __future__ import annotations

from torch import nn

from ann2snn.ann.activations import activation_factory
from ann2snn.plumbing.checkpoint import load_checkpoint, load_state_strict
from ann2snn.plumbing.data import num_classes_of


def build_ann(config: dict) -> nn.Module:
    """The model a run config describes (fresh weights; λ at ``lambda_init`` or 1.0 for ``auto``).

    Keys used: arch, dataset (and num_classes / classes for imagefolder), width, activation, levels, int_bits, frac_bits, lambda_init.

    Raises:
        UserError: for an unknown arch / dataset / activation, or bad levels, bits or λ.
    """
    from ann2snn.models import build_model

    lam = config.get("lambda_init", 8.0)
    lam = 1.0 if lam == "auto" else float(lam)
    act = activation_factory(config.get("activation", "qcfs"), levels=config.get("levels", 4),
                             int_bits=config.get("int_bits", 1), frac_bits=config.get("frac_bits", 3),
                             lambda_init=lam)
    return build_model(config["arch"], num_classes_of(config), act,
                       width=config.get("width", 1.0))


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
