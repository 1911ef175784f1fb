"""Write a converted SNN as a NIR graph (Neuromorphic Intermediate Representation, PyPI ``nir``).

What is written (NIR 1.0):

* ``Conv2d`` → ``nir.Conv2d``, ``Linear`` → ``nir.Affine``, average pooling (``AvgPool2d``, global
  ``AdaptiveAvgPool2d``) → ``nir.SumPool2d`` with its 1/k² folded into the next weights, ``flatten``
  → ``nir.Flatten``, a residual add → two edges into one node (NIR sums a node's inputs).
  BatchNorm is folded into the conv before it first (``torch.nn.utils.fusion``).
* Every neuron → one ``nir.IF`` node, reset by subtraction, as NIR 1.0 defines IF (``v ← v − v_thr``
  after a spike), with ``r = 1`` and ``v_threshold = q = θ·2^-n``. A NIR IF emits spike *counts*; the
  output scale ``q`` is folded into the weights of the next layer (and, on a residual shortcut that
  feeds a neuron directly, into a 1×1 ``nir.Conv2d`` of weight ``q·I``).
* NIR has no multi-bit neuron. An MBIF(m, n) neuron is that IF node plus a per-step spike cap
  ``K`` (at most K spikes of size q per step; K = 2^(m+n) − 1, or the ``--cap``), written in the node's
  ``metadata`` as ``ann2snn_max_spikes_per_step``; also ``ann2snn_theta``, ``ann2snn_int_bits``,
  ``ann2snn_frac_bits``, ``ann2snn_v_init``, ``ann2snn_output_scale`` (= q) and ``ann2snn_reset``.

A neuron's bias correction (:mod:`ann2snn.conversion.correct`) is folded into the bias of the conv or
affine node that feeds it; its potential correction goes into the metadata (``ann2snn_v_offset``).

What is lost (see the table in docs/nir.md): the initial potential ``v_init`` (NIR neurons start at
``v = 0``; only ``zero`` survives), the cap ``K`` for a reader that ignores the metadata (sinabs'
own importer then fires without limit, and floors ``v`` at ``−v_thr``), and the float rounding of
the original: folding BN and moving ``q`` into the next weights re-associates products, so a
potential within rounding of a threshold may fire one step apart. The analog first layer (the image
as a constant current) and the analog last layer (logits per step) are plain NIR layers.
"""

from __future__ import annotations

import operator
import os

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.plumbing.errors import UserError

META = "ann2snn_"
_PASS_MODULES = (nn.Dropout, nn.Identity)
_PASS_FUNCS = {"contiguous", "dropout", "clone"}
_FLATTEN = {"flatten", "view", "reshape"}


def require_nir():
    try:
        import nir  # noqa: F401
    except ImportError:
        raise UserError("NIR export needs the nir extra: pip install -e '.[nir]' (nir, nirtorch)") from None
    import nir

    return nir


class _Graph:
    """NIR nodes and edges under construction; a value is a list of (NIR node, scale) summed."""

    def __init__(self, nir):
        self.nir = nir
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []
        #: nodes whose bias took a neuron's bias correction → that neuron (each must feed only it)
        self.folded: dict[str, str] = {}

    def add(self, name: str, node, sources: list[tuple[str, float]]) -> str:
        name = name.replace(".", "_")
        base, i = name, 1
        while name in self.nodes:
            i += 1
            name = f"{base}_{i}"
        self.nodes[name] = node
        self.edges += [(src, name) for src, _ in sources]
        return name


def _scale_of(sources, where: str) -> float:
    scales = {s for _, s in sources}
    if len(scales) != 1:
        raise UserError(f"{where} sums values of different scales; NIR export cannot fold them into one weight")
    return scales.pop()


