"""Operation counts and energy estimates of ANNs and converted SNNs (the seed paper's Table 5).

**ANN.** :func:`ann_macs` counts the multiply-accumulates (MACs) per image of every Conv2d and
Linear layer: a conv costs ``out elements × (C_in / groups) × kh × kw``, a linear ``in × out``
(per row). Bias, BatchNorm, activation and pooling operations are not counted, as usual.

**SNN.** :class:`OpCounter` is an :class:`~ann2snn.conversion.simulate.Observer` for
:func:`~ann2snn.conversion.simulate.simulate_snn`. At every step t and for every spiking neuron output element
with count ``k_t`` (``s_t = k_t·q``) it counts

* synaptic events:      ``[k_t ≠ 0] × fan-out``  (one accumulate per synapse per spike, whatever k);
* bit-level accumulates: ``popcount(k_t) × fan-out``  (the spike executed as binary bit planes,
  :mod:`ann2snn.analysis.bitplane`; each plane is one accumulate per synapse, its weights scaled by 2^b).

For IF neurons (k ∈ {0, 1}) the two are equal. The first weighted layer(s), whose input is the analog
image (direct encoding), run as ordinary MACs at every step.

**Fan-out** of a neuron output element = the number of multiplications by a weight that the
element's value takes part in, in the weighted layers (Conv2d / Linear) it reaches without passing
through another neuron or another weighted layer. For a conv this is the number of (output position,
output channel) pairs whose receptive field contains the element: ``9 × C_out`` inside a 3×3 / pad 1 /
stride 1 map, fewer at borders (``4 × C_out`` at corners, ``6 × C_out`` on edges) and for strides;
for a Linear it is ``out_features``. Routing between a neuron and those layers is treated as wiring:

* an average pool passes its output's fan-out to *each* input in its window (the 1/area scale is
  undone: a pooled spike still triggers one accumulate per downstream synapse); overlapping windows
  add up; ``AdaptiveAvgPool2d(1)`` + ``Flatten`` + ``Linear`` gives every element ``out_features``;
* a residual input feeding both ``conv1`` and a conv shortcut gets the sum of both fan-outs; an
  identity shortcut into an add (then a neuron) has no weights and adds nothing;
* flatten / view / reshape, slicing, concatenation, dropout in eval mode and adds are wiring.

The maps are computed once per model with autograd on a probe pass (batch 1, ``input_shape``): every
neuron output is replaced by a leaf tensor, every weighted layer adds ``sum(layer_ones(input))`` (its
weights set to 1, no bias) to a scalar while passing a detached output on, and every average pool is
given the gradient of a sum pool. The gradient of the scalar w.r.t. a neuron's leaf is its fan-out
map ``[C, H, W]`` (or ``[F]``), exact at borders and for strides and groups.

Limits: the maps are for one input size (``input_shape``); any other operation between a neuron and a
weighted layer (e.g. a BatchNorm *before* a conv, a scalar multiply, max-pooling, a functional
average pool) is refused with ``ValueError`` naming the autograd op, since it would scale the counts.
Not counted: bias and folded-BN additions, membrane updates (charge, compare, reset), pooling
additions, and the accumulation of the analog output over steps. A synaptic event of a multi-bit
spike is counted as *one* AC, which is optimistic: it really needs a multiply by k or the popcount(k)
bit-plane ACs of the second figure. A weighted layer whose input is not derived from any neuron
(normally only the stem conv) is counted as MACs every step.

**Energy** (45 nm, Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014:
32-bit float add 0.9 pJ, mult 3.7 pJ; the figures the SNN literature uses)::

    E_AC = 0.9 pJ,  E_MAC = 4.6 pJ
    E_ANN            = E_MAC · MACs_total
    E_SNN(T)         = E_MAC · MACs_first · T + E_AC · events(T)
    E_SNN,bitplane(T) = E_MAC · MACs_first · T + E_AC · bit_ACs(T)

with ``events(T)`` and ``bit_ACs(T)`` the per-image counts summed over steps ``1..T``. All energies
are returned in µJ per image. Memory access, which dominates real hardware, is not modelled.
"""

