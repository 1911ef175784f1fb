"""The ``ann2snn`` command line: train-ann, convert, sweep.

Every user mistake ends with one line on stderr, ``Error: ...``, and exit status 2 (no traceback).
"""

from __future__ import annotations

import sys

import click
from ann2snn.cli import types as T
from ann2snn.cli.claims import claims_out
from click.core import ParameterSource

from ann2snn.plumbing.errors import UserError

ARCH_CHOICES = ["vgg16", "resnet18", "resnet20"]
DATASET_CHOICES = ["cifar10", "cifar100"]


def parse_lambda_init(text: str):
    """``auto`` or a positive float; UserError otherwise."""
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise UserError(f"--lambda-init must be a positive number or 'auto', got {text!r}")
    return value


def _set_threads(ctx, _param, value):
    """--threads: set torch's CPU threads now (before any work); say so when busy cores lower the count."""
    import os

    import torch

    from ann2snn.plumbing.device import choose_threads, usable_cores

    if ctx.resilient_parsing:  # shell completion: no measuring, no messages
        return None
    n = choose_threads(value)
    if value == "auto" and not os.environ.get("OMP_NUM_THREADS") and n < usable_cores():
        click.echo(f"note: other processes keep {usable_cores() - n} of {usable_cores()} CPU cores busy: running with "
                   f"{n} thread{'s' if n > 1 else ''} (--threads N to choose)", err=True)
    torch.set_num_threads(n)
    return n


def device_options(f):
    """--device, --amp and --threads (see ann2snn.plumbing.device)."""
    f = click.option("--threads", default="auto", show_default=True, expose_value=False, is_eager=True,
                     callback=_set_threads,
                     help="CPU threads for torch. auto: the cores that other processes do not keep busy (measured "
                          "for 0.25 s at start), at least 1; busy cores otherwise slow torch down many times. "
                          "With OMP_NUM_THREADS set, auto keeps that.")(f)
    f = click.option("--amp", type=click.Choice(["none", "bf16"]), default="none", show_default=True,
                     help="bf16: convolutions and linear layers in bfloat16 autocast; quantizers and membrane "
                          "potentials stay float32.")(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="auto = cuda if available, else cpu. Under torchrun each process takes cuda:LOCAL_RANK.")(f)
    return f


def data_options(f):
    """--dataset, --data-dir, --download, --skip-md5."""
    from ann2snn.plumbing.data import default_data_dir

    f = click.option("--skip-md5", is_flag=True,
                     help="Load dataset files that fail torchvision's MD5 check (logged). Needed for re-packed copies.")(f)
    f = click.option("--download", is_flag=True, help="Fetch the dataset with torchvision if missing (online).")(f)
    f = click.option("--data-dir", default=default_data_dir, show_default="$ANN2SNN_DATA or ./data",
                     help="Folder holding cifar-10-batches-py/ or cifar-100-python/.")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ann2snn")
def cli():
    """ANN→SNN conversion with multi-bit spikes: train a QCFS ANN, convert it to IF / MBIF
    neurons, and sweep accuracy over time steps T in one simulation."""


@cli.command("train-ann")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="vgg16", show_default=True)
@click.option("--dataset", type=click.Choice(DATASET_CHOICES), default="cifar10", show_default=True)
@data_options
@click.option("--activation", type=click.Choice(["qcfs", "matched", "relu"]), default="qcfs", show_default=True,
              help="qcfs: QCFS with --levels L. matched: one MBIF(--int-bits, --frac-bits) step. relu: a plain "
                   "ReLU net (convert it with --threshold max|percentile:P).")
@click.option("--levels", "-L", type=T.upto(65536), default=4, show_default=True, help="QCFS quantization levels L.")
@click.option("--int-bits", type=int, default=1, show_default=True, help="m, for --activation matched.")
@click.option("--frac-bits", type=int, default=3, show_default=True, help="n, for --activation matched.")
@click.option("--lambda-init", default="auto", show_default=True,
              help="Initial λ of every site: 'auto' (99.9th percentile of its pre-activation on 4 "
                   "training batches) or a positive number (QCFS's choice: 8.0).")