def _unit(g: _Graph, sources, shape, where: str) -> list[tuple[str, float]]:
    """The same value with every source at scale 1 (a depthwise 1×1 conv of weight s where s != 1)."""
    out = []
    for src, s in sources:
        if s == 1.0:
            out.append((src, 1.0))
            continue
        if len(shape) != 3:
            raise UserError(f"{where}: a scaled {len(shape)}-d value cannot be rescaled in NIR export")
        c = shape[0]
        # a 1×1 conv with weight s·I (not depthwise: sinabs' importer reads in_channels from the weight)
        weight = (np.eye(c, dtype=np.float32) * np.float32(s)).reshape(c, c, 1, 1)
        node = g.nir.Conv2d(input_shape=tuple(shape[1:]), weight=weight, stride=1, padding=0, dilation=1, groups=1,
                            bias=np.zeros(c, dtype=np.float32))
        out.append((g.add(f"{src}_scale", node, [(src, s)]), 1.0))
    return out


def _pool_geometry(m_or_args, shape, kind: str, where: str):
    h, w = shape[-2:]
    if kind == "adaptive":
        size = m_or_args
        size = (size, size) if isinstance(size, int) else tuple(size)
        if None in size or h % size[0] or w % size[1]:
            raise UserError(f"{where}: adaptive average pooling to {size} from {h}x{w} has no fixed kernel")
        k = (h // size[0], w // size[1])
        return k, k
    kernel, stride, padding = m_or_args
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    kernel, stride = pair(kernel), pair(stride if stride else kernel)
    if pair(padding) != (0, 0):
        raise UserError(f"{where}: average pooling with padding has no NIR SumPool2d equivalent")
    return kernel, stride


def snn_to_nir(snn: nn.Module, example: torch.Tensor | None = None):
    """Build the NIR graph of a converted SNN (module docstring).

    Args:
        snn: a converted network (neurons :class:`~ann2snn.conversion.neurons.MultiBitIF`).
        example: one input batch for shapes, e.g. ``[1, 3, 32, 32]`` (the default).

    Returns:
        A ``nir.NIRGraph``: input ``[C, H, W]`` (the image, the same current every step), output
        ``[classes]`` (logits per step; sum over steps for the prediction).

    Raises:
        UserError: the ``nir`` package is missing, or an operation NIR export cannot express (named).
    """
    nir = require_nir()
    from ann2snn.conversion.calibrate import fold_batchnorm
    from ann2snn.conversion.simulate import reset_neurons, set_mode

    import copy

    example = (torch.zeros(1, 3, 32, 32) if example is None else example).detach().cpu().float()
    if not any(isinstance(m, MultiBitIF) for m in snn.modules()):
        raise UserError("the network has no spiking neuron: export a converted SNN (from `ann2snn convert`)")
    from ann2snn.conversion.maxpool import SpikingMaxPool

    pools = [n for n, m in snn.named_modules() if isinstance(m, SpikingMaxPool)]
    if pools:  # NIR has no node that pools an accumulated input and sends its increase
        raise UserError(f"NIR export cannot express the spiking max-pool '{pools[0]}' (it pools the accumulated "
                        "input and sends the increase; NIR has no such node): convert with `maxpool` avg after "
                        "retraining with average pools to export")
    snn = copy.deepcopy(snn).to("cpu", torch.float32)  # the caller's network is left as it is
    set_mode(snn, "snn")
    reset_neurons(snn)
    gm = fold_batchnorm(snn.float().eval())
    reset_neurons(gm)
    ShapeProp(gm).propagate(example)
    reset_neurons(gm)
    modules = dict(gm.named_modules())
    g = _Graph(nir)
    value: dict = {}

    def shape_of(node):
        return tuple(node.meta["tensor_meta"].shape[1:])

    for node in gm.graph.nodes:
        where = f"'{node.target}'" if node.op == "call_module" else f"{node.op} {getattr(node.target, '__name__', node.target)}"
        if node.op == "placeholder":
            shape = shape_of(node)
            value[node] = [(g.add("input", nir.Input(input_type={"input": np.array(shape)}), []), 1.0)]
            continue
        if node.op == "output":
            src = node.args[0]
            srcs = _unit(g, value[src], shape_of(src), "the output")
            g.add("output", nir.Output(output_type={"output": np.array(shape_of(src))}), srcs)
            continue
        if node.op == "get_attr":
            raise UserError(f"NIR export: the network reads the tensor '{node.target}' directly in forward")
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        first = value[args[0]] if args else None
        in_shape = shape_of(args[0]) if args else None
        if node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, nn.Conv2d):
                s = _scale_of(first, where)
                if m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise UserError(f"NIR export: conv {where} uses padding {m.padding!r}/{m.padding_mode}; use zero padding")
                bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
                nn_node = nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=(m.weight.detach() * s).numpy(),
                                     stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups, bias=bias)
                value[node] = [(g.add(node.target, nn_node, first), 1.0)]
            elif isinstance(m, nn.Linear):
                s = _scale_of(first, where)
                bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_features, dtype=np.float32)
                value[node] = [(g.add(node.target, nir.Affine(weight=(m.weight.detach() * s).numpy(), bias=bias),
                                      first), 1.0)]
            elif isinstance(m, MultiBitIF):
                shape = shape_of(node)
                srcs = _unit(g, first, in_shape, where)
                q = float(m.quantum())
                meta = {META + "max_spikes_per_step": int(m.cap), META + "theta": float(m.theta),
                        META + "int_bits": m.int_bits, META + "frac_bits": m.frac_bits, META + "v_init": m.v_init,
                        META + "output_scale": q, META + "reset": "subtract"}
                if m.bias_current is not None:  # the bias correction: into the bias of the layer that feeds it
                    _fold_bias(g, nir, srcs, m.bias_current.detach().numpy(), where)
                    meta[META + "bias_correction"] = "folded into the preceding layer's bias"
                if m.v_offset is not None:  # kept for readers of our metadata; NIR's IF starts at v = 0
                    meta[META + "v_offset"] = m.v_offset.detach().numpy().astype(np.float32)
                neuron = nir.IF(r=np.ones(shape, dtype=np.float32), v_threshold=np.full(shape, q, dtype=np.float32),
                                metadata=meta)
                value[node] = [(g.add(node.target, neuron, srcs), q)]
            elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                if isinstance(m, nn.AvgPool2d):
                    if m.ceil_mode or m.divisor_override:
                        raise UserError(f"NIR export: average pool {where} uses ceil_mode or divisor_override; "
                                        "NIR SumPool2d has neither")
                    kernel, stride = _pool_geometry((m.kernel_size, m.stride, m.padding), in_shape, "avg", where)
                else:
                    kernel, stride = _pool_geometry(m.output_size, in_shape, "adaptive", where)
                pool = nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array((0, 0)))
                s = _scale_of(first, where) / (kernel[0] * kernel[1])
                value[node] = [(g.add(node.target, pool, first), s)]
            elif isinstance(m, nn.Flatten):
                value[node] = _flatten(g, nir, first, in_shape, node.target, m.start_dim, m.end_dim)
            elif isinstance(m, _PASS_MODULES):
                value[node] = first
            elif isinstance(m, nn.BatchNorm2d):
                raise UserError(f"NIR export: BatchNorm {where} does not follow a conv, so it cannot be folded")
            else:
                raise UserError(f"NIR export cannot express module {where} ({type(m).__name__})")
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if node.op == "call_function" and node.target in (operator.add, torch.add) and len(args) == 2 \
                and len(node.args) == 2 and not node.kwargs:
            value[node] = value[args[0]] + value[args[1]]
        elif name in _PASS_FUNCS:
            value[node] = first
        elif name in _FLATTEN:
            if len(shape_of(node)) != 1 or tuple(node.meta["tensor_meta"].shape[:1]) != (example.shape[0],):
                raise UserError(f"NIR export: {where} reshapes to {tuple(node.meta['tensor_meta'].shape)}; only "
                                "flattening each sample (flatten(1)) is supported")
            value[node] = _flatten(g, nir, first, in_shape, name, 1, -1)
        elif node.op == "call_function" and node.target in (F.avg_pool2d, F.adaptive_avg_pool2d):
            if node.target is F.avg_pool2d:
                if len(node.args) > 4 or set(node.kwargs) - {"kernel_size", "stride", "padding"}:
                    raise UserError(f"NIR export: {where} uses options (ceil_mode, divisor_override, ...) that NIR "
                                    "SumPool2d does not have")
                geo = (node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"],
                       node.args[2] if len(node.args) > 2 else node.kwargs.get("stride"),
                       node.args[3] if len(node.args) > 3 else node.kwargs.get("padding", 0))
                kernel, stride = _pool_geometry(geo, in_shape, "avg", where)
            else:
                kernel, stride = _pool_geometry(node.args[1], in_shape, "adaptive", where)
            pool = nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array((0, 0)))
            value[node] = [(g.add("avg_pool", pool, first), _scale_of(first, where) / (kernel[0] * kernel[1]))]
        else:
            raise UserError(f"NIR export cannot express {where} (in node '{node.name}')")
    for src, where in g.folded.items():
        if sum(1 for a, _ in g.edges if a == src) != 1:
            raise UserError(f"NIR export cannot carry the bias correction of neuron {where}: the layer before it "
                            f"('{src}') also feeds other layers (convert without `correct` bias to export)")
    return nir.NIRGraph(nodes=g.nodes, edges=g.edges)


