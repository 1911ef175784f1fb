"""Multi-bit integrate-and-fire neurons (the SNN side of conversion).

One rule covers IF and MBIF (docs/design.md §3.1). With m integer bits, n fractional bits, threshold θ,
quantum ``q = θ·2^-n`` and largest count ``K = 2^(m+n) − 1``, at each time step t::

    v   ← v + x_t                         charge (x_t: input current at step t)
    k_t = clip(floor(v / q), 0, K)        fire: an integer count
    s_t = k_t · q                         output sent downstream (so v = q fires)
    v   ← v − s_t                         reset by subtraction

IF is the case m=1, n=0 (q = θ, K = 1). MBIF(1+3) sends values in {0, 1/8, ..., 15/8}·θ. Note that
MBIF's per-step maximum ``(2^m − 2^-n)·θ`` exceeds θ (the ANN's clip) whenever m >= 1.

**Correction** (docs/design.md §3.10, :mod:`ann2snn.conversion.correct`): a neuron may carry a per-channel
bias current ``b_c``, added to its input at every step (``v ← v + x_t + b_c``), and a per-channel
offset ``δ_c`` of its initial potential (``v_0 + δ_c``). Both act in SNN mode only; ANN mode runs the
source activation unchanged.

**Per-step ceiling** (docs/design.md §3.5): the largest count K can be capped below ``2^(m+n) − 1``
(:func:`resolve_cap`). ``cap="theta"`` gives ``K = 2^n``, so no step sends more than θ. With
``v_0 = q/2`` and a constant input, MBIF(m, n) capped at θ has after T steps the same time-averaged
output as IF (``v_0 = θ/2``) after ``2^n·T`` steps; capped at ``K = L = 2^n`` one step is QCFS(L).
"""

from __future__ import annotations

import torch
from torch import nn

from ann2snn.plumbing import fuse
from ann2snn.plumbing.errors import UserError
from ann2snn.ann.quantizer import at_least_float32, check_bits, fire_count, max_count

V_INIT_MODES = ("half-lsb", "half-threshold", "zero")