@click.option("--epochs", type=T.EPOCHS, default=300, show_default=True)
@click.option("--batch-size", type=T.BATCH, default=128, show_default=True)
@click.option("--lr", type=T.LR, default=0.1, show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=T.WEIGHT_DECAY, default=5e-4, show_default=True)
@click.option("--width", type=T.WIDTH, default=1.0, show_default=True, help="Channel width multiplier.")
@click.option("--seed", type=T.SEED, default=0, show_default=True)
@click.option("--subset", type=T.IMAGES, default=None, help="Train on a fixed, seeded, class-balanced subset of N images.")
@click.option("--test-subset", type=T.IMAGES, default=None, help="Evaluate on a fixed class-balanced subset of N test images.")
@click.option("--augment", type=click.Choice(["crop-flip", "autoaugment", "none"]), default="crop-flip",
              show_default=True, help="autoaugment = AutoAugment (CIFAR-10 policy) + crop-flip + Cutout(16), as QCFS.")
@click.option("--fuse", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Run each QCFS/matched activation as one compiled kernel forward and one backward "
                   "(torch.compile): same outputs and input gradients, λ's gradient summed in another order. "
                   "About 20 s to compile on first use, then cached. auto: on for the CPU from 1,000 optimizer steps. "
                   "A resumed run keeps its choice.")