def _fold_bias(g: _Graph, nir, sources, bias: np.ndarray, where: str) -> None:
    """Add a neuron's bias correction (a per-channel current every step) to the bias of a conv or affine
    node that feeds only this neuron: the same current, every step. Raises UserError where there is none."""
    for src, _ in sources:
        node = g.nodes[src]
        feeds_others = any(a == src for a, _ in g.edges)
        if isinstance(node, (nir.Conv2d, nir.Affine)) and not feeds_others and node.bias.shape[0] == bias.shape[0]:
            node.bias = (node.bias + bias).astype(np.float32)
            g.folded[src] = where
            return
    raise UserError(f"NIR export cannot carry the bias correction of neuron {where}: no conv or linear layer of its "
                    "own feeds it, whose bias could take it (convert without `correct` bias to export)")


def _flatten(g: _Graph, nir, sources, in_shape, name, start_dim, end_dim):
    if start_dim != 1 or end_dim not in (-1, len(in_shape)):
        raise UserError(f"NIR export: '{name}' flattens dims {start_dim}..{end_dim}; only flatten(1) is supported")
    node = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
    return [(g.add(str(name), node, sources), _scale_of(sources, f"'{name}'"))]


def lost_in_export(conversion: dict) -> list[str]:
    """What a NIR reader that ignores our metadata does not reproduce, for a conversion's settings
    (``neuron``, ``int_bits``, ``frac_bits``, ``v_init``, ``cap``): one line each."""
    lines = []
    if conversion.get("v_init", "zero") != "zero":
        lines.append(f"v_init {conversion['v_init']} is lost: NIR neurons start at v = 0 (convert with "
                     "--v-init zero for an export that runs the same)")
    mode = (conversion.get("correct") or {}).get("mode", "none")
    if "potential" in mode.split("+"):
        lines.append("the potential correction (a per-channel offset of each neuron's initial potential) is lost: NIR "
                     "neurons start at v = 0; it is kept in each IF node's metadata (ann2snn_v_offset)")
    if "bias" in mode.split("+"):
        lines.append("the bias correction is folded into the bias of the conv or linear layer before each neuron: "
                     "the same current every step, in another float rounding")
    k = conversion.get("cap") or (2 ** (conversion["int_bits"] + conversion["frac_bits"]) - 1)
    lines.append(f"the per-step spike cap K = {k} is in each IF node's metadata (ann2snn_max_spikes_per_step); "
                 "a reader that ignores it fires without limit")
    return lines


