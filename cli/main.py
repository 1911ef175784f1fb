"""The ``ann2snn`` command line: train-ann, convert, sweep.

Every user mistake ends with one line on stderr, ``Error: ...``, and exit status 2 (no traceback).
"""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from ann2snn.errors import UserError

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


def data_options(f):
    """--dataset, --data-dir, --download, --skip-md5."""
    from ann2snn.data import default_data_dir

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
@click.option("--activation", type=click.Choice(["qcfs", "matched"]), default="qcfs", show_default=True,
              help="qcfs: QCFS with --levels L. matched: one MBIF(--int-bits, --frac-bits) step.")
@click.option("--levels", "-L", type=int, default=4, show_default=True, help="QCFS quantization levels L.")
@click.option("--int-bits", type=int, default=1, show_default=True, help="m, for --activation matched.")
@click.option("--frac-bits", type=int, default=3, show_default=True, help="n, for --activation matched.")
@click.option("--lambda-init", default="auto", show_default=True,
              help="Initial λ of every site: 'auto' (99.9th percentile of its pre-activation on 4 "
                   "training batches) or a positive number (QCFS's choice: 8.0).")
@click.option("--epochs", type=int, default=300, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--subset", type=int, default=None, help="Train on a fixed, seeded, class-balanced subset of N images.")
@click.option("--test-subset", type=int, default=None, help="Evaluate on a fixed class-balanced subset of N test images.")
@click.option("--augment", type=click.Choice(["crop-flip", "autoaugment", "none"]), default="crop-flip",
              show_default=True, help="autoaugment = AutoAugment (CIFAR-10 policy) + crop-flip + Cutout(16), as QCFS.")
@click.option("--out", required=True, help="Run folder (checkpoint.pt, metrics.csv).")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def train_ann_cmd(ctx, out, resume, quiet, lambda_init, **options):
    """Train a QCFS (or matched) ANN on CIFAR; checkpoint every epoch."""
    from ann2snn.quantizer import check_bits
    from ann2snn.train import train_ann

    config = dict(options, lambda_init=parse_lambda_init(lambda_init))
    if config["activation"] == "matched":
        check_bits(config["int_bits"], config["frac_bits"])
    explicit = {k for k in list(options) + ["lambda_init"]
                if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    path = train_ann(config, out, resume=resume, explicit=explicit, progress=not quiet)
    click.echo(f"ANN checkpoint: {path}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for any user error, printed on one line)."""
    try:
        cli.main(args=argv, prog_name="ann2snn", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        return 2
    except UserError as e:
        click.echo(f"Error: {e}", err=True)
        return 2
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
