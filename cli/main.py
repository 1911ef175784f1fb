"""The ``ann2snn`` command line: train-ann, convert, sweep.

Every user mistake ends with one line on stderr, ``Error: ...``, and exit status 2 (no traceback).
A training run stopped by SIGINT / SIGTERM after its checkpoint says where it stopped and how to
continue, on one line, with exit status 130 / 143; Ctrl-C elsewhere gives ``Aborted.`` and 130.
"""

from __future__ import annotations

import sys

import click
from ann2snn.cli import types as T
from ann2snn.cli.claims import claims_out
from ann2snn.cli.errors import flag_errors
from ann2snn.cli.options import (bits_from_flags, compute_options, correct_options, data_options, folder_options,
                                 maxpool_option,
                                 neuron_from_flags, old_bits_options, pop_folder_options, run_folder_options,
                                 weights_options)
from click.core import ParameterSource

from ann2snn.plumbing.errors import UserError

ARCH_CHOICES = ["vgg16", "resnet18", "resnet20"]
DATASET_CHOICES = ["cifar10", "cifar100", "imagefolder"]
#: what --data-dir holds, for the commands that read CIFAR or image folders
DATA_FOLDERS = ("cifar-10-batches-py/ or cifar-100-python/, or for an image-folder model ROOT's train/<class>/ and "
                "val/<class>/ images")


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ann2snn")
def cli():
    """ANN→SNN conversion with multi-bit spikes: train a QCFS ANN, convert it to IF / MBIF
    neurons, and sweep accuracy over time steps T in one simulation."""


@cli.command("train-ann")
@click.option("--arch", type=T.Arch(ARCH_CHOICES), default="vgg16", show_default=True,
              help="This project's vgg16 / resnet18 / resnet20 (CIFAR-sized), or torchvision:NAME: any torchvision "
                   "classification network as torchvision builds it (its max-pool too; see --maxpool on convert).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A state_dict file of the --arch torchvision:NAME network trained elsewhere (loaded with "
                   "weights_only=True, strictly; module./_orig_mod. prefixes stripped): QCFS / matched fine-tuning "
                   "starts from it, every ReLU call site becoming the activation, λ from data (--lambda-init auto).")
@click.option("--num-classes", type=T.ints(1, 1_000_000), default=None, show_default="the dataset's",
              help="Classes of the network's head (torchvision:NAME).")
@click.option("--maxpool", type=click.Choice(["keep", "avg"]), default="keep", show_default=True,
              help="torchvision:NAME: keep its max-pool (convert it later with --maxpool spiking), or avg: swap "
                   "every max-pool for the average pool of the same geometry before training, as QCFS does.")
@click.option("--dataset", type=click.Choice(DATASET_CHOICES), default="cifar10", show_default=True,
              help="imagefolder: your own images in ImageNet's layout, --data-dir ROOT holding "
                   "ROOT/train/<class>/*.JPEG and ROOT/val/<class>/*.JPEG (any image format).")
@data_options("cifar-10-batches-py/ or cifar-100-python/, or with --dataset imagefolder train/<class>/ and "
              "val/<class>/ images")
@folder_options(train=True)
@click.option("--activation", type=click.Choice(["qcfs", "matched", "relu"]), default="qcfs", show_default=True,
              help="qcfs: QCFS with --levels L. matched: one MBIF step of --bits M+N. relu: a plain "
                   "ReLU net (convert it with --threshold max|percentile:P).")
@click.option("--levels", "-L", type=T.counts(65536), default=4, show_default=True, help="QCFS quantization levels L.")
@click.option("--bits", type=T.Bits(), default="1+3", show_default=True,
              help="M+N: M integer and N fractional bits of the matched activation (--activation matched).")
@old_bits_options
@click.option("--lambda-init", default="auto", show_default=True,
              help="Initial λ of every site: 'auto' (99.9th percentile of its pre-activation on 4 "
                   "training batches) or a positive number (QCFS's choice: 8.0).")
@click.option("--epochs", type=T.EPOCHS, default=300, show_default=True)
@click.option("--batch-size", type=T.BATCH, default=128, show_default=True)
@click.option("--lr", type=T.LR, default=0.1, show_default=True)
@click.option("--momentum", type=T.MOMENTUM, default=0.9, show_default=True)
@click.option("--weight-decay", type=T.WEIGHT_DECAY, default=5e-4, show_default=True)
@click.option("--width", type=T.WIDTH, default=1.0, show_default=True, help="Channel width multiplier.")
@click.option("--seed", type=T.SEED, default=0, show_default=True)
@click.option("--subset", type=T.IMAGES, default=None, show_default="all",
              help="Train on a fixed, seeded, class-balanced subset of N images.")
