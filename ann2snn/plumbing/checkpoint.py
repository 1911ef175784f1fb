"""Checkpoint files: atomic writes, ``weights_only`` loads, strict key matching.

A checkpoint is a dict with ``kind`` ("ann" or "snn"), ``format`` (an int), ``config`` (plain
types only) and ``model_state``. Format 1 is every checkpoint but one: a training checkpoint written
in the middle of an epoch (:func:`ann2snn.ann.train.fit`) is format 2, format 1 plus a ``position`` in the
epoch, so that an ann2snn from before mid-epoch checkpoints refuses it instead of resuming it as if at
an epoch's end. Readers take both. It is written to a temporary file in the same folder, flushed and
then renamed, so a killed run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import torch
from torch import nn

from ann2snn.plumbing.errors import UserError

FORMAT = 1
#: a training checkpoint from the middle of an epoch: FORMAT plus ``position`` (see ann2snn.ann.train.fit)
MIDEPOCH_FORMAT = 2
#: the formats this ann2snn reads
READ_FORMATS = (FORMAT, MIDEPOCH_FORMAT)
STRIPPED_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile


def check_output_file(path: str, what: str = "`out`") -> None:
    """Raise UserError unless ``path`` can become a file (it is not a folder, its parent is not a file)."""
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder; give a file name, e.g. {os.path.join(path, 'snn.pt')}")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UserError(f"{what} {path}: {parent} is a file, not a folder")


def check_output_dir(path: str, what: str = "`out`") -> None:
    """Raise UserError if ``path`` (or a parent of it) exists and is not a folder."""
    p = os.path.abspath(path)
    while p and not os.path.exists(p):
        p = os.path.dirname(p)
    if p and not os.path.isdir(p):
        raise UserError(f"{what} {path} must be a folder, but {p} is a file")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)`` and then rename the temporary file onto ``path``.

    The temporary file lies in the same folder (so the rename is atomic) and gets the usual
    permissions (0666 less the umask), as a plain ``open`` would give.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write a text file atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def save_checkpoint(obj: dict, path: str) -> None:
    """Save a checkpoint dict atomically with :func:`torch.save`."""
    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: torch names the archive itself
            torch.save(obj, f)
    atomic_write(path, write)


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file (provenance of checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_text(path: str) -> bool:
    with open(path, "rb") as f:
        chunk = f.read(4096)
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in chunk


def check_format(ckpt: dict, path: str) -> None:
    """Raise UserError unless ``ckpt['format']`` is one of :data:`READ_FORMATS`."""
    if ckpt.get("format") not in READ_FORMATS:
        raise UserError(f"{path} has checkpoint format {ckpt.get('format')!r}; this ann2snn reads formats "
                        f"{' and '.join(map(str, READ_FORMATS))}")


def load_checkpoint(path: str, kind: str | None = None) -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and check its kind.

    Args:
        path: the file.
        kind: "ann" or "snn" to require that kind, or None for either.

    Raises:
        UserError: missing file, unreadable/corrupt file, not an ann2snn checkpoint, or the wrong kind.
    """
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "checkpoint.pt")):
            raise UserError(f"{path} is a folder with no checkpoint.pt in it: give a run folder of train-ann "
                            "(after its first epoch) or a checkpoint file")
        path = os.path.join(path, "checkpoint.pt")
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (or, long ago, a pickle)
        looks = (": it is a text file (CSV, JSON, Markdown?)" if head and _is_text(path)
                 else " (corrupt or truncated?): " + ("it is empty" if not head else "not a file written by torch.save"))
        raise UserError(f"{path} is not a readable checkpoint{looks}; pass the .pt file from train-ann or convert")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or not a torch file
        if "Weights only load failed" in str(e):
            msg = "it holds Python objects that a safe weights-only load refuses"
        else:
            msg = "not a file written by torch.save, or cut short"
        raise UserError(f"{path} is not a readable checkpoint (corrupt or truncated?): {msg}") from None
    if isinstance(ckpt, dict) and ckpt.get("kind") == "direct-snn":
        raise UserError(f"{path} is a directly trained SNN (from `ann2snn train-snn`); convert and sweep take "
                        "ANN checkpoints from train-ann or SNN checkpoints from convert")
    if not isinstance(ckpt, dict) or ckpt.get("kind") not in ("ann", "snn") or "model_state" not in ckpt:
        raise UserError(f"{path} is not an ann2snn checkpoint (made by train-ann or convert)")
    check_format(ckpt, path)
    if kind is not None and ckpt["kind"] != kind:
        made_by = {"ann": "train-ann", "snn": "convert"}
        raise UserError(f"{path} is an {ckpt['kind'].upper()} checkpoint, but an {kind.upper()} checkpoint "
                        f"(from `ann2snn {made_by[kind]}`) is needed here")
    ckpt["path"] = path
    return ckpt


WRAPPER_NAMES = tuple(p.rstrip(".") for p in STRIPPED_PREFIXES)


def strip_prefixes(state: dict, own_keys=None) -> dict:
    """Remove the ``module.`` / ``_orig_mod.`` components that DDP, DataParallel or torch.compile
    add, at any depth (a wrapped sub-module gives ``features.module.0.weight``).

    With ``own_keys`` (the model's own state-dict keys), a key that already matches is kept as it
    is, so a model with a real sub-module named ``module`` still loads; any other key loses every
    wrapper component. Keys that still match nothing are left for the caller to report.

    Raises:
        UserError: two keys that become the same key.
    """
    own = set(own_keys) if own_keys is not None else set()
    out = {}
    for key, v in state.items():
        parts = key.split(".")
        # drop wrapper components left to right until the key matches one of the model's own
        while ".".join(parts) not in own and any(p in WRAPPER_NAMES for p in parts):
            i = next(i for i, p in enumerate(parts) if p in WRAPPER_NAMES)
            parts = parts[:i] + parts[i + 1:]
        k = ".".join(parts)
        if k in out:
            raise UserError(f"checkpoint holds key {k!r} twice (with and without a module./_orig_mod. wrapper)")
        out[k] = v
    return out


def load_state_strict(model: nn.Module, state: dict, source: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` with every key matched, after stripping prefixes.

    Raises:
        UserError: naming the first missing / unexpected keys or a shape mismatch.
    """
    own = model.state_dict()
    state = strip_prefixes(state, own)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}" + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}" + (f" and {len(unexpected) - 3} more" if len(unexpected) > 3 else ""))
        raise UserError(f"{source} does not match the model: {'; '.join(parts)}")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise UserError(f"{source} does not match the model: {k} has shape {tuple(v.shape)}, "
                            f"the model expects {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=True)
