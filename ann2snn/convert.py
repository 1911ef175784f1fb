"""Replace every activation call site of a quantization-clip ANN by its own spiking neuron.

Conversion refuses to pass silently (DESIGN §5, complaint 1):

* every activation must be a :class:`~ann2snn.activations.QuantClip` module; an ``nn.ReLU`` (or
  other ANN activation) module, or a functional call such as ``F.relu`` / ``torch.relu`` /
  ``x.relu()`` inside ``forward``, is an error naming the module or the source line;
* every site must be called exactly once per forward pass: a module reused at two call sites, or
  one never called, is an error naming it;
* after conversion, a probe forward pass checks that no ANN activation runs outside a neuron and
  that the number of neurons equals the number of call sites.
"""

from __future__ import annotations

import copy
import os
import traceback

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .activations import QuantClip
from .errors import UserError
from .neurons import MultiBitIF
from .quantizer import check_bits

#: ANN activation modules that conversion does not turn into neurons (an error if present)
FOREIGN_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardtanh,
                   nn.Hardswish, nn.Softplus, nn.Mish, nn.SELU, nn.CELU, nn.Tanh, nn.Sigmoid)
_F = torch.nn.functional
#: functional activations that must not appear inside forward
FOREIGN_FUNCTIONS = {
    _F.relu, _F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, _F.relu6,
    _F.leaky_relu, _F.gelu, _F.silu, _F.elu, _F.hardtanh, _F.hardswish, _F.softplus, _F.mish,
    _F.selu, _F.celu, torch.sigmoid, torch.tanh, torch.Tensor.sigmoid, torch.Tensor.tanh,
}
_OWN_FILES = (os.path.abspath(__file__),)


class _FunctionalActivationSpy(TorchFunctionMode):
    """Records where a functional ANN activation is called during a forward pass."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in FOREIGN_FUNCTIONS:
            where = _caller(func)
            if where is not None:
                self.calls.append(where)
        return func(*args, **(kwargs or {}))


_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_TORCH_MODULES_DIR = os.path.join(_TORCH_DIR, "nn", "modules")


def _caller(func) -> str | None:
    """'file:line (code)' of the user frame that called ``func``; None when the direct caller is
    a ``torch.nn`` module's forward (an ``nn.ReLU`` module: found by module type instead)."""
    frames = [f for f in reversed(traceback.extract_stack()[:-2]) if os.path.abspath(f.filename) not in _OWN_FILES]
    dispatch = (os.path.join(_TORCH_DIR, "overrides.py"), os.path.join(_TORCH_DIR, "nn", "functional.py"))
    frames = [f for f in frames if os.path.abspath(f.filename) not in dispatch]
    if frames and os.path.abspath(frames[0].filename).startswith(_TORCH_MODULES_DIR):
        return None
    for frame in frames:
        if os.path.abspath(frame.filename).startswith(_TORCH_DIR + os.sep):
            continue
        return f"{frame.filename}:{frame.lineno} ({(frame.line or '').strip()})"
    return getattr(func, "__name__", str(func))


def _relu_site():
    from .calibrate import ReLUSite

    return ReLUSite


def _probe(model: nn.Module, example: torch.Tensor) -> tuple[dict[str, int], list[str]]:
    """One eval-mode forward pass: call counts of QuantClip / neuron modules, functional calls."""
    counts: dict[str, int] = {}
    order: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (QuantClip, MultiBitIF, _relu_site())):
            counts[name] = 0

            def hook(_m, _i, _o, name=name):
                counts[name] += 1
                if counts[name] == 1:
                    order.append(name)

            handles.append(m.register_forward_hook(hook))
    from .opcheck import probe_forward

    spy = _FunctionalActivationSpy()
    probe_forward(model, example, spy, handles)
    ordered = {n: counts[n] for n in order}  # call order first, then sites never called
    ordered.update({n: c for n, c in counts.items() if n not in ordered})
    return ordered, spy.calls


