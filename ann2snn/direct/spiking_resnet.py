"""Directly trained spiking ResNets for CIFAR (ann2snn.direct.spiking_resnet), built from MBLIF neurons.

Time is merged into the batch: every tensor between neurons is ``[T·B, C, H, W]`` (time-major: the
first B rows are step 1), so each convolution runs once for all steps and each BatchNorm normalises
over the merged T·B batch (as tdBN-style direct training does). Each neuron views its input as
``[T, B, C, H, W]``, runs its T steps and returns the merged spikes.

- Input: direct encoding, the analog image ``[B, 3, H, W]`` is the input current at every step
  (repeated T times); a ``[T, B, C, H, W]`` input (event frames) is used as it is.
- Output: the last Linear stays analog; :meth:`SpikingCifarResNet.forward_steps` returns its output
  at every step, ``[T, B, classes]``, and ``forward`` their mean over T (the training output).
- Residual block (:class:`SpikingBasicBlock`): conv3×3-BN-MBLIF-conv3×3-BN, plus the shortcut,
  with the neuron after the residual add. With ``ic=True`` it adds the seed's interlaminar
  connection (Algorithm 1, docs/design.md §3.9)::

      x_pre  = BN(Conv3x3(x));   h = MBLIF(x_pre)
      x_post = BN(Conv3x3(h))
      x_re   = BN(Conv1x1(concat[x_pre, x_post]));   x_re = x_re ⊙ ECA(x_re)
      out    = MBLIF(x_post + shortcut(x) + x_re)

  It costs ``2C² + 2C + k`` parameters per block of C output channels (the 1×1 conv from 2C to C,
  its BN and ECA's k weights), about 1/9 (11 %) of a plain block's ``18C² + 4C``.
- Down-sampling shortcut: conv1×1 + BN (He et al.'s option B), as in :mod:`ann2snn.models.resnet`.

**Default width.** ``width`` multiplies the channels of He et al.'s CIFAR ResNet-20 (16/32/64). The
seed does not state its channel counts. The standard 16/32/64 network (0.27 M parameters) reaches
only about 91–92 % as an ANN (He et al. 2016: 91.25 %), below the seed's *spiking* LIF baseline of
93.21 % at T = 4, so the seed's "ResNet-20" must be wider. The default is ``width = 4``
(64/128/256 channels, about 4.3 M parameters): the widths of ResNet-18's first three stages and the
smallest power-of-two multiple whose ANN is typically ≥ 94 %, the level at which a T = 4 LIF
network near 93 % is plausible. This is an inference, not the seed's stated setting; pass
``--width`` for another (ResNet-19 of tdBN, 128/256/512, is ``width = 8``; CPU runs need ≤ 1).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ann2snn.direct.eca import ECA
from ann2snn.plumbing.errors import UserError
from ann2snn.direct.mblif import MBLIF

from ann2snn.models.init import init_weights
from ann2snn.models.resnet import shortcut

#: width multiplier used when none is given (see the module docstring for why)
DEFAULT_WIDTH = {"resnet20": 4.0, "resnet18": 1.0}


def spike(neuron: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """Run a multi-step neuron on a merged ``[T·B, ...]`` tensor; returns merged spikes ``[T·B, ...]``."""
    return neuron(x.reshape(T, x.shape[0] // T, *x.shape[1:])).flatten(0, 1)


class SpikingBasicBlock(nn.Module):
    """Spiking basic block, optionally with the interlaminar connection (``ic``); see the module doc.

    Shapes: ``forward(x, T)`` with ``x [T·B, C_in, H, W]`` → ``[T·B, C_out, H/stride, W/stride]``.
    Two neuron sites, ``sn1`` and ``sn2``, each its own module.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: Callable[[], nn.Module], ic: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.sn1 = neuron()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = shortcut(c_in, c_out, stride)
        self.ic = bool(ic)
        if self.ic:
            self.conv_re = nn.Conv2d(2 * c_out, c_out, 1, bias=False)
            self.bn_re = nn.BatchNorm2d(c_out)
            self.eca = ECA(c_out)
        self.sn2 = neuron()

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        x_pre = self.bn1(self.conv1(x))
        x_post = self.bn2(self.conv2(spike(self.sn1, x_pre, T)))
        out = x_post + self.shortcut(x)
        if self.ic:
            out = out + self.eca(self.bn_re(self.conv_re(torch.cat([x_pre, x_post], dim=1))))
        return spike(self.sn2, out, T)


