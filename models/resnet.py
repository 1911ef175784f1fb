"""CIFAR ResNets (ResNet-18 as in QCFS, ResNet-20 as in He et al. 2016) with per-site activations."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .init import init_weights


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """Identity (empty Sequential), or conv1×1 + BN when the block changes stride or width (option B)."""
    if stride != 1 or c_in != c_out:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential()


class BasicBlock(nn.Module):
    """conv3×3-BN-act-conv3×3-BN, plus shortcut, then the activation *after* the residual add.

    The down-sampling shortcut (stride 2 or a change of width) is conv1×1 + BN (He et al.'s
    option B, as in QCFS). Two activation sites: ``act1`` and ``act2``.
    Shapes: ``[B, C_in, H, W]`` → ``[B, C_out, H/stride, W/stride]``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, act: Callable[[], nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = act()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = shortcut(c_in, c_out, stride)
        self.act2 = act()

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32×32 inputs: 3×3 stride-1 stem (no max-pool), stages of :class:`BasicBlock`,
    global average pool, one analog Linear.

    Shapes: input ``[B, 3, 32, 32]`` → logits ``[B, num_classes]``.
    """

    def __init__(self, num_classes: int, act: Callable[[], nn.Module], blocks: list[int],
                 channels: list[int], width: float = 1.0):
        super().__init__()
        from . import scaled

        chans = [scaled(c, width) for c in channels]
        self.conv1 = nn.Conv2d(3, chans[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        self.act1 = act()
        stages = []
        c_in = chans[0]
        for i, (n, c) in enumerate(zip(blocks, chans)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                layers.append(BasicBlock(c_in, c, stride if j == 0 else 1, act))
                c_in = c
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)
        init_weights(self)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(self.flatten(self.pool(x)))


def resnet18(num_classes: int, act: Callable[[], nn.Module], width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet-18 as in QCFS: stages of 2 blocks at 64/128/256/512 channels (× width);
    17 activation sites."""
    return CifarResNet(num_classes, act, [2, 2, 2, 2], [64, 128, 256, 512], width)


def resnet20(num_classes: int, act: Callable[[], nn.Module], width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet-20 (He et al. 2016): stages of 3 blocks at 16/32/64 channels (× width), with
    conv1×1 + BN down-sampling shortcuts; 19 activation sites."""
    return CifarResNet(num_classes, act, [3, 3, 3], [16, 32, 64], width)
