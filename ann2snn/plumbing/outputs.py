"""Output folders and files: writable before any work, one writer at a time, no stale temporaries.

Every command that writes (``train-ann``, ``train-snn``, ``convert``, ``sweep``, ``ablate``,
``entropy --out``) first *claims* its output with :func:`claim_output`:

* the folder (or, for a file, its parent folder) must be writable: a temporary lock file is
  created there before anything else runs, so a read-only ``--out`` is one clear error, not a
  traceback after a whole simulation;
* the lock file is held with ``fcntl.flock``, which the kernel frees when the process dies
  (even by ``kill -9``). A second run into the same output is refused while the first runs;
* temporaries that a killed run left behind (``NAME.XXXXXXXX.tmp`` from
  :func:`ann2snn.plumbing.checkpoint.atomic_write`) are removed, since no other run can be writing them;
* on exit the lock file is removed, and so is a folder the claim created that stayed empty.
"""

from __future__ import annotations

import contextlib
import os
import re

from ann2snn.plumbing.errors import UserError

try:  # POSIX; elsewhere runs are not locked (documented in docs/usage.md)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".ann2snn.lock"
#: temporaries written by atomic_write: NAME + "." + 8 random characters (tempfile.mkstemp) + ".tmp"
_TMP = re.compile(r"^(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def _nearest_existing(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _lock_path(path: str, kind: str) -> tuple[str, str]:
    """(folder to claim, lock file) for an output folder (``kind="dir"``) or file (``"file"``)."""
    if kind == "dir":
        return path, os.path.join(path, LOCK_NAME)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    return folder, os.path.join(folder, f".{os.path.basename(path)}.lock")


def _remove_stale_temporaries(folder: str, only: str | None) -> list[str]:
    removed = []
    for entry in os.listdir(folder):
        m = _TMP.match(entry)
        if m and (only is None or m.group("name") == only):
            try:
                os.unlink(os.path.join(folder, entry))
                removed.append(entry)
            except OSError:
                pass
    return removed


@contextlib.contextmanager
def claim_output(path: str, kind: str = "dir", what: str = "`out`"):
    """Hold ``path`` (an output folder, or an output file with ``kind="file"``) for this process.

    Raises:
        UserError: ``path`` (or a parent) is a file where a folder is needed, or a folder where a
            file is needed; it cannot be written; or another run holds it.
    """
    if kind not in ("dir", "file"):
        raise ValueError(f"kind must be 'dir' or 'file', got {kind!r}")
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 writes, so only it claims
        yield
        return
    if kind == "file" and os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder; give a file name, e.g. {os.path.join(path, 'snn.pt')}")
    folder, lock = _lock_path(path, kind)
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise UserError(f"{what} {path} needs a folder, but {existing} is a file")
    created = existing != os.path.abspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if created:
            _remove_empty_up_to(folder, existing)
        raise UserError(f"{what} {path} cannot be written ({e.strerror}); choose a folder you can write to") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                raise UserError(f"another ann2snn run{' (pid ' + holder + ')' if holder else ''} is writing to "
                                f"{path}; wait for it to finish, or choose another {what}") from None
            if os.fstat(fd).st_ino != os.stat(lock).st_ino:  # lost a race with a finishing run: claim again
                os.close(fd)
                fd = None
                with claim_output(path, kind, what):
                    yield
                return
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _remove_stale_temporaries(folder, None if kind == "dir" else os.path.basename(path))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock)
    finally:
        if fd is not None:
            os.close(fd)
        if created:
            _remove_empty_up_to(folder, existing)


def _remove_empty_up_to(folder: str, stop: str) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``stop``."""
    p = os.path.abspath(folder)
    stop = os.path.abspath(stop)
    while p != stop and p.startswith(stop):
        try:
            os.rmdir(p)
        except OSError:
            return
        p = os.path.dirname(p)
