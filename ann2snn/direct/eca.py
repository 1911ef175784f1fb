"""Efficient Channel Attention (ECA; Wang et al., "ECA-Net: Efficient channel attention for deep
convolutional neural networks", CVPR 2020).

The gate of a feature map ``X [N, C, H, W]`` is::

    g(X) = sigmoid( Conv1d_k( GlobalAvgPool(X) ) )        [N, C, 1, 1]

a 1-D convolution *across channels* (one kernel of k weights shared by all channels, no bias, zero
padding (k−1)/2), with the kernel size chosen from the channel count (the paper's Eq. 12)::

    k = ψ(C) = | log2(C)/γ + b/γ |_odd,      γ = 2, b = 1

``|t|_odd`` is the odd number nearest to t. We compute it as the ECA authors' code does,
``t = int(abs((log2(C) + b) / γ)); k = t if t is odd else t + 1``: this is the nearest odd number,
with the ties (t an even integer, e.g. 4 → 3 or 5) resolved upwards (4 → 5). Examples: C = 16, 32, 64 → 3; 128, 256, 512, 1024 → 5;
2048 → 7; fewer than 8 channels give k = 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size ``|log2(C)/γ + b/γ|_odd`` (an odd number >= 1)."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """ECA layer on ``[N, C, H, W]``: returns ``X ⊙ g(X)`` (same shape), as the ECA layer does.

    :meth:`gate` returns ``g(X)`` itself, ``[N, C, 1, 1]`` in (0, 1). Parameters: k weights.

    Args:
        channels: C, which sets the kernel size unless ``kernel_size`` is given.
        gamma, b: the kernel-size rule's constants (ECA's defaults 2 and 1).
    """

    def __init__(self, channels: int, gamma: int = 2, b: int = 1, kernel_size: int | None = None):
        super().__init__()
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else int(kernel_size)
        if k < 1 or k % 2 == 0:
            raise ValueError(f"ECA kernel size must be odd and >= 1, got {k}")
        self.channels, self.kernel_size = channels, k
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(Conv1d_k(GAP(x)))``: ``[N, C, H, W]`` → ``[N, C, 1, 1]``."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"ECA({self.channels}) expects [N, {self.channels}, H, W], got {tuple(x.shape)}")
        y = self.pool(x).squeeze(-1).transpose(1, 2)          # [N, 1, C]
        y = self.conv(y).transpose(1, 2).unsqueeze(-1)       # [N, C, 1, 1]
        return torch.sigmoid(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k={self.kernel_size}"
