"""The module that marks one ReLU call site prepared for conversion (see :mod:`ann2snn.conversion.calibrate`)."""

from __future__ import annotations

import torch
from torch import nn


class ReLUSite(nn.Module):
    """One ReLU call site prepared for conversion: computes ``max(x, 0)`` (any shape). Its θ comes
    from data (:func:`ann2snn.conversion.calibrate.calibrate_thresholds`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(x, 0)
