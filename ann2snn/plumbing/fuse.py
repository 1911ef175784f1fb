"""One-pass ("fused") element-wise steps through ``torch.compile``, with a plain fallback.

The neuron step (``ann2snn.conversion.neurons.if_step``) and the quantization-clip activation
(``ann2snn.ann.activations.quant_clip``) are chains of small element-wise operations, each a full
pass over memory. ``torch.compile`` turns each chain into one generated kernel that runs the same
correctly rounded float operations in the same order, so the forward values are bit-identical
(tests/test_fused_step.py). The compiled functions are kept in :data:`_COMPILED`, built on first
use; that cache is this module's only state.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

_COMPILED: dict[Callable, Callable] = {}
#: values of the ``--fuse`` options
FUSE_MODES = ("auto", "on", "off")
#: ``auto`` fuses training only from this many optimizer steps (epochs × batches): compiling the
#: activation's forward and backward takes about 15–25 s on a cold cache (2 CPU cores), and the
#: fused activation saves about a quarter of a ¼-width VGG-16 step (benchmarks/ratios.py, the training ratio)
MIN_TRAIN_STEPS = 1000
#: ``auto`` fuses a sweep only from this many image-steps (test images × T_max): compiling the
#: neuron step takes about 10 s on a cold cache
MIN_IMAGE_STEPS = 200_000


def resolve(fuse: str | bool, device: torch.device | str = "cpu", worth_it: bool = True) -> bool:
    """Whether to take the fused step: ``"on"``/``True``, ``"off"``/``False``, or ``"auto"``: on the
    CPU (where it is tested bit-identical; on CUDA, Triton's division is not checked here) when
    ``worth_it``, i.e. the run is long enough to pay for the compilation (:data:`MIN_TRAIN_STEPS`,
    :data:`MIN_IMAGE_STEPS`).

    Raises:
        UserError: an unknown ``fuse`` value.
    """
    if isinstance(fuse, bool):
        return fuse
    if fuse not in FUSE_MODES:
        from ann2snn.plumbing.errors import UserError

        raise UserError(f"unknown `fuse` {fuse!r}: use auto, on or off")
    return fuse == "on" or (fuse == "auto" and worth_it and torch.device(device).type == "cpu")


def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn, dynamic=True)``, built once per function (one compilation serves every shape;
    it takes seconds on first use and torch caches it on disk)."""
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def run_fused(owner, fn: Callable, *args):
    """``compiled(fn)(*args)``; where that fails and the plain ``fn(*args)`` works (torch.compile does not
    work here, e.g. no C++ compiler), warn once, set ``owner.fused = False`` and return the plain result
    (same values). When the plain call fails too, its own error is raised and nothing is switched off.

    Limit: in training, AOTAutograd may compile the backward only at ``loss.backward()``; a failure
    there is not caught here (run ``train-ann --fuse off``).
    """
    try:
        return compiled(fn)(*args)
    except Exception as err:  # compile errors surface on the first call
        result = fn(*args)  # a real error (bad shapes, out of memory) is raised here, unchanged
        first = (str(err).splitlines() or [""])[0][:200]
        warnings.warn(f"fused {getattr(fn, '__name__', 'step')} unavailable ({type(err).__name__}: {first}); "
                      "using the plain step (same results, slower)", RuntimeWarning, stacklevel=3)
        owner.fused = False
        return result