@click.option("--test-subset", type=T.IMAGES, default=None, show_default="all",
              help="Evaluate on a fixed class-balanced subset of N test images.")
@click.option("--holdout", type=T.ints(1, 10_000_000), default=None,
              help="Keep N training images apart, never trained on (a class-balanced draw, the same for every run "
                   "and seed; recorded in the checkpoint): a held-out split for checks after conversion.")
@click.option("--augment", type=click.Choice(["crop-flip", "autoaugment", "none"]), default="crop-flip",
              show_default=True, help="autoaugment = AutoAugment (CIFAR-10 policy) + crop-flip + Cutout(16), as QCFS.")
@click.option("--fuse", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Run each QCFS/matched activation as one compiled kernel forward and one backward "
                   "(torch.compile): same outputs and input gradients, λ's gradient summed in another order. "
                   "About 20 s to compile on first use, then cached. auto: on for the CPU from 1,000 optimizer steps. "
                   "A resumed run keeps its choice.")
@compute_options()
@click.option("--out", type=T.OUT_DIR, required=True, help="Run folder (checkpoint.pt, metrics.csv).")
@run_folder_options
@click.pass_context
@claims_out("dir")
def train_ann_cmd(ctx, out, resume, checkpoint_minutes, quiet, lambda_init, bits, int_bits, frac_bits, **options):
    """Train a QCFS (or matched) ANN on CIFAR or an image folder; checkpoint every epoch."""
    from ann2snn.pipelines.train_ann import train_ann

    for key in ("mean", "std"):  # stored as lists in the checkpoint's config
        if options.get(key) is not None:
            options[key] = list(options[key])
    bit_settings, bits_explicit = bits_from_flags(ctx, bits, int_bits, frac_bits)  # both spellings checked there
    config = dict(options, **bit_settings, lambda_init=parse_lambda_init(lambda_init))
    explicit = {k for k in list(options) + ["lambda_init"]
                if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE} | bits_explicit
    path = train_ann(config, out, resume=resume, explicit=explicit, progress=not quiet,
                     checkpoint_minutes=checkpoint_minutes)
    click.echo(f"ANN checkpoint: {path}")


@cli.command("convert")
@click.option("--checkpoint", type=T.CHECKPOINT, default=None,
              help="ANN checkpoint from train-ann (file or run folder); or give --arch and --weights.")
@weights_options
@click.option("--neuron", type=T.NeuronSpec(("if", "mbif")), default="mbif", show_default=True,
              help="if (1+0, binary spikes), mbif (1+3, or a matched ANN's own bits) or mbif:M+N "
                   "(M integer, N fractional bits, e.g. mbif:1+3).")
@old_bits_options
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
@maxpool_option
@correct_options()
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), default=None,
              help="A plan from `ann2snn plan`: its per-site bits, with the threshold, v_init, max-pool mode and "
                   "correction it was made with.")
