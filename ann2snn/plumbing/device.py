"""Where a run computes: device choice, bfloat16 autocast and memory format.

``--device auto`` picks CUDA when ``torch.cuda.is_available()``, else the CPU. ``--amp bf16`` runs
convolutions and linear layers under ``torch.autocast`` in bfloat16; activations and neurons cast
their input to float32 first, so every quantizer step and every membrane potential stays float32
(see :func:`ann2snn.conversion.neurons.MultiBitIF._step` for why: bfloat16 keeps 8 significant bits, so near
the threshold it cannot hold the small charges a neuron integrates over many steps). On CUDA the
model is put in ``channels_last`` memory format, which the convolution kernels prefer.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ann2snn.plumbing.errors import UserError

DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("none", "bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else CPU; ``cpu``; ``cuda`` (or ``cuda:N``).

    Raises:
        UserError: an unknown name, or CUDA asked for on a machine without it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"`device` {name}: this machine has no CUDA GPU that torch can use (try `device` cpu)")
        return torch.device(name)
    raise UserError(f"unknown `device` {name!r}: use auto, cpu or cuda")


def check_amp(amp: str | None) -> str:
    """``None``/``"none"`` → ``"none"``; ``"bf16"`` stays; anything else raises UserError."""
    amp = "none" if amp is None else amp
    if amp not in AMP_MODES:
        raise UserError(f"unknown `amp` {amp!r}: use none or bf16")
    return amp


def autocast(device: torch.device, amp: str | None):
    """A context that runs matmuls / convolutions in bfloat16 when ``amp == "bf16"`` (else nothing)."""
    if check_amp(amp) == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def place(model: nn.Module, device: torch.device, channels_last: bool | None = None) -> nn.Module:
    """Move ``model`` to ``device``, in ``channels_last`` memory format on CUDA (or when
    ``channels_last`` is True; False keeps the default layout). A convolution whose weight is
    channels_last returns channels_last outputs, so the inputs need no change.

    On the CPU, channels_last lets oneDNN skip the layout reorders around every convolution (about
    0.7× the time of a ¼-width VGG-16 forward, benchmarks/ratios.py). It is off by default there:
    the convolutions then round differently, so a float32 result may differ from the default layout's
    by a rare spike (float64 does not, see docs/reproducibility.md).
    """
    model = model.to(device)
    if channels_last if channels_last is not None else device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def busy_cores(interval: float = 0.25) -> float | None:
    """How many of this process's usable cores other processes keep busy now: the non-idle share of
    each usable CPU's time in ``/proc/stat`` over ``interval`` seconds, summed (Linux; ``None`` elsewhere).

    Only the CPUs in this process's affinity set count (a container or ``taskset`` on a big host sees
    its own cores, not the host's). This process sleeps while it measures, so its own past work does
    not count (the load average, by contrast, still holds the previous command's minute of work).
    """
    import os
    import time

    try:
        mine = os.sched_getaffinity(0)
    except AttributeError:
        return None

    def snapshot():
        per_cpu = {}
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine:
                    v = [float(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                    per_cpu[name] = (sum(v), v[3] + (v[4] if len(v) > 4 else 0.0))
        return per_cpu

    try:
        before = snapshot()
        time.sleep(interval)
        after = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    busy = 0.0
    for cpu, (total1, idle1) in after.items():
        total0, idle0 = before.get(cpu, (total1, idle1))
        if total1 > total0:
            busy += 1.0 - (idle1 - idle0) / (total1 - total0)
    return busy


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


#: the largest ``--threads N`` accepted
MAX_THREADS = 1024


def choose_threads(spec: str | int = "auto") -> int:
    """The number of torch CPU threads for ``--threads``.

    ``auto``: the usable cores minus the cores other processes keep busy right now (:func:`busy_cores`,
    a core counts from half busy), at least 1. Two OpenMP threads on two cores of which one is busy
    wait for each other at every barrier: a torch job then ran about 10× slower than with one thread
    (measured on this project's 2-core machine). Where ``/proc/stat`` is missing (macOS, Windows), all usable cores. When
    ``OMP_NUM_THREADS`` is set, ``auto`` keeps torch's own setting (the user chose). A whole number
    N >= 1 is taken as is.

    Raises:
        UserError: anything else.
    """
    import os

    if spec == "auto":
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        cores = usable_cores()
        busy = busy_cores()
        if busy is None:
            return cores
        return max(1, min(cores, cores - int(busy + 0.5)))
    text = str(spec).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_THREADS:
        raise UserError(f"`threads` must be 'auto' or a whole number from 1 to {MAX_THREADS}, got {spec!r}")
    return int(text)
