"""Every operation between neurons is checked: it commutes with summing over time, or it is refused.

An SNN step feeds spikes through the same layers as the ANN; the rates only reproduce the ANN when
each operation between activation sites is linear in its spike input (docs/design.md §5, pitfall 11).
:func:`check_operations` runs one probe forward pass of an ANN under a ``TorchFunctionMode`` and
classifies every torch call made outside the activation sites:

* **passes**: convolutions, linear layers, eval-mode BatchNorm, average pooling (also
  ``mean``/``sum`` over positions), add / subtract, concatenation, flatten / view / reshape and
  other layout operations, zero padding, eval-mode dropout, identity, multiplying or dividing by a
  constant (a number, a parameter or a buffer);
* **activation call sites** (``nn.ReLU`` / ``F.relu`` / ``torch.relu`` / ``x.relu()``, QCFS /
  matched modules): they become neurons;
* **refused**, with the op, the user's own source line and what to do: max-pooling (a max of spikes
  is not a max of rates; see :func:`swap_maxpool_for_avgpool`), activations the converter does not
  handle (ReLU6, Hardtanh, GELU, SiLU, sigmoid, tanh, Hardswish, Hardsigmoid, ELU, LeakyReLU,
  softplus, Mish, ``clamp``), softmax, layer / group / instance norm, a product of two signals, and
  anything not on the list above.
"""

from __future__ import annotations

import os
import traceback

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ann2snn.ann.activations import QuantClip
from ann2snn.plumbing.errors import UserError
from ann2snn.ann.pools import swap_maxpool_for_avgpool  # noqa: F401  (re-exported here, where it was first)
from ann2snn.conversion.maxpool import POOL_TYPES, SpikingMaxPool, check_maxpool_mode
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.sites import ReLUSite
from ann2snn.plumbing.probe import probe_pass

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_TORCH_MODULES_DIR = os.path.join(_TORCH_DIR, "nn", "modules")
_TORCH_DISPATCH = (os.path.join(_TORCH_DIR, "overrides.py"), os.path.join(_TORCH_DIR, "nn", "functional.py"))
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the ann2snn package
#: module types that are activation sites (neurons after conversion)
SITE_TYPES = (QuantClip, MultiBitIF, ReLUSite)

#: ANN activation modules that conversion does not turn into neurons as they are (an error if present
#: after ReLU sites were prepared)
FOREIGN_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardtanh,
                   nn.Hardswish, nn.Softplus, nn.Mish, nn.SELU, nn.CELU, nn.Tanh, nn.Sigmoid)
_F = torch.nn.functional
#: functional activations that must not be left inside forward once sites are prepared
FOREIGN_FUNCTIONS = {
    _F.relu, _F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, _F.relu6,
    _F.leaky_relu, _F.gelu, _F.silu, _F.elu, _F.hardtanh, _F.hardswish, _F.softplus, _F.mish,
    _F.selu, _F.celu, torch.sigmoid, torch.tanh, torch.Tensor.sigmoid, torch.Tensor.tanh,
}

#: torch calls (by name) that commute with summing over time (linear in the spike input)
LINEAR_OPS = {
    "conv1d", "conv2d", "conv3d", "linear", "batch_norm", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "add", "add_", "__add__", "__radd__",
    "__iadd__", "sub", "sub_", "__sub__", "__rsub__", "__isub__", "cat", "concat", "concatenate", "stack",
    "flatten", "view", "reshape", "permute", "transpose", "contiguous", "squeeze", "unsqueeze", "chunk",
    "split", "narrow", "__getitem__", "pad", "dropout", "dropout2d", "identity", "mean", "sum", "neg",
    "__neg__", "clone", "to", "float", "type_as", "expand", "expand_as", "size", "dim", "numel", "__len__",
    "__get__", "__format__", "__bool__", "__setstate__", "__iter__", "is_floating_point", "requires_grad_",
    "detach", "__hash__", "__eq__",
    # tensors made inside forward (constants)
    "zeros", "ones", "zeros_like", "ones_like", "full", "empty", "tensor", "arange",
}
#: multiplication-like ops: linear only when one factor is a constant
SCALE_OPS = {"mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__", "__itruediv__"}
#: ReLU calls: activation call sites (rewritten into neurons)
RELU_OPS = {"relu", "relu_"}
#: refused with a specific reason
REFUSED = {
    "max_pool1d": "max-pooling", "max_pool2d": "max-pooling", "max_pool3d": "max-pooling",
    "max_pool1d_with_indices": "max-pooling", "max_pool2d_with_indices": "max-pooling",
    "adaptive_max_pool1d": "max-pooling", "adaptive_max_pool2d": "max-pooling",
    "adaptive_max_pool2d_with_indices": "max-pooling", "max": "a max", "amax": "a max",
    "softmax": "softmax", "log_softmax": "softmax", "layer_norm": "layer norm", "group_norm": "group norm",
    "instance_norm": "instance norm",
}
#: module types whose max-pool call is refused with :data:`MAXPOOL_HINT` (a module) rather than the functional hint
_POOL_TYPE_NAMES = {"MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"}
_ACTIVATIONS = {"relu6", "hardtanh", "hardtanh_", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                "elu", "leaky_relu", "softplus", "mish", "selu", "celu", "clamp", "clamp_", "clip", "clamp_min",
                "clamp_max", "threshold", "prelu", "rrelu", "logsigmoid", "softsign", "tanhshrink", "hardshrink"}

