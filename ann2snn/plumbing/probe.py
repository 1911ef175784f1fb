"""Hooked probe passes: run a model with forward hooks in a chosen train/eval mode, then clean up.

Calibration, the operation check, λ initialisation, operation counting and the bit-plane check all
watch one or more forward passes through hooks. :func:`probe_pass` is the one place that sets the
mode for such a pass and, whatever happens inside, removes the hooks and restores the mode.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def probe_pass(model: nn.Module, handles: list, train: bool = False) -> Iterator[None]:
    """Put ``model`` in eval mode (train mode with ``train=True``) for the block; on exit, even on an
    error, remove every hook handle in ``handles`` and restore the model's own train/eval mode.

    ``handles`` is read on exit, so hooks registered inside the block are removed too. Gradient mode
    is left to the caller (``torch.no_grad()`` etc.).
    """
    with kept_modes(model):
        model.train(train)
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            handles.clear()


@contextlib.contextmanager
def kept_modes(model: nn.Module) -> Iterator[None]:
    """On exit, even on an error, give every sub-module of ``model`` back its own train/eval flag (a
    model may mix them, e.g. BatchNorm frozen in eval mode inside a network in train mode, which
    ``model.train(was_training)`` would undo)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