from __future__ import annotations

import math
import types

import torch
from torch import nn
from torch.nn import functional as F

from ann2snn.conversion.maxpool import SpikingMaxPool
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import Observer
from ann2snn.plumbing import fuse
from ann2snn.plumbing.probe import probe_pass
from ann2snn.plumbing.errors import UserError

#: energy of one accumulate (32-bit float add, 45 nm; Horowitz ISSCC 2014), in pJ
E_AC_PJ = 0.9
#: energy of one multiply-accumulate (3.7 pJ mult + 0.9 pJ add, 45 nm; Horowitz ISSCC 2014), in pJ
E_MAC_PJ = 4.6

WEIGHTED = (nn.Conv2d, nn.Linear)

#: autograd ops allowed between a neuron output and the probes of its downstream weighted layers
_ROUTING_OPS = {
    "AccumulateGrad", "AddBackward", "SumBackward", "ConvolutionBackward", "MmBackward", "BmmBackward",
    "MvBackward", "ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "AvgPool2DBackward",
    "AvgPool3DBackward", "SliceBackward", "SelectBackward", "StackBackward", "CatBackward", "CloneBackward",
    "SqueezeBackward", "UnsqueezeBackward", "PermuteBackward", "TransposeBackward", "TBackward",
    "ExpandBackward", "AliasBackward",
}


def _popcount_fixed(k: torch.Tensor, num_bits: int) -> torch.Tensor:
    """popcount of integer counts in ``0..2^num_bits − 1`` (no checks, no device sync)."""
    out = k & 1
    for b in range(1, num_bits):
        out = out + ((k >> b) & 1)
    return out


