"""GPU readiness on the CPU: device choice, bf16 autocast with float32 neuron state, the automatic
time chunk, and memory that stays flat from T = 8 to T = 128."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from ann2snn.plumbing.device import autocast, check_amp, resolve_device
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import CHUNK_COPIES, CHUNK_MEMORY_FRACTION, auto_time_chunk, chunk_for_memory, simulate_snn
from ann2snn.conversion.snn import convert_ann

from helpers import random_batches, tiny_ann


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown `device` 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="unknown `amp` 'fp8'"):
        check_amp("fp8")


def test_bf16_would_lose_charge_at_the_threshold_which_is_why_v_stays_float32():
    """A charge of θ/1000 per step must fire IF once within 600 steps from v_0 = θ/2. In bfloat16
    (8 significant bits, spacing 2^-8 on [0.5, 1)) each charge is below half a spacing and is rounded
    away, so v never moves; in float32 it fires as it should."""
    theta, x, steps = 1.0, torch.tensor(1 / 1000), 600
    v16 = torch.tensor(0.5, dtype=torch.bfloat16)
    for _ in range(steps):
        v16 = v16 + x.to(torch.bfloat16)
    assert float(v16) == 0.5  # every charge lost
    n = MultiBitIF(theta, 1, 0)
    fired = sum(float(n(x.view(1).to(torch.bfloat16))) for _ in range(steps))
    assert n.v.dtype == torch.float32
    assert fired == 1.0  # float32 state: 0.5 + 150/300 reaches θ once within 300 steps


def test_bf16_autocast_keeps_neuron_state_float32_and_is_close():
    ann = tiny_ann("vgg16", width=0.125)
    snn = convert_ann(ann, {"int_bits": 1, "frac_bits": 3, "v_init": "half-lsb"})
    x, y = random_batches(32, 32, seed=3)[0]
    seen = []
    for m in snn.modules():
        if isinstance(m, MultiBitIF):
            m.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, mod.v.dtype, out.dtype)))
    with autocast(torch.device("cpu"), "bf16"):
        c16, _ = simulate_snn(snn, [(x, y)], 8)
    assert seen and all(inp == torch.bfloat16 for inp, _, _ in seen)  # the convolutions ran in bf16
    assert all(v == torch.float32 and out == torch.float32 for _, v, out in seen)
    c32, _ = simulate_snn(snn, [(x, y)], 8)
    assert (c16 - c32).abs().max() <= 4  # bf16 convolutions change a few of 32 predictions at most


def test_matched_identity_still_exact_under_bf16():
    """The activation and the neuron cast to float32 before the shared quantizer, so a matched ANN
    and its MBIF SNN agree exactly at T = 1 under bf16 autocast too."""
    from ann2snn.conversion.simulate import set_mode

    ann = tiny_ann("vgg16", activation="matched", width=0.125, int_bits=1, frac_bits=3)
    snn = convert_ann(ann, {"int_bits": 1, "frac_bits": 3, "v_init": "half-lsb"})
    x = random_batches(16, 16, seed=4)[0][0]
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        set_mode(snn, "ann")
        a = snn(x)
        set_mode(snn, "snn")
        s = snn(x)
    assert torch.equal(a, s)


def test_chunk_for_memory_rule():
    widest, batch = 64 * 1024, 500
    per_step = CHUNK_COPIES * batch * widest
    free = int(per_step * 10 / CHUNK_MEMORY_FRACTION)
    assert chunk_for_memory(free, batch, widest, 128) == 10
    assert chunk_for_memory(free, batch, widest, 4) == 4  # never more than T
    assert chunk_for_memory(1, batch, widest, 128) == 1  # never less than 1


def test_auto_time_chunk_is_one_on_the_cpu():
    snn = convert_ann(tiny_ann("resnet20"), {"int_bits": 1, "frac_bits": 3, "v_init": "half-lsb"})
    assert auto_time_chunk(snn, random_batches(8, 8), 128, "cpu") == 1


PEAK = textwrap.dedent("""
    import resource, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {root!r} + "/tests")
    from helpers import tiny_ann
    from ann2snn.conversion.snn import convert_ann
    from ann2snn.conversion.simulate import simulate_snn
    from ann2snn.analysis.opcount import OpCounter
    from ann2snn.analysis.diagnostics import LayerDiagnostics
    snn = convert_ann(tiny_ann("vgg16", width=0.25), {{"int_bits": 1, "frac_bits": 3, "v_init": "half-lsb"}})
    x = torch.randn(200, 3, 32, 32); y = torch.zeros(200, dtype=torch.long)
    observers = lambda: [OpCounter(snn), LayerDiagnostics(snn, [1, {T}])] if {ops} else []
    simulate_snn(snn, [(x, y)], 2, observers=observers())  # warm up allocators
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    simulate_snn(snn, [(x, y)], {T}, observers=observers())
    print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


@pytest.mark.slow
@pytest.mark.parametrize("ops", [False, True], ids=["plain", "counting"])
def test_memory_stays_flat_from_T8_to_T128(ops):
    """Peak resident memory of a whole simulation (child processes, so nothing else counts): T = 128
    stays within 25 % of T = 8, because a neuron keeps one potential and nothing is kept per step,
    also with operation counting and diagnostics watching (they allocate once per batch)."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    peaks = {}
    for T in (8, 128):
        out = subprocess.run([sys.executable, "-c", PEAK.format(root=root, T=T, ops=ops)], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        peaks[T] = int(out.stdout.split()[-1])
    # 25 %: the peak varies from run to run (one full-suite run saw 1.11x with counting, reruns passed); keeping
    # even one layer's [B, C, H, W] output per step (200 x 16 x 32 x 32 floats, 13 MB) would add 120 x 13 MB,
    # more than the whole T = 8 peak (about 1.5 GB)
    assert peaks[128] <= 1.25 * peaks[8], peaks