class SpikingCifarResNet(nn.Module):
    """Spiking ResNet for 32×32 inputs: 3×3 stem (conv-BN-neuron), stages of :class:`SpikingBasicBlock`,
    global average pool, one analog Linear.

    Args:
        num_classes: output classes.
        neuron: zero-argument callable returning a *new* multi-step neuron (one per site).
        blocks, channels: blocks and (unscaled) channels per stage; stage i > 0 starts with stride 2.
        width: channel multiplier.
        T: default number of time steps.
        ic: use the interlaminar connection in every block.
        in_channels: input channels (3 for images, 2 for DVS event frames).

    Shapes: ``forward(x)`` with ``x [B, 3, H, W]`` (repeated T times) or ``[T, B, 3, H, W]`` →
    ``[B, num_classes]`` (mean over steps); :meth:`forward_steps` → ``[T, B, num_classes]``.
    """

    def __init__(self, num_classes: int, neuron: Callable[[], nn.Module], blocks: list[int], channels: list[int],
                 width: float = 1.0, T: int = 4, ic: bool = False, in_channels: int = 3):
        super().__init__()
        from ann2snn.models import scaled

        if not (isinstance(T, int) and T >= 1):
            raise UserError(f"T must be a whole number >= 1, got {T!r}")
        if not width > 0:
            raise UserError(f"`width` must be > 0, got {width}")
        self.T, self.ic = T, bool(ic)
        chans = [scaled(c, width) for c in channels]
        self.conv1 = nn.Conv2d(in_channels, chans[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        self.sn1 = neuron()
        blocks_ = []
        c_in = chans[0]
        for i, (n, c) in enumerate(zip(blocks, chans)):
            for j in range(n):
                blocks_.append(SpikingBasicBlock(c_in, c, (1 if i == 0 else 2) if j == 0 else 1, neuron, ic))
                c_in = c
        self.blocks = nn.ModuleList(blocks_)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        init_weights(self)

    def forward_steps(self, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """Output of the analog last layer at every step: ``[T, B, num_classes]``."""
        if x.dim() == 5:
            if T is not None and T != x.shape[0]:
                raise ValueError(f"input has {x.shape[0]} time steps but T={T} was asked for")
            T = x.shape[0]
            x = x.flatten(0, 1)
        elif x.dim() == 4:
            T = self.T if T is None else T
            x = x.unsqueeze(0).expand(T, *x.shape).flatten(0, 1)  # direct encoding
        else:
            raise ValueError(f"expected [B, C, H, W] or [T, B, C, H, W] input, got shape {tuple(x.shape)}")
        x = spike(self.sn1, self.bn1(self.conv1(x)), T)
        for block in self.blocks:
            x = block(x, T)
        out = self.fc(self.pool(x).flatten(1))
        return out.view(T, out.shape[0] // T, -1)

    def forward(self, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
        return self.forward_steps(x, T).mean(0)


def spiking_resnet20(num_classes: int, neuron: Callable[[], nn.Module], width: float | None = None, T: int = 4,
                     ic: bool = False, in_channels: int = 3) -> SpikingCifarResNet:
    """Spiking CIFAR ResNet-20: 3 stages of 3 blocks at 16/32/64 × width channels (default width 4, see
    the module doc); 19 neuron sites."""
    width = DEFAULT_WIDTH["resnet20"] if width is None else width
    return SpikingCifarResNet(num_classes, neuron, [3, 3, 3], [16, 32, 64], width, T, ic, in_channels)


def spiking_resnet18(num_classes: int, neuron: Callable[[], nn.Module], width: float | None = None, T: int = 4,
                     ic: bool = False, in_channels: int = 3) -> SpikingCifarResNet:
    """Spiking CIFAR ResNet-18 (as :func:`ann2snn.models.resnet.resnet18`): 4 stages of 2 blocks at
    64/128/256/512 × width channels (default width 1); 17 neuron sites."""
    width = DEFAULT_WIDTH["resnet18"] if width is None else width
    return SpikingCifarResNet(num_classes, neuron, [2, 2, 2, 2], [64, 128, 256, 512], width, T, ic, in_channels)


SPIKING_ARCHS = {"resnet20": spiking_resnet20, "resnet18": spiking_resnet18}


def mblif_factory(int_bits: int = 1, frac_bits: int = 0, tau: float = 4.0, v_th: float = 0.6, reset: str = "hard",
                  surrogate_alpha: float = 2.0, detach_reset: bool = True) -> Callable[[], MBLIF]:
    """A zero-argument callable making new :class:`~ann2snn.direct.mblif.MBLIF` neurons (settings checked now)."""
    kwargs = dict(int_bits=int_bits, frac_bits=frac_bits, tau=tau, v_th=v_th, reset=reset,
                  surrogate_alpha=surrogate_alpha, detach_reset=detach_reset)
    MBLIF(**kwargs)  # raises UserError for bad settings before any model is built
    return lambda: MBLIF(**kwargs)


def build_spiking_resnet(arch: str, num_classes: int, neuron: Callable[[], nn.Module], width: float | None = None,
                         T: int = 4, ic: bool = False, in_channels: int = 3) -> SpikingCifarResNet:
    """Build ``arch`` (``resnet20`` or ``resnet18``); raises UserError for an unknown one."""
    if arch not in SPIKING_ARCHS:
        raise UserError(f"unknown spiking arch {arch!r}: use one of {', '.join(SPIKING_ARCHS)}")
    return SPIKING_ARCHS[arch](num_classes, neuron, width=width, T=T, ic=ic, in_channels=in_channels)


__all__ = ["DEFAULT_WIDTH", "SPIKING_ARCHS", "SpikingBasicBlock", "SpikingCifarResNet", "build_spiking_resnet",
           "mblif_factory", "spike", "spiking_resnet18", "spiking_resnet20"]