def count_step(out: torch.Tensor, q: torch.Tensor, num_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element counts of one step's spikes, summed over the batch.

    Args:
        out: the spike values ``s = k·q`` of one step, ``[B, ...]``.
        q: the neuron's quantum (0-dim).
        num_bits: bits of the largest count K (``K.bit_length()``).

    Returns:
        ``(nonzero, popcount)``, each int32 ``[N]`` (N = elements per image): Σ over the batch of
        ``[k ≠ 0]`` and of ``popcount(k)``. Integer sums, so any summation order gives the same
        numbers: the compiled version (:mod:`ann2snn.plumbing.fuse`, one pass over ``out``) equals
        this plain one exactly.
    """
    k = torch.round(out / q).to(torch.int32).reshape(out.shape[0], -1)
    nonzero = (k != 0).to(torch.int32).sum(0, dtype=torch.int32)
    return nonzero, _popcount_fixed(k, num_bits).sum(0, dtype=torch.int32)


def energy_uj(macs: float = 0.0, acs: float = 0.0) -> float:
    """Energy in µJ of ``macs`` multiply-accumulates and ``acs`` accumulates (E_MAC, E_AC above)."""
    return (E_MAC_PJ * float(macs) + E_AC_PJ * float(acs)) * 1e-6


def _layer_macs(layer: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """MACs of one call of a Conv2d / Linear, per image (batch 1 probe: the whole output)."""
    per_image = out.numel() // out.shape[0]
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return per_image * (layer.in_channels // layer.groups) * kh * kw
    return per_image * layer.in_features


class _NeuronState:
    """Save the membrane potentials of a model's neurons (and the state of its spiking max-pools) and
    put them back afterwards."""

    _FIELDS = {MultiBitIF: ("v",), SpikingMaxPool: ("acc", "peak")}

    def __init__(self, model: nn.Module):
        self.saved = [(m, {f: getattr(m, f) for f in self._FIELDS[type(m)]}) for m in model.modules()
                      if type(m) in self._FIELDS]

    def restore(self) -> None:
        for m, fields in self.saved:
            for f, value in fields.items():
                setattr(m, f, value)


def _probe_input(model: nn.Module, input_shape) -> torch.Tensor:
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else "cpu"
    dtype = p.dtype if p is not None else torch.float32
    return torch.zeros((1, *tuple(input_shape)[1:]), device=device, dtype=dtype)


def ann_macs(model: nn.Module, input_shape=(1, 3, 32, 32)) -> dict:
    """Multiply-accumulates per image of every Conv2d and Linear of ``model`` (one probe pass).

    Conv: ``out elements × (C_in/groups) × kh × kw``; Linear: ``in × out`` (per row). A layer called
    twice is counted twice. Works on an ANN or a converted SNN (neuron state is left unchanged).

    Args:
        model: the network. input_shape: ``[B, C, H, W]`` of one input (B is ignored).

    Returns:
        ``{"layers": {name: MACs}, "total": int, "first": int, "first_layer": name}``, where "first"
        is the weighted layer that runs first (the stem conv).
    """
    layers: dict[str, int] = {}
    order: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, WEIGHTED):
            def hook(mod, inp, out, name=name):
                layers[name] = layers.get(name, 0) + _layer_macs(mod, inp[0], out)
                if name not in order:
                    order.append(name)
            handles.append(m.register_forward_hook(hook))
    state = _NeuronState(model)
    try:
        with probe_pass(model, handles), torch.no_grad():
            for n, _ in state.saved:
                n.reset()
            model(_probe_input(model, input_shape))
    finally:
        state.restore()
    if not order:
        raise ValueError("the model has no Conv2d or Linear layer")
    return {"layers": layers, "total": sum(layers.values()), "first": layers[order[0]], "first_layer": order[0]}


def _adaptive_sum_pool2d(x: torch.Tensor, output_size) -> torch.Tensor:
    """Sum (not mean) over the windows of ``AdaptiveAvgPool2d(output_size)``, via slices and sums."""
    h, w = x.shape[-2:]
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    oh = h if output_size[0] is None else output_size[0]
    ow = w if output_size[1] is None else output_size[1]
    if (oh, ow) == (1, 1):
        return x.sum((-2, -1), keepdim=True)
    rows = []
    for i in range(oh):
        r0, r1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
        cols = [x[..., r0:r1, (j * w) // ow:math.ceil((j + 1) * w / ow)].sum((-2, -1)) for j in range(ow)]
        rows.append(torch.stack(cols, -1))
    return torch.stack(rows, -2)


def _sum_pool(mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(mod, nn.AvgPool2d):
        return F.avg_pool2d(x, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, mod.count_include_pad,
                            divisor_override=1)
    return _adaptive_sum_pool2d(x, mod.output_size)


def _check_routing(root: torch.Tensor) -> None:
    """Refuse autograd ops between neurons and weighted layers that are not plain wiring."""
    seen, stack, bad = set(), [root.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        name = type(fn).__name__.rstrip("0123456789")
        if name not in _ROUTING_OPS:
            bad.add(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    if bad:
        raise ValueError(f"cannot count fan-out through {sorted(bad)} between a neuron and a weighted layer; "
                         "only average pools, flatten/reshape, slicing, concatenation, dropout and adds are "
                         "treated as wiring")


def fanout_maps(snn: nn.Module, input_shape=(1, 3, 32, 32), sources: dict | None = None
                ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Per-element fan-out of every neuron of a converted SNN (see the module docstring).

    A spiking max-pool (:class:`~ann2snn.conversion.maxpool.SpikingMaxPool`) fed by one neuron is a
    spike source of its own: its outputs (whole counts of that neuron's q) are the next layer's input
    events, so it gets a fan-out map, and the neuron's elements that only reach the pool get 0.

    Args:
        sources: if given, filled with ``{pool name: the neuron feeding it}``.

    Returns:
        ``(fanout, analog_layers)``: ``fanout[name]`` is an int64 tensor shaped like one image's
        output of neuron (or spiking max-pool) ``name`` (``[C, H, W]`` or ``[F]``); ``analog_layers``
        are the weighted layers whose input derives from no neuron (they run as MACs every step).

    Raises:
        ValueError: no neuron, or routing other than wiring (see :func:`_check_routing`).
    """
    leaves: dict[str, torch.Tensor] = {}
    sources = {} if sources is None else sources
    terms: list[torch.Tensor] = []
    analog: list[str] = []
    handles = []
    for name, m in snn.named_modules():
        if isinstance(m, MultiBitIF):
            def neuron_hook(mod, inp, out, name=name):
                leaf = torch.zeros_like(out).requires_grad_(True)
                leaves[name] = leaf
                return leaf
            handles.append(m.register_forward_hook(neuron_hook))
        elif isinstance(m, WEIGHTED):
            def weighted_hook(mod, inp, out, name=name):
                x = inp[0]
                if x.requires_grad:
                    ones = torch.ones_like(mod.weight).detach()
                    y = mod._conv_forward(x, ones, None) if isinstance(mod, nn.Conv2d) else F.linear(x, ones)
                    terms.append(y.sum())
                elif name not in analog:
                    analog.append(name)
                return out.detach()
            handles.append(m.register_forward_hook(weighted_hook))
        elif isinstance(m, SpikingMaxPool):
            def maxpool_hook(mod, inp, out, name=name):
                x = inp[0]
                if not x.requires_grad:  # fed by a weighted layer or the input: its output is a current
                    return None
                _check_routing(x.sum())
                names = list(leaves)
                grads = torch.autograd.grad(x.sum(), [leaves[n] for n in names], allow_unused=True, retain_graph=True)
                feeding = [n for n, g in zip(names, grads) if g is not None and bool(g.ne(0).any())]
                if len(feeding) != 1:
                    raise ValueError(f"spiking max-pool '{name}' takes the spikes of {len(feeding)} neurons "
                                     f"({', '.join(feeding)}); counting needs one neuron (one quantum q) per pool")
                sources[name] = feeding[0]
                leaf = torch.zeros_like(out).requires_grad_(True)  # its outputs are the next layer's events
                leaves[name] = leaf
                return leaf
            handles.append(m.register_forward_hook(maxpool_hook))
        elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            def pool_hook(mod, inp, out):
                x = inp[0]
                if not x.requires_grad:
                    return None
                s = _sum_pool(mod, x)
                return s + (out - s).detach()  # the pool's value, a sum pool's gradient
            handles.append(m.register_forward_hook(pool_hook))
    if not any(isinstance(m, MultiBitIF) for m in snn.modules()):
        for h in handles:
            h.remove()
        raise ValueError("the model has no spiking neuron (MultiBitIF); convert it first")
    state = _NeuronState(snn)
    try:
        with probe_pass(snn, handles), torch.inference_mode(False), torch.enable_grad():
            for n, _ in state.saved:
                n.reset()
            snn(_probe_input(snn, input_shape))
            if terms:
                total = torch.stack(terms).sum()
                _check_routing(total)
                names = list(leaves)
                grads = torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True)
            else:
                names, grads = list(leaves), [None] * len(leaves)
    finally:
        state.restore()
    fanout = {}
    for name, g in zip(names, grads):
        if g is None:
            fanout[name] = torch.zeros(leaves[name].shape[1:], dtype=torch.int64)
            continue
        g = g[0].detach().double().cpu()
        r = g.round()
        if not bool(((g - r).abs() <= 1e-3).all()) or bool((r < 0).any()):
            raise ValueError(f"fan-out of neuron '{name}' is not a whole number; unsupported routing")
        fanout[name] = r.to(torch.int64)
    return fanout, analog


