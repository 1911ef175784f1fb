"""Multi-bit leaky integrate-and-fire (MBLIF) neurons for direct training (docs/design.md §3.9).

The seed's LIF (Appendix A.1) is ``u_t = (1 − 1/τ)·u_{t−1}·(1 − s_{t−1}) + x_t``, a hard reset after
a spike. Its multi-bit form fires an integer count and sends the count scaled by ``2^-n`` (the seed's
Eq. 6 and 8: spike values are counts·2^-n, *not* multiples of V_th). With m integer bits, n
fractional bits, threshold ``V_th``, quantum ``q = V_th·2^-n`` and largest count
``K = 2^(m+n) − 1``, one step of :class:`MBLIF` is::

    u_t = λ·c_{t−1} + x_t                         charge and leak, λ = 1 − 1/τ, c_{-1} = 0
    k_t = clip(floor(u_t / q), 0, K)              fire: an integer count 0..K (≥ rule: u = q fires)
    s_t = k_t · 2^-n                              output: values {0, 2^-n, …, 2^m − 2^-n}
    c_t = u_t · [k_t = 0]                         reset "hard"      (default)
    c_t = u_t − k_t · q                           reset "subtract"

**Hard reset for a multi-level spike.** The seed's factor ``(1 − s_{t−1})`` is a 0/1 gate only for
binary spikes. For a multi-bit spike it would be negative (s = 2 gives −1) or fractional (s = 0.5
keeps half the potential), which is not a reset. We read "hard reset after a spike" as: *the
potential returns to 0 whenever the neuron fired at all* (``k_{t−1} > 0``), whatever the count, and
leaks on otherwise. For LIF (k ∈ {0, 1}, s = k) this is exactly the seed's formula.

``reset="subtract"`` removes what was fired, in potential units: ``k·V_th·2^-n = k·q`` (which is
``s·V_th``, not ``s``), so the residue below one quantum is kept (and leaks).

LIF is ``MBLIF(int_bits=1, frac_bits=0)``: q = V_th, K = 1, s ∈ {0, 1}.

**Surrogate gradient.** The count is a staircase of K unit steps at ``u = j·q`` (j = 1..K):
``k(u) = Σ_j H(u/q − j)``. Its derivative, a comb of Dirac deltas, is replaced by a sum of shifted
arctan surrogates, one per step edge::

    dk/du ≈ (1/q) · Σ_{j=1..K} (α/2) / (1 + (π·α·(u/q − j)/2)²)

Each bump is the derivative of the arctan surrogate of Fang et al. (ICCV 2021, "Incorporating
learnable membrane time constant to enhance learning of spiking neural networks"; SpikingJelly's
``surrogate.ATan``), written in units of one quantum so that it has unit area: the surrogate of the
whole staircase integrates to K·(1/q)·q = K, the height of the staircase, and the surrogate of ``s``
(= k·2^-n) peaks at ``α/(2·V_th)`` at every edge whatever m and n. Summing one surrogate per level
edge follows multi-level spiking works (Feng et al., IJCAI 2022, "Multi-level firing with spiking
DS-ResNet", which sums one rectangular surrogate per level).

*Width*: each bump's half width at half maximum is ``2/(π·α)`` quanta, i.e. ``2·q/(π·α)`` in
potential units; the default α = 2 (SpikingJelly's default) gives 1/π ≈ 0.32 quanta (0.19 for the
seed's LIF, V_th = 0.6). The tails decay as 1/u², so no membrane value gets an exactly zero gradient
except through float underflow far away.

*Finite everywhere*: the backward pass computes in float32 whatever the input dtype;
``1/(1 + z²)`` lies in [0, 1] for every z, including z = ±inf (it gives 0), so the gradient is finite
for every finite or infinite u in float32 and bfloat16 (only a NaN potential gives NaN). The cost
of the backward pass is O(K) element-wise operations.

The reset gate (hard) and the subtracted count (subtract) are detached from the graph by default
(``detach_reset=True``, the usual choice in direct training, e.g. SpikingJelly's ``detach_reset``):
gradients flow through the spike and through the membrane of steps that did not fire.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ann2snn.ann.quantizer import check_bits, fire_count, max_count
from ann2snn.plumbing import fuse
from ann2snn.plumbing.errors import UserError, positive_number

RESET_MODES = ("hard", "subtract")


class MultiLevelSpike(torch.autograd.Function):
    """``k = clip(floor(u/q), 0, K)`` forward; sum-of-shifted-arctan surrogate backward (see module doc).

    ``forward(u, q, k_max, alpha)``: ``u`` any shape and float dtype; ``q > 0`` and ``alpha > 0``
    Python floats; returns the counts as a tensor of ``u``'s dtype.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, q: float, k_max: int, alpha: float) -> torch.Tensor:  # noqa: D401
        ctx.save_for_backward(u)
        ctx.q, ctx.k_max, ctx.alpha = q, k_max, alpha
        # the shared quantizer (ann2snn.ann.quantizer), in float32: counts up to 2^16 − 1 are exact
        return fire_count(u.float(), q, k_max).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        g = surrogate_derivative(u, ctx.q, ctx.k_max, ctx.alpha)
        return (grad.float() * g).to(u.dtype), None, None, None


