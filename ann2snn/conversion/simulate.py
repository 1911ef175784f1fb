"""Run ANNs and converted SNNs over a dataset and count correct predictions.

SNN simulation (docs/design.md §3.7): the analog image is the input current at every step (direct
encoding); the last Linear stays analog and its outputs are summed over steps; the prediction at
step t is the argmax of the sum over steps 1..t. Because the network is causal, one simulation of
``T_max`` steps gives the accuracy at every ``t <= T_max``, identical to separate runs. Every
neuron's membrane potential is reset for each batch, and everything runs under
``torch.inference_mode()``, so memory does not grow with T.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ann2snn.conversion.maxpool import SpikingMaxPool
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.plumbing import fuse as fuse_mod
from ann2snn.ann.quantizer import at_least_float32
from ann2snn.ann.evaluate import as_model_input, model_dtype
from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.progress import progress_bar


def neurons_of(model: nn.Module) -> list[MultiBitIF]:
    """All spiking neurons of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, MultiBitIF)]


def stateful_of(model: nn.Module) -> list[nn.Module]:
    """The modules that keep state across time steps, in module order: the neurons and the spiking
    max-pools (:class:`~ann2snn.conversion.maxpool.SpikingMaxPool`). Each has ``mode``, ``time_chunk``
    and ``reset()``."""
    return [m for m in model.modules() if isinstance(m, (MultiBitIF, SpikingMaxPool))]


def reset_neurons(model: nn.Module) -> None:
    """Reset the membrane potential of every neuron, and the state of every spiking max-pool (start of a
    new batch)."""
    for n in stateful_of(model):
        n.reset()


def set_mode(model: nn.Module, mode: str) -> None:
    """Switch every neuron (and spiking max-pool) to ``"snn"`` (spiking) or ``"ann"`` (runs its source
    activation / the ANN's pool)."""
    if mode not in ("snn", "ann"):
        raise UserError(f"mode must be 'snn' or 'ann', got {mode!r}")
    for n in stateful_of(model):
        n.mode = mode


def set_fused(model: nn.Module, fuse: str | bool = "auto", device: torch.device | str = "cpu",
              image_steps: int | None = None) -> bool:
    """Choose the fused (compiled, one-pass) or the plain neuron step for every neuron of ``model``.

    Args:
        fuse: ``"on"``/``True``, ``"off"``/``False``, or ``"auto"``: fused on the CPU for a simulation
            of at least :data:`ann2snn.plumbing.fuse.MIN_IMAGE_STEPS` image-steps, plain otherwise
            (the fused step is tested bit-identical to the plain one on the CPU only).
        device: where the model runs (for ``"auto"``).
        image_steps: images × T of the simulation (for ``"auto"``; unknown counts as long).

    Returns:
        Whether the neurons now take the fused step. Results are the same either way; where
        ``torch.compile`` does not work (e.g. no C++ compiler), the first step warns once and falls
        back to the plain step.

    Raises:
        UserError: an unknown ``fuse`` value.
    """
    on = fuse_mod.resolve(fuse, device, image_steps is None or image_steps >= fuse_mod.MIN_IMAGE_STEPS)
    for n in neurons_of(model):
        n.fused = on
    return on


class Observer:
    """Base class for things that watch a simulation (diagnostics, operation counts).

    An observer typically registers forward hooks on the neurons in its constructor (a hook sees
    the spike value ``s_t`` of one step; the count is ``k_t = round(s_t / q)``); the simulation
    calls the three methods below around them. All default to doing nothing.
    """

    def begin_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """A new batch ``x [B, 3, H, W]`` starts (neurons were just reset)."""

    def end_step(self, t: int) -> None:
        """Step ``t`` (0-based) of the current batch is done."""

    def end_batch(self) -> None:
        """The current batch is done."""