MAXPOOL_HINT = ("a max of spikes is not a max of rates, so the SNN would not follow the ANN as it is; convert with "
                "`maxpool` spiking (a max-pool module keeps its max in the time-sum), or swap it for average pooling "
                "and retrain (`maxpool` avg, ann2snn.swap_maxpool_for_avgpool), as QCFS does")
FUNCTIONAL_MAXPOOL_HINT = ("a max of spikes is not a max of rates; make it an nn.MaxPool2d module (one per call "
                           "site) and convert with `maxpool` spiking, or swap it for average pooling and retrain")


def _name(func) -> str:
    return getattr(func, "__name__", str(func))


def _is_constant(x, constants: set) -> bool:
    return not isinstance(x, torch.Tensor) or id(x) in constants or x.dim() == 0


def _outer_frames() -> list:
    """The call stack, innermost first, without this package's frames and torch's dispatch frames."""
    frames = []
    for frame in reversed(traceback.extract_stack()[:-1]):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_OWN_DIR + os.sep) and path not in _TORCH_DISPATCH:
            frames.append(frame)
    return frames


def _user_line(frames: list | None = None) -> str | None:
    """'file:line (code)' of the innermost frame outside torch and this package."""
    for frame in _outer_frames() if frames is None else frames:
        if not os.path.abspath(frame.filename).startswith(_TORCH_DIR + os.sep):
            return f"{frame.filename}:{frame.lineno} ({(frame.line or '').strip()})"
    return None


class _FunctionalActivationSpy(TorchFunctionMode):
    """Records the user's source line of every functional ANN activation (``F.relu``, ``x.sigmoid()``,
    ...) called during a forward pass; calls made by a ``torch.nn`` module's forward (an ``nn.ReLU``
    module) are left to the module-type check."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in FOREIGN_FUNCTIONS:
            frames = _outer_frames()
            if not (frames and os.path.abspath(frames[0].filename).startswith(_TORCH_MODULES_DIR)):
                self.calls.append(_user_line(frames) or _name(func))
        return func(*args, **(kwargs or {}))


class _OpSpy(TorchFunctionMode):
    """Records the first refused torch call made outside an activation site during a forward pass."""

    def __init__(self, constants: set):
        super().__init__()
        self.constants = constants
        self.depth = 0  # > 0 while inside an activation site or neuron
        self.refusal: str | None = None
        self.relu_calls = 0
        self.modules: list[tuple[str, str]] = []  # (name, type) of the modules being run, outermost first

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.depth == 0 and self.refusal is None:
            self._classify(func, args, kwargs)
        return func(*args, **kwargs)

    def _classify(self, func, args, kwargs) -> None:
        name = _name(func)
        if name in LINEAR_OPS:
            return
        if name in RELU_OPS:
            self.relu_calls += 1
            return
        where = _user_line() or "an unknown line"
        if self.modules and self.modules[-1][0]:
            where = f"module '{self.modules[-1][0]}' ({self.modules[-1][1]}, {where})"
        if name in SCALE_OPS:
            tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
            if sum(not _is_constant(t, self.constants) for t in tensors) <= 1 and not (
                    name.startswith(("div", "__truediv", "__itruediv")) and len(args) > 1
                    and not _is_constant(args[1], self.constants)):
                return
            self.refusal = (f"{where} multiplies or divides two signals ({name}), which does not commute with "
                            "summing spikes over time; conversion cannot make it spiking")
            return
        if name in REFUSED:
            what = REFUSED[name]
            hint = "conversion cannot make it spiking"
            if what == "max-pooling":
                inside_pool = self.modules and self.modules[-1][1] in _POOL_TYPE_NAMES
                hint = MAXPOOL_HINT if inside_pool else FUNCTIONAL_MAXPOOL_HINT
            self.refusal = f"{where} calls {name} ({what}): {hint}"
            return
        if name in ("hardtanh", "hardtanh_", "relu6", "clamp", "clamp_", "clip", "clamp_min", "clamp_max"):
            self.refusal = (f"{where} calls {name}, a clip (ReLU6 / Hardtanh / clamp) that the converter does not "
                            "take from data; replace it by ReLU (θ from data) or a QCFS activation")
            return
        if name in _ACTIVATIONS:
            self.refusal = (f"{where} calls {name}, an activation the converter does not handle; use ReLU (thresholds "
                            "from data) or a QCFS activation there")
            return
        self.refusal = (f"{where} calls {name}, which is not known to commute with summing spikes over time; "
                        "conversion refuses it (use convolutions, linear layers, BatchNorm, average pooling, adds "
                        "and ReLU/QCFS activations)")


def probe_forward(model: nn.Module, example: torch.Tensor, mode, handles: list) -> None:
    """One eval-mode, no-grad forward pass of ``model`` on ``example`` under the TorchFunctionMode
    ``mode``; then remove the hook ``handles`` and restore the model's train/eval state."""
    with probe_pass(model, handles), torch.no_grad(), mode:
        model(example)