def find_activation_sites(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the model's activation sites in call order, after checking each is one call site.

    Args:
        model: an ANN whose activations are :class:`QuantClip` modules.
        example: one input batch, e.g. ``[1, 3, 32, 32]``, for a probe forward pass.

    Raises:
        UserError: a foreign activation module or functional call (named), a site reused or never
            called, or no site at all.
    """
    for name, m in model.named_modules():
        if isinstance(m, FOREIGN_MODULES):
            raise UserError(f"module '{name}' is {type(m).__name__}, which conversion cannot turn into a neuron "
                            "as it is; use QCFS activations, or calibrate thresholds (--threshold max|percentile:P)")
    counts, calls = _probe(model, example)
    if calls:
        raise UserError(f"forward calls a functional activation at {calls[0]}; make every activation its own "
                        "QCFS module, or calibrate thresholds (--threshold max|percentile:P), which rewrites ReLU calls")
    sites = [n for n in counts]
    if not sites:
        raise UserError("the model has no QCFS (or prepared ReLU) activation to convert")
    for name in sites:
        if counts[name] != 1:
            what = "never called" if counts[name] == 0 else f"called {counts[name]} times per forward pass"
            raise UserError(f"activation '{name}' is {what}; each call site needs its own module")
    return sites


def convert(model: nn.Module, example: torch.Tensor, int_bits: int = 1, frac_bits: int = 0,
            v_init: str = "half-lsb", thresholds: dict[str, float] | None = None, cap=None) -> nn.Module:
    """Return a converted copy of ``model``: each QCFS/matched site becomes a :class:`MultiBitIF`.

    The neuron's threshold is the site's λ (``θ = λ``); IF is ``int_bits=1, frac_bits=0``. The
    source activation is kept inside each neuron for ANN-mode parity checks. The input model is
    not changed.

    Args:
        model: the ANN (see :func:`find_activation_sites`).
        example: an input batch ``[B, 3, H, W]`` for the probe passes.
        int_bits, frac_bits: the neuron's m and n (1 <= m+n <= 16).
        v_init: ``half-lsb`` | ``half-threshold`` | ``zero``.
        thresholds: θ per site name, overriding λ (from :func:`ann2snn.calibrate.calibrate_thresholds`);
            required for ReLU sites (:class:`ann2snn.calibrate.ReLUSite`).
        cap: the neurons' per-step ceiling (``None``/``"full"``, ``"theta"`` or a count K; see
            :func:`ann2snn.neurons.resolve_cap`).

    Raises:
        UserError: bad bits or v_init, a λ <= 0, a ReLU site without threshold, or any failed
            call-site check.
    """
    check_bits(int_bits, frac_bits)
    from .opcheck import check_operations

    check_operations(model, example)
    snn = copy.deepcopy(model).eval()
    sites = find_activation_sites(snn, example)
    thresholds = thresholds or {}
    for name in sites:
        site = snn.get_submodule(name)
        if name in thresholds:
            theta = torch.tensor(float(thresholds[name]))
        elif isinstance(site, QuantClip):
            lam = float(site.raw_lambda.detach())
            if not lam > 0:
                raise UserError(f"activation '{name}' has λ={lam:g} <= 0, which is no threshold; retrain it "
                                "(λ must stay positive)")
            theta = site.threshold().detach()
        else:
            raise UserError(f"ReLU site '{name}' has no threshold: convert the ReLU network first with "
                            "`ann2snn convert --threshold max|percentile:P`")
        parent_name, _, child = name.rpartition(".")
        parent = snn.get_submodule(parent_name) if parent_name else snn
        setattr(parent, child, MultiBitIF(theta, int_bits, frac_bits, v_init, ann_activation=site, cap=cap))
    check_converted(snn, example, expected=len(sites))
    return snn


def check_converted(snn: nn.Module, example: torch.Tensor, expected: int) -> None:
    """Probe a converted net: every neuron runs once and no ANN activation runs outside a neuron.

    Raises:
        RuntimeError: if conversion left an activation behind or the counts do not match
            (a bug in conversion, not a user error).
    """
    from .simulate import reset_neurons

    counts, calls = _probe(snn, example)
    reset_neurons(snn)
    neurons = {n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    inner = tuple(n + "." for n in neurons)
    left = [n for n in counts if n not in neurons and not n.startswith(inner)]
    if left or calls:
        raise RuntimeError(f"conversion left ANN activations: {left or calls}")
    ran = [n for n in neurons if counts[n] == 1]
    if len(neurons) != expected or len(ran) != expected:
        raise RuntimeError(f"conversion made {len(neurons)} neurons ({len(ran)} ran once) for {expected} sites")
