"""DVS-Gesture: the AEDAT 3.1 reader, labels, frame integration and a tiny train-snn run, on small
files in the real release's format that the tests write themselves (no copy of the data set here)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ann2snn.cli.train_snn import train_snn_cmd
from ann2snn.direct.dvs_gesture import FrameBatches, load_dvs_frames, read_labels, read_recording, to_frames
from ann2snn.plumbing.errors import UserError


def polarity_word(x, y, p, valid=1):
    return (x << 17) | (y << 2) | (p << 1) | valid


def write_aedat31(path, packets):
    """Write an AEDAT 3.1 file: ``packets`` is a list of (event type, [(word, ts)], ts_overflow)."""
    with open(path, "wb") as f:
        f.write(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
                b"#Start-Time: 2017-04-13 10:02:10 (TZ+0200)\r\n#!END-HEADER\r\n")
        for etype, events, overflow in packets:
            n = len(events)
            f.write(struct.pack("<hhiiiiii", etype, 1, 8, 4, overflow, n, n, n))
            for word, ts in events:
                f.write(struct.pack("<Ii", word, ts))


def random_events(rng, n, t0, t1):
    """n polarity events with increasing timestamps in [t0, t1)."""
    ts = np.sort(rng.integers(t0, t1, n))
    xs, ys, ps = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    return [(polarity_word(int(x), int(y), int(p)), int(t)) for x, y, p, t in zip(xs, ys, ps, ts)], (xs, ys, ps, ts)


def write_release(root, n_train=2, n_test=1, gestures=((1, 0, 4000), (3, 5000, 9000), (11, 9000, 12000))):
    """A tiny DvsGesture folder: recordings with labelled gestures and the two split lists."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    names = {True: [], False: []}
    for i in range(n_train + n_test):
        name = f"user{i + 1:02d}_fluorescent.aedat"
        events, _ = random_events(rng, 600, 0, 12000)
        write_aedat31(os.path.join(root, name), [(1, events[:300], 0), (1, events[300:], 0)])
        with open(os.path.join(root, name.replace(".aedat", "_labels.csv")), "w") as f:
            f.write("class,startTime_usec,endTime_usec\n")
            for label, a, b in gestures:
                f.write(f"{label},{a},{b}\n")
        names[i < n_train].append(name)
    for train, file in ((True, "trials_to_train.txt"), (False, "trials_to_test.txt")):
        with open(os.path.join(root, file), "w") as f:
            f.write("\n".join(names[train]) + "\n")
    return root


def test_reader_decodes_exactly_what_was_written(tmp_path):
    rng = np.random.default_rng(1)
    events, (xs, ys, ps, ts) = random_events(rng, 50, 0, 10**6)
    # a special-event packet (type 0) and an invalid polarity event are dropped; overflow extends t
    special = [(0x12345679, 7)]
    invalid = [(polarity_word(5, 6, 1, valid=0), 10)]
    late = [(polarity_word(127, 0, 1), 3)]
    path = str(tmp_path / "rec.aedat")
    write_aedat31(path, [(1, events[:20], 0), (0, special, 0), (1, events[20:] + invalid, 0), (1, late, 2)])
    ev = read_recording(path)
    assert len(ev) == 51
    assert np.array_equal(ev["x"][:50], xs) and np.array_equal(ev["y"][:50], ys)
    assert np.array_equal(ev["p"][:50], ps.astype(bool)) and np.array_equal(ev["t"][:50], ts)
    assert (ev["x"][50], ev["y"][50], bool(ev["p"][50]), ev["t"][50]) == (127, 0, True, (2 << 31) + 3)


def test_tonic_reader_for_this_format_is_broken_which_is_why_we_walk_packets(tmp_path):
    """Documents the reason in ann2snn.direct.dvs_gesture's docstring; if tonic fixes it, revisit."""
    import tonic.io

    path = str(tmp_path / "rec.aedat")
    write_aedat31(path, [(1, [(polarity_word(1, 2, 1), 5)], 0)])
    with pytest.raises(ValueError, match="too many values to unpack"):
        tonic.io.read_dvs_ibm(path)


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_recording(str(tmp_path / "none.aedat"))
    path = str(tmp_path / "cut.aedat")
    write_aedat31(path, [(1, [(polarity_word(1, 2, 1), 5)] * 4, 0)])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 8)
    with pytest.raises(UserError, match="truncated"):
        read_recording(path)
    bad = tmp_path / "bad_labels.csv"
    bad.write_text("class,startTime_usec,endTime_usec\n12,0,10\n")
    with pytest.raises(UserError, match="class must be 1..11"):
        read_labels(str(bad))
    with pytest.raises(UserError, match="dvs-gesture not found"):
        load_dvs_frames(str(tmp_path / "nowhere"), True, 4)
    with pytest.raises(UserError, match="`dvs_size` must divide 128"):
        load_dvs_frames(str(tmp_path), True, 4, size=48)


