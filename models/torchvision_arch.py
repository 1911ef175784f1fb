"""torchvision classification networks as ann2snn architectures: ``arch="torchvision:<name>"``.

The network is torchvision's own (``torchvision.models.get_model``), with random weights and the
requested class count; weights trained elsewhere are loaded afterwards (:func:`ann2snn.ann.build.build_ann`).
Its max-pool and its ``nn.ReLU`` modules stay as torchvision wrote them; ReLU call sites get their own
activation modules in :mod:`ann2snn.ann.relu_sites` when a QCFS / matched network is wanted.
"""

from __future__ import annotations

import difflib

from torch import nn

from ann2snn.plumbing.errors import UserError

#: the prefix of a torchvision architecture name
PREFIX = "torchvision:"


def is_torchvision(arch: str) -> bool:
    """Whether ``arch`` names a torchvision network (``torchvision:<name>``)."""
    return str(arch).startswith(PREFIX)


def torchvision_names() -> list[str]:
    """The classification networks this torchvision provides (``torchvision.models.list_models``)."""
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_torchvision_check(arch: str) -> str:
    """The torchvision name of ``arch = "torchvision:<name>"``, checked.

    Raises:
        UserError: an unknown name, with the nearest names.
    """
    name = arch[len(PREFIX):] if is_torchvision(arch) else arch
    names = torchvision_names()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(PREFIX + n for n in near)}?" if near else \
            f"see torchvision.models.list_models() ({len(names)} names, e.g. {PREFIX}resnet18)"
        raise UserError(f"unknown torchvision network {name!r}: {hint}")
    return name


def build_torchvision(arch: str, num_classes: int) -> nn.Module:
    """torchvision's ``<name>`` of ``arch = "torchvision:<name>"``, random weights, ``num_classes`` outputs.

    Input ``[B, 3, H, W]`` (ImageNet networks: any H, W from about 32 px up; 224 is their native size),
    output logits ``[B, num_classes]``.

    Raises:
        UserError: an unknown name (with the nearest names), or ``num_classes < 1``.
    """
    import torchvision.models

    name = build_torchvision_check(arch)
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise UserError(f"`num_classes` must be a whole number >= 1, got {num_classes!r}")
    kwargs = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):  # no auxiliary heads: one output per forward pass
        kwargs.update(aux_logits=False, init_weights=True)
    return torchvision.models.get_model(name, **kwargs)