def surrogate_derivative(u: torch.Tensor, q: float, k_max: int, alpha: float = 2.0) -> torch.Tensor:
    """The surrogate of ``dk/du`` (float32, shaped like ``u``): ``(1/q)·Σ_j (α/2)/(1 + (πα(u/q − j)/2)²)``.

    Every term lies in ``[0, α/(2q)]``, so the result is finite for any non-NaN ``u``.
    """
    z = u.detach().float() / q
    c = math.pi * alpha / 2.0
    acc = torch.zeros_like(z)
    for j in range(1, k_max + 1):
        acc += torch.reciprocal(1.0 + torch.square(c * (z - j)))
    return acc * (alpha / (2.0 * q))


def multilevel_spike(u: torch.Tensor, q: float, k_max: int, alpha: float = 2.0) -> torch.Tensor:
    """Integer spike counts ``clip(floor(u/q), 0, K)`` with the multi-level arctan surrogate gradient."""
    return MultiLevelSpike.apply(u, float(q), int(k_max), float(alpha))



def mblif_steps(x: torch.Tensor, decay: float, q: float, k_max: int, unit: float, hard: bool):
    """All T steps of :class:`MBLIF` in one function (what the fused step compiles).

    The same float operations in the same order as :meth:`MBLIF.forward`'s plain loop (charge and
    leak ``u = λ·c + x_t``; ``k = clip(floor(u/q), 0, K)``; ``s = k·2^-n``; reset), so the compiled
    kernel gives bit-identical spikes (tests/test_fused_mblif.py).

    Args:
        x: input currents ``[T, B, ...]``, float32.
        decay: λ = 1 − 1/τ. q: the quantum V_th·2^-n. k_max: K. unit: 2^-n. hard: hard reset (else subtract).

    Returns:
        ``(s, u)``: spike values and charged potentials, both ``[T, B, ...]``.
    """
    carry = torch.zeros_like(x[0])
    spikes, potentials = [], []
    for t in range(x.shape[0]):
        u = decay * carry + x[t]
        k = torch.clamp(torch.floor(u / q), 0, k_max)
        spikes.append(k * unit)
        potentials.append(u)
        carry = u * (k == 0).to(u.dtype) if hard else u - k * q
    return torch.stack(spikes), torch.stack(potentials)


def mblif_steps_backward(grad_s: torch.Tensor, u: torch.Tensor, decay: float, q: float, k_max: int, unit: float,
                         alpha: float, hard: bool) -> torch.Tensor:
    """The input gradient ``dL/dx [T, B, ...]`` of :func:`mblif_steps`, with the reset detached.

    Backpropagation through time, last step first: ``g_u = (dL/ds_t · 2^-n) · k'(u_t) + g_c · r_t``,
    ``dL/dx_t = g_u`` and ``g_c ← λ · g_u``, where ``k'`` is :func:`surrogate_derivative` and
    ``r_t = [k_t = 0]`` (hard reset) or 1 (subtract; the subtracted count is detached). These are the
    products and sums that autograd forms for the plain loop; each ``g_u`` adds two terms, and a sum
    of two floats does not depend on their order, so the gradient is the same.
    """
    g = surrogate_derivative(u, q, k_max, alpha)
    grads = []
    carry = torch.zeros_like(u[0])
    for t in range(u.shape[0] - 1, -1, -1):
        from_spike = grad_s[t] * unit * g[t]
        if hard:
            from_carry = carry * (torch.clamp(torch.floor(u[t] / q), 0, k_max) == 0).to(u.dtype)
        else:
            from_carry = carry
        gu = from_spike + from_carry
        grads.append(gu)
        carry = gu * decay
    return torch.stack(grads[::-1])


class _FusedMBLIF(torch.autograd.Function):
    """:func:`mblif_steps` forward and :func:`mblif_steps_backward` backward, each run compiled
    (:func:`ann2snn.plumbing.fuse.run_fused`: where ``torch.compile`` fails, the plain function runs
    with one warning and the neuron switches to its plain step)."""

    @staticmethod
    def forward(ctx, x, owner, decay, q, k_max, unit, alpha, hard):  # noqa: D401
        s, u = fuse.run_fused(owner, mblif_steps, x, decay, q, k_max, unit, hard)
        ctx.save_for_backward(u)
        ctx.args = (owner, decay, q, k_max, unit, alpha, hard)
        return s

    @staticmethod
    def backward(ctx, grad_s):
        (u,) = ctx.saved_tensors
        owner, decay, q, k_max, unit, alpha, hard = ctx.args
        args = (grad_s.float().contiguous(), u, decay, q, k_max, unit, alpha, hard)
        # a forward that fell back to the plain function (and warned) takes the plain backward too
        gx = fuse.run_fused(owner, mblif_steps_backward, *args) if owner.fused else mblif_steps_backward(*args)
        return gx, None, None, None, None, None, None, None