def export_nir(snn: nn.Module, path: str, example: torch.Tensor | None = None):
    """Write :func:`snn_to_nir`'s graph to ``path`` (HDF5, ``nir.write``) atomically; returns the graph.

    Raises:
        UserError: as :func:`snn_to_nir`, or an unwritable ``path``.
    """
    import tempfile

    nir = require_nir()
    graph = snn_to_nir(snn, example)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return graph


class _GraphRunner(nn.Module):
    """Runs NIR nodes (as torch modules) in topological order; a node's incoming edges are summed, in
    edge order, as NIR defines. One call is one time step: ``[B, C, H, W]`` → ``[B, classes]``."""

    def __init__(self, modules: dict, edges: list, order: list, output: str):
        super().__init__()
        self.layers = nn.ModuleDict({k.replace(".", "_"): m for k, m in modules.items()})
        self.preds = {n: [s for s, d in edges if d == n] for n in order}
        self.order, self.output = order, output

    def forward(self, x):
        values = {}
        for name in self.order:
            if not self.preds[name]:
                values[name] = x
                continue
            total = values[self.preds[name][0]]
            for src in self.preds[name][1:]:
                total = total + values[src]
            key = name.replace(".", "_")
            values[name] = self.layers[key](total) if key in self.layers else total
        return values[self.output]