class OpCounter(Observer):
    """Counts synaptic events and bit-level accumulates per time step during ``simulate_snn``.

    Usage::

        counter = OpCounter(snn, input_shape=(1, 3, 32, 32))
        correct, total = simulate_snn(snn, batches, T_max, observers=[counter])
        for T in (4, 16, 64):
            row = counter.totals(T)   # per image: events, bit_acs, energies in µJ, ...
        counter.remove()              # detach its hooks when done

    Counting happens only between ``begin_batch`` and ``end_batch`` (so an ANN-mode evaluation of
    the same network is not counted) and only for neurons in ``"snn"`` mode.

    Attributes:
        fanout: ``{neuron name: int64 [C, H, W] or [F]}`` (see the module docstring).
        analog_layers: weighted layers fed by the analog input (MACs every step).
        first_layer_macs: their MACs per image per step.
        ann: :func:`ann_macs` of the network (the same Conv2d / Linear layers as the ANN).
        events_per_step, bitops_per_step: float64 ``[T]``, summed over all images seen.
        site_events, site_bitops: the same per neuron (``{name: [T]}``).
        images: number of images seen.
    """

    def __init__(self, snn: nn.Module, input_shape=(1, 3, 32, 32)):
        self.input_shape = tuple(input_shape)
        #: spiking max-pool → the neuron feeding it (its quantum and largest count K count the pool's outputs)
        self.pool_sources: dict[str, str] = {}
        self.fanout, self.analog_layers = fanout_maps(snn, input_shape, self.pool_sources)
        self.ann = ann_macs(snn, input_shape)
        self.first_layer_macs = sum(self.ann["layers"][n] for n in self.analog_layers)
        self.sites = list(self.fanout)
        self.images = 0
        self._per_step: dict[str, list[list[int]]] = {n: [[], []] for n in self.sites}
        self._index = {n: i for i, n in enumerate(self.sites)}
        self._counts: torch.Tensor | None = None  # float64 [sites, 2 (events, bit ACs), capacity]
        self._t = 0
        self._dev_fanout: dict = {}
        self._scratch: dict = {}
        self._active = False
        #: whether counting may take the compiled pass (turned off, for counting only, if it cannot compile)
        self._fused_count = types.SimpleNamespace(fused=True)
        self._handles = []
        for name, m in snn.named_modules():
            if isinstance(m, MultiBitIF):
                self._handles.append(m.register_forward_hook(self._hook(name, m)))
            elif name in self.pool_sources:  # counted in the quantum and K of the neuron feeding it
                self._handles.append(m.register_forward_hook(self._hook(name, snn.get_submodule(self.pool_sources[name]))))

    # --- hooks and Observer interface -------------------------------------------------------
    def _fan(self, name: str, device) -> torch.Tensor:
        key = (name, str(device))
        if key not in self._dev_fanout:
            self._dev_fanout[key] = self.fanout[name].to(device)
        return self._dev_fanout[key]

    def _fan64(self, name: str, device) -> torch.Tensor:
        key = (name, str(device), "float64")
        if key not in self._dev_fanout:
            self._dev_fanout[key] = self._fan(name, device).reshape(-1).to(torch.float64)
        return self._dev_fanout[key]

    def _hook(self, name: str, src: MultiBitIF):
        """Count the outputs of ``name`` (a neuron, or a spiking max-pool fed by neuron ``src``) in whole
        counts of ``src``'s quantum."""
        def hook(mod, inp, out):
            if not self._active or mod.mode != "snn":
                return
            fan = self._fan(name, out.device)
            if tuple(out.shape[1:]) != tuple(fan.shape):
                raise ValueError(f"neuron '{name}' output {tuple(out.shape[1:])} does not match the fan-out map "
                                 f"{tuple(fan.shape)} probed at input shape {self.input_shape}")
            if getattr(mod, "fused", False) and self._fused_count.fused and out.dim() == 4:  # one compiled pass
                nonzero, pc = fuse.run_fused(self._fused_count, count_step, out, src.quantum(), src.k_max.bit_length())
                fan64 = self._fan64(name, out.device)
                events = torch.dot(nonzero.to(torch.float64), fan64)
                bitops = events if src.k_max == 1 else torch.dot(pc.to(torch.float64), fan64)
            else:
                events, bitops = self._plain_counts(name, src, out)
            # written into one preallocated tensor: per-step tensors kept until the end of the batch
            # would pin small blocks between the large ones and grow the heap with T
            if self._t >= self._counts.shape[2]:
                self._counts = torch.cat([self._counts, torch.zeros_like(self._counts)], 2)
            i = self._index[name]
            self._counts[i, 0, self._t] += events
            self._counts[i, 1, self._t] += bitops
        return hook

    def _plain_counts(self, name: str, mod, out: torch.Tensor):
        """Events and bit-plane ACs of one step (float64 0-dim tensors), op by op in scratch buffers."""
        # the narrowest integer type keeps the per-element work small (uint8 for K <= 255); every
        # temporary lives in buffers allocated once per batch (allocating them per step made peak
        # memory grow with T through allocator churn)
        b = self._buffers(name, out, torch.uint8 if mod.k_max < 256 else torch.int32)
        torch.div(out, mod.quantum(), out=b["f"]).round_()
        b["k"].copy_(b["f"])
        b["f"].copy_(torch.ne(b["k"], 0, out=b["nz"]))
        events = self._weighted_sum(b, name)
        if mod.k_max == 1:  # IF: one bit, popcount(k) = [k != 0]
            return events, events
        b["pc"].zero_()
        for bit in range(mod.k_max.bit_length()):
            torch.bitwise_right_shift(b["k"], bit, out=b["tmp"])
            b["pc"].add_(b["tmp"].bitwise_and_(1))
        b["f"].copy_(b["pc"])
        return events, self._weighted_sum(b, name)

    def _buffers(self, name: str, out: torch.Tensor, kind: torch.dtype) -> dict:
        """Scratch tensors for one site, made at its first step of a batch and reused for the rest.

        Allocating temporaries per step made peak memory grow with T (allocator churn); a reduction
        over the batch into int64 also copies the whole input to int64 first. So the counts are
        summed over the batch as a float matrix-vector product (exact: integers below 2^24) and then
        weighted by the fan-out in float64 (exact below 2^53).
        """
        b = self._scratch.get(name)
        if b is None or b["f"].shape != out.shape or b["f"].dtype != out.dtype or b["f"].device != out.device:
            like = dict(device=out.device)
            n = out[0].numel()
            b = {"f": torch.empty(out.shape, dtype=out.dtype, **like), "k": torch.empty(out.shape, dtype=kind, **like),
                 "nz": torch.empty(out.shape, dtype=torch.bool, **like),
                 "pc": torch.empty(out.shape, dtype=kind, **like), "tmp": torch.empty(out.shape, dtype=kind, **like),
                 "ones": torch.ones(out.shape[0], dtype=out.dtype, **like),
                 "per_elem": torch.empty(n, dtype=out.dtype, **like),
                 "per_elem64": torch.empty(n, dtype=torch.float64, **like),
                 "fan64": self._fan64(name, out.device)}
            self._scratch[name] = b
        return b

    @staticmethod
    def _weighted_sum(b: dict, name: str) -> torch.Tensor:
        """Σ over images and elements of ``b["f"]`` times the fan-out (float64 0-dim tensor)."""
        torch.mv(b["f"].view(len(b["ones"]), -1).t(), b["ones"], out=b["per_elem"])
        b["per_elem64"].copy_(b["per_elem"])
        return torch.dot(b["per_elem64"], b["fan64"])

    def begin_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ValueError(f"OpCounter was probed with inputs {self.input_shape[1:]}, got {tuple(x.shape[1:])}; "
                             "make a new OpCounter for this input size")
        self._active = True
        self._batch_size = len(x)
        self._t = 0
        if self._counts is None or self._counts.device != x.device:
            self._counts = torch.zeros(len(self.sites), 2, 64, dtype=torch.float64, device=x.device)
        else:
            self._counts.zero_()

    def end_step(self, t: int) -> None:
        if self._active:
            self._t = t + 1

    def end_batch(self) -> None:
        if not self._active:
            return
        self._active = False
        counts = self._counts[:, :, :self._t].cpu().tolist()  # one read per batch (exact integers)
        for n, i in self._index.items():
            for j in (0, 1):
                vals = [int(v) for v in counts[i][j]]
                acc = self._per_step[n][j]
                acc.extend([0] * (len(vals) - len(acc)))
                for t, v in enumerate(vals):
                    acc[t] += v
        self.images += self._batch_size

    def reset(self) -> None:
        """Forget every count (images and steps), keeping the fan-out maps and the hooks: the same counter
        then measures another simulation of the same network (e.g. with other bits per site; each hook
        reads its neuron's quantum and K at every step)."""
        self.images = 0
        self._per_step = {n: [[], []] for n in self.sites}
        self._t = 0

    def remove(self) -> None:
        """Remove the counting hooks from the network."""
        for h in self._handles:
            h.remove()
        self._handles = []

    # --- results -------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of time steps counted (the longest simulation seen)."""
        return max((len(v[0]) for v in self._per_step.values()), default=0)

    def _series(self, name: str, i: int) -> torch.Tensor:
        vals = self._per_step[name][i]
        return torch.tensor(vals + [0] * (self.steps - len(vals)), dtype=torch.float64)

    @property
    def site_events(self) -> dict[str, torch.Tensor]:
        """Synaptic events per step, per neuron, summed over images: ``{name: float64 [T]}``."""
        return {n: self._series(n, 0) for n in self.sites}

    @property
    def site_bitops(self) -> dict[str, torch.Tensor]:
        """Bit-level accumulates per step, per neuron, summed over images: ``{name: float64 [T]}``."""
        return {n: self._series(n, 1) for n in self.sites}

    @property
    def events_per_step(self) -> torch.Tensor:
        """Synaptic events per step, summed over neurons and images: float64 ``[T]``."""
        return sum((self._series(n, 0) for n in self.sites), torch.zeros(self.steps, dtype=torch.float64))

    @property
    def bitops_per_step(self) -> torch.Tensor:
        """Bit-level accumulates per step, summed over neurons and images: float64 ``[T]``."""
        return sum((self._series(n, 1) for n in self.sites), torch.zeros(self.steps, dtype=torch.float64))

    def totals(self, T: int) -> dict:
        """Per-image operation counts and energies of steps ``1..T`` (see the module docstring).

        Returns a dict: ``T``, ``images``, ``events`` (synaptic events), ``bit_acs`` (bit-plane
        accumulates), ``first_layer_macs`` (analog-input MACs × T), ``energy_snn_uj`` (binary-event
        figure), ``energy_snn_bitplane_uj`` (bit-plane figure), ``ann_macs`` and ``energy_ann_uj``
        (µJ per image).

        Raises:
            UserError (a ValueError): no image counted yet, or T outside ``1..steps``.
        """
        if self.images == 0:
            raise UserError("no image was counted: pass the OpCounter to simulate_snn(..., observers=[counter])")
        if not (isinstance(T, int) and 1 <= T <= self.steps):
            raise UserError(f"T must be a whole number in 1..{self.steps} (the steps simulated), got {T!r}")
        events = float(self.events_per_step[:T].sum()) / self.images
        bit_acs = float(self.bitops_per_step[:T].sum()) / self.images
        macs = self.first_layer_macs * T
        return {
            "T": T, "images": self.images, "events": events, "bit_acs": bit_acs, "first_layer_macs": macs,
            "energy_snn_uj": energy_uj(macs, events), "energy_snn_bitplane_uj": energy_uj(macs, bit_acs),
            "ann_macs": self.ann["total"], "energy_ann_uj": energy_uj(self.ann["total"]),
        }
