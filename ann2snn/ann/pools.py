"""Pooling changes on the ANN side: QCFS's swap of max-pooling for average pooling, before training."""

from __future__ import annotations

from torch import nn

from ann2snn.plumbing.errors import UserError


def swap_maxpool_for_avgpool(model: nn.Module) -> nn.Module:
    """Replace every max-pool module of ``model`` (``nn.MaxPool1d/2d/3d``, ``nn.AdaptiveMaxPool1d/2d/3d``)
    in place by the average pooling of the same geometry (QCFS's fix), and return ``model``. Do it
    **before training**: a network trained with max-pooling changes when its pools change.

    Raises:
        UserError: a max-pool with dilation > 1, which average pooling cannot reproduce.
    """
    fixed = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
    adaptive = {nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d}
    for name, m in list(model.named_modules()):
        if type(m) in fixed:
            if any(d != 1 for d in ((m.dilation,) if isinstance(m.dilation, int) else m.dilation)):
                raise UserError(f"max-pool '{name}' has dilation {m.dilation}, which average pooling cannot take")
            new = fixed[type(m)](m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode, count_include_pad=False)
        elif type(m) in adaptive:
            new = adaptive[type(m)](m.output_size)
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, new)
    return model
