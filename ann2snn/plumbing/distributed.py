"""Distributed data parallel on PyTorch's own engine (``torchrun``), and nothing when run alone.

``torchrun --nproc-per-node N -m ann2snn <command> ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` then joins the process group (NCCL on CUDA,
gloo on the CPU). Conventions, the same for ``train-ann``, ``train-snn`` and ``sweep``:

- ``--batch-size`` is the global batch: each of the N processes takes ``batch_size / N``.
- Training wraps the model in ``DistributedDataParallel``; each rank's indices come from
  ``DistributedSampler`` (see :class:`ann2snn.plumbing.data.CifarBatches`).
- Evaluation shards the test set so each sample is seen exactly once; correct counts and totals are
  summed over ranks with ``all_reduce``, so accuracies equal a one-process run's.
- Only rank 0 prints progress and writes files (checkpoints, metrics, tables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ann2snn.plumbing.errors import UserError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device_name: str = "auto") -> Dist:
    """Join the ``torchrun`` process group if there is one; returns this process's :class:`Dist`.

    Raises:
        UserError: torchrun's environment is incomplete.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    try:
        rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    except (KeyError, ValueError):
        raise UserError("WORLD_SIZE > 1 but RANK / LOCAL_RANK are not set: start distributed runs with torchrun") from None
    if not dist.is_initialized():
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local)


def device_for(d: Dist, device: torch.device) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` when distributed on CUDA, else ``device``."""
    if d.enabled and device.type == "cuda":
        return torch.device("cuda", d.local_rank)
    return device


def local_batch(d: Dist, batch_size: int) -> int:
    """Each rank's share of the global ``batch_size``.

    Raises:
        UserError: ``batch_size`` is not a multiple of the number of processes.
    """
    if batch_size % d.world:
        raise UserError(f"`batch_size` {batch_size} must be a multiple of the {d.world} processes (it is the global batch)")
    return batch_size // d.world


def all_reduce_sum(d: Dist, value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks (returns it unchanged when not distributed)."""
    if d.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(d: Dist) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if d.enabled:
        dist.barrier()


def cleanup(d: Dist) -> None:
    """Leave the process group (no-op when not distributed)."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
