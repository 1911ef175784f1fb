"""Max-pooling in a converted SNN: refuse it, make it spiking, or swap it for average pooling.

A max of spikes is not a max of rates: ``maxpool`` of each step's spikes, summed over steps, is at
least the max-pool of the summed spikes, and usually more. ``maxpool="spiking"`` keeps the ANN's own
pool exactly in the time-sum instead (:class:`SpikingMaxPool`): each step, the pool sends the
*increase* of the window maximum of its accumulated input,

    S_t = x_1 + ... + x_t                          (accumulated input, S_0 = 0)
    o_t = maxpool(S_t) − maxpool(S_{t−1})          (maxpool(S_0) = 0 is not computed: o_1 = maxpool(S_1))

so ``o_1 + ... + o_T = maxpool(S_T)`` (the sums telescope): the pool's time-averaged output is the
max-pool of its time-averaged input, which is what the ANN's pool computes from the rates. This is
the accumulated-input max-pool, one of the "spiking max-pooling" variants of the conversion
literature (e.g. Rueckauer et al., Front. Neurosci. 2017, §2.2.3, gate the pool by the accumulated
*output* rate; here the accumulated input is pooled, which makes the identity exact).

Properties (``tests/test_maxpool.py`` checks each):

* **Time-sum identity.** ``Σ_t o_t = maxpool(S_T)``, exactly (``torch.equal``) when every partial
  sum is representable: inputs that are whole multiples of a power-of-two quantum q (e.g. θ = 1 or
  θ = 0.5), counts below 2^24 in float32. For other θ the sums carry float rounding, one rounding per
  add (relative 2^-24 in float32).
* **Spike inputs stay spikes.** With inputs ``x_t ≥ 0`` that are whole multiples of q (the output of
  one IF / MBIF neuron), ``S_t`` only grows, so ``0 ≤ o_t ≤`` the window's largest input of that step,
  and ``o_t`` is a whole multiple of q: after an IF neuron the pool's output is 0 or θ (binary), after
  an MBIF neuron it stays within the neuron's count K. Each is exact for a power-of-two q and within
  float rounding otherwise.
* **ANN-mode parity.** In ANN mode the module runs the ANN's own pool: the converted network equals
  the ANN exactly.
* **A pool whose input is not spikes** (conv → max-pool → neuron): the time-sum identity still holds
  (up to float rounding), so the neuron after it integrates, over T steps, T × the max-pool of the
  average input current. With a constant input (the first layer under direct encoding) every step's
  output is the ANN's max-pool of that input. The outputs are currents: they can be negative and are
  not multiples of any q, which a neuron after the pool accepts.
* **State and memory.** Per batch it keeps the accumulated input ``S_t`` (the pool's input shape,
  e.g. ``[B, 64, 112, 112]`` for a torchvision ResNet's stem pool at 224 px) and the last window
  maximum (the output shape, a quarter of that for a 3×3 / stride-2 pool), both at least float32:
  1.25 × the input's size for such a pool, whatever T. :meth:`SpikingMaxPool.reset` frees both.

``maxpool="avg"`` swaps every max-pool for the average pool of the same geometry
(:func:`ann2snn.ann.pools.swap_maxpool_for_avgpool`). That changes the network, so it only
suits a model that is then trained or fine-tuned with the swap; a model trained with max-pooling and
converted without retraining is measurably off.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ann2snn.ann.quantizer import at_least_float32
from ann2snn.plumbing.errors import UserError

#: what conversion does with max-pooling modules
MAXPOOL_MODES = ("refuse", "spiking", "avg")
#: the max-pool modules :class:`SpikingMaxPool` can wrap
POOL_TYPES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
              nn.AdaptiveMaxPool3d)


def check_maxpool_mode(maxpool: str) -> str:
    """Return ``maxpool`` if it is one of :data:`MAXPOOL_MODES`.

    Raises:
        UserError: another value.
    """
    if maxpool not in MAXPOOL_MODES:
        raise UserError(f"unknown `maxpool` {maxpool!r}: use one of {', '.join(MAXPOOL_MODES)}")
    return maxpool


class SpikingMaxPool(nn.Module):
    """A max-pool that sends, each step, the increase of the window maximum of its accumulated input.

    Args:
        pool: the ANN's max-pool module (one of :data:`POOL_TYPES`; ``return_indices`` not supported).
            It is kept and used as is, in ANN mode and on the accumulated input.

    Shapes: ``forward(x)`` takes one step's input ``[B, C, H, W]`` (any shape the pool takes) and returns
    ``o_t = pool(S_t) − pool(S_{t−1})``, shaped as the pool's output (see the module docstring). With
    ``time_chunk = c > 1`` it takes ``c`` steps merged time-major into the batch, ``[c·B, ...]``, and
    returns ``[c·B, ...]``. The state (``S_t`` and the last maximum) persists across calls until
    :meth:`reset`, like a neuron's membrane potential.

    Raises:
        TypeError: ``pool`` is not a max-pool module, or returns indices.
    """

    def __init__(self, pool: nn.Module):
        super().__init__()
        if not isinstance(pool, POOL_TYPES) or getattr(pool, "return_indices", False):
            raise TypeError(f"SpikingMaxPool wraps a max-pool module without return_indices, got {pool!r}")
        self.pool = pool
        self.mode = "snn"
        #: steps merged into the batch of one call (time-batched simulation); 1 = one step per call
        self.time_chunk = 1
        #: the accumulated input S_t and the window maximum pool(S_t) of the last step (None: none yet)
        self.acc: torch.Tensor | None = None
        self.peak: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the accumulated input; the next step starts a new simulation."""
        self.acc = None
        self.peak = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "ann":
            return self.pool(x)
        if self.time_chunk > 1:  # x is [time_chunk · B, ...], time-major: run the steps in order
            steps = x.reshape(self.time_chunk, -1, *x.shape[1:])
            return torch.cat([self._step(steps[t]) for t in range(self.time_chunk)])
        return self._step(x)

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """One step: accumulate, pool, send the increase. The sums are at least float32 (as a neuron's
        membrane potential, see :meth:`ann2snn.conversion.neurons.MultiBitIF._step`)."""
        x = at_least_float32(x)
        acc = x if self.acc is None else self.acc + x
        peak = self.pool(acc)
        out = peak if self.peak is None else peak - self.peak
        self.acc, self.peak = acc, peak
        return out

    def extra_repr(self) -> str:
        return "o_t = maxpool(S_t) - maxpool(S_t-1), S_t = accumulated input"


