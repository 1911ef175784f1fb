"""DVS128 Gesture (Amir et al., CVPR 2017) from IBM's original release, integrated into T event frames.

**Files.** The standard release (``DvsGesture.tar.gz``) unpacks to one folder, the ``root`` here:

- ``userNN_<lighting>.aedat``: one recording per user and lighting, AEDAT 3.1;
- ``userNN_<lighting>_labels.csv``: ``class,startTime_usec,endTime_usec`` per gesture (classes 1–11);
- ``trials_to_train.txt`` / ``trials_to_test.txt``: the recordings of each split (users 1–23 train,
  24–29 test), one ``.aedat`` name per line.

**Reading.** The AEDAT header is parsed by ``tonic.io.read_aedat_header_from_file`` (tonic, the
neuromorphic data library; an optional dependency, ``pip install 'ann2snn[dvs]'``). The event packets are walked here, because tonic's own DVS-Gesture
readers do not fit: ``tonic.io.read_dvs_ibm`` (tonic 1.7.0) unpacks the header function's three
return values into two and fails, ``tonic.io.get_aer_events_from_file`` reads every packet as
polarity events whatever its type, and ``tonic.datasets.DVSGesture`` reads only tonic's own
pre-cut ``.npy`` copy and downloads it when absent. Only polarity packets (AEDAT 3.1 event type 1)
with the valid bit set are kept; a polarity event's 32-bit word holds x in bits 17–31, y in bits
2–16, the polarity in bit 1 and the valid mark in bit 0, its timestamp is in µs.

**Frames.** Each labelled gesture's window (start ≤ t < end, from the labels file) is cut into
``T`` bins of equal duration (:func:`to_frames`), giving event counts
``[T, 2, H, W]`` (channel 0 = OFF, 1 = ON). ``size`` < 128 pools the 128×128 pixel grid by
``128 // size`` (counts are summed). The seed's DVS-Gesture settings (docs/design.md §3.9) are T = 40,
V_th = 1, weight decay 1e-3, batch 32; frames are fed as the input current of each step.

This path is tested on small files in the real format written by the tests; it has not been run
on the real data set on the machine where it was written (there is no copy of DVS-Gesture there).
"""

from __future__ import annotations

import csv
import os
import struct

import numpy as np
import torch

from ann2snn.plumbing.errors import UserError

NAME = "dvs-gesture"
NUM_CLASSES = 11
SENSOR = 128
#: AEDAT 3.1 event packet header: type, source, size, TS offset, TS overflow, capacity, number, valid
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
SPLIT_FILES = {True: "trials_to_train.txt", False: "trials_to_test.txt"}