@device_options
@click.option("--out", required=True, help="Run folder (checkpoint.pt, metrics.csv).")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
@claims_out("dir")
def train_ann_cmd(ctx, out, resume, quiet, lambda_init, **options):
    """Train a QCFS (or matched) ANN on CIFAR; checkpoint every epoch."""
    from ann2snn.ann.quantizer import check_bits
    from ann2snn.pipelines.train_ann import train_ann

    config = dict(options, lambda_init=parse_lambda_init(lambda_init))
    if config["activation"] == "matched":
        check_bits(config["int_bits"], config["frac_bits"])
    explicit = {k for k in list(options) + ["lambda_init"]
                if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    path = train_ann(config, out, resume=resume, explicit=explicit, progress=not quiet)
    click.echo(f"ANN checkpoint: {path}")


def parse_time_chunk(text: str):
    """``auto`` or a whole number >= 1; UserError otherwise."""
    if text == "auto":
        return "auto"
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise UserError(f"--time-chunk must be 'auto' or a whole number >= 1, got {text!r}")
    return int(text)


def parse_neuron_spec(spec: str) -> dict:
    """``if`` | ``mbif`` | ``mbif:M+N`` → keyword arguments for :func:`ann2snn.conversion.snn.neuron_settings`."""
    name, _, bits = spec.partition(":")
    if name not in ("if", "mbif") or (bits and name == "if"):
        raise UserError(f"bad --neuron {spec!r}: use if, mbif or mbif:M+N (e.g. mbif:1+3)")
    if not bits:
        return {"neuron": name}
    m, plus, n = bits.partition("+")
    if not (plus and m.isascii() and m.isdigit() and n.isascii() and n.isdigit()):
        raise UserError(f"bad --neuron {spec!r}: bits are written M+N, e.g. mbif:1+3")
    return {"neuron": name, "int_bits": int(m), "frac_bits": int(n)}


@cli.command("convert")
@click.option("--checkpoint", required=True, help="ANN checkpoint from train-ann (file or run folder).")
@click.option("--neuron", type=click.Choice(["if", "mbif"]), default="mbif", show_default=True,
              help="if = MBIF(1,0). mbif defaults to 1+3, or to a matched ANN's own bits.")
@click.option("--int-bits", type=int, default=None, help="m (mbif only).")
@click.option("--frac-bits", type=int, default=None, help="n (mbif only).")
@click.option("--v-init", type=click.Choice(["half-lsb", "half-threshold", "zero"]), default="half-lsb",
              show_default=True, help="Initial membrane potential: q/2, θ/2 or 0.")
@click.option("--cap", default="full", show_default=True,
              help="Per-step ceiling of an MBIF neuron's count: full (K = 2^(m+n)-1, the seed's), theta "
                   "(K = 2^n: no step sends more than θ) or a whole count K.")
@click.option("--threshold", default="lambda", show_default=True,
              help="θ per site: lambda (the QCFS/matched λ), max or percentile:P of its activations on training "
                   "data (needed for ReLU networks).")
@click.option("--calib-batches", type=T.CALIB, default=10, show_default=True,
              help="Training batches (of 128) for --threshold max|percentile:P.")
@click.option("--fold-bn", is_flag=True, help="Fold each BatchNorm into the conv before it first.")
@data_options
@click.option("--out", required=True, help="SNN checkpoint file to write.")
@claims_out("file")
def convert_cmd(checkpoint, neuron, int_bits, frac_bits, v_init, cap, threshold, calib_batches, fold_bn, data_dir,
                download, skip_md5, out):
    """Convert an ANN checkpoint: every activation site becomes its own IF / MBIF neuron."""
    import os

    from ann2snn.plumbing.checkpoint import check_output_file
    from ann2snn.conversion.snn import convert_checkpoint

    check_output_file(out)
    src = os.path.join(checkpoint, "checkpoint.pt") if os.path.isdir(checkpoint) else checkpoint
    if os.path.exists(out) and os.path.exists(src) and os.path.samefile(src, out):
        raise UserError(f"--out {out} is the ANN checkpoint itself; write the SNN to another file")
    from ann2snn.conversion.calibrate import parse_threshold

    calibration = None
    if parse_threshold(threshold)[0] != "lambda" or fold_bn:
        calibration = {"threshold": threshold, "calib_batches": calib_batches, "fold_bn": fold_bn,
                       "data_dir": data_dir, "download": download, "skip_md5": skip_md5}
    ckpt = convert_checkpoint(checkpoint, {"neuron": neuron, "int_bits": int_bits, "frac_bits": frac_bits,
                                           "v_init": v_init, "cap": cap}, out, calibration)
    c = ckpt["conversion"]
    n_sites = sum(1 for k in ckpt["model_state"] if k.endswith(".theta"))
    cap_text = f", K={c['cap']}" if c.get("cap") else ""
    click.echo(f"SNN checkpoint: {out} ({n_sites} neurons, {c['neuron'].upper()} {c['int_bits']}+{c['frac_bits']}"
               f"{cap_text}, v_init {c['v_init']})")
    from ann2snn.conversion.snn import exact_neuron_hint

    hint = exact_neuron_hint(ckpt["config"])
    if hint and calibration is None:
        click.echo(f"note: this QCFS(L={ckpt['config'].get('levels', 4)}) ANN is reproduced exactly at T = 1 by "
                   f"{hint}")


@cli.command("export-nir")
@click.option("--checkpoint", required=True, help="SNN checkpoint from `ann2snn convert`.")
@click.option("--out", required=True, help="NIR file to write (HDF5, e.g. model.nir).")
@claims_out("file")
def export_nir_cmd(checkpoint, out):
    """Write a converted SNN as a NIR graph (needs the nir extra: pip install -e '.[nir]')."""
    from ann2snn.conversion.snn import load_snn
    from ann2snn.export.nir_graph import export_nir, lost_in_export, require_nir
    from ann2snn.plumbing.checkpoint import check_output_file

    check_output_file(out)
    require_nir()
    snn, ckpt = load_snn(checkpoint)
    graph = export_nir(snn, out)
    n_if = sum(1 for node in graph.nodes.values() if type(node).__name__ == "IF")
    c = ckpt["conversion"]
    click.echo(f"NIR graph: {out} ({len(graph.nodes)} nodes, {n_if} IF nodes for {c['neuron'].upper()} "
               f"{c['int_bits']}+{c['frac_bits']} neurons)")
    for line in lost_in_export(c):
        click.echo(f"note: {line}")


@cli.command("sweep")
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="SNN checkpoint (repeat for several); or an ANN checkpoint together with --neuron.")
@click.option("--T", "T_text", default="4,16,64,128", show_default=True, help="Time steps to report.")
@click.option("--neuron", "neurons", multiple=True,
              help="For ANN checkpoints: convert in memory to if | mbif | mbif:M+N (repeatable).")
