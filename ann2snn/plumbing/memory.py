"""How much memory a run may still take, and how to print a byte count.

:func:`available_bytes` is what a long computation compares its estimated need with before it starts
(:func:`ann2snn.analysis.memory.sweep_memory`). On the CPU it is the kernel's ``MemAvailable``
(``/proc/meminfo``: free memory plus the page cache the kernel can drop, without swapping), lowered
to what the process's control group still allows when it has a limit (a container or a batch job:
cgroup v2 ``memory.max − memory.current``, or cgroup v1 ``memory.limit_in_bytes −
memory.usage_in_bytes``). On CUDA it is the device's free memory (``torch.cuda.mem_get_info``).
Where none of these can be read (a system without ``/proc``), it is None: the caller cannot check.
"""

from __future__ import annotations

import os

import torch

#: cgroup (v2, then v1) files: (limit, usage)
_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """``MemAvailable`` of ``meminfo`` in bytes (None when the file or the field is missing)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    value, unit = line.split()[1:3]
                    return int(value) * (1024 if unit.lower() == "kb" else 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_headroom() -> int | None:
    """Bytes the process's control group still allows (limit − usage), or None without a limit."""
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # v1 writes a huge number for "none"
            return max(0, limit - usage)
    return None


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a computation on ``device`` may still take, in bytes (module docstring); None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    found = [v for v in (mem_available(), cgroup_headroom()) if v is not None]
    return min(found) if found else None


def format_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``; ``3.2e9`` → ``'3.0 GiB'`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size so far (``VmHWM`` of ``/proc/self/status``), in bytes."""
    return _status_field("VmHWM")


def rss_bytes() -> int | None:
    """This process's resident set size now (``VmRSS`` of ``/proc/self/status``), in bytes."""
    return _status_field("VmRSS")


def reset_peak_rss() -> bool:
    """Set this process's peak RSS (``VmHWM``) back to its current RSS (Linux: ``5`` into
    ``/proc/self/clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_field(name: str) -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