def max_pools(model: nn.Module) -> list[str]:
    """Names of the max-pool modules of ``model`` (:data:`POOL_TYPES`, not yet wrapped), in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, POOL_TYPES) and n
            and not isinstance(_parent(model, n), SpikingMaxPool)]


def _parent(model: nn.Module, name: str) -> nn.Module:
    parent, _, _ = name.rpartition(".")
    return model.get_submodule(parent) if parent else model


def make_pools_spiking(model: nn.Module) -> list[str]:
    """Wrap every max-pool module of ``model`` in place in its own :class:`SpikingMaxPool`.

    A pool module called at several places would share one state between them: conversion checks
    that each is called once per forward pass (:func:`ann2snn.conversion.convert.convert`).

    Returns:
        The names of the wrapped pools (``<name>`` is now the SpikingMaxPool, ``<name>.pool`` the ANN's).

    Raises:
        TypeError: a max-pool that returns indices (see :class:`SpikingMaxPool`).
    """
    names = max_pools(model)
    for name in names:
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        setattr(holder, child, SpikingMaxPool(holder.get_submodule(child)))
    return names


def apply_maxpool(model: nn.Module, maxpool: str, note=None) -> nn.Module:
    """Prepare ``model``'s max-pooling for conversion, as ``maxpool`` says (module docstring).

    Args:
        model: the ANN (not changed: a copy is returned when there is anything to change).
        maxpool: ``"refuse"`` (returned as is; conversion then refuses a max-pool, naming it),
            ``"spiking"`` (returned as is; conversion wraps each max-pool module in a
            :class:`SpikingMaxPool`) or ``"avg"`` (a copy with every max-pool swapped for average pooling).
        note: called with one line for the user: the warning that ``avg`` changes the network, or,
            for ``spiking``/``avg`` on a model without max-pool modules, that there is nothing to do.

    Returns:
        The model to convert.

    Raises:
        UserError: an unknown ``maxpool``.
    """
    from ann2snn.ann.pools import swap_maxpool_for_avgpool

    check_maxpool_mode(maxpool)
    note = note or (lambda _msg: None)
    if maxpool == "refuse":
        return model
    pools = max_pools(model)
    if not pools:
        note(f"`maxpool` {maxpool}: the model has no max-pool module, nothing to change")
        return model
    if maxpool == "spiking":
        return model
    note(f"`maxpool` avg swaps {len(pools)} max-pool(s) for average pooling ({', '.join(pools)}): that changes "
         "the network, so it suits training or fine-tuning with the swap, not a network trained with max-pooling")
    return swap_maxpool_for_avgpool(copy.deepcopy(model))