def test_counts_do_not_wrap_and_a_missing_tonic_is_a_clear_error(tmp_path, monkeypatch):
    ev = np.zeros(40000, dtype=[("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
    ev["p"], ev["t"] = True, np.arange(40000)
    assert to_frames(ev, 1, size=1)[0, 1, 0, 0] == 40000  # beyond int16
    import sys

    monkeypatch.setitem(sys.modules, "tonic.io", None)  # as if tonic were not installed
    path = str(tmp_path / "rec.aedat")
    write_aedat31(path, [(1, [(polarity_word(1, 2, 1), 5)], 0)])
    with pytest.raises(UserError, match=r"needs the tonic package: pip install 'ann2snn\[dvs\]'"):
        read_recording(path)


def test_frames_count_every_event_in_its_time_bin():
    rng = np.random.default_rng(2)
    _, (xs, ys, ps, ts) = random_events(rng, 400, 1000, 9000)
    ev = np.empty(len(xs), dtype=[("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
    ev["x"], ev["y"], ev["p"], ev["t"] = xs, ys, ps, ts
    frames = to_frames(ev, 4, start=1000, end=9000)
    assert frames.shape == (4, 2, 128, 128) and frames.sum() == 400
    assert frames[:, 1].sum() == ps.sum()  # channel 1 = ON
    # each event lands in its 2000-µs bin, at its pixel
    expect = np.zeros_like(frames)
    for x, y, p, t in zip(xs, ys, ps, ts):
        expect[(t - 1000) // 2000, p, y, x] += 1
    assert np.array_equal(frames, expect)
    # the default window is first event .. last event + 1 µs: every event is counted
    assert to_frames(ev, 7).sum() == 400 and to_frames(ev[:1], 3).sum() == 1
    # events outside an explicit window are left out
    assert to_frames(ev, 4, start=1000, end=5000).sum() == (ts < 5000).sum()
    # pooled to 32x32: the same counts, summed over 4x4 pixel blocks
    pooled = to_frames(ev, 4, size=32, start=1000, end=9000)
    assert pooled.shape == (4, 2, 32, 32)
    assert np.array_equal(pooled, frames.reshape(4, 2, 32, 4, 32, 4).sum((3, 5)))


def test_load_split_labels_and_batches(tmp_path):
    root = write_release(str(tmp_path / "DvsGesture"))
    x, y = load_dvs_frames(root, True, T=4, size=32)
    assert x.shape == (6, 4, 2, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == [0, 2, 10, 0, 2, 10]
    # each gesture holds exactly the recording's events inside its [start, end) window
    ev = read_recording(os.path.join(root, "user01_fluorescent.aedat"))
    assert x[0].sum() == ((ev["t"] >= 0) & (ev["t"] < 4000)).sum()
    xt, yt = load_dvs_frames(root, False, T=4, size=32)
    assert len(yt) == 3
    batches = FrameBatches(x, y, 4, shuffle=True, seed=0)
    got = list(batches)
    assert [b[0].shape for b in got] == [(4, 4, 2, 32, 32), (4, 2, 2, 32, 32)]  # time-major
    assert sorted(torch.cat([b[1] for b in got]).tolist()) == sorted(y.tolist())


def test_train_snn_on_dvs_gesture(tmp_path):
    write_release(str(tmp_path / "data" / "DvsGesture"))
    out = tmp_path / "run"
    args = ["--dataset", "dvs-gesture", "--data-dir", str(tmp_path / "data"), "--dvs-size", "32", "--T", "4",
            "--width", "0.25", "--epochs", "1", "--batch-size", "3", "--neuron", "mblif", "--int-bits", "1",
            "--frac-bits", "1", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(train_snn_cmd, args)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["dataset"] == "dvs-gesture" and ckpt["config"]["augment"] == "none"
    assert ckpt["model_state"]["conv1.weight"].shape[1] == 2 and ckpt["model_state"]["fc.weight"].shape[0] == 11
    assert len(ckpt["metrics"][0]) and "test_acc_t4" in ckpt["metrics"][0]
    # a flip would swap left- and right-hand gestures: refused
    result = CliRunner().invoke(train_snn_cmd, args[:-1] + [str(tmp_path / "r2"), "--augment", "crop-flip"])
    assert isinstance(result.exception, UserError) and "takes none" in str(result.exception)