class MBLIF(nn.Module):
    """Multi-bit LIF neuron, multi-step: ``[T, B, ...]`` input currents → ``[T, B, ...]`` spike values.

    Args:
        int_bits: m; frac_bits: n (m, n >= 0, 1 <= m+n <= 16; LIF is 1, 0).
        tau: membrane time constant τ >= 1; the leak keeps ``1 − 1/τ`` of the potential per step
            (τ = 1: no memory; ``float('inf')``: no leak, an IF neuron). Seed: 4.
        v_th: threshold V_th > 0 (seed: 0.6). Counts are taken in quanta ``q = V_th·2^-n``.
        reset: ``hard`` (to 0 after any spike, k > 0; the default) or ``subtract`` (minus k·q).
        surrogate_alpha: sharpness α > 0 of the per-edge arctan surrogate (half width at half
            maximum ``2/(π·α)`` quanta). Default 2.
        detach_reset: keep the reset out of the graph (default True).

    Every call starts from a zero potential (no state is kept between calls, so batches and models
    never share state). The output ``s_t = k_t·2^-n`` has the input's dtype. With
    ``return_potential=True`` the call returns ``(s, u)``, u being the charged potential ``u_t``
    that was compared with the threshold (before the reset).

    Raises:
        UserError: bad bits, τ < 1, V_th or α not positive, unknown reset mode.
    """

    def __init__(self, int_bits: int = 1, frac_bits: int = 0, tau: float = 4.0, v_th: float = 0.6,
                 reset: str = "hard", surrogate_alpha: float = 2.0, detach_reset: bool = True):
        super().__init__()
        check_bits(int_bits, frac_bits)
        try:
            tau_f = float(tau)
        except (TypeError, ValueError):
            tau_f = float("nan")
        if not tau_f >= 1.0:
            raise UserError(f"tau must be >= 1 (the leak keeps 1 - 1/tau of the potential), got {tau!r}")
        if reset not in RESET_MODES:
            raise UserError(f"unknown reset {reset!r}: use one of {', '.join(RESET_MODES)}")
        self.int_bits, self.frac_bits = int_bits, frac_bits
        self.tau = tau_f
        self.v_th = positive_number("v_th", v_th)
        self.reset = reset
        self.surrogate_alpha = positive_number("surrogate_alpha", surrogate_alpha)
        self.detach_reset = bool(detach_reset)
        #: take the fused step (all T steps as one compiled kernel forward and one backward, with the
        #: reset detached; ``train-snn --fuse``); the plain loop otherwise. Same spikes either way.
        self.fused = False

    @property
    def k_max(self) -> int:
        """Largest count K = 2^(m+n) − 1."""
        return max_count(self.int_bits, self.frac_bits)

    @property
    def quantum(self) -> float:
        """q = V_th·2^-n: the potential worth one count."""
        return self.v_th * 2.0 ** -self.frac_bits

    @property
    def decay(self) -> float:
        """λ = 1 − 1/τ."""
        return 1.0 - 1.0 / self.tau

    def forward(self, x: torch.Tensor, return_potential: bool = False):
        if x.dim() < 2:
            raise ValueError(f"MBLIF expects [T, B, ...] input currents, got shape {tuple(x.shape)}")
        q, k_max, unit = self.quantum, self.k_max, 2.0 ** -self.frac_bits
        x = x.float()  # the membrane potential stays float32 under bf16 autocast (see MultiBitIF._step)
        if self.fused and self.detach_reset and not return_potential:
            return _FusedMBLIF.apply(x, self, self.decay, q, k_max, unit, self.surrogate_alpha,
                                     self.reset == "hard")
        carry = torch.zeros_like(x[0])
        spikes, potentials = [], []
        for t in range(x.shape[0]):
            u = self.decay * carry + x[t]
            k = multilevel_spike(u, q, k_max, self.surrogate_alpha)
            spikes.append(k * unit)
            if return_potential:
                potentials.append(u)
            kr = k.detach() if self.detach_reset else k
            if self.reset == "hard":
                carry = u * (kr == 0).to(u.dtype) if self.detach_reset else u * (1.0 - torch.clamp(kr, max=1.0))
            else:
                carry = u - kr * q
        s = torch.stack(spikes)
        return (s, torch.stack(potentials)) if return_potential else s

    def extra_repr(self) -> str:
        return (f"m={self.int_bits}, n={self.frac_bits}, tau={self.tau:g}, v_th={self.v_th:g}, reset={self.reset}, "
                f"alpha={self.surrogate_alpha:g}")


def LIF(tau: float = 4.0, v_th: float = 0.6, reset: str = "hard", **kwargs) -> MBLIF:
    """The seed's LIF neuron: ``MBLIF(int_bits=1, frac_bits=0)``."""
    return MBLIF(1, 0, tau=tau, v_th=v_th, reset=reset, **kwargs)


def describe_mblif(int_bits: int, frac_bits: int) -> str:
    """``LIF`` for 1+0, else ``MBLIF m+n`` (the seed's Table 3 labels)."""
    return "LIF" if (int_bits, frac_bits) == (1, 0) else f"MBLIF {int_bits}+{frac_bits}"