def _topological(nodes, edges) -> list:
    indeg = {n: 0 for n in nodes}
    for _, d in edges:
        indeg[d] += 1
    ready = [n for n in nodes if indeg[n] == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s, d in edges:
            if s == n:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
    if len(order) != len(nodes):
        raise UserError("the NIR graph has a cycle; to_sinabs runs feed-forward graphs only")
    return order


def to_sinabs(graph, batch_size: int = 1) -> nn.Module:
    """Import a NIR graph into sinabs: every node becomes the module sinabs' own importer
    (``sinabs.nir``) makes for it, wired by ``nirtorch.nir_to_torch``; then what our metadata says
    and NIR cannot: each IF node with ``ann2snn_max_spikes_per_step`` K is sinabs' ``IAFSqueeze`` with
    ``MaxSpike(K)`` (at most K spikes per step), ``MembraneSubtract`` reset and no floor on ``v``.

    The modules are wired here, in topological order, summing a node's inputs as NIR defines.
    ``sinabs.from_nir`` wires them with nirtorch 2.0's deprecated ``load``, whose executor runs nodes in
    depth-first order: in a residual graph a node can then run before its second input exists (it
    reads last step's value), and nirtorch's ``nir_to_torch`` passes several inputs as separate
    arguments and fails on these graphs.

    Args:
        graph: a ``nir.NIRGraph`` or the path of a ``.nir`` file.
        batch_size: images per call; call the network once per time step with ``[B, C, H, W]``.

    Returns:
        A module whose call on one step's input returns that step's output ``[B, classes]``; its
        neurons keep ``v`` between calls (``sinabs.reset_states(module)`` starts again from v = 0).

    Raises:
        UserError: nir or sinabs is not installed, or a node sinabs cannot import.
    """
    nir = require_nir()
    try:
        import sinabs.layers as sl
        from sinabs.activation import MaxSpike, MembraneSubtract
        from sinabs.nir import _import_sinabs_module
    except ImportError:
        raise UserError("importing into sinabs needs sinabs and nirtorch: pip install sinabs") from None
    if isinstance(graph, str):
        graph = nir.read(graph)
    def sinabs_module(node):
        if isinstance(node, nir.IF) and META + "max_spikes_per_step" in node.metadata:
            k = int(np.asarray(node.metadata[META + "max_spikes_per_step"]))
            return sl.IAFSqueeze(spike_threshold=torch.as_tensor(np.asarray(node.v_threshold)).float(),
                                 spike_fn=MaxSpike(k), reset_fn=MembraneSubtract(), min_v_mem=None,
                                 batch_size=batch_size)
        return _import_sinabs_module(node, batch_size=batch_size, num_timesteps=None)

    modules = {}
    for name, node in graph.nodes.items():
        if not isinstance(node, (nir.Input, nir.Output)):
            module = sinabs_module(node)
            if module is None:
                raise UserError(f"sinabs cannot import NIR node '{name}' ({type(node).__name__})")
            modules[name] = module
    outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    return _GraphRunner(modules, list(graph.edges), _topological(list(graph.nodes), graph.edges), outputs[0])
