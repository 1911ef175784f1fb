"""Give every ReLU *call site* of a network its own activation module, with ``torch.fx``.

Networks trained elsewhere (torchvision's, a user's) write their activations as ``nn.ReLU`` modules,
often one module reused at several call sites (torchvision's ResNet blocks call ``self.relu`` twice),
or as ``F.relu`` / ``torch.relu`` / ``x.relu()`` calls. A QCFS (or matched) network needs one module,
with its own λ, per call site. :func:`rewrite_relu_calls` traces the network with ``torch.fx`` and
replaces each ReLU call by a call of a new module ``<prefix>_<i>`` (i in call order), made by a factory.
Parameters and buffers keep their names, so a ``state_dict`` of the original network loads into the
rewritten one with only the new modules' own parameters added.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from ann2snn.ann.activations import QuantClip
from ann2snn.plumbing.errors import UserError

_RELU_FUNCS = {torch.relu, torch.nn.functional.relu, torch.relu_, torch.nn.functional.relu_}


class _Tracer(torch.fx.Tracer):
    """fx tracer that keeps the given module types (activations, neurons) as leaves."""

    def __init__(self, leaf_types: tuple):
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaf_types) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, leaf_types: tuple = (QuantClip,)) -> torch.fx.GraphModule:
    """``torch.fx`` trace of ``model`` with ``leaf_types`` (and torch's own modules) as leaves.

    Raises:
        UserError: the model cannot be traced (dynamic control flow, ...), with the tracer's message.
    """
    try:
        graph = _Tracer(tuple(leaf_types)).trace(model)
    except Exception as e:  # fx raises many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"torch.fx cannot trace {type(model).__name__} ({first}); give every activation its "
                        "own nn.ReLU module, called once") from None
    return torch.fx.GraphModule(model, graph, class_name=type(model).__name__)


def is_relu_node(node: torch.fx.Node, modules: dict) -> bool:
    """Whether an fx node is a ReLU call: an ``nn.ReLU`` module, ``F.relu`` / ``torch.relu``, or ``x.relu()``."""
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.ReLU)
    if node.op == "call_function":
        return node.target in _RELU_FUNCS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def rewrite_relu_calls(model: nn.Module, factory, prefix: str = "relu_site",
                       leaf_types: tuple = (QuantClip,)) -> torch.fx.GraphModule:
    """A traced copy of ``model`` in which ReLU call site i calls its own new module ``<prefix>_<i>``.

    Args:
        model: the network (not changed).
        factory: a zero-argument callable returning a new activation module (e.g.
            :func:`ann2snn.ann.activations.activation_factory`'s result).
        prefix: the new modules' name prefix.
        leaf_types: module types fx must not trace into.

    Returns:
        The rewritten ``torch.fx.GraphModule`` (its ``nn.ReLU`` modules removed).

    Raises:
        UserError: ``torch.fx`` cannot trace the model.
    """
    gm = trace(model, leaf_types)
    modules = dict(gm.named_modules())
    for i, node in enumerate([n for n in gm.graph.nodes if is_relu_node(n, modules)]):
        target = f"{prefix}_{i}"
        gm.add_submodule(target, factory())
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(target, (node.args[0],))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm


def activation_sites(model: nn.Module, factory) -> nn.Module:
    """``model`` (e.g. a torchvision network) with every ReLU call site its own activation module
    ``act_site_<i>`` from ``factory``; :func:`rewrite_relu_calls` on a model in eval mode, returned in
    ``model``'s own train/eval mode.

    Raises:
        UserError: ``torch.fx`` cannot trace the model, or it has no ReLU call site.
    """
    was_training = model.training
    gm = rewrite_relu_calls(model.eval(), factory, prefix="act_site")
    model.train(was_training)
    if not any(isinstance(m, QuantClip) for m in gm.modules()):
        raise UserError(f"{type(model).__name__} has no ReLU call site to make a QCFS / matched activation")
    return gm.train(was_training)