@click.option("--v-init", "v_inits", multiple=True, type=click.Choice(["half-lsb", "half-threshold", "zero"]),
              help="For ANN checkpoints: v_init(s) to convert with (repeatable; default half-lsb).")
@click.option("--cap", "caps", multiple=True,
              help="For ANN checkpoints: per-step ceiling(s) of the MBIF neurons: full, theta or a count K "
                   "(repeatable; default full). IF rows are unaffected (K = 1 already).")
@click.option("--threshold", "thresholds", multiple=True,
              help="For ANN checkpoints: θ per site, lambda (default) or max | percentile:P from training data "
                   "(repeatable; needed for ReLU nets). Each calibration is shared by every neuron.")
@click.option("--calib-batches", type=T.CALIB, default=10, show_default=True,
              help="Training batches (of 128) for --threshold max|percentile:P.")
@click.option("--fold-bn", is_flag=True, help="For ANN checkpoints: fold each BatchNorm into the conv before it first.")
@data_options
@click.option("--batch-size", type=T.BATCH, default=500, show_default=True)
@click.option("--subset", type=T.IMAGES, default=None, help="Evaluate on a fixed class-balanced subset of N test images.")
@click.option("--ops/--no-ops", default=True, show_default=True,
              help="Count synaptic events, bit-plane accumulates and energy per image at each T (sweep_ops.csv).")
@click.option("--diagnostics", is_flag=True,
              help="Per-layer firing rate, silent and saturated fractions, rate error, first spike (sweep_layers.csv).")
@click.option("--time-chunk", "time_chunk_text", default="auto", show_default=True,
              help="Steps merged into one network call (time-batched simulation; same results, memory grows with "
                   "the chunk). auto: as many as fit in a quarter of free GPU memory on CUDA, 1 on the CPU (and 1 "
                   "with --ops/--diagnostics). A number > 1 needs --no-ops and no --diagnostics/--plots.")
@click.option("--precision", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="Arithmetic of layers, quantizers and membrane potentials. float64 makes results reproducible "
                   "across batch sizes, --time-chunk, CPU kernel sets and thread counts (see README); float32 is "
                   "faster, and a rare spike can differ between those settings.")
