"""Bit-plane execution of a weighted layer on multi-bit spikes (the seed paper's Fig. 4).

A multi-bit spike carries an integer count ``k`` in ``0..2^B − 1`` (B = m + n bits) and the value
``s = k·q`` (docs/design.md §3.1). Writing ``k = Σ_b 2^b · k_b`` with bits ``k_b = (k >> b) & 1``, a linear
layer ``W`` (a Conv2d or Linear) on the spikes decomposes into binary layers::

    W(k·q) + bias = q · Σ_b 2^b · W(plane_b) + bias,      plane_b = (k >> b) & 1

Each ``W(plane_b)`` is a *binary* spike layer: every 1 in the plane adds a column of weights
(an accumulate, AC; no multiply). The factor ``2^b`` is a shift of the weights (an exponent change in
floating point, a shift in fixed point), not a multiply by a data value. So **a multi-bit spike with
count k costs popcount(k) binary accumulates per synapse, each with its weights scaled by 2^b** -- this
is the Fig. 4 claim that multi-bit spikes keep the SNN multiplication-free. It also says what that
costs: an MBIF spike is not one AC but up to B of them (see :mod:`ann2snn.analysis.opcount`).

:func:`bitplane_forward` computes the layer this way; it equals ``layer(k·q)`` exactly when every
partial sum is representable (e.g. dyadic weights, bias and q of few bits), and to float round-off
(~1e-6 relative) otherwise, because the sums are merely re-associated.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ann2snn.plumbing.probe import probe_pass
from ann2snn.plumbing.errors import UserError


def _as_counts(k: torch.Tensor, what: str = "counts") -> torch.Tensor:
    """``k`` as an int64 tensor, after checking that it holds whole numbers >= 0."""
    if k.dtype.is_floating_point:
        if not bool(torch.isfinite(k).all()) or not torch.equal(k, torch.round(k)):
            raise ValueError(f"{what} must hold whole numbers (integer-valued), got non-integer values")
        k = k.to(torch.int64)
    elif k.dtype == torch.bool:
        k = k.to(torch.int64)
    else:
        k = k.to(torch.int64)
    if k.numel() and int(k.min()) < 0:
        raise ValueError(f"{what} must be >= 0, got {int(k.min())}")
    return k


def popcount(k: torch.Tensor) -> torch.Tensor:
    """Number of 1 bits of each count: ``popcount(5) = 2``, ``popcount(15) = 4``, ``popcount(0) = 0``.

    Args:
        k: counts >= 0 of any shape; a float tensor must be integer-valued (e.g. ``round(s/q)``).

    Returns:
        An int64 tensor shaped like ``k``.

    Raises:
        ValueError: for negative or non-integer values.
    """
    k = _as_counts(k, "popcount input")
    out = torch.zeros_like(k)
    while bool((k != 0).any()):
        out += k & 1
        k = k >> 1
    return out


def _without_bias(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Conv2d):
        return layer._conv_forward(x, layer.weight, None)
    return F.linear(x, layer.weight)


def _add_bias(layer: nn.Module, y: torch.Tensor) -> torch.Tensor:
    if layer.bias is None:
        return y
    if isinstance(layer, nn.Conv2d):
        return y + layer.bias.view(1, -1, *([1] * (y.dim() - 2)))
    return y + layer.bias


def bitplane_forward(layer: nn.Module, counts: torch.Tensor, q, num_bits: int) -> torch.Tensor:
    """Run ``layer`` on multi-bit spikes ``counts·q`` as a sum of binary bit planes (Fig. 4).

    Computes ``q · Σ_{b < num_bits} 2^b · layer_without_bias(plane_b) + bias`` with
    ``plane_b = (k >> b) & 1``. Each plane is a binary spike map, so the layer costs
    ``popcount(k)`` binary accumulates per synapse of each spike, with the weights scaled by ``2^b``.

    Args:
        layer: an ``nn.Conv2d`` (counts ``[B, C, H, W]``) or ``nn.Linear`` (counts ``[B, F]``, or
            ``[..., F]``).
        counts: integer-valued tensor (float or integer dtype) with values in ``0..2^num_bits − 1``.
        q: the quantum (a float or 0-dim tensor), so the spike values are ``counts·q``.
        num_bits: B >= 1, the spike's bit width (m + n for MBIF).

    Returns:
        The layer's output, equal to ``layer(counts * q)``: exactly for dyadic weights / bias / q
        whose partial sums are representable, to float round-off otherwise.

    Raises:
        ValueError: non-integer, negative or too-large counts; UserError (a ValueError): ``num_bits < 1``.
        TypeError: a layer other than Conv2d / Linear.
    """
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"bitplane_forward supports nn.Conv2d and nn.Linear, got {type(layer).__name__}")
    if not (isinstance(num_bits, int) and num_bits >= 1):
        raise UserError(f"num_bits must be a whole number >= 1, got {num_bits!r}")
    k = _as_counts(counts)
    if k.numel() and int(k.max()) >= (1 << num_bits):
        raise ValueError(f"counts up to {int(k.max())} do not fit in {num_bits} bits")
    dtype = layer.weight.dtype
    acc = None
    for b in range(num_bits):
        plane = ((k >> b) & 1).to(dtype)
        y = _without_bias(layer, plane) * float(2 ** b)
        acc = y if acc is None else acc + y
    q = torch.as_tensor(q, dtype=dtype, device=acc.device)
    return _add_bias(layer, acc * q)


@torch.no_grad()
def check_bitplanes(snn: nn.Module, x: torch.Tensor, T: int = 4) -> list[dict]:
    """Run a converted network for ``T`` steps and recompute, at every step, each ``Conv2d`` / ``Linear``
    that is fed directly by a neuron (or by a spiking max-pool fed directly by one: its outputs are whole
    counts of the neuron's q) as a sum of binary bit planes (:func:`bitplane_forward`).

    This checks Fig. 4's claim on a real network: the layer applied to multi-bit spikes ``k·q`` equals
    ``q · Σ_b 2^b · layer(plane_b)``, so it needs binary accumulates only. Layers fed through something
    else (an average pool makes fractional counts, a residual add mixes two neurons) are left out.

    Args:
        snn: a converted network (neurons :class:`~ann2snn.conversion.neurons.MultiBitIF`), any mode.
        x: an input batch ``[B, C, H, W]`` (direct encoding: the same current every step).
        T: time steps (>= 1).

    Returns:
        One dict per checked layer: ``layer`` (its name), ``neuron`` (the neuron feeding it), ``bits``
        (B = bits needed for the neuron's largest count K), ``max_abs_diff`` and ``max_rel_diff``
        (largest difference from ``layer(k·q)`` over all steps, relative to the largest ``|layer(k·q)|``),
        ``mean_popcount`` (binary accumulates per spike, averaged over the non-zero counts).

    Raises:
        UserError (a ValueError): ``T < 1``. ValueError: a neuron output that is not a whole multiple of its quantum ``q``.
    """
    from ann2snn.conversion.maxpool import SpikingMaxPool
    from ann2snn.conversion.neurons import MultiBitIF
    from ann2snn.ann.evaluate import as_model_input, model_dtype
    from ann2snn.conversion.simulate import reset_neurons, set_mode

    if T < 1:
        raise UserError(f"T must be >= 1, got {T}")
    # id(output tensor) -> (neuron name, the tensor): holding the tensor keeps its id from being reused
    outputs: dict[int, tuple[str, torch.Tensor]] = {}
    neurons = {n: m for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    stats: dict[str, dict] = {}
    handles = []
    for name, m in neurons.items():
        handles.append(m.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(id(out), (name, out))))

    def pool_hook(_m, inputs, out):
        """A spiking max-pool fed directly by a neuron sends whole counts of that neuron's q: its output is
        checked as that neuron's spikes."""
        src, held = outputs.get(id(inputs[0]), (None, None))
        if held is inputs[0]:
            outputs[id(out)] = (src, out)

    for m in snn.modules():
        if isinstance(m, SpikingMaxPool):
            handles.append(m.register_forward_hook(pool_hook))

    def layer_hook(name):
        def fn(layer, inputs, out):
            src, held = outputs.get(id(inputs[0]), (None, None))
            if held is not inputs[0]:
                return
            neuron = neurons[src]
            q = neuron.quantum().to(out.dtype)
            counts = torch.round(inputs[0] / q)
            if not torch.allclose(counts * q, inputs[0], rtol=0, atol=float(q) * 1e-4):
                raise ValueError(f"neuron '{src}' sent values that are not whole multiples of q = {float(q):g}")
            bits = max(1, int(neuron.cap).bit_length())
            planes = bitplane_forward(layer, counts, q, bits)
            scale = float(out.abs().max()) or 1.0
            diff = float((planes - out).abs().max())
            nz = counts[counts > 0]
            s = stats.setdefault(name, {"layer": name, "neuron": src, "bits": bits, "max_abs_diff": 0.0,
                                        "max_rel_diff": 0.0, "_pop": 0, "_spikes": 0})
            s["max_abs_diff"] = max(s["max_abs_diff"], diff)
            s["max_rel_diff"] = max(s["max_rel_diff"], diff / scale)
            s["_pop"] += int(popcount(nz).sum()) if nz.numel() else 0
            s["_spikes"] += nz.numel()
        return fn

    for name, m in snn.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_hook(layer_hook(name)))
    set_mode(snn, "snn")
    reset_neurons(snn)
    try:
        with probe_pass(snn, handles):
            x = as_model_input(x, model_dtype(snn))
            for _ in range(T):
                outputs.clear()
                snn(x)
    finally:
        reset_neurons(snn)
    rows = []
    for s in stats.values():
        s["mean_popcount"] = s.pop("_pop") / max(1, s.pop("_spikes"))
        rows.append(s)
    return rows
