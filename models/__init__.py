"""CIFAR architectures with one activation module per call site (ann2snn.models).

Every model takes ``act``, a zero-argument callable returning a *new* activation module, and calls
it once per activation call site, so each site has its own λ and, after conversion, its own neuron.
Pooling is average pooling throughout (max-pooling does not commute with summing spikes over time).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ann2snn.plumbing.errors import UserError

from .resnet import resnet18, resnet20
from .torchvision_arch import PREFIX as TORCHVISION_PREFIX
from .torchvision_arch import build_torchvision, is_torchvision
from .vgg import vgg16

ARCHS: dict[str, Callable[..., nn.Module]] = {"vgg16": vgg16, "resnet18": resnet18, "resnet20": resnet20}


def build_model(arch: str, num_classes: int, act: Callable[[], nn.Module] | None, width: float = 1.0) -> nn.Module:
    """Build ``arch`` for ``num_classes`` classes, input ``[B, 3, 32, 32]``, output logits ``[B, num_classes]``.

    ``arch = "torchvision:<name>"`` builds torchvision's network as it is (its own ``nn.ReLU`` modules;
    ``act`` is not used, see :mod:`ann2snn.ann.relu_sites`; ``width`` must be 1).

    Raises:
        UserError: for an unknown arch or a width that leaves a layer with no channel.
    """
    if is_torchvision(arch):
        if width != 1.0:
            raise UserError(f"`width` scales this project's own networks only; {arch} is built as torchvision has it")
        return build_torchvision(arch, num_classes)
    if arch not in ARCHS:
        raise UserError(f"unknown arch {arch!r}: use one of {', '.join(ARCHS)}, or torchvision:<name>")
    if not width > 0:
        raise UserError(f"`width` must be > 0, got {width}")
    return ARCHS[arch](num_classes=num_classes, act=act, width=width)


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by the width multiplier, at least 1."""
    return max(1, int(round(channels * width)))


__all__ = ["ARCHS", "TORCHVISION_PREFIX", "build_model", "build_torchvision", "is_torchvision", "scaled", "vgg16",
           "resnet18", "resnet20"]