class _StepBar:
    """A progress bar that advances every time step (a batch of 500 images to T = 128 takes minutes),
    with images/s over all T steps."""

    def __init__(self, batches, T: int, progress: bool):
        import time

        try:
            steps = len(batches) * T
        except TypeError:  # an iterable without a length (e.g. a DataLoader over an IterableDataset)
            steps = None
        self.clock = time.perf_counter
        self.start = self.clock()
        self.bar = progress_bar(total=steps, desc=f"SNN T={T}", unit="step", disable=not progress)

    def steps(self, n: int) -> None:
        self.bar.update(n)

    def batch_done(self, images: int) -> None:
        self.bar.set_postfix_str(f"{images / max(self.clock() - self.start, 1e-9):.1f} images/s (all T steps)")

    def close(self) -> None:
        self.bar.close()


@torch.inference_mode()
def simulate_snn(model: nn.Module, batches: Iterable, T: int, progress: bool = False,
                 observers: Iterable[Observer] = (), time_chunk: int = 1) -> tuple[torch.Tensor, int]:
    """Simulate a converted SNN for ``T`` steps on every batch, in one pass.

    Args:
        model: a converted network (neurons in ``"snn"`` mode). It runs in the dtype of its
            parameters: ``model.double()`` simulates in float64 (images are cast to it).
        batches: yields ``(x [B, 3, H, W], y [B])``; ``x`` is fed as the current at every step.
        T: number of time steps (>= 1).
        observers: :class:`Observer` objects told when batches and steps begin and end.
        time_chunk: steps run per network call, merged time-major into the batch (time-batched
            simulation: each layer runs once per chunk, the neurons step through it in order).
            The result equals step-by-step simulation; memory grows with the chunk, not with T.

    Returns:
        ``(correct [T] int64, total)``: ``correct[t-1]`` counts samples whose accumulated logits
        after steps 1..t have the right argmax. Accuracy at t is ``correct[t-1] / total``, a count
        over all samples, so it does not depend on the batch size.
    """
    if T < 1:
        raise UserError(f"T must be >= 1, got {T}")
    if time_chunk > 1:
        if observers:
            raise UserError("observers need step-by-step simulation (time_chunk=1)")
        return _simulate_chunked(model, batches, T, time_chunk, progress)
    model.eval()
    correct = torch.zeros(T, dtype=torch.int64)
    total = 0
    dtype = model_dtype(model)
    bar = _StepBar(batches, T, progress)
    for x, y in batches:
        x = as_model_input(x, dtype)
        reset_neurons(model)
        for obs in observers:
            obs.begin_batch(x, y)
        acc = None
        hits = torch.zeros(T, dtype=torch.int64, device=y.device)
        for t in range(T):
            out = at_least_float32(model(x))  # logits summed in float32 (float64), also under bf16 autocast
            acc = out if acc is None else acc + out
            hits[t] = (acc.argmax(1) == y).sum()
            for obs in observers:
                obs.end_step(t)
            bar.steps(1)
        for obs in observers:
            obs.end_batch()
        correct += hits.cpu()
        total += len(y)
        bar.batch_done(total)
    bar.close()
    reset_neurons(model)
    return correct, total


