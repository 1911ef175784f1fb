"""Evaluate a network's top-1 accuracy in one pass (ANNs, and converted SNNs in ANN mode).

Used by ANN training (the test accuracy of each epoch) and by the sweep (the ANN column), so that
both compute it the same way.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ann2snn.plumbing.progress import progress_bar


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating-point dtype of ``model``'s first parameter (float32 for a model without any)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def as_model_input(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in the simulation precision ``dtype`` (images arrive as float32)."""
    return x.to(dtype) if x.is_floating_point() and x.dtype != dtype else x



@torch.inference_mode()
def evaluate_ann(model: nn.Module, batches: Iterable, progress: bool = False) -> tuple[int, int]:
    """Count correct top-1 predictions of an ANN (or a converted net in ANN mode).

    ``batches`` yields ``(x [B, 3, H, W], y [B])``. Returns ``(correct, total)``.
    """
    model.eval()
    correct = total = 0
    dtype = model_dtype(model)
    for x, y in progress_bar(batches, desc="ANN", disable=not progress):
        correct += int((model(as_model_input(x, dtype)).argmax(1) == y).sum())
        total += len(y)
    return correct, total