def probe_sites(model: nn.Module, example: torch.Tensor) -> tuple[dict[str, int], list[str]]:
    """One eval-mode forward pass of ``model`` on ``example`` (e.g. ``[1, 3, 32, 32]``).

    Returns:
        ``(counts, calls)``: how often each activation site (QCFS / matched / ReLU site / neuron
        module) ran, by name, in call order and then the sites never called; and the source line of
        each functional ANN activation call left in ``forward``.
    """
    counts: dict[str, int] = {}
    order: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, SITE_TYPES):
            counts[name] = 0

            def hook(_m, _i, _o, name=name):
                counts[name] += 1
                if counts[name] == 1:
                    order.append(name)

            handles.append(m.register_forward_hook(hook))
    spy = _FunctionalActivationSpy()
    probe_forward(model, example, spy, handles)
    ordered = {n: counts[n] for n in order}  # call order first, then sites never called
    ordered.update({n: c for n, c in counts.items() if n not in ordered})
    return ordered, spy.calls


def check_operations(model: nn.Module, example: torch.Tensor, maxpool: str = "refuse") -> int:
    """Probe ``model`` once (eval mode, ``example`` e.g. ``[1, 3, 32, 32]``) and check every torch call
    made outside its activation sites (module docstring). Returns the number of ReLU calls seen.

    With ``maxpool="spiking"`` the max-pool *modules* pass (conversion makes each a
    :class:`~ann2snn.conversion.maxpool.SpikingMaxPool`); a functional max-pool is still refused.
    A :class:`~ann2snn.conversion.maxpool.SpikingMaxPool` always passes.

    Raises:
        UserError: the first refused operation, naming it and the user's source line.
    """
    passing = (SpikingMaxPool,) + (POOL_TYPES if check_maxpool_mode(maxpool) == "spiking" else ())
    constants = {id(t) for t in list(model.parameters()) + list(model.buffers())}
    spy = _OpSpy(constants)
    handles = []
    for name, m in model.named_modules():
        if name and not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            handles.append(m.register_forward_pre_hook(
                lambda _m, _i, name=name: spy.modules.append((name, type(_m).__name__)) and None))
            handles.append(m.register_forward_hook(lambda *_: spy.modules.pop() and None))
        if isinstance(m, SITE_TYPES + (nn.ReLU,)):
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(lambda *_: setattr(spy, "relu_calls", spy.relu_calls + 1)))
            handles.append(m.register_forward_pre_hook(lambda *_: setattr(spy, "depth", spy.depth + 1)))
            handles.append(m.register_forward_hook(lambda *_: setattr(spy, "depth", spy.depth - 1)))  # returns None
        elif isinstance(m, passing):
            handles.append(m.register_forward_pre_hook(lambda *_: setattr(spy, "depth", spy.depth + 1)))
            handles.append(m.register_forward_hook(lambda *_: setattr(spy, "depth", spy.depth - 1)))
    probe_forward(model, example, spy, handles)
    if spy.refusal:
        raise UserError(spy.refusal)
    return spy.relu_calls