@data_options(DATA_FOLDERS)
@folder_options()
@compute_options(device=False, amp=False)
@click.option("--out", type=T.OUT_FILE, required=True, help="SNN checkpoint file to write.")
@click.pass_context
@claims_out("file")
def convert_cmd(ctx, checkpoint, arch, weights, num_classes, dataset, neuron, int_bits, frac_bits, v_init, cap,
                threshold, calib_batches, fold_bn, maxpool, correct, correct_T, correct_images, plan_file, data_dir,
                download, skip_md5, quiet, out, **folder):
    """Convert an ANN checkpoint: every activation site becomes its own IF / MBIF neuron (calibration, with
    --threshold max|percentile:P, runs on the CPU)."""
    import os

    from ann2snn.plumbing.checkpoint import check_output_file
    from ann2snn.conversion.snn import convert_checkpoint

    plan = None
    if plan_file is not None:
        from ann2snn.pipelines.plan import load_plan

        fixed = [f"--{k.replace('_', '-')}" for k in ("neuron", "int_bits", "frac_bits", "cap", "threshold",
                                                       "calib_batches", "v_init", "maxpool", "correct", "correct_T",
                                                       "correct_images", "fold_bn")
                 if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
        if fixed:
            raise UserError(f"--plan sets the bits and the conversion settings it was made with: drop "
                            f"{', '.join(fixed)}")
        from ann2snn.conversion.plan import check_plan_schema

        plan = check_plan_schema(load_plan(plan_file), plan_file)  # before its settings are read
        conv = plan.get("conversion") or {}
        threshold, calib_batches, v_init = conv.get("threshold", threshold), conv.get("calib_batches", 10), \
            conv.get("v_init", v_init)
        maxpool, correct = conv.get("maxpool", maxpool), conv.get("correct", "none")
        correct_T, correct_images = conv.get("correct_T", correct_T), conv.get("correct_images", correct_images)
        neuron = "mbif:2+4"  # the richest site option; each site then takes its own
    settings, _ = neuron_from_flags(ctx, neuron, int_bits, frac_bits, ("if", "mbif"))
    if (checkpoint is None) == (weights is None):
        raise UserError("give --checkpoint (a train-ann checkpoint), or --arch torchvision:NAME with --weights FILE "
                        "(a network trained elsewhere), not both")
    if weights is None and (arch or num_classes or ctx.get_parameter_source("dataset") == ParameterSource.COMMANDLINE):
        raise UserError("--arch, --num-classes and --dataset describe a --weights file: give --weights too")
    check_output_file(out)
    src = weights if checkpoint is None else (
        os.path.join(checkpoint, "checkpoint.pt") if os.path.isdir(checkpoint) else checkpoint)
    if os.path.exists(out) and os.path.exists(src) and os.path.samefile(src, out):
        raise UserError(f"--out {out} is the ANN's own file; write the SNN to another file")
    from ann2snn.conversion.calibrate import parse_threshold

    calibration = None
    if parse_threshold(threshold)[0] != "lambda" or fold_bn:
        calibration = {"threshold": threshold, "calib_batches": calib_batches, "fold_bn": fold_bn,
                       "data_dir": data_dir, "download": download, "skip_md5": skip_md5, "progress": not quiet,
                       "folder": pop_folder_options(folder)}
    if weights is not None:
        if arch is None:
            raise UserError("--weights needs --arch torchvision:NAME: the network the file's state_dict belongs to")
        from ann2snn.ann.build import weights_checkpoint

        from ann2snn.plumbing.folder import folder_extra_config

        source = weights_checkpoint(arch, weights, dataset, num_classes,
                                    folder_extra_config(dataset, data_dir, calibration["folder"] if calibration
                                                        else pop_folder_options(dict(folder))))
    else:
        source = checkpoint
    correction = None
    given = [f"--{k.replace('_', '-')}" for k in ("correct_T", "correct_images")
             if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
    if given and correct == "none" and plan is None:
        raise UserError(f"{' and '.join(given)} set up a correction: give --correct too (bias, potential or "
                        "bias+potential)")
    if correct != "none":
        correction = {"mode": correct, "T_cal": correct_T, "images": correct_images, "data_dir": data_dir,
                      "download": download, "skip_md5": skip_md5,
                      "folder": calibration["folder"] if calibration else pop_folder_options(dict(folder))}
    ckpt = convert_checkpoint(source, {**settings, "v_init": v_init, "cap": None if plan else cap,
                                       "maxpool": maxpool}, out, calibration, correction, plan)
    c = ckpt["conversion"]
    n_sites = sum(1 for k in ckpt["model_state"] if k.endswith(".theta"))
    cap_text = f", K={c['cap']}" if c.get("cap") else ""
    corrected = ""
    if (c.get("correct") or {}).get("mode", "none") != "none":
        sites = c["correct"]["sites"]
        corrected = (f", corrected: {c['correct']['mode']} at T_cal = {c['correct']['T_cal']} on "
                     f"{c['correct']['images']} training images; mean per-channel error "
                     f"{sum(s['error_before'] for s in sites) / len(sites):.4g} → "
                     f"{sum(s['error_after'] for s in sites) / len(sites):.4g}")
    if c.get("site_bits"):
        from ann2snn.pipelines.sweep import describe_converted_neuron

        kind = f"{describe_converted_neuron(c)}; planned for T = {c['plan']['T']}"
    else:
        kind = f"{c['neuron'].upper()} {c['int_bits']}+{c['frac_bits']}{cap_text}"
    click.echo(f"SNN checkpoint: {out} ({n_sites} neurons, {kind}, v_init {c['v_init']}{corrected})")
    from ann2snn.conversion.snn import exact_neuron_hint

    hint = exact_neuron_hint(ckpt["config"])
    if hint and calibration is None and correction is None and plan is None:
        click.echo(f"note: this QCFS(L={ckpt['config'].get('levels', 4)}) ANN is reproduced exactly at T = 1 by "
                   f"{hint}")


@cli.command("plan")
@click.option("--checkpoint", type=T.CHECKPOINT, required=True,
              help="ANN checkpoint from train-ann, trained with --holdout N (the plan reads its held-out images).")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Accuracy drop allowed against the ANN on the held-out images, in points.")
@click.option("--T-max", "T_max", type=click.IntRange(min=1), default=8, show_default=True,
              help="Largest T searched (1, 2, 4, ... and T-max itself).")
@click.option("--threshold", default=None,
              help="θ per site: lambda, max or percentile:P (default: lambda for QCFS/matched, percentile:99.9 for "
                   "ReLU networks).")
@click.option("--calib-batches", type=T.CALIB, default=10, show_default=True,
              help="Training batches (of 128) for --threshold max|percentile:P.")
@click.option("--v-init", type=click.Choice(["half-lsb", "half-threshold", "zero"]), default="half-lsb",
              show_default=True, help="Initial membrane potential: q/2, θ/2 or 0.")
@maxpool_option
@correct_options()
@click.option("--holdout-images", type=T.IMAGES, default=None, show_default="all",
              help="A seeded class-balanced part of the held-out split to measure accuracy on.")
@click.option("--sens-images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Held-out images for each sensitivity simulation.")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Also write <stem>_pareto.png.")
@data_options(("cifar10", "cifar100"))
@compute_options(device=False, amp=False)
@click.option("--out", type=T.OUT_FILE, required=True, help="Plan file to write (JSON); the Pareto front goes "
              "beside it as <stem>_pareto.csv and .png.")
@click.pass_context
@claims_out("file")
def plan_cmd(ctx, checkpoint, max_drop, T_max, threshold, calib_batches, v_init, maxpool, correct, correct_T,
             correct_images, holdout_images, sens_images, plots, data_dir, download, skip_md5, quiet, out):
    """Search per-site bits and T for the cheapest SNN (bit-plane energy) within --max-drop points of the ANN,
    on the ANN's held-out images (never the test set); apply it with `convert --plan`."""
    from ann2snn.pipelines.plan import run_plan
    from ann2snn.conversion.plan import bits_summary

    if correct == "none" and any(ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE
                                 for k in ("correct_T", "correct_images")):
        raise UserError("--correct-T and --correct-images set up a correction: give --correct too")
    plan = run_plan(checkpoint, max_drop, T_max, out, threshold=threshold, calib_batches=calib_batches, v_init=v_init,
                    correct=correct, correct_T=correct_T, correct_images=correct_images,
                    holdout_images=holdout_images, sens_images=sens_images, maxpool=maxpool, data_dir=data_dir,
                    download=download, skip_md5=skip_md5, plots=plots, echo=None if quiet else click.echo,
                    argv=(ctx.obj or {}).get("argv", sys.argv[1:]))
    click.echo(f"ANN on {plan['holdout_images']} held-out images: {plan['ann_holdout_accuracy']:.2f} %")
    if plan["feasible"]:
        click.echo(f"plan: T = {plan['T']}, {bits_summary(plan['site_bits'])}: {plan['holdout_accuracy']:.2f} % at "
                   f"{plan['energy_uj']:.4g} µJ per image (bit-plane)")
    else:
        click.echo(f"no configuration up to T = {T_max} is within {max_drop} points of the ANN")
    click.echo("Pareto front (held-out accuracy, energy):")
    for p in plan["pareto"]:
        click.echo(f"  T = {p['T']:>3}  {p['accuracy']:6.2f} %  {p['energy_uj']:.4g} µJ  {bits_summary(p['site_bits'])}")
    click.echo(f"search: {plan['simulations']} simulations, {plan['image_steps']:,} image-steps, {plan['seconds']} s; "
               f"wrote {out}")


@cli.command("export-nir")
@click.option("--checkpoint", type=T.CHECKPOINT, required=True, help="SNN checkpoint from `ann2snn convert`.")
@click.option("--out", type=T.OUT_FILE, required=True, help="NIR file to write (HDF5, e.g. model.nir).")
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
@click.option("--checkpoint", "checkpoints", type=T.CHECKPOINT, multiple=True,
              help="SNN checkpoint (repeat for several); or an ANN checkpoint together with --neuron. A network "
                   "trained elsewhere: --arch and --weights instead (or beside).")
@weights_options
@click.option("--T", "T_text", default="4,16,64,128", show_default=True, help="Time steps to report.")
@click.option("--neuron", "neurons", type=T.NeuronSpec(("if", "mbif")), multiple=True,
              help="For ANN checkpoints: convert in memory to NAME[:M+N], i.e. if, mbif or mbif:M+N (repeatable).")
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
@data_options(DATA_FOLDERS)
@folder_options()
@click.option("--batch-size", type=T.BatchOrAuto(), default=500, show_default=True,
              help="Test images per batch. The sweep first checks that the batch fits in the memory available "
                   "and refuses one that does not, naming the largest that does; auto takes that one (at most "
                   "500).")
@click.option("--subset", type=T.IMAGES, default=None, show_default="all",
              help="Evaluate on a fixed class-balanced subset of N test images.")
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
                   "across batch sizes, --time-chunk, CPU kernel sets and thread counts (docs/reproducibility.md); float32 is "
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
@maxpool_option
@correct_options(multiple=True)
@compute_options()
@click.option("--out", type=T.OUT_DIR, required=True, help="Folder for sweep.csv, sweep.md, sweep.json.")
@click.pass_context
@flag_errors
def sweep_cmd(ctx, checkpoints, T_text, neurons, v_inits, caps, thresholds, time_chunk_text, out, quiet, **options):
    """Accuracy at every T in one simulation per model, beside the ANN's; writes the table."""
    from ann2snn.pipelines.sweep import run_sweep

    folder = pop_folder_options(options)
    for key in ("correct_T", "correct_images"):  # only a correction reads them: None unless given
        if ctx.get_parameter_source(key) != ParameterSource.COMMANDLINE:
            options[key] = None
    result = run_sweep(checkpoints, T_text, neurons=neurons, v_inits=v_inits, caps=caps, thresholds=thresholds,
                       time_chunk=time_chunk_text, out=out, progress=not quiet, echo=click.echo,
                       argv=(ctx.obj or {}).get("argv", sys.argv[1:]), folder=folder, **options)
    if result["rows"]:  # rank 0 (the only process outside torchrun)
        from ann2snn.pipelines.sweep import shown_table

        click.echo(shown_table(result["rows"]).to_markdown(index=False))
        click.echo("wrote " + ", ".join(result["paths"]))


from ann2snn.cli.ablate import ablate_cmd  # noqa: E402
from ann2snn.cli.entropy import entropy_cmd  # noqa: E402
from ann2snn.cli.train_snn import eval_snn_cmd, train_snn_cmd  # noqa: E402

cli.add_command(entropy_cmd)
cli.add_command(train_snn_cmd)
cli.add_command(eval_snn_cmd)
cli.add_command(ablate_cmd)


def _first_clause(text: str | None) -> str:
    """The help text's first sentence, lower-cased and without its full stop ("Time steps to report." →
    "time steps to report")."""
    first = (text or "").split(". ")[0].split(" (")[0].strip().rstrip(".")
    return first[:1].lower() + first[1:]


def no_such_option_message(error: click.NoSuchOption) -> str:
    """Click's message (with its "Did you mean" for a near miss in the same command), plus the other
    commands that take the option, e.g. ``No such option: --T. `ann2snn sweep` takes --T (time steps
    to report).`` on one line. Hidden (deprecated) options are not suggested."""
    name = error.option_name
    here = error.ctx.command if error.ctx is not None else None
    having = []
    for command_name, command in cli.commands.items():
        if command is here:
            continue
        for p in command.params:
            if isinstance(p, click.Option) and not p.hidden and name in (*p.opts, *p.secondary_opts):
                having.append((command_name, p))
                break
    message = error.format_message()
    if not having:
        return message
    message = message if message.endswith((".", "?", ")")) else message + "."
    if len(having) == 1:
        command_name, p = having[0]
        clause = _first_clause(p.help)
        return f"{message} `ann2snn {command_name}` takes {name}" + (f" ({clause})." if clause else ".")
    names = [f"`ann2snn {c}`" for c, _ in having]
    return f"{message} {', '.join(names[:-1])} and {names[-1]} take {name}."


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
    except click.exceptions.Abort as e:
        from ann2snn.plumbing.interrupt import TrainingInterrupted

        if isinstance(e.__cause__, TrainingInterrupted):  # a checkpoint was written: say where, how to go on
            from ann2snn.cli.errors import to_flags

            click.echo(to_flags(e.__cause__.message), err=True)
            return e.__cause__.exit_status
        click.echo("Aborted.", err=True)
        return 130 if isinstance(e.__cause__, KeyboardInterrupt) else 1  # 130: the shell's status for Ctrl-C
    except click.NoSuchOption as e:  # a mistyped option: also name the commands that have it
        click.echo(f"Error: {no_such_option_message(e)}", err=True)
        return 2
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        return 2
    except UserError as e:
        from ann2snn.cli.errors import to_flags  # the library names arguments; the CLI user reads flags

        click.echo(f"Error: {to_flags(str(e))}", err=True)
        return 2
    finally:
        dist = sys.modules.get("torch.distributed")  # never imported by completion, --help or --version
        if dist is not None and dist.is_available() and dist.is_initialized():  # a torchrun process group
            dist.destroy_process_group()
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
