"""Quantization-clip activations for the ANN that will be converted.

Two activations, both with one trainable threshold λ per call site and a straight-through floor:

* :class:`QCFS` -- Bu et al., "Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency
  SNNs" (ICLR 2022): ``λ · clip(floor(x·L/λ + 0.5)/L, 0, 1)``, written here as
  ``q · clip(floor((x + q/2)/q), 0, L)`` with quantum ``q = λ/L``.
* :class:`MatchedQuant` -- the activation whose transfer function *is* one MBIF(m, n) step from
  ``v_0 = q/2`` with ``θ = λ`` (docs/design.md §3.4): ``λ · clip(floor(x·2^n/λ + 0.5)/2^n, 0, 2^m − 2^-n)``,
  i.e. quantum ``q = λ·2^-n`` and largest count ``K = 2^(m+n) − 1``.

Both call :func:`ann2snn.ann.quantizer.fire_count`, the same function the neuron fires with.
"""

from __future__ import annotations

import torch
from torch import nn

from ann2snn.plumbing import fuse
from ann2snn.plumbing.errors import UserError
from ann2snn.ann.quantizer import at_least_float32, check_bits, fire_count, max_count

#: λ is kept at or above this value in the forward pass (see :meth:`QuantClip.threshold`).
LAMBDA_MIN = 1e-3


def quant_clip(x: torch.Tensor, q: torch.Tensor, k_max: int) -> torch.Tensor:
    """``q · clip(floor((x + q/2)/q), 0, K)``: the quantization clip of :class:`QuantClip`.

    ``x``: pre-activation, any shape (e.g. ``[B, C, H, W]``); ``q``: the quantum, a 0-dim tensor
    (trainable through λ); ``k_max``: K. Straight-through floor (:func:`fire_count`).
    """
    return fire_count(x + q * 0.5, q, k_max) * q