@click.option("--fuse", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Run each neuron step as one compiled kernel (torch.compile; bit-identical to the plain step, "
                   "about 10 s to compile on first use, then cached). auto: on for the CPU from 200,000 image-steps "
                   "(test images × max T), off on CUDA.")
@click.option("--channels-last", is_flag=True,
              help="On the CPU, simulate in channels_last memory format (faster convolutions, about 0.7x; always on "
                   "for CUDA). float32 results may then differ from the default layout's by a rare spike.")
@click.option("--plots", is_flag=True, help="Also write accuracy_vs_T.png, firing_rates.png and (with ops) "
              "energy_vs_accuracy.png; implies --diagnostics.")
@device_options
@click.option("--out", required=True, help="Folder for sweep.csv, sweep.md, sweep.json.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@claims_out("dir")
def sweep_cmd(checkpoints, T_text, neurons, v_inits, caps, thresholds, calib_batches, fold_bn, data_dir, download, skip_md5, batch_size, subset, ops,
              diagnostics, time_chunk_text, precision, fuse, channels_last, plots, device, amp, out, quiet):
    """Accuracy at every T in one simulation per model, beside the ANN's; writes the table."""
    from ann2snn.ann.build import load_ann
    from ann2snn.plumbing.checkpoint import file_sha256, load_checkpoint
    from ann2snn.conversion.snn import calibrate_settings, convert_ann, load_snn, neuron_settings
    from ann2snn.pipelines.sweep import build_row, parse_T, sweep_model, test_batches, write_tables
    from ann2snn.plumbing.provenance import provenance

    from ann2snn.plumbing.checkpoint import check_output_dir

    from ann2snn.plumbing.device import resolve_device
    from ann2snn.plumbing.distributed import device_for, setup

    T_list = parse_T(T_text)
    check_output_dir(out)
    # provenance of the code as it starts (a long sweep must not record a commit made while it ran)
    prov = provenance((click.get_current_context().obj or {}).get("argv"))
    from ann2snn.pipelines.sweep import precision_dtype

    precision_dtype(precision, amp)
    time_chunk = parse_time_chunk(time_chunk_text)
    d = setup(device)
    dev = device_for(d, resolve_device(device))
    if d.enabled and (ops or diagnostics or plots):
        raise UserError("a distributed sweep (torchrun) counts accuracy only: add --no-ops and drop --diagnostics/--plots "
                        "(run those in one process)")
    if time_chunk != "auto" and time_chunk > 1 and (ops or diagnostics or plots):
        raise UserError("--time-chunk > 1 runs without per-step observers: add --no-ops and drop --diagnostics/--plots")
    if subset is not None and subset < 1:
        raise UserError(f"--subset must be a number of test images >= 1 (leave it out for all), got {subset}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    specs = [parse_neuron_spec(s) for s in neurons]
    v_inits_given = v_inits
    v_inits = list(v_inits) or ["half-lsb"]
    caps_given = caps
    caps = list(dict.fromkeys(caps)) or ["full"]
    thresholds_given = thresholds
    thresholds = list(dict.fromkeys(thresholds)) or ["lambda"]
    from ann2snn.conversion.calibrate import parse_threshold

    for text in thresholds:
        parse_threshold(text)
    if calib_batches < 1:
        raise UserError(f"--calib-batches must be >= 1, got {calib_batches}")
    if any(c != "full" for c in caps) and specs and all(s["neuron"] == "if" for s in specs):
        raise UserError("--neuron if already sends at most θ per step (K = 1): drop --cap, or add an mbif neuron")
    models = []  # (label, loader) pairs, validated before any simulation starts
    for path in checkpoints:
        kind = load_checkpoint(path)["kind"]
        if kind == "snn":
            models.append((path, lambda path=path: load_snn(path)))
            continue
        if not specs:
            raise UserError(f"{path} is an ANN checkpoint: convert it first, or pass --neuron (e.g. --neuron if --neuron mbif:1+3)")
        ann, ckpt = load_ann(path)
        seen = set()
        calibrated = {}  # threshold → settings carrying the calibrated θs (shared by every neuron)
        for text in thresholds:
            base = neuron_settings("if", ann_config=ckpt["config"])
            if parse_threshold(text)[0] == "lambda" and not fold_bn:
                if ckpt["config"].get("activation") == "relu":
                    raise UserError(f"{path} is a ReLU network, which has no λ: pass --threshold max or percentile:P")
                calibrated[text] = {}
                continue
            cal = calibrate_settings(ann, ckpt["config"], base, text, calib_batches, fold_bn, data_dir, download,
                                     skip_md5)
            calibrated[text] = {k: cal[k] for k in ("threshold", "fold_bn", "calib_batches", "thresholds") if k in cal}
        for spec in specs:
            for v_init, cap in ((v, c) for v in v_inits for c in caps):
                is_if = spec["neuron"] == "if" or (spec.get("int_bits"), spec.get("frac_bits")) == (1, 0)
                settings = neuron_settings(ann_config=ckpt["config"], v_init=v_init, **spec,
                                           cap=None if is_if else cap)
                key = (settings["int_bits"], settings["frac_bits"], settings["cap"],
                       "half-lsb" if settings["neuron"] == "if" and v_init == "half-threshold" else v_init)
                if key in seen:  # IF: half-threshold == half-lsb (both θ/2)
                    continue
                seen.add(key)
                for text in thresholds:
                    full = {**settings, **calibrated[text]}
                    fake = {**ckpt, "conversion": full, "source": {"path": ckpt["path"], "sha256": None,
                                                                  "epoch": ckpt.get("epoch")}}
                    models.append((path, lambda ann=ann, s=full, f=fake: (convert_ann(ann, s), f)))
    in_memory = specs or v_inits_given or caps_given or thresholds_given or fold_bn
    if in_memory and all(load_checkpoint(p)["kind"] == "snn" for p in checkpoints):
        raise UserError("--neuron / --v-init / --cap / --threshold / --fold-bn convert ANN checkpoints in memory, "
                        "but every --checkpoint is an SNN checkpoint; drop them")
    rows, curves, data_cache = [], [], {}
    for path, load in models:
        snn, ckpt = load()
        cfg, conv = ckpt["config"], ckpt["conversion"]
        if cfg["dataset"] not in data_cache:
            data_cache[cfg["dataset"]] = test_batches(cfg, data_dir, batch_size, subset, download, skip_md5,
                                                      dev, d)
        result = sweep_model(snn, data_cache[cfg["dataset"]], max(T_list), progress=not quiet and d.is_main,
                             T_list=T_list, ops=ops, diagnostics=diagnostics or plots, time_chunk=time_chunk,
                             device=dev, amp=amp, d=d, precision=precision, fuse=fuse,
                             channels_last=channels_last)
        epochs = ckpt["source"].get("epoch") if ckpt["kind"] == "snn" else ckpt.get("epoch")
        row = build_row(cfg, conv, result, T_list, {"epochs": epochs})
        rows.append(row)
        sha = file_sha256(ckpt["path"])
        curves.append({**row, **{k: result[k] for k in ("ops", "layers") if k in result},
                       "curve": result["curve"], "ann_acc": result["ann_acc"], "samples": result["samples"],
                       "snn_seconds": round(result["snn_seconds"], 2), "time_chunk": result["time_chunk"],
                       "precision": precision, "fused": result["fused"],
                       "channels_last": result["channels_last"],
                       "device": str(dev), "amp": amp, "processes": d.world, "checkpoint": ckpt["path"],
                       "checkpoint_kind": ckpt["kind"], "checkpoint_sha256": sha,
                       "source_ann_sha256": ckpt["source"]["sha256"] if ckpt["kind"] == "snn" else sha,
                       "train_config": cfg, "conversion": conv})
        if d.is_main:
            click.echo(f"{row['network']} {row['activation']} {row['L_or_bits']} → {row['neuron']} ({row['v_init']}): "
                       + ", ".join(f"{k} {row[k]}" for k in row if k.startswith("T=")) + f"; ANN {row['ANN']}")
    if not d.is_main:
        return  # only rank 0 writes the tables
    paths = write_tables(rows, curves, prov, out, T_list, plots=plots)
    import pandas as pd

    click.echo(pd.DataFrame(rows).to_markdown(index=False))
    click.echo("wrote " + ", ".join(paths))


from ann2snn.cli.ablate import ablate_cmd  # noqa: E402
from ann2snn.cli.entropy import entropy_cmd  # noqa: E402
from ann2snn.cli.train_snn import train_snn_cmd  # noqa: E402

cli.add_command(entropy_cmd)
cli.add_command(train_snn_cmd)
cli.add_command(ablate_cmd)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for any user error, printed on one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=[str(a) for a in argv], prog_name="ann2snn", standalone_mode=False, obj={"argv": argv})
    except click.exceptions.NoArgsIsHelpError as e:  # bare `ann2snn`: show the help
        click.echo(e.ctx.get_help())
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        return 2
    except UserError as e:
        from ann2snn.cli.errors import to_flags  # the library names arguments; the CLI user reads flags

        click.echo(f"Error: {to_flags(str(e))}", err=True)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # a torchrun process group (ann2snn.plumbing.distributed)
            dist.destroy_process_group()
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
