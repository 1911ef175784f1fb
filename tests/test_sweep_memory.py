"""A sweep checks the memory it needs before any work: the estimate (against hand counts, a direct trace and
the real peak of a process), the refusal with the largest batch that fits, ``batch_size="auto"``, memory
flat in T, and a progress bar that advances per time step."""

import io
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import ann2snn
from ann2snn.analysis import memory as mem
from ann2snn.cli.main import main
from ann2snn.plumbing import memory as plumbing_memory
from ann2snn.plumbing.errors import UserError


def small_snn(size=8, seed=0):
    """conv(3→4) → ReLU → MaxPool2d(2) (spiking) → conv(4→8) → ReLU → flatten → linear, as MBIF 1+3."""
    torch.manual_seed(seed)
    ann = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8 * (size // 2) ** 2, 10))
    calibration = [(torch.randn(4, 3, size, size), torch.zeros(4, dtype=torch.int64))]
    return ann2snn.convert_model(ann, calibration, threshold="max", calib_batches=1, maxpool="spiking",
                                 example=torch.zeros(1, 3, size, size))


# --- the tracker and the estimate --------------------------------------------------------------------------


def test_live_bytes_follow_allocations_views_and_frees():
    def run(batch):
        a = torch.empty(batch, 1000)  # 4000·B bytes
        b = a + 1  # 4000·B more: both alive
        b.view(-1).add_(1)  # a view and an in-place add: nothing new
        del a
        c = torch.empty(batch, 250, dtype=torch.float64)  # 2000·B, while b lives
        del b, c
        torch.empty(10, dtype=torch.int64)  # 80 bytes, whatever B

    line = mem.Timeline(mem._trace(run, 1), mem._trace(run, 2))
    for batch in (1, 3, 7):
        assert line.peak(batch) == 8000 * batch  # a and b
        # float64: the float32 tensors a and b count twice (c already is float64)
        assert line.peak(batch, float_scale=2.0) == 16000 * batch
        # below 32 MiB every storage counts heap_factor times
        assert line.peak(batch, heap_factor=2.0) == 16000 * batch
    # from 32 MiB up a storage is mapped on its own and counts once, apart from the heap: at B = 9000, a and b
    # are 36 MB each (at most 72 MB together) and c is 18 MB on the heap, counted twice
    assert line.peak(9000, heap_factor=2.0) == 8000 * 9000 + 2 * 2000 * 9000
    assert line.peak(9000) == 8000 * 9000  # without heap_factor: the most alive at once (a and b)


def test_extrapolated_peak_equals_a_run_traced_at_that_batch():
    """The probe at batch 1 and 2, extrapolated to 5, against the same simulation traced at batch 5."""
    from ann2snn.analysis.opcount import OpCounter
    from ann2snn.analysis.diagnostics import LayerDiagnostics
    from ann2snn.conversion.simulate import simulate_snn

    snn = small_snn()

    def run(batch):
        observers = [OpCounter(snn, (1, 3, 8, 8)), LayerDiagnostics(snn, [1, 2, 3])]
        simulate_snn(snn, [(torch.zeros(batch, 3, 8, 8), torch.zeros(batch, dtype=torch.int64))], 3,
                     observers=observers)
        for o in observers:
            o.remove()

    line = mem.Timeline(mem._trace(run, 1), mem._trace(run, 2))
    at5 = mem._trace(run, 5)
    direct = mem.Timeline(at5, at5)
    for scale in (1.0, 2.0):
        assert line.peak(5, scale) == direct.peak(1, scale) > 0


def test_state_per_image_by_hand():
    snn = small_snn()
    # neuron 1: 4×8×8 = 256; pool: accumulated input 256 and last maximum 4×4×4 = 64; neuron 2: 8×4×4 = 128
    elements = 256 + 256 + 64 + 128
    assert mem.estimate_memory(snn, (3, 8, 8)).state_per_image == 4 * elements
    est = mem.estimate_memory(snn, (3, 8, 8), precision="float64", ops=False)
    assert est.state_per_image == 8 * elements
    # the estimate holds at least the state of B images, and the simulation's state does not grow with T
    assert est.simulation_bytes(50, heap_factor=1.0) >= 50 * est.state_per_image


def test_memory_is_flat_in_T():
    """Live tensor bytes of the simulation with counting, diagnostics and a spiking max-pool, at 4 and at 16
    steps: nothing is kept per step but the two accuracy counters [T] int64 (hits and correct)."""
    from ann2snn.analysis.opcount import OpCounter
    from ann2snn.analysis.diagnostics import LayerDiagnostics
    from ann2snn.conversion.simulate import simulate_snn

    snn = small_snn()

    def peak(T):
        def run(batch):
            observers = [OpCounter(snn, (1, 3, 8, 8)), LayerDiagnostics(snn, [1, T])]
            simulate_snn(snn, [(torch.zeros(batch, 3, 8, 8), torch.zeros(batch, dtype=torch.int64))], T,
                         observers=observers)
            for o in observers:
                o.remove()
        trace = mem._trace(run, 4)
        return mem.Timeline(trace, trace).peak(1)

    assert peak(16) - peak(4) == 2 * (16 - 4) * 8 and peak(4) > 0


def test_time_chunk_multiplies_the_forward_pass_not_the_state():
    snn = small_snn()
    one = mem.estimate_memory(snn, (3, 8, 8), ops=False)
    four = mem.estimate_memory(snn, (3, 8, 8), ops=False, time_chunk=4)
    assert four.state_per_image == one.state_per_image
    assert four.simulation_bytes(10) > one.simulation_bytes(10)
    with pytest.raises(UserError, match="`time_chunk` > 1"):
        mem.estimate_memory(snn, (3, 8, 8), ops=True, time_chunk=4)


MEASURE = textwrap.dedent("""
    import json, os, sys
    import torch
    from torch import nn
    torch.set_num_threads(1)
    import ann2snn
    from ann2snn.analysis.memory import estimate_memory
    from ann2snn.pipelines.sweep import sweep_model
    from ann2snn.plumbing.data import DATASETS, CifarBatches
    from ann2snn.plumbing.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

    precision, ops, diagnostics = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    size, batch = 64, 64
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(32, 10))
    snn = ann2snn.convert_model(ann, [(torch.randn(2, 3, size, size), torch.zeros(2, dtype=torch.int64))],
                                threshold="max", calib_batches=1, maxpool="spiking",
                                example=torch.zeros(1, 3, size, size))
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    batches = CifarBatches(images, torch.zeros(batch, dtype=torch.int64), DATASETS["cifar10"], batch)
    base = rss_bytes()
    if not reset_peak_rss():
        print(json.dumps(None)); sys.exit()
    # the real work first, on a heap the probe has not touched
    sweep_model(snn, batches, 4, T_list=[4], ops=ops, diagnostics=diagnostics, precision=precision, fuse="off",
                input_shape=(3, size, size))
    measured = peak_rss_bytes() - base
    est = estimate_memory(snn, (3, size, size), ops=ops, diagnostics=diagnostics, precision=precision)
    print(json.dumps({"measured": measured, "estimate": est.simulation_bytes(batch)}))
""")


@pytest.mark.parametrize("precision, ops, diagnostics", [("float32", 1, 1), ("float64", 1, 0), ("float32", 0, 0)])
def test_estimate_covers_the_measured_peak(precision, ops, diagnostics):
    """The estimate of sweep_model on one batch of 64 images against the growth of a fresh process's peak
    resident memory (VmHWM, reset just before) over the same call: at least it, at most 3 × it (found:
    1.1–1.7 ×)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, precision, str(ops), str(diagnostics)], capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found is None:
        pytest.skip("this system cannot reset the peak resident memory (/proc/self/clear_refs)")
    ratio = found["estimate"] / found["measured"]
    print(f"{precision} ops={ops} diagnostics={diagnostics}: estimate {found['estimate'] / 2**20:.0f} MiB, "
          f"measured {found['measured'] / 2**20:.0f} MiB, ratio {ratio:.2f}")
    assert found["measured"] > 50 * 2**20  # the simulation dominates the process's noise
    assert 1.0 <= ratio <= 3.0


def test_available_bytes_reads_meminfo(tmp_path, monkeypatch):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    7340032 kB\n")
    assert plumbing_memory.mem_available(str(info)) == 7340032 * 1024
    info.write_text("MemTotal: 1 kB\n")
    assert plumbing_memory.mem_available(str(info)) is None
    assert plumbing_memory.format_bytes(7340032 * 1024) == "7.0 GiB"
    assert plumbing_memory.format_bytes(1536) == "1.5 KiB" and plumbing_memory.format_bytes(12) == "12 B"
    monkeypatch.setattr(plumbing_memory, "mem_available", lambda: 5 << 30)
    monkeypatch.setattr(plumbing_memory, "cgroup_headroom", lambda: 3 << 30)  # a container's limit is lower
    assert plumbing_memory.available_bytes("cpu") == 3 << 30


# --- the sweep: refusals and batch_size="auto" -------------------------------------------------------------


@pytest.fixture(scope="module")
def qcfs_run(fake_cifar, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "qcfs"
    assert main(["train-ann", "--arch", "resnet20", "--width", "0.25", "--epochs", "1", "--batch-size", "10",
                 "--data-dir", fake_cifar, "--skip-md5", "--out", str(run), "--quiet"]) == 0
    return str(run)


@pytest.fixture
def probes(monkeypatch):
    """The MemoryEstimate of every probe the sweep makes, in order."""
    found = []
    real = mem.estimate_memory

    def spy(*args, **kwargs):
        found.append(real(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(mem, "estimate_memory", spy)
    return found


def set_available(monkeypatch, nbytes):
    monkeypatch.setattr(plumbing_memory, "available_bytes", lambda device="cpu": nbytes)


def growing(est, top=10):
    """The smallest batch b >= 2 whose total estimate is below that of b + 1 (where the simulation, not the
    ANN column, is the peak), with b + 1 <= ``top``."""
    b = next(b for b in range(2, top) if est.total_bytes(b + 1) > est.total_bytes(b))
    return b


def test_auto_takes_the_largest_batch_that_fits_and_sweep_json_records_it(qcfs_run, fake_cifar, tmp_path,
                                                                             monkeypatch, probes):
    args = dict(neurons=["mbif"], data_dir=fake_cifar, skip_md5=True)
    set_available(monkeypatch, 1 << 40)
    res = ann2snn.run_sweep([qcfs_run], 2, batch_size="auto", **args)
    # nothing is read before the check: the split counts as CIFAR-10's 10,000 test images, so auto takes 500
    assert res["memory"]["batch_size"] == 500 and probes[0].test_images == 10_000
    res = ann2snn.run_sweep([qcfs_run], 2, batch_size="auto", subset=10, **args)
    assert res["memory"]["batch_size"] == 10  # at most the test images
    est = probes[1]
    assert est.test_images == 10
    # memory for b images and not b + 1: auto takes b, and 10 is refused naming b
    b = growing(est)
    room = est.total_bytes(b) / mem.MEMORY_FRACTION + 1
    set_available(monkeypatch, int(room))
    res = ann2snn.run_sweep([qcfs_run], 2, batch_size="auto", subset=10, out=str(tmp_path / "auto"), **args)
    saved = json.loads((tmp_path / "auto" / "sweep.json").read_text())["memory"]
    assert saved["batch_size"] == res["memory"]["batch_size"] == b and saved["requested"] == "auto"
    assert saved["estimate_bytes"] == est.total_bytes(b) and saved["available_bytes"] == int(room)
    assert res["curves"][0]["samples"] == 10
    with pytest.raises(UserError, match=rf"a batch of 10 images needs about .* the largest batch that fits is {b}: "
                                        rf"give `batch_size` {b} \(or auto\)") as err:
        ann2snn.run_sweep([qcfs_run], 2, batch_size=10, subset=10, out=str(tmp_path / "fixed"), **args)
    assert "80 % of the" in str(err.value) and "a 20 % margin" in str(err.value)
    assert not (tmp_path / "fixed").exists()


def test_cli_batch_size_auto_and_the_one_line_refusal(qcfs_run, fake_cifar, tmp_path, monkeypatch, capsys, probes):
    common = ["sweep", "--checkpoint", qcfs_run, "--neuron", "if", "--T", "2", "--subset", "10", "--data-dir",
              fake_cifar, "--skip-md5", "--quiet"]
    set_available(monkeypatch, 1 << 40)
    assert main([*common, "--batch-size", "auto", "--out", str(tmp_path / "a")]) == 0
    assert "batch size auto: 10 images per batch (estimate" in capsys.readouterr().out
    b = growing(probes[0])
    set_available(monkeypatch, int(probes[0].total_bytes(b) / mem.MEMORY_FRACTION + 1))
    assert main([*common, "--out", str(tmp_path / "b")]) == 2  # the default, 500
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: a batch of 500 images needs about ")
    assert err.endswith(f"the largest batch that fits is {b}: give --batch-size {b} (or auto)")
    assert not (tmp_path / "b").exists()
    assert main([*common, "--batch-size", "nine", "--out", str(tmp_path / "c")]) == 2
    assert "must be a whole number from 1 to 1000000 or 'auto', got nine" in capsys.readouterr().err


def test_available_memory_unknown(qcfs_run, fake_cifar, monkeypatch):
    set_available(monkeypatch, None)
    with pytest.raises(UserError, match="`batch_size` auto needs the available memory"):
        ann2snn.run_sweep([qcfs_run], 1, neurons=["if"], data_dir=fake_cifar, skip_md5=True, batch_size="auto")
    res = ann2snn.run_sweep([qcfs_run], 1, neurons=["if"], data_dir=fake_cifar, skip_md5=True, ops=False)
    assert res["memory"]["batch_size"] == 500 and res["memory"]["available_bytes"] is None


def test_224_px_sweep_that_cannot_fit_one_image(tmp_path, monkeypatch, capsys, probes):
    """torchvision's ResNet-18 (random weights) on an image folder at its default 224 px, with its spiking
    max-pool: 100 MiB available is not enough for one image. One line, exit 2, nothing in --out, before any
    calibration or image decoding."""
    import torchvision
    from PIL import Image

    import ann2snn.conversion.snn as snn_mod
    from ann2snn.plumbing import folder as folder_mod

    for split in ("train", "val"):
        for cls in ("ant", "bee"):
            (tmp_path / "images" / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(tmp_path / "images" / split / cls / f"{i}.png")
    weights = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    monkeypatch.setattr(snn_mod, "calibrate_settings", lambda *a, **k: pytest.fail("calibrated before the check"))
    monkeypatch.setattr(folder_mod, "pil_rgb_loader", lambda *a, **k: pytest.fail("decoded before the check"))
    set_available(monkeypatch, 100 << 20)
    argv = ["sweep", "--arch", "torchvision:resnet18", "--weights", str(weights), "--dataset", "imagefolder",
            "--data-dir", str(tmp_path / "images"), "--neuron", "mbif", "--threshold", "percentile:99.9", "--maxpool",
            "spiking", "--T", "4", "--workers", "0", "--quiet"]
    assert main([*argv, "--diagnostics", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
    one = probes[0].total_bytes(1)
    assert probes[0].input_shape == (3, 224, 224) and probes[0].test_images == 4 and one > 80 << 20
    bare = max(p.total_bytes(1) for p in probes[1:])  # the probes without --ops and --diagnostics
    assert err == (f"Error: even one image per batch (--batch-size 1) needs about {plumbing_memory.format_bytes(one)} "
                   f"of memory, more than the 80.0 MiB usable here (80 % of the 100.0 MiB available, a 20 % margin): "
                   f"switch off --ops and drop --diagnostics/--plots (without them: "
                   f"{plumbing_memory.format_bytes(bare)}), or use a smaller --image-size (224 now)")
    assert bare < one
    probes.clear()
    assert main([*argv, "--no-ops", "--image-size", "112", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert probes[0].input_shape == (3, 112, 112)
    assert err.startswith("Error: even one image per batch") and "switch off" not in err and err.endswith("(112 now)")
    assert not (tmp_path / "out").exists()


def test_the_ann_column_alone_can_be_too_big(fake_cifar, tmp_path, monkeypatch, capsys, probes, qcfs_run):
    """The ANN column runs on batches of 500 test images (as train-ann): a memory that holds one simulated
    image but not 500 ANN images is told the largest subset that fits."""
    set_available(monkeypatch, 1 << 40)
    ann2snn.run_sweep([qcfs_run], 1, neurons=["if"], data_dir=fake_cifar, skip_md5=True, ops=False)
    est = probes[0]
    assert est.total_bytes(1) > est.total_bytes(1, images=7) > est.total_bytes(1, images=6)
    budget_for_6 = est.total_bytes(1, images=6)  # one simulated image and a column of 6 images
    available = int(budget_for_6 / mem.MEMORY_FRACTION) + 1
    set_available(monkeypatch, available)
    with pytest.raises(UserError, match=r"for its ANN column .* sweep a `subset` of at most 6 test images"):
        ann2snn.run_sweep([qcfs_run], 1, neurons=["if"], data_dir=fake_cifar, skip_md5=True, ops=False)
    res = ann2snn.run_sweep([qcfs_run], 1, neurons=["if"], data_dir=fake_cifar, skip_md5=True, ops=False, subset=6,
                            batch_size="auto")
    # the largest batch whose simulation fits beside the column of 6, counted from the estimate
    fits = [b for b in range(1, 7) if est.total_bytes(b, images=6) <= mem.MEMORY_FRACTION * available]
    assert res["memory"]["batch_size"] == max(fits)


# --- progress --------------------------------------------------------------------------------------------


def test_the_simulation_progress_advances_per_time_step(monkeypatch):
    """Non-terminal output: plain lines, one per step here (each step is 10 % of 1 batch × T = 10)."""
    from ann2snn.conversion import simulate
    from ann2snn.plumbing.progress import LineProgress, progress_bar

    log = io.StringIO()

    def logged(*args, **kwargs):
        bar = progress_bar(*args, **{**kwargs, "file": log})
        assert isinstance(bar, LineProgress)  # a StringIO is no terminal
        bar.min_interval = 0  # write whenever 10 % more is done, not only every 30 s
        return bar

    monkeypatch.setattr(simulate, "progress_bar", logged)
    snn = small_snn()
    simulate.simulate_snn(snn, [(torch.zeros(3, 3, 8, 8), torch.zeros(3, dtype=torch.int64))], 10, progress=True)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(" step")[0] for line in lines] == [f"SNN T=10: {t}/10" for t in range(1, 11)]
    assert "images/s (all T steps)" in lines[-1]