def if_step(v: torch.Tensor, x: torch.Tensor, q: torch.Tensor, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One IF/MBIF time step (docs/design.md §3.1): charge, fire, reset by subtraction.

    Args:
        v: membrane potential before the step, ``[B, ...]`` (or a 0-dim tensor: the same v_0 everywhere).
        x: input current of the step, ``[B, ...]``, in units of θ's scale.
        q: the quantum θ·2^-n, a 0-dim tensor.
        k_max: the largest count K.

    Returns:
        ``(s, v_next)``: the spike value ``s = k·q`` (``k = clip(floor((v + x)/q), 0, K)``) and the
        potential after reset by subtraction, both ``[B, ...]``.
    """
    v = v + x
    s = fire_count(v, q, k_max) * q
    return s, v - s


def resolve_cap(cap, int_bits: int, frac_bits: int) -> int:
    """The largest spike count K of an MBIF(m, n) neuron for a per-step ceiling ``cap``.

    Args:
        cap: ``None`` or ``"full"`` (the seed's full range, ``K = 2^(m+n) − 1``), ``"theta"``
            (``K = min(2^n, 2^(m+n) − 1)``: each step sends at most θ), or a whole count K
            (int or decimal string) with ``1 <= K <= 2^(m+n) − 1``.
        int_bits, frac_bits: m and n.

    Returns:
        K as an int.

    Raises:
        UserError: a cap that is not ``full``, ``theta`` or a whole count in ``[1, 2^(m+n) − 1]``.
    """
    full = max_count(int_bits, frac_bits)
    if cap is None or cap == "full":
        return full
    if cap == "theta":
        return min(1 << frac_bits, full)
    text = str(cap).strip()
    if isinstance(cap, bool) or not (isinstance(cap, int) or (text.isascii() and text.isdigit())):
        raise UserError(f"bad cap {cap!r}: use full, theta or a whole count K with 1 <= K <= {full} "
                        f"(the largest count of {int_bits}+{frac_bits})")
    k = int(text)
    if not 1 <= k <= full:
        raise UserError(f"cap K={k} is out of range for {int_bits}+{frac_bits}: need 1 <= K <= {full}")
    return k


class MultiBitIF(nn.Module):
    """Multi-bit IF neuron with reset by subtraction, single-step (one call = one time step).

    Args:
        theta: threshold θ > 0 (the source activation's λ), a float or 0-dim tensor.
        int_bits: m. frac_bits: n (need m, n >= 0 and 1 <= m+n <= 16).
        v_init: initial membrane potential v_0: ``half-lsb`` (q/2; θ/2 for IF, QCFS's choice),
            ``half-threshold`` (θ/2) or ``zero``.
        cap: the per-step ceiling, see :func:`resolve_cap` (default: the full ``2^(m+n) − 1``).
        ann_activation: the source ANN activation module, used when :attr:`mode` is ``"ann"``
            (ANN-mode parity: the converted network then computes exactly the ANN).

    Shapes: ``forward(x)`` takes the input current of one step, ``[B, ...]`` (e.g. ``[B, C, H, W]``),
    and returns the spike value ``s_t = k_t·q`` of the same shape (units of θ). With
    ``time_chunk = c > 1`` it takes ``c`` steps merged time-major into the batch, ``[c·B, ...]``,
    runs them in order and returns ``[c·B, ...]``. The membrane potential ``v`` persists across
    calls until :meth:`reset`.

    Raises:
        UserError: for θ <= 0 or not finite, bad bit widths, an unknown ``v_init`` or a bad cap.
    """

    def __init__(self, theta, int_bits: int = 1, frac_bits: int = 0, v_init: str = "half-lsb",
                 ann_activation: nn.Module | None = None, cap=None):
        super().__init__()
        check_bits(int_bits, frac_bits)
        if v_init not in V_INIT_MODES:
            raise UserError(f"unknown v_init {v_init!r}: use one of {', '.join(V_INIT_MODES)}")
        theta = torch.as_tensor(theta, dtype=torch.float32).detach().clone().reshape(())
        self.register_buffer("theta", theta)
        self.check_theta()
        self.int_bits = int_bits
        self.frac_bits = frac_bits
        self.v_init = v_init
        #: the largest count K actually used (the cap; 2^(m+n) − 1 when uncapped)
        self.cap = resolve_cap(cap, int_bits, frac_bits)
        self.ann_activation = ann_activation
        self.mode = "snn"
        #: steps merged into the batch of one call (time-batched simulation); 1 = one step per call
        self.time_chunk = 1
        #: run each step on feature maps ``[B, C, H, W]`` as one compiled kernel (:mod:`ann2snn.plumbing.fuse`);
        #: bit-identical to the plain step. 2-D inputs (classifier layers, small) stay plain: fewer compilations.
        self.fused = False
        self.v: torch.Tensor | None = None
        # per-channel corrections [C] (SNN mode only; None = none): the bias current added at every
        # step, and the offset of v_0. Buffers, so they travel with state_dict() and .to().
        self.register_buffer("bias_current", None)
        self.register_buffer("v_offset", None)

    @property
    def k_max(self) -> int:
        """Largest spike count K: 2^(m+n) − 1, or the cap when one is set."""
        return self.cap

    def quantum(self) -> torch.Tensor:
        """q = θ·2^-n (0-dim tensor)."""
        return self.theta * (2.0 ** -self.frac_bits)

    def initial_potential(self) -> torch.Tensor:
        """v_0 as a 0-dim tensor, from :attr:`v_init`."""
        if self.v_init == "half-lsb":
            return self.quantum() * 0.5
        if self.v_init == "half-threshold":
            return self.theta * 0.5
        return torch.zeros_like(self.theta)

    def set_correction(self, bias_current: torch.Tensor | None = None, v_offset: torch.Tensor | None = None) -> None:
        """Set the per-channel corrections (docs/design.md §3.10), each ``[C]`` in the units of the input
        current (θ's scale), or None to leave one as it is. They act in SNN mode only."""
        if bias_current is not None:
            self.bias_current = bias_current.detach().clone().reshape(-1).to(self.theta.dtype)
        if v_offset is not None:
            self.v_offset = v_offset.detach().clone().reshape(-1).to(self.theta.dtype)

    @staticmethod
    def _per_channel(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``c [C]`` shaped to broadcast over ``x [B, C, ...]`` (channel axis 1)."""
        if x.dim() < 2 or x.shape[1] != c.numel():
            raise RuntimeError(f"a correction of {c.numel()} channels meets an input of shape {tuple(x.shape)}")
        return c.view(1, -1, *([1] * (x.dim() - 2)))

    def check_theta(self) -> None:
        """Raise UserError unless θ is finite and > 0."""
        t = float(self.theta)
        if not (t > 0 and t < float("inf")):
            raise UserError(f"threshold theta={t:g} is not a positive number; the ANN's λ must be > 0 "
                            "(retrain, or check the checkpoint)")

    def reset(self) -> None:
        """Forget the membrane potential; the next step starts again from v_0."""
        self.v = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "ann":
            if self.ann_activation is None:
                raise RuntimeError("this neuron has no source activation to run in ANN mode")
            return self.ann_activation(x)
        if self.time_chunk > 1:  # x is [time_chunk · B, ...], time-major: run the steps in order
            steps = x.reshape(self.time_chunk, -1, *x.shape[1:])
            return torch.cat([self._step(steps[t]) for t in range(self.time_chunk)])
        return self._step(x)

    def dry_run(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The outputs of ``steps`` SNN steps from v_0, without touching the neuron's state.

        Args:
            x: the input currents of the steps, time-major ``[steps · B, ...]``.

        Returns:
            ``[steps · B, ...]``: what :meth:`forward` would return from a reset neuron (with its current
            corrections). Used by correction (:mod:`ann2snn.conversion.correct`) to try a correction.
        """
        saved = self.v, self.time_chunk, self.fused
        self.v, self.time_chunk, self.fused = None, 1, False
        try:
            xs = x.reshape(steps, -1, *x.shape[1:])
            return torch.cat([self._step(xs[t]) for t in range(steps)])
        finally:
            self.v, self.time_chunk, self.fused = saved

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """One time step: charge, fire, reset by subtraction (see the module docstring).

        ``v`` is at least float32 whatever the input's dtype (e.g. bfloat16 convolutions under
        ``--amp bf16``): bfloat16 keeps 8 significant bits, so at v ≈ θ its spacing is θ/128 and every
        charge below θ/256 would be rounded away, silently dropping spikes a long simulation should
        fire. A float64 network (``--precision float64``) keeps a float64 ``v``.
        """
        x = at_least_float32(x)
        if self.bias_current is not None:  # the bias correction: a constant current every step
            x = x + self._per_channel(self.bias_current, x)
        q = self.quantum()
        if self.v is None:  # the first step runs plain: v_0 broadcast over x (it keeps v_0's dtype if wider)
            v0 = self.initial_potential().expand_as(x)
            if self.v_offset is not None:  # the potential correction: v_0 + δ_c
                v0 = v0 + self._per_channel(self.v_offset, x)
            s, self.v = if_step(v0, x, q, self.k_max)
        elif self.fused and x.dim() == 4:  # feature maps: one compiled kernel, bit-identical (ann2snn.plumbing.fuse)
            s, self.v = fuse.run_fused(self, if_step, self.v, x, q, self.k_max)
        else:
            s, self.v = if_step(self.v, x, q, self.k_max)
        return s

    def extra_repr(self) -> str:
        cap = "" if self.cap == max_count(self.int_bits, self.frac_bits) else f", K={self.cap}"
        corrected = "".join(f", {name}[{getattr(self, name).numel()}]" for name in ("bias_current", "v_offset")
                            if getattr(self, name) is not None)
        return (f"theta={float(self.theta):.4g}, m={self.int_bits}, n={self.frac_bits}{cap}, "
                f"v_init={self.v_init}, reset=subtract{corrected}")
