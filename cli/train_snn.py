"""``ann2snn train-snn``: directly train a spiking ResNet with LIF / MBLIF neurons (the seed's Tables 2–4).

Register it on the main group with ``cli.add_command(train_snn_cmd)``. Its options mirror
``train-ann``'s training flags; its defaults are the seed's settings (docs/design.md §3.9). Every bad setting
raises :class:`ann2snn.plumbing.errors.UserError` (one line, exit status 2 through ``ann2snn.cli.main``).
"""

from __future__ import annotations

import click
from ann2snn.cli import types as T
from ann2snn.cli.claims import claims_out
from click.core import ParameterSource

from ann2snn.cli.errors import flag_errors
from ann2snn.cli.options import (compute_options, data_options, neuron_from_flags, old_bits_options,
                               run_folder_options)

#: where train-snn and eval-snn read their data
FOLDERS = "cifar-10-batches-py/, cifar-100-python/ or DvsGesture/"
AMP_HELP = "bf16: convolutions in bfloat16 autocast; membrane potentials stay float32."


#: train-snn's options that an ablation shares across all its rows (everything but the neuron,
#: its bits, --ic, --seed, the run-folder flags and compute_options: --threads, --device, --amp, --quiet)
SHARED_OPTIONS = [
    click.option("--arch", type=click.Choice(["resnet20", "resnet18"]), default="resnet20", show_default=True,
                  help="Spiking CIFAR ResNet (the seed's Table 3 uses ResNet-20)."),
    click.option("--dataset", type=click.Choice(["cifar10", "cifar100", "dvs-gesture"]), default="cifar10",
                  show_default=True,
                  help="dvs-gesture: IBM's DvsGesture release (AEDAT 3.1) in <data-dir>/DvsGesture, as T event frames "
                       "(the seed's settings: --T 40 --v-th 1 --weight-decay 1e-3 --batch-size 32)."),
    data_options(FOLDERS),
    click.option("--dvs-size", type=T.counts(4096), default=128, show_default=True,
                  help="dvs-gesture frame side: 128, or a divisor of it (pixels pooled 128/size per side)."),
    click.option("--reset", type=click.Choice(["hard", "subtract"]), default="hard", show_default=True,
                  help="hard: potential to 0 after any spike (the seed's). subtract: minus k·V_th·2^-n."),
    click.option("--T", "T", type=T.STEPS, default=4, show_default=True, help="Time steps (accuracy is reported at every t <= T)."),
    click.option("--tau", type=T.floats(1, 1e6), default=4.0, show_default=True, help="Membrane time constant; leak 1 - 1/tau."),
    click.option("--v-th", type=T.floats(0, 1e6, lo_open=True), default=0.6, show_default=True, help="Threshold V_th."),
    click.option("--surrogate-alpha", type=T.floats(0, 1e6, lo_open=True), default=2.0, show_default=True,
                  help="Sharpness of the per-level arctan surrogate (half width 2/(pi·alpha) quanta)."),
    click.option("--detach-reset/--no-detach-reset", default=True, show_default=True,
                  help="Keep the reset out of the gradient."),
    click.option("--epochs", type=T.EPOCHS, default=100, show_default=True),
    click.option("--batch-size", type=T.BATCH, default=64, show_default=True),
    click.option("--lr", type=T.LR, default=0.1, show_default=True),
    click.option("--momentum", type=T.MOMENTUM, default=0.9, show_default=True),
    click.option("--weight-decay", type=T.WEIGHT_DECAY, default=1e-4, show_default=True),
    click.option("--width", type=T.WIDTH, default=None,
                  help="Channel width multiplier [default: 4 for resnet20 (64/128/256 channels), 1 for resnet18]."),
    click.option("--subset", type=T.SAMPLES, default=None, show_default="all",
                  help="Train on a fixed, seeded, class-balanced subset of N images (or recordings)."),
    click.option("--test-subset", type=T.SAMPLES, default=None, show_default="all",
                  help="Evaluate on a fixed class-balanced subset of N test images (or recordings)."),
    click.option("--augment", type=click.Choice(["crop-flip", "autoaugment", "none"]), default=None,
                  help="[default: crop-flip for CIFAR, none for dvs-gesture (the only choice there)]"),
    click.option("--fuse", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
                  help="Run each neuron's T steps as one compiled kernel forward and one backward (torch.compile; "
                       "the same spikes and gradients, with the reset detached). About 10 s to compile on first use. "
                       "auto: on for the CPU from 1,000 optimizer steps. The run stores the resolved choice and "
                       "a resumed run keeps it."),
]


