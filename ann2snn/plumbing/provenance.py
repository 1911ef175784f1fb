"""Provenance of a run: the command line, git commit, versions, threads and time, for result files."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import torch

from ann2snn.plumbing.version import __version__


def provenance(argv: list[str] | None = None, command: str | None = None) -> dict:
    """Command line, git commit, versions and time of this run.

    Args:
        argv: the ``ann2snn`` command's arguments (default: ``sys.argv[1:]``).
        command: the whole command as text instead, e.g. a Python call of a library function.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", None
    import torchvision

    return {
        "command": command if command is not None else
        " ".join(["ann2snn"] + [str(a) for a in (argv if argv is not None else sys.argv[1:])]),
        "git_commit": commit, "git_dirty": dirty, "ann2snn": __version__, "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "platform": platform.platform(),
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