@torch.inference_mode()
def record_spike_counts(model: nn.Module, batches: Iterable, T: int, time_chunk: int = 1) -> dict:
    """Simulate like :func:`simulate_snn` and keep every neuron's count and the logits, per image.

    Meant for small checks (memory is ``T · N ·`` neurons bytes), e.g. comparing two batch sizes,
    time chunks or precisions spike for spike. ``batches`` is iterated twice (it must be re-iterable
    in the same order, as :class:`ann2snn.plumbing.data.CifarBatches` without shuffling is).

    Returns:
        ``{"counts": {site: uint8/int32 [T, N, ...]}, "logits": [T, N, classes], "labels": [N]}`` in the
        order the batches yield the images, whatever the batch size or time chunk.
    """
    neurons = neurons_of(model)
    names = {m: n for n, m in model.named_modules() if isinstance(m, MultiBitIF)}
    counts: dict[str, list] = {n: [] for n in names.values()}
    logits: list = []

    def neuron_hook(m, _inp, out):
        k = torch.round(out / m.quantum()).to(torch.uint8 if m.k_max < 256 else torch.int32)
        counts[names[m]].append(k.reshape(m.time_chunk, -1, *k.shape[1:]))

    def output_hook(_m, _inp, out):
        logits.append(out.reshape(neurons[0].time_chunk, -1, out.shape[-1]))

    handles = [m.register_forward_hook(neuron_hook) for m in names] + [model.register_forward_hook(output_hook)]
    try:
        simulate_snn(model, batches, T, time_chunk=time_chunk)
    finally:
        for h in handles:
            h.remove()
    calls = -(-T // time_chunk)  # network calls per batch
    n_batches = len(logits) // calls

    def by_image(parts):  # [calls of batch 0, calls of batch 1, ...] → [T, N, ...]
        return torch.cat([torch.cat(parts[b * calls:(b + 1) * calls]) for b in range(n_batches)], dim=1)

    return {"counts": {n: by_image(p) for n, p in counts.items()}, "logits": by_image(logits),
            "labels": torch.cat([y for _, y in batches])}


#: fraction of the GPU's free memory that a time chunk's activations may take (auto_time_chunk)
CHUNK_MEMORY_FRACTION = 0.25
#: live copies of the widest layer's output per step in a chunked call (input, output, v, temporaries)
CHUNK_COPIES = 4


@torch.inference_mode()
def auto_time_chunk(model: nn.Module, batches: Iterable, T: int, device: torch.device | str = "cpu") -> int:
    """The automatic ``time_chunk`` of :func:`simulate_snn`: as many steps per call as memory allows.

    On CUDA: the largest ``c <= T`` with ``c · B · CHUNK_COPIES · (bytes of the widest layer output
    per sample) <= CHUNK_MEMORY_FRACTION · free GPU memory``, where B is the first batch's size and
    the widest output is probed with one sample. On the CPU: 1. Merging steps into the batch gave no
    speed-up there (VGG-16 ×0.25, B = 100, T = 16, one thread: 0.97–1.17 s at c = 1, 0.91–1.22 s at
    c = 4, 1.61–1.79 s at c = 16), while memory grows with c.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    x, _ = next(iter(batches))
    widest = 0

    def hook(_m, _inp, out):
        nonlocal widest
        if isinstance(out, torch.Tensor):
            widest = max(widest, out[:1].numel() * 4)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        reset_neurons(model)
        model(x[:1])
    finally:
        for h in handles:
            h.remove()
        reset_neurons(model)
    free, _ = torch.cuda.mem_get_info(device)
    return chunk_for_memory(free, len(x), widest, T)


def chunk_for_memory(free_bytes: int, batch: int, widest_bytes: int, T: int) -> int:
    """The largest ``c`` in ``[1, T]`` with ``c · batch · CHUNK_COPIES · widest_bytes <=
    CHUNK_MEMORY_FRACTION · free_bytes`` (1 when even one step exceeds it)."""
    per_step = max(1, CHUNK_COPIES * batch * widest_bytes)
    return int(max(1, min(T, (CHUNK_MEMORY_FRACTION * free_bytes) // per_step)))


def _simulate_chunked(model: nn.Module, batches: Iterable, T: int, chunk: int, progress: bool) -> tuple[torch.Tensor, int]:
    """:func:`simulate_snn` with ``chunk`` steps per network call (see there)."""
    model.eval()
    neurons = stateful_of(model)
    correct = torch.zeros(T, dtype=torch.int64)
    total = 0
    dtype = model_dtype(model)
    bar = _StepBar(batches, T, progress)
    try:
        for x, y in batches:
            x = as_model_input(x, dtype)
            reset_neurons(model)
            acc = None
            hits = torch.zeros(T, dtype=torch.int64, device=y.device)
            for start in range(0, T, chunk):
                c = min(chunk, T - start)
                for n in neurons:
                    n.time_chunk = c
                out = at_least_float32(model(x.repeat(c, *([1] * (x.dim() - 1))))).reshape(c, len(y), -1)
                for t in range(c):
                    acc = out[t] if acc is None else acc + out[t]
                    hits[start + t] = (acc.argmax(1) == y).sum()
                bar.steps(c)
            correct += hits.cpu()
            total += len(y)
            bar.batch_done(total)
    finally:
        bar.close()
        for n in neurons:
            n.time_chunk = 1
        reset_neurons(model)
    return correct, total