def shared_options(f):
    """Decorate a click command with :data:`SHARED_OPTIONS` (in their listed order)."""
    for option in reversed(SHARED_OPTIONS):
        f = option(f)
    return f


@click.command("train-snn", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--neuron", type=T.NeuronSpec(("lif", "mblif")), default="mblif", show_default=True,
              help="lif (1+0, binary spikes), mblif (2+1, the seed's best) or mblif:M+N (spikes of "
                   "counts·2^-N with M integer and N fractional bits, e.g. mblif:2+1).")
@old_bits_options
@click.option("--ic/--no-ic", default=True, show_default=True,
              help="The seed's interlaminar connection (1x1 conv + BN + ECA) in every residual block.")
@shared_options
@click.option("--seed", type=T.SEED, default=0, show_default=True)
@compute_options(amp_help=AMP_HELP)
@click.option("--out", type=T.OUT_DIR, required=True,
              help="Run folder (checkpoint.pt, metrics.csv, accuracy.csv/.md/.json).")
@run_folder_options
@click.pass_context
@claims_out("dir")
def train_snn_cmd(ctx, out, resume, checkpoint_minutes, quiet, neuron, int_bits, frac_bits, **options):
    """Directly train a spiking ResNet (LIF / MBLIF, optional interlaminar connection); checkpoint every epoch."""
    from ann2snn.pipelines.train_snn import DEFAULT_MBLIF_BITS, resolve_config, train_snn

    settings, neuron_explicit = neuron_from_flags(ctx, neuron, int_bits, frac_bits, ("lif", "mblif"),
                                                  DEFAULT_MBLIF_BITS)
    explicit = {k for k in options if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE} | neuron_explicit
    options = {**settings, **options}
    if not resume:
        resolve_config(options)  # refuse bad flags before touching --out or the data
    path = train_snn(options, out, resume=resume, explicit=explicit, progress=not quiet,
                     checkpoint_minutes=checkpoint_minutes)
    click.echo(f"SNN checkpoint: {path}")


@click.command("eval-snn", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", type=T.CHECKPOINT, required=True, help="A train-snn run folder or its checkpoint.pt.")
@click.option("--T", "T_text", default="1,2,4", show_default=True,
              help="Time steps to report (one run of the largest gives every t up to it).")
@data_options(FOLDERS)
@click.option("--test-subset", type=T.SAMPLES, default=None, show_default="all",
              help="Evaluate on a fixed class-balanced subset of N test images (or recordings).")
@compute_options(amp=False, torchrun=False)
@click.option("--out", type=T.OUT_DIR, default=None, help="Folder for accuracy.csv/.md/.json (optional).")
@click.pass_context
@flag_errors
def eval_snn_cmd(ctx, checkpoint, T_text, out, quiet, **options):
    """Evaluate a directly trained SNN at other numbers of time steps T (CIFAR networks take any T)."""
    import sys

    from ann2snn.pipelines.train_snn import evaluate_direct_snn

    result = evaluate_direct_snn(checkpoint, T_text, out=out, progress=not quiet,
                                 argv=(ctx.obj or {}).get("argv", sys.argv[1:]), **options)
    row = result["row"]
    click.echo(f"{row['neuron']} {row['network']} (trained at T = {row['trained_T']}): "
               + ", ".join(f"{k} {row[k]}" for k in row if k.startswith("T=")))
