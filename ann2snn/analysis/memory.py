"""The memory a sweep needs, estimated before it starts, and the largest batch that fits.

A sweep simulates a batch of B test images for T steps. What it holds at its peak, for one converted
network (the terms of :meth:`MemoryEstimate.total_bytes`):

* **the simulation of one batch**: every neuron's membrane potential and every spiking max-pool's
  accumulated input and last maximum (``[B, ...]`` each, whatever T), one forward pass's live
  activations and temporaries (the neuron step's, BatchNorm's, the residual adds'), the logits summed
  over steps, the :class:`~ann2snn.analysis.opcount.OpCounter` scratch buffers of every site and its
  fan-out maps (with ``ops``), the :class:`~ann2snn.analysis.diagnostics.LayerDiagnostics` buffers
  (the ANN activations, the summed outputs and the fired flags of every site, with ``diagnostics``);
  with a ``time_chunk`` of c the forward pass runs on c·B images;
* **the ANN passes**: the converted network in ANN mode on a batch of B (the sweep's reference and its
  time check), and the ANN column, computed as train-ann computes its test accuracy: float32 on
  batches of 500 test images (:data:`ann2snn.ann.train.EVAL_BATCH`), whatever B;
* **kernel workspace**: what a convolution takes inside itself (below);
* **the images**: the test split kept in memory (CIFAR: uint8) and each batch's conversion to
  float (the uint8 batch and two float32 copies); for an image folder, the uint8 batches its data
  loader's workers hold (two each);
* **parameters**: the converted network's (in the simulation precision), the source ANN's and the
  ANN column's copy (float32).

The first two are not added up by hand: they are measured on the network itself, by one probe run of
the real code (:func:`~ann2snn.conversion.simulate.simulate_snn` with the same observers, three steps;
the ANN-mode forward pass) on the CPU at batch 1 and again at batch 2, while a
``TorchDispatchMode`` follows every tensor storage the run allocates, from its allocation to its
release (views and in-place results share their base's storage and count once). The same operations
run at every batch size, so storage i of the run at batch B has ``b_i(B) = b_i(1) + (B − 1)·(b_i(2) −
b_i(1))`` bytes, and the peak at B is the largest sum of ``b_i(B)`` over the storages alive after any
allocation (tests/test_sweep_memory.py checks this against a run traced at batch 5).
float64 (``precision``) counts every float32 tensor of the probe twice (the probe runs in float32;
the membrane potentials, layers and scratch buffers all widen).

What the probe does not see, and how it is covered:

* memory a kernel takes inside itself: a convolution's im2col columns (float64 convolutions, and
  float32 ones at batch 1) or re-laid-out input and output (oneDNN): the **workspace** term,
  B × the largest weighted layer's ``max(input + output, im2col columns)`` per image;
* the **heap's holes**: glibc maps each allocation from :data:`MMAP_BYTES` (32 MiB) up on its own and
  hands it back when freed, but smaller tensors share a heap that keeps holes it cannot reuse, so the
  resident memory grows past what is alive: each storage below 32 MiB counts :data:`HEAP_FACTOR` (2)
  times (at each batch size, by its size at that batch size). Measured: resident growth up to 1.29 ×
  the live tensor bytes where the tensors stay below 32 MiB;
* the allocator's bookkeeping, Python objects, a compiled step's own buffers (the probe takes the plain
  neuron step, which holds more temporaries than the compiled one), other processes: the margin, a
  sweep plans to use at most :data:`MEMORY_FRACTION` (80 %) of the memory available
  (:func:`ann2snn.plumbing.memory.available_bytes`).

Measured against real runs (the peak resident memory a subprocess gains in
:func:`~ann2snn.pipelines.sweep.sweep_model` on one batch, ``tests/test_sweep_memory.py``; a small
conv net with a spiking max-pool at 64 px, batch 64, and torchvision's ResNet-18 at 224 px, batch 2–8,
float32 and float64, with and without counting and diagnostics): the estimate was 1.1–2.5 × the
measured growth, never below it. Not measured: CUDA (the check compares with the GPU's free memory,
whose caching allocator also keeps what it once held), and the data loader workers' own memory (image
folders: each worker process, beyond the batches it holds, is left to the margin).
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ann2snn.conversion.maxpool import SpikingMaxPool
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import set_mode, simulate_snn, stateful_of
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.memory import format_bytes

#: a sweep plans to use at most this fraction of the available memory (the rest is the safety margin)
MEMORY_FRACTION = 0.8
#: steps of the probe simulation (the first step starts from v_0; the next ones are the steady state)
PROBE_STEPS = 3
#: bytes per pixel of a batch made from uint8 images: the uint8 batch and two float32 copies
BATCH_BYTES_PER_PIXEL = 1 + 2 * 4


class _LiveBytes(TorchDispatchMode):
    """Follow every tensor storage that the operations run under it allocate.

    Storage i gets its bytes, whether it holds float32 (:attr:`float32`), the index of its allocation
    among all of them (:attr:`born`, 0-based) and the number of allocations made before it was freed
    (:attr:`died`; the total count while it is still alive at the end). A storage counts from the
    operation that makes it until the last tensor on it seen here is freed; views and in-place results
    share their base's storage; storages that already existed (parameters, inputs made outside) are
    not counted.
    """

    def __init__(self):
        super().__init__()
        self.nbytes: list[int] = []
        self.float32: list[bool] = []
        self.born: list[int] = []
        self.died: list[int | None] = []
        self.groups: dict[int, list] = {}  # storage address -> [storage index, tensors alive]

    def _release(self, key: int) -> None:
        g = self.groups.get(key)
        if g is None:
            return
        g[1] -= 1
        if g[1] == 0:
            self.died[g[0]] = len(self.nbytes)
            del self.groups[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key not in self.groups:
                if inputs is None:
                    inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs))
                              if isinstance(a, torch.Tensor)}
                if key in inputs or storage.nbytes() == 0:  # a view or an in-place result of an input
                    continue
                self.groups[key] = [len(self.nbytes), 0]
                self.born.append(len(self.nbytes))
                self.nbytes.append(storage.nbytes())
                self.float32.append(t.dtype == torch.float32)
                self.died.append(None)
            self.groups[key][1] += 1
            weakref.finalize(t, self._release, key)
        return out

    def record(self) -> dict:
        n = len(self.nbytes)
        return {"nbytes": torch.tensor(self.nbytes, dtype=torch.float64),
                "float32": torch.tensor(self.float32, dtype=torch.bool),
                "born": torch.tensor(self.born, dtype=torch.int64),
                "died": torch.tensor([n if d is None else d for d in self.died], dtype=torch.int64)}


def _trace(run, batch: int) -> dict:
    """:meth:`_LiveBytes.record` of ``run(batch)``."""
    tracker = _LiveBytes()
    with torch.inference_mode(), tracker:
        run(batch)
    return tracker.record()


#: allocations from this size up are mapped from the kernel one by one and handed back when freed
#: (glibc's largest dynamic mmap threshold on 64-bit systems, 32 MiB); smaller ones share the heap
MMAP_BYTES = 32 << 20
#: heap bytes counted per live byte of the smaller tensors: a heap that tensors of many sizes come and
#: go from keeps holes it cannot reuse, so the process's resident memory grows past what is alive
#: (measured up to 1.5 × after other work in the same process; module docstring)
HEAP_FACTOR = 2.0


def _heap(nbytes: float, heap_factor: float) -> float:
    """``nbytes`` of one allocation, times ``heap_factor`` below :data:`MMAP_BYTES`."""
    return nbytes * heap_factor if nbytes < MMAP_BYTES else nbytes


@dataclass
class Timeline:
    """The tensor storages of one probe run at batch 1 and at batch 2 (:meth:`_LiveBytes.record` each)."""

    at1: dict
    at2: dict

    def peak(self, batch: int, float_scale: float = 1.0, heap_factor: float | None = None) -> int:
        """The most bytes the run at batch ``batch`` holds: each storage's bytes are ``b1 + (batch − 1)·(b2 −
        b1)`` (from its bytes at batch 1 and 2), float32 storages counted ``float_scale`` times (2 for
        float64). ``heap_factor`` None: the largest sum over the storages alive after any allocation.
        Else the storages from :data:`MMAP_BYTES` up (mapped one by one, handed back when freed) and the
        smaller ones (the heap, which keeps what it once held) peak apart: the largest sum of the first,
        plus ``heap_factor`` × the largest sum of the second, each over the allocations. Where the two
        runs allocated differently (they should not), ``batch ×`` the batch-1 figures, never less."""
        one, two = self.at1, self.at2
        if len(one["nbytes"]) == 0:
            return 0
        same = (len(one["nbytes"]) == len(two["nbytes"]) and torch.equal(one["died"], two["died"])
                and torch.equal(one["float32"], two["float32"]))
        if same:
            size = one["nbytes"] + (batch - 1) * (two["nbytes"] - one["nbytes"])
        else:
            size, two = batch * one["nbytes"], one
        size = torch.where(two["float32"], size * float_scale, size)

        def most(part):
            n = len(part)
            delta = torch.zeros(n + 1, dtype=torch.float64)
            delta.index_add_(0, two["born"], part)
            delta.index_add_(0, two["died"], -part)
            return float(delta.cumsum(0)[:n].max())

        if heap_factor is None:
            return int(most(size))
        small = size < MMAP_BYTES
        return int(most(torch.where(small, 0.0, size)) + heap_factor * most(torch.where(small, size, 0.0)))


@dataclass
class MemoryEstimate:
    """Bytes a sweep of one converted network needs, as a function of the batch size (module docstring).

    Attributes:
        input_shape: ``(C, H, W)`` of one image.
        float_scale: 1 (float32) or 2 (float64).
        simulation, ann: :class:`Timeline` of the probe simulation and of the ANN-mode forward pass.
        workspace_per_image: bytes per image of the largest weighted layer's input plus output.
        state_per_image: bytes per image of the neurons' and spiking pools' state (part of the simulation).
        params_bytes: parameters and buffers of the three copies (converted, source ANN, ANN column).
        test_images: images of the test split per process (None: unknown).
        resident_bytes: the test split held in memory.
        time_chunk: steps per network call the probe ran.
        batches_in_flight: uint8 batches the data loader's workers hold besides the one in use.
        resizable: whether the sweep can take smaller images (``image_size``: image folders).
    """

    input_shape: tuple
    float_scale: float
    simulation: Timeline
    ann: Timeline
    workspace_per_image: int
    state_per_image: int
    params_bytes: int
    test_images: int | None
    resident_bytes: int
    time_chunk: int = 1
    batches_in_flight: int = 0
    label: str = ""
    resizable: bool = False
    options: dict = field(default_factory=dict)

    def _images(self, batch: int) -> int:
        pixels = 1
        for s in self.input_shape:
            pixels *= s
        return batch * pixels * (BATCH_BYTES_PER_PIXEL + self.batches_in_flight)

    def simulation_bytes(self, batch: int, heap_factor: float = HEAP_FACTOR) -> int:
        """Peak bytes of the sweep's work on batches of ``batch`` images (:func:`sweep_model
        <ann2snn.pipelines.sweep.sweep_model>`: the ANN-mode pass, the counters, the simulation),
        beyond the parameters and the test split (the terms 1, 3 and 4 of the module docstring)."""
        work = max(self.simulation.peak(batch, self.float_scale, heap_factor),
                   self.ann.peak(batch, self.float_scale, heap_factor))
        extra = batch * self.time_chunk * self.workspace_per_image * self.float_scale + self._images(batch)
        return int(work + _heap(extra, heap_factor))

    def column_bytes(self, heap_factor: float = HEAP_FACTOR, images: int | None = None) -> int:
        """Peak bytes of the ANN column's evaluation (float32, batches of up to 500 of the test images, or
        of ``images`` of them)."""
        from ann2snn.ann.train import EVAL_BATCH

        images = self.test_images if images is None else images
        n = EVAL_BATCH if images is None else max(1, min(EVAL_BATCH, images))
        extra = n * self.workspace_per_image + self._images(n)
        return int(self.ann.peak(n, 1.0, heap_factor) + _heap(extra, heap_factor))

    def _clip(self, batch: int) -> int:
        """A batch is at most the test images."""
        return batch if self.test_images is None else max(1, min(batch, self.test_images))

    def total_bytes(self, batch: int, images: int | None = None) -> int:
        """Peak bytes of the whole sweep of this network at batch size ``batch`` (at most its test images;
        on ``images`` of them: a subset, default all)."""
        batch = self._clip(batch if images is None else min(batch, images))
        resident = self.resident_bytes
        if images is not None and self.test_images:
            resident = resident * min(images, self.test_images) // self.test_images
        return self.params_bytes + resident + max(self.simulation_bytes(batch),
                                                  self.column_bytes(images=images))

    def record(self, batch: int) -> dict:
        """The estimate at ``batch`` in bytes, term by term (for sweep.json)."""
        batch = self._clip(batch)
        return {"network": self.label, "input_shape": list(self.input_shape), "batch_size": batch,
                "estimate_bytes": self.total_bytes(batch), "simulation_bytes": self.simulation_bytes(batch),
                "state_bytes": batch * self.state_per_image, "ann_column_bytes": self.column_bytes(),
                "params_bytes": self.params_bytes, "test_split_bytes": self.resident_bytes, **self.options}


def _state_per_image(model: nn.Module, float_scale: float) -> int:
    """Bytes per image of every neuron's and spiking pool's state, after one step at batch 1."""
    total = 0
    for m in stateful_of(model):
        for t in ((m.v,) if isinstance(m, MultiBitIF) else (m.acc, m.peak)):
            if t is not None:
                total += t.numel() * t.element_size() * (float_scale if t.dtype == torch.float32 else 1)
    return int(total)


def estimate_memory(snn: nn.Module, input_shape, *, ops: bool = True, diagnostics: bool = False,
                    time_chunk: int = 1, precision: str = "float32", test_images: int | None = None,
                    resident_bytes: int = 0, batches_in_flight: int = 0, label: str = "",
                    resizable: bool = False) -> MemoryEstimate:
    """Probe ``snn`` (a converted network; a copy is probed on the CPU, ``snn`` is not changed) and
    return its :class:`MemoryEstimate` (module docstring).

    Args:
        input_shape: ``(C, H, W)`` of one test image, e.g. ``(3, 224, 224)``.
        ops, diagnostics: whether the sweep counts operations / gathers per-layer diagnostics.
        time_chunk: steps per network call (> 1 only without ``ops`` and ``diagnostics``).
        precision: ``float32`` or ``float64``.
        test_images: test images per process (caps the ANN column's batch of 500); None: unknown.
        resident_bytes: bytes of the test split the sweep keeps in memory.
        batches_in_flight: uint8 batches a data loader's workers hold besides the one in use.
        resizable: whether the sweep can take smaller images (``image_size``: image folders).

    Raises:
        UserError: ``time_chunk`` > 1 together with ``ops`` or ``diagnostics``.
    """
    from ann2snn.analysis.diagnostics import LayerDiagnostics
    from ann2snn.analysis.opcount import OpCounter

    if time_chunk > 1 and (ops or diagnostics):
        raise UserError("`time_chunk` > 1 runs without per-step observers: switch off `ops` and drop `diagnostics`")
    input_shape = tuple(int(s) for s in input_shape)
    float_scale = 2.0 if precision == "float64" else 1.0
    model = copy.deepcopy(snn).float().cpu().eval()
    for m in model.modules():
        if isinstance(m, MultiBitIF):
            m.fused = False  # the plain step: more temporaries than the compiled one
        if isinstance(m, (MultiBitIF, SpikingMaxPool)):
            m.time_chunk = 1
    for m in stateful_of(model):
        m.reset()
    steps = PROBE_STEPS if time_chunk == 1 else 2 * time_chunk

    def simulate(batch):
        x = torch.zeros(batch, *input_shape)
        y = torch.zeros(batch, dtype=torch.int64)
        observers = []
        try:
            if ops:
                observers.append(OpCounter(model, (1, *input_shape)))
            if diagnostics:
                observers.append(LayerDiagnostics(model, list(range(1, steps + 1))))
            set_mode(model, "snn")
            simulate_snn(model, [(x, y)], steps, observers=observers, time_chunk=time_chunk)
        finally:
            for obs in observers:
                obs.remove()

    widest = [0]

    def weighted_hook(m, inp, out):  # elements per image of the layer's input + output, or of its im2col
        n = max(1, out.shape[0])
        size = (inp[0].numel() + out.numel()) // n
        if isinstance(m, nn.Conv2d):
            size = max(size, m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * out[0, 0].numel())
        widest[0] = max(widest[0], size)

    def ann_pass(batch):
        set_mode(model, "ann")
        try:
            model(torch.zeros(batch, *input_shape))
        finally:
            set_mode(model, "snn")

    handles = [m.register_forward_hook(weighted_hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        ann = Timeline(_trace(ann_pass, 1), _trace(ann_pass, 2))
    finally:
        for h in handles:
            h.remove()
    simulation = Timeline(_trace(simulate, 1), _trace(simulate, 2))
    with torch.inference_mode():  # the state one step leaves
        set_mode(model, "snn")
        for m in stateful_of(model):
            m.reset()
        model(torch.zeros(1, *input_shape))
        state = _state_per_image(model, float_scale)
        for m in stateful_of(model):
            m.reset()
    tensors = list(snn.parameters()) + list(snn.buffers())
    params32 = sum(t.numel() * 4 for t in tensors if t.is_floating_point())
    others = sum(t.numel() * t.element_size() for t in tensors if not t.is_floating_point())
    params = int(params32 * float_scale + 2 * params32 + 3 * others)
    options = {"ops": bool(ops), "diagnostics": bool(diagnostics), "time_chunk": time_chunk, "precision": precision}
    return MemoryEstimate(input_shape, float_scale, simulation, ann, widest[0] * 4, state, params, test_images,
                          int(resident_bytes), time_chunk, batches_in_flight, label, bool(resizable), options)


def largest_fitting_batch(estimates: list[MemoryEstimate], budget: float, cap: int) -> int:
    """The largest batch in ``1..cap`` whose :meth:`~MemoryEstimate.total_bytes` is within ``budget``
    for every estimate (0 when even 1 is not). The totals grow with the batch, so a bisection finds it."""
    def fits(b):
        return all(e.total_bytes(b) <= budget for e in estimates)

    if not fits(1):
        return 0
    lo, hi = 1, max(1, cap)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def plan_batch(estimates: list[MemoryEstimate], available: int | None, batch_size, cap: int,
               without_observers=None) -> dict:
    """Check that a sweep's batch fits in memory, or choose the largest that does.

    Args:
        estimates: one :class:`MemoryEstimate` per network of the sweep.
        available: bytes available (:func:`ann2snn.plumbing.memory.available_bytes`); None: unknown.
        batch_size: the requested batch (an int), or ``"auto"``.
        cap: the largest batch worth taking (``"auto"``: the default 500, at most the test images).
        without_observers: called (no arguments) for the estimates without ``ops`` and ``diagnostics``,
            only when even batch 1 does not fit, to say what dropping them saves.

    Returns:
        ``{"batch_size": B, "requested": batch_size, "available_bytes": ..., "usable_bytes": ...,
        "usable_fraction": MEMORY_FRACTION, "estimate_bytes": the largest total at B,
        "networks": [MemoryEstimate.record(B), ...]}``.

    Raises:
        UserError: one line: the requested batch does not fit (the estimate, the memory available, the
            largest batch that fits); even batch 1 does not fit (and what to switch off); the ANN column's
            batches of 500 alone do not fit (and the subset that would); ``auto`` where the available
            memory cannot be read.
    """
    auto = batch_size == "auto"
    if available is None:
        if auto:
            raise UserError("`batch_size` auto needs the available memory, which cannot be read on this system: "
                            "give a number")
        b = int(batch_size)
        return {"batch_size": b, "requested": batch_size, "available_bytes": None, "usable_bytes": None,
                "usable_fraction": MEMORY_FRACTION, "estimate_bytes": max(e.total_bytes(b) for e in estimates),
                "networks": [e.record(b) for e in estimates]}
    budget = MEMORY_FRACTION * available
    have = (f"the {format_bytes(budget)} usable here ({100 * MEMORY_FRACTION:.0f} % of the {format_bytes(available)} "
            f"available, a {100 - 100 * MEMORY_FRACTION:.0f} % margin)")
    best = largest_fitting_batch(estimates, budget, cap if auto else int(batch_size))
    if best == 0:
        first = max(estimates, key=lambda e: e.total_bytes(1))
        shape = "×".join(map(str, first.input_shape))
        smaller = (f"use a smaller `image_size` ({first.input_shape[-1]} now)" if first.resizable
                   else f"use a smaller network ({shape} images)")
        images = min((e.test_images for e in estimates if e.test_images), default=0)
        if images > 1 and all(e.total_bytes(1, 1) <= budget for e in estimates):
            # one image fits, simulated and in the ANN column: the column's batches of 500 are what does not
            lo, hi = 1, images - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if all(e.total_bytes(1, mid) <= budget for e in estimates) else (lo, mid - 1)
            raise UserError(f"the sweep needs about {format_bytes(first.total_bytes(1))} of memory for its ANN column "
                            f"(the source ANN on batches of up to 500 test images, as train-ann evaluates it), more "
                            f"than {have}: sweep a `subset` of at most {lo} test images, or {smaller}")
        hint = ""
        on = [name for key, name in (("ops", "switch off `ops`"), ("diagnostics", "drop `diagnostics`/`plots`"))
              if any(e.options.get(key) for e in estimates)]
        if without_observers is not None and on:
            bare = max(e.total_bytes(1) for e in without_observers())
            hint = f"{' and '.join(on)} (without them: {format_bytes(bare)}), or "
        raise UserError(f"even one image per batch (`batch_size` 1) needs about {format_bytes(first.total_bytes(1))} "
                        f"of memory, more than {have}: {hint}{smaller}")
    b = best if auto else int(batch_size)
    need = max(e.total_bytes(b) for e in estimates)
    if not auto and need > budget:
        raise UserError(f"a batch of {b} images needs about {format_bytes(need)} of memory (estimated), more than "
                        f"{have}; the largest batch that fits is {best}: give `batch_size` {best} (or auto)")
    return {"batch_size": b, "requested": batch_size, "available_bytes": int(available), "usable_bytes": int(budget),
            "usable_fraction": MEMORY_FRACTION, "estimate_bytes": int(need),
            "networks": [e.record(b) for e in estimates]}