class QuantClip(nn.Module):
    """Base of the quantization-clip activations: ``y = q · clip(floor((x + q/2)/q), 0, K)``.

    Input and output: any shape, e.g. ``[B, C, H, W]``; the output is ``λ``-scaled and lies in
    ``[0, K·q]``. ``raw_lambda`` is the trainable scalar; the forward pass uses
    :meth:`threshold`, which is always ``>= LAMBDA_MIN`` (see there).
    """

    def __init__(self, lambda_init: float = 8.0):
        super().__init__()
        if not (isinstance(lambda_init, (int, float)) and lambda_init > 0 and lambda_init < float("inf")):
            raise UserError(f"`lambda_init` must be a positive number, got {lambda_init!r}")
        self.raw_lambda = nn.Parameter(torch.tensor(float(lambda_init)))
        #: in training (gradients on) on feature maps ``[B, C, H, W]``, compute :func:`quant_clip` as one
        #: compiled kernel forward and one backward (:mod:`ann2snn.plumbing.fuse`; ``train-ann --fuse``).
        #: The output and the input gradient are bit-identical to the plain path; λ's gradient is a sum
        #: whose order differs (≈1e-6 relative). Evaluation and 2-D classifier inputs stay plain (fewer
        #: compilations; they are a small part of the time).
        self.fused = False

    # subclasses define these two
    def quantum_of(self, lam: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def k_max(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def threshold(self) -> torch.Tensor:
        """The λ used in the forward pass, a 0-dim tensor, never below ``LAMBDA_MIN``.

        QCFS users saw λ go negative with a small init and a high learning rate. Here the value is
        clamped at ``LAMBDA_MIN`` while the gradient passes straight through the clamp, so a λ that
        dipped low can still recover.
        """
        raw = self.raw_lambda
        return raw + (raw.clamp_min(LAMBDA_MIN) - raw).detach()

    def quantum(self) -> torch.Tensor:
        """The quantum q (0-dim tensor), in the units of the activation."""
        return self.quantum_of(self.threshold())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quantum()
        x = at_least_float32(x)  # under bf16 autocast the quantizer still runs in float32, as the neuron's does
        if self.fused and x.dim() == 4 and torch.is_grad_enabled():  # training on feature maps [B, C, H, W]
            return fuse.run_fused(self, quant_clip, x, q, self.k_max)
        return quant_clip(x, q, self.k_max)


class QCFS(QuantClip):
    """QCFS activation with L levels (Bu et al., ICLR 2022; the seed's reference [16]).

    ``QCFS(x) = λ · clip(floor(x·L/λ + 0.5)/L, 0, 1)``; quantum ``q = λ/L``, ``K = L``.

    Args:
        levels: quantization levels L (QCFS uses 4 on CIFAR, 8 on ImageNet); must be >= 1.
        lambda_init: initial λ (QCFS: 8.0).

    Raises:
        UserError: for ``levels < 1`` or a non-positive ``lambda_init``.
    """

    kind = "qcfs"

    def __init__(self, levels: int = 4, lambda_init: float = 8.0):
        if not (isinstance(levels, int) and levels >= 1):
            raise UserError(f"`levels` must be a whole number >= 1, got {levels!r}")
        super().__init__(lambda_init)
        self.levels = levels

    def quantum_of(self, lam: torch.Tensor) -> torch.Tensor:
        return lam / self.levels

    @property
    def k_max(self) -> int:
        return self.levels

    def spec(self) -> dict:
        return {"activation": "qcfs", "levels": self.levels}

    def extra_repr(self) -> str:
        return f"L={self.levels}, lambda={self.threshold().item():.4g}"


class MatchedQuant(QuantClip):
    """The "matched" activation: exactly one MBIF(m, n) step from ``v_0 = q/2`` with ``θ = λ``.

    ``y = λ · clip(floor(x·2^n/λ + 0.5)/2^n, 0, 2^m − 2^-n)`` (docs/design.md §3.4); quantum ``q = λ·2^-n``,
    ``K = 2^(m+n) − 1``. With m=1, n=0 it equals :class:`QCFS` with L=1.

    Args:
        int_bits: m, frac_bits: n; need m, n >= 0 and 1 <= m+n <= 16.
        lambda_init: initial λ.

    Raises:
        UserError: for bit widths out of range or a non-positive ``lambda_init``.
    """

    kind = "matched"

    def __init__(self, int_bits: int = 1, frac_bits: int = 3, lambda_init: float = 8.0):
        check_bits(int_bits, frac_bits)
        super().__init__(lambda_init)
        self.int_bits = int_bits
        self.frac_bits = frac_bits

    def quantum_of(self, lam: torch.Tensor) -> torch.Tensor:
        return lam * (2.0 ** -self.frac_bits)

    @property
    def k_max(self) -> int:
        return max_count(self.int_bits, self.frac_bits)

    def spec(self) -> dict:
        return {"activation": "matched", "int_bits": self.int_bits, "frac_bits": self.frac_bits}

    def extra_repr(self) -> str:
        return f"m={self.int_bits}, n={self.frac_bits}, lambda={self.threshold().item():.4g}"


class LambdaGuard:
    """Keeps every stored λ of a model at or above :data:`LAMBDA_MIN` during training, and says so.

    QCFS users saw λ go negative with a small ``--lambda-init`` and a large ``--lr`` (docs/design.md §2).
    :meth:`after_step` clamps each site's ``raw_lambda`` in place after the optimizer step (no host
    sync; a normal run never reaches the floor, so it changes nothing there) and remembers the lowest
    value each site was pushed to. :meth:`report` reads that once (call it every few steps and at the
    end of an epoch) and returns one warning line per site that newly hit the floor.
    """

    def __init__(self, model: nn.Module):
        self.sites = [(name, m) for name, m in model.named_modules() if isinstance(m, QuantClip)]
        self.lowest = None
        self.warned: set[str] = set()

    @torch.no_grad()
    def after_step(self) -> None:
        if not self.sites:
            return
        raws = torch.stack([m.raw_lambda.detach() for _, m in self.sites])
        self.lowest = raws if self.lowest is None else torch.minimum(self.lowest, raws)
        for _, m in self.sites:
            m.raw_lambda.clamp_(min=LAMBDA_MIN)

    def report(self) -> list[str]:
        if self.lowest is None:
            return []
        lines = []
        for (name, _), low in zip(self.sites, self.lowest.tolist()):
            if low < LAMBDA_MIN and name not in self.warned:
                self.warned.add(name)
                lines.append(f"warning: λ of activation '{name}' was pushed to {low:.4g} and is held at "
                             f"{LAMBDA_MIN:g}; λ must stay positive: lower --lr or raise --lambda-init")
        return lines


def activation_factory(activation: str, levels: int = 4, int_bits: int = 1, frac_bits: int = 3,
                       lambda_init: float = 8.0):
    """Return a zero-argument callable that makes a *new* activation module on each call.

    Models call it once per activation call site, so that every site has its own λ.

    Raises:
        UserError: for an unknown ``activation`` or bad levels / bits / λ.
    """
    if activation == "qcfs":
        QCFS(levels, lambda_init)  # validate now, not at the first call site
        return lambda: QCFS(levels, lambda_init)
    if activation == "matched":
        MatchedQuant(int_bits, frac_bits, lambda_init)
        return lambda: MatchedQuant(int_bits, frac_bits, lambda_init)
    if activation == "relu":  # a plain ReLU network, converted with calibrated thresholds
        return nn.ReLU
    raise UserError(f"unknown activation {activation!r}: use 'qcfs', 'matched' or 'relu'")
