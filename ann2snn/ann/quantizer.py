"""The one quantizer shared by the ANN activations and the spiking neurons.

Both the QCFS / matched activations (ANN side) and the multi-bit IF neuron's fire step (SNN side)
call :func:`fire_count`. A matched activation computed from ``x`` and one MBIF step from
``v_0 = q/2`` therefore run the very same floating-point operations, so the conversion identity at
T = 1 is exact by construction (docs/design.md §3.4), not merely close.
"""

from __future__ import annotations

import torch


class _FloorSTE(torch.autograd.Function):
    """floor() in the forward pass, identity gradient in the backward pass (straight-through)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:  # noqa: D401
        return torch.floor(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 when it is a half-precision type (bfloat16 / float16), else unchanged.

    Quantizers and membrane potentials never run below float32 (see ``MultiBitIF._step``), but a
    float64 simulation (``--precision float64``) keeps float64.
    """
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def fire_count(v: torch.Tensor, q: torch.Tensor | float, k_max: int) -> torch.Tensor:
    """Integer spike count ``k = clip(floor(v / q), 0, k_max)``, as a float tensor.

    Args:
        v: membrane potential (SNN) or shifted pre-activation ``x + q/2`` (ANN), any shape.
        q: quantum, in the same units as ``v`` (broadcastable to ``v``; must be > 0).
        k_max: the largest count K (``2^(m+n) - 1`` for MBIF, ``L`` for QCFS).

    Returns:
        A tensor shaped like ``v`` holding whole numbers in ``[0, k_max]``. The gradient of the
        floor is straight-through (identity), as in QCFS (Bu et al., ICLR 2022); the clip passes
        no gradient outside ``[0, k_max]``.
    """
    return torch.clamp(_FloorSTE.apply(v / q), 0, k_max)


def check_bits(int_bits: int, frac_bits: int) -> None:
    """Validate a multi-bit spike format of m integer and n fractional bits.

    Raises:
        UserError: unless m >= 0, n >= 0 and 1 <= m + n <= 16.
    """
    from ann2snn.plumbing.errors import UserError

    if not (isinstance(int_bits, int) and isinstance(frac_bits, int)):
        raise UserError(f"bit widths must be whole numbers, got m={int_bits!r}, n={frac_bits!r}")
    if int_bits < 0 or frac_bits < 0 or not 1 <= int_bits + frac_bits <= 16:
        raise UserError(
            f"bad bit widths m={int_bits}, n={frac_bits}: need m >= 0, n >= 0 and 1 <= m+n <= 16 "
            "(IF is m=1, n=0; the default MBIF is m=1, n=3)"
        )


def max_count(int_bits: int, frac_bits: int) -> int:
    """Largest spike count K = 2^(m+n) - 1 of an (m, n) multi-bit spike."""
    return (1 << (int_bits + frac_bits)) - 1