def read_recording(path: str) -> np.ndarray:
    """All valid polarity events of one AEDAT 3.1 recording, in file order.

    Returns:
        a structured array with fields ``x``, ``y`` (pixels, 0..127), ``p`` (bool, True = ON) and
        ``t`` (µs, with the packets' timestamp overflow applied).

    Raises:
        UserError: the file is missing, is not AEDAT 3.x, or is truncated.
    """
    try:
        from tonic.io import read_aedat_header_from_file
    except ImportError:
        raise UserError("dvs-gesture needs the tonic package: pip install 'ann2snn[dvs]'") from None
    if not os.path.isfile(path):
        raise UserError(f"DVS-Gesture recording {path} does not exist")
    try:
        version, start, _ = read_aedat_header_from_file(path)
    except Exception as e:  # noqa: BLE001 - tonic raises plain errors on bad headers
        raise UserError(f"{path} is not an AEDAT file tonic can read: {e}") from None
    if not 3 <= version < 4:
        raise UserError(f"{path} is AEDAT {version}; DVS-Gesture's recordings are AEDAT 3.1")
    raw = np.fromfile(path, dtype=np.uint8, offset=start)
    words, stamps = [], []
    pos = 0
    while pos < len(raw):
        if pos + PACKET_HEADER.size > len(raw):
            raise UserError(f"{path} is truncated (a packet header is cut off at byte {start + pos})")
        etype, _, esize, ts_offset, ts_overflow, capacity, _, _ = PACKET_HEADER.unpack_from(raw, pos)
        pos += PACKET_HEADER.size
        end = pos + esize * capacity
        if esize <= 0 or end > len(raw):
            raise UserError(f"{path} is truncated or corrupt (a packet runs past the end at byte {start + pos})")
        if etype == POLARITY_EVENT:
            block = raw[pos:end].view(np.uint32).reshape(capacity, esize // 4)
            words.append(block[:, 0])
            stamps.append(block[:, ts_offset // 4].astype(np.int64) + (np.int64(ts_overflow) << 31))
        pos = end
    word = np.concatenate(words) if words else np.zeros(0, np.uint32)
    stamp = np.concatenate(stamps) if stamps else np.zeros(0, np.int64)
    valid = (word & 1).astype(bool)
    word, stamp = word[valid], stamp[valid]
    events = np.empty(len(word), EVENT_DTYPE)
    events["x"] = (word >> 17) & 0x7FFF
    events["y"] = (word >> 2) & 0x7FFF
    events["p"] = (word >> 1) & 1
    events["t"] = stamp
    return events


def read_labels(path: str) -> list[tuple[int, int, int]]:
    """``(class 0..10, start µs, end µs)`` per gesture of a ``*_labels.csv`` (classes 1..11 in the file).

    Raises:
        UserError: the file is missing or a row is malformed.
    """
    if not os.path.isfile(path):
        raise UserError(f"DVS-Gesture label file {path} does not exist")
    out = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if i == 0 and row and not row[0].strip().lstrip("-").isdigit():
                continue  # header line
            try:
                label, t0, t1 = (int(v) for v in row[:3])
            except ValueError:
                raise UserError(f"{path} line {i + 1} is not 'class,startTime_usec,endTime_usec': {row}") from None
            if not 1 <= label <= NUM_CLASSES or t1 <= t0:
                raise UserError(f"{path} line {i + 1}: class must be 1..{NUM_CLASSES} and end > start, got {row}")
            out.append((label - 1, t0, t1))
    return out


def to_frames(events: np.ndarray, T: int, size: int = SENSOR, start: int | None = None,
              end: int | None = None) -> np.ndarray:
    """Integrate events into ``T`` frames of equal duration over the window ``[start, end)`` µs.

    Event i goes to frame ``floor((t_i − start)·T / (end − start))``, so every event inside the
    window is counted exactly once. (tonic's ``to_frame_numpy(n_time_bins=T)`` is not used: it
    rounds the bin length down to whole µs and drops the events after ``T`` such bins, always
    including the last event.)

    Args:
        events: from :func:`read_recording`.
        T: number of frames (time steps).
        size: frame side; ``128 // size`` pixels are pooled per side (128 must be a multiple of it).
        start, end: the window in µs (default: the first event's t and the last one's t + 1).

    Returns:
        ``int32 [T, 2, size, size]`` event counts (channel 0 OFF, 1 ON).
    """
    t = events["t"].astype(np.int64)
    start = int(t.min()) if start is None else int(start)
    end = int(t.max()) + 1 if end is None else int(end)
    inside = (t >= start) & (t < end)
    t = t[inside]
    factor = SENSOR // size
    frame = ((t - start) * T) // (end - start)
    frames = np.zeros((T, 2, size, size), dtype=np.int32)
    np.add.at(frames, (frame, events["p"][inside].astype(np.int64), events["y"][inside] // factor,
                       events["x"][inside] // factor), 1)
    return frames


def check_frame_settings(T: int, size: int) -> None:
    """Raises UserError unless ``T >= 1`` and ``size`` divides 128."""
    if not (isinstance(T, int) and T >= 1):
        raise UserError(f"`T` must be a whole number >= 1, got {T!r}")
    if not (isinstance(size, int) and 1 <= size <= SENSOR and SENSOR % size == 0):
        raise UserError(f"`dvs_size` must divide 128 (128, 64, 32, ...), got {size!r}")


def load_dvs_frames(root: str, train: bool, T: int, size: int = SENSOR) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of DVS-Gesture as frames: ``(float32 [N, T, 2, size, size] counts, int64 [N] labels)``.

    Samples are the labelled gestures of the split's recordings, in file order.

    Raises:
        UserError: ``root`` lacks the split list or a file it names, or a file is malformed.
    """
    check_frame_settings(T, size)
    listing = os.path.join(root, SPLIT_FILES[train])
    if not os.path.isfile(listing):
        raise UserError(f"dvs-gesture not found: expected IBM's DvsGesture files (with {SPLIT_FILES[train]}) "
                        f"in {root}. Unpack DvsGesture.tar.gz there (nothing is downloaded)")
    with open(listing) as f:
        names = [line.strip() for line in f if line.strip()]
    frames, labels = [], []
    for name in names:
        events = read_recording(os.path.join(root, name))
        for label, t0, t1 in read_labels(os.path.join(root, name[:-len(".aedat")] + "_labels.csv")):
            if not ((events["t"] >= t0) & (events["t"] < t1)).any():
                continue  # a gesture with no events carries no information
            frames.append(torch.from_numpy(to_frames(events, T, size, t0, t1)))
            labels.append(label)
    if not frames:
        raise UserError(f"no labelled gestures with events in the {'train' if train else 'test'} recordings of {root}")
    return torch.stack(frames).float(), torch.tensor(labels, dtype=torch.int64)


class FrameBatches:
    """Iterable over ``(frames float32 [T, B, 2, H, W], labels int64 [B])`` batches, time-major.

    Args:
        frames, labels: from :func:`load_dvs_frames` (``[N, T, 2, H, W]``, ``[N]``).
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: reshuffle each epoch; epoch e uses generator seed ``seed * 100003 + e`` (as
            :class:`ann2snn.plumbing.data.CifarBatches`), so a resumed run sees the same batches.

    No augmentation: a horizontal flip would turn left-hand gestures into right-hand ones.
    """

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool = False,
                 seed: int = 0, device: torch.device | str = "cpu"):
        if batch_size < 1:
            raise UserError(f"`batch_size` must be >= 1, got {batch_size}")
        self.frames, self.labels = frames, labels
        self.batch_size, self.shuffle, self.seed, self.epoch, self.position = batch_size, shuffle, seed, 0, 0
        self.device = torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration uses (from its first batch)."""
        self.epoch, self.position = epoch, 0

    def set_position(self, batch: int) -> None:
        """Make iterations of the current epoch start at batch ``batch`` (0-based) of its seeded order
        (as :meth:`ann2snn.plumbing.data.CifarBatches.set_position`; there is no augmentation to replay).

        Raises:
            ValueError: ``batch`` outside ``0..len(self)``.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or not 0 <= batch <= len(self):
            raise ValueError(f"set_position: batch {batch!r} is outside 0..{len(self)}")
        self.position = batch

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        n = len(self.labels)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        for start in range(self.position * self.batch_size, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.frames[idx].transpose(0, 1).contiguous().to(self.device), self.labels[idx].to(self.device)
