"""Convert ordinary ReLU networks: find every ReLU call site, and set thresholds from data.

* :func:`prepare_relu_sites` gives every ReLU *call site* its own :class:`ReLUSite` module. It
  replaces ``nn.ReLU`` modules in place when each is called exactly once (the module names, and
  so the state-dict keys, stay as they were). Otherwise (``F.relu`` / ``torch.relu`` /
  ``x.relu()`` in ``forward``, or one module reused at several call sites) it rewrites the model
  with ``torch.fx``. A model ``torch.fx`` cannot trace is refused with the tracer's message.
* :func:`calibrate_thresholds` runs a few batches of training data and picks each site's θ from
  its non-negative activations ``relu(x)``: ``max``, or ``percentile:P`` (Rueckauer et al., 2017,
  "Conversion of continuous-valued deep networks to efficient event-driven networks"). Percentiles
  are exact order statistics (``torch.kthvalue``) over the values kept: every value of a batch when
  it has at most ``SAMPLE_PER_BATCH`` of them, else a uniform random sample of that size (seeded).
  ``torch.quantile`` is not used: it refuses inputs above 16 M elements.
* :func:`fold_batchnorm` folds each BatchNorm2d into the Conv2d before it with
  ``torch.nn.utils.fusion.fuse_conv_bn_eval`` (eval-mode semantics).
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ann2snn.ann import relu_sites
from ann2snn.ann.activations import QuantClip
from ann2snn.conversion.maxpool import SpikingMaxPool
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.opcheck import probe_sites
from ann2snn.conversion.sites import ReLUSite
from ann2snn.plumbing.probe import kept_modes, probe_pass

__all__ = ["ReLUSite", "calibrate_thresholds", "fold_batchnorm", "kth_percentile", "parse_threshold",
           "prepare_relu_sites", "trace"]

SAMPLE_PER_BATCH = 1 << 20
#: module types fx keeps as leaves here: activations, neurons, prepared sites, spiking max-pools
_LEAVES = (QuantClip, MultiBitIF, ReLUSite, SpikingMaxPool)


def trace(model: nn.Module) -> torch.fx.GraphModule:
    """``torch.fx`` trace of ``model`` with our activations and neurons as leaves
    (:func:`ann2snn.ann.relu_sites.trace`).

    Raises:
        UserError: the model cannot be traced (dynamic control flow, ...), with the tracer's message.
    """
    return relu_sites.trace(model, _LEAVES)


def prepare_relu_sites(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Return a copy of ``model`` where every ReLU call site is its own :class:`ReLUSite`.

    Raises:
        UserError: the model needs tracing and ``torch.fx`` cannot trace it.
    """
    import copy

    model = copy.deepcopy(model)
    relus = {n for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
    counts: dict[str, int] = {n: 0 for n in relus}
    handles = [model.get_submodule(n).register_forward_hook(
        lambda _m, _i, _o, n=n: counts.__setitem__(n, counts[n] + 1)) for n in relus]
    try:
        _, functional = probe_sites(model, example)
    finally:
        for h in handles:
            h.remove()
    if not functional and all(c == 1 for c in counts.values()):
        for name in relus:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, ReLUSite())
        return model
    return relu_sites.rewrite_relu_calls(model, ReLUSite, prefix="relu_site", leaf_types=_LEAVES)


def parse_threshold(text: str) -> tuple[str, float | None]:
    """``lambda`` | ``max`` | ``percentile:P`` (0 < P <= 100) → (mode, P).

    Raises:
        UserError: anything else.
    """
    if text in ("lambda", "max"):
        return text, None
    mode, _, p = text.partition(":")
    try:
        value = float(p)
    except ValueError:
        value = float("nan")
    if mode != "percentile" or not 0 < value <= 100:
        raise UserError(f"bad `threshold` {text!r}: use lambda, max or percentile:P with 0 < P <= 100 (e.g. percentile:99.99)")
    return mode, value


def kth_percentile(values: torch.Tensor, p: float) -> float:
    """The ``p``-th percentile of a 1-D tensor as an exact order statistic (``torch.kthvalue``),
    using the nearest-rank definition: the ``ceil(p/100·N)``-th smallest value."""
    import math

    n = values.numel()
    k = min(n, max(1, math.ceil(p / 100.0 * n)))
    return float(torch.kthvalue(values.float().cpu(), k).values)


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, batches, threshold: str, num_batches: int = 10,
                         seed: int = 0, progress: bool = False) -> dict[str, float]:
    """θ for every activation site from ``num_batches`` batches of ``(x [B, 3, H, W], y)``.

    Sites are :class:`ReLUSite` and :class:`QuantClip` modules; each is measured on ``relu(input)``
    in eval mode. ``threshold`` is ``max`` or ``percentile:P``. A site that never sees a positive
    value gets θ = 1.0 (it cannot fire either way), so no θ is 0. ``progress``: a progress bar over
    the batches (:func:`ann2snn.plumbing.progress.progress_bar`).

    Raises:
        UserError: a bad ``threshold`` or ``num_batches < 1``.
    """
    mode, p = parse_threshold(threshold)
    if mode == "lambda":
        raise UserError("`threshold` lambda takes θ from the QCFS λs; there is nothing to calibrate")
    if num_batches < 1:
        raise UserError(f"`calib_batches` must be >= 1, got {num_batches}")
    g = torch.Generator().manual_seed(seed)
    sites = {n: m for n, m in model.named_modules() if isinstance(m, (ReLUSite, QuantClip))}
    kept: dict[str, list] = {n: [] for n in sites}

    def hook(name):
        def fn(_m, inputs):
            v = torch.clamp_min(inputs[0].detach().flatten().float(), 0)
            if mode == "max":
                kept[name].append(v.max().reshape(1))
            else:
                if v.numel() > SAMPLE_PER_BATCH:
                    v = v[torch.randint(0, v.numel(), (SAMPLE_PER_BATCH,), generator=g)]
                kept[name].append(v)
        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in sites.items()]
    from ann2snn.plumbing.progress import progress_bar

    with probe_pass(model, handles):
        seen = 0
        bar = progress_bar(total=num_batches, desc="calibrate", unit="batch", disable=not progress)
        for x, _ in batches:
            model(x)
            seen += 1
            bar.update(1)
            if seen >= num_batches:
                break
        bar.close()
    if 0 < seen < num_batches:  # a small data set: say what θ was taken from
        import sys

        print(f"note: calibrated on all {seen} training batches there are (asked for {num_batches})", file=sys.stderr)
    out = {}
    for name, parts in kept.items():
        values = torch.cat(parts)
        theta = float(values.max()) if mode == "max" else kth_percentile(values, p)
        out[name] = theta if theta > 0 else 1.0
    return out


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d (whose only user it is) into that conv.

    Uses ``torch.nn.utils.fusion.fuse_conv_bn_eval``; the result is a ``torch.fx.GraphModule`` in
    eval mode that equals ``model.eval()`` up to float rounding (~1e-5). A BN after anything else is
    left in place.

    Raises:
        UserError: the model cannot be traced.
    """
    with kept_modes(model):  # the caller's model keeps its modes
        gm = trace(model.eval())
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        prev = node.args[0]
        if not (isinstance(prev, torch.fx.Node) and prev.op == "call_module"
                and isinstance(modules[prev.target], nn.Conv2d) and len(prev.users) == 1):
            continue
        fused = fuse_conv_bn_eval(modules[prev.target], modules[node.target])
        parent_name, _, child = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent_name) if parent_name else gm, child, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm.eval()
