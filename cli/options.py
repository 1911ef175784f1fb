"""Options shared by the commands, and the one way they read a neuron and its bits.

- :func:`compute_options`: ``--threads``, ``--device`` (and ``--amp``) where the command can use
  them, and ``--quiet``, on every command that computes (train-ann, convert, sweep, train-snn,
  eval-snn, ablate, entropy).
- :func:`data_options`: ``--data-dir``, ``--download``, ``--skip-md5``.
- :func:`run_folder_options`: ``--resume`` and ``--checkpoint-minutes``, on the commands that train
  into a run folder (train-ann, train-snn).
- :func:`folder_options`: ``--image-size``, ``--resize``, ``--mean``, ``--std``, ``--workers``,
  ``--skip-bad-images`` for image folders (``--dataset imagefolder``).
- :func:`old_bits_options`, :func:`neuron_from_flags`, :func:`bits_from_flags`: a neuron is written
  ``NAME[:M+N]`` (``--neuron mbif:1+3``, ``--neuron mblif:2+1``) and bits alone ``M+N``
  (``train-ann --bits 1+3``). The earlier ``--int-bits M --frac-bits N`` still work, hidden from the
  help, with a one-line deprecation note on stderr; giving both spellings is an error. Either
  spelling gives the same settings (tests/test_cli_grammar.py).
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from ann2snn.ann.quantizer import check_bits
from ann2snn.cli import types as T


def _set_threads(ctx, _param, value):
    """--threads: set torch's CPU threads now (before any work); say so when busy cores lower the count."""
    if ctx.resilient_parsing:  # shell completion: no measuring, no messages, no torch
        return None
    import os

    import torch

    from ann2snn.plumbing.device import choose_threads, usable_cores

    n = choose_threads(value)
    if value == "auto" and not os.environ.get("OMP_NUM_THREADS") and n < usable_cores():
        click.echo(f"note: other processes keep {usable_cores() - n} of {usable_cores()} CPU cores busy: running with "
                   f"{n} thread{'s' if n > 1 else ''} (--threads N to choose)", err=True)
    torch.set_num_threads(n)
    return n


def compute_options(device: bool = True, amp: bool = True, torchrun: bool = True, amp_help: str | None = None):
    """Decorate a command that computes with ``--threads``, ``--device`` (if ``device``), ``--amp``
    (if ``amp``) and ``--quiet``.

    ``--threads`` is eager and not passed to the command (its callback sets torch's threads).
    ``--device`` / ``--amp`` are passed as ``device`` / ``amp``; ``--quiet`` as ``quiet``. A command
    whose library code runs on the CPU only leaves ``device`` out rather than offer a flag that does
    nothing. ``torchrun``: the command runs under torchrun (one GPU per process).
    """
    def deco(f):
        f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
        if amp:
            f = click.option("--amp", type=click.Choice(["none", "bf16"]), default="none", show_default=True,
                             help=amp_help or "bf16: convolutions and linear layers in bfloat16 autocast; "
                                              "quantizers and membrane potentials stay float32.")(f)
        if device:
            f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True,
                             help="auto = cuda if available, else cpu." + (
                                 " Under torchrun each process takes cuda:LOCAL_RANK." if torchrun else ""))(f)
        f = click.option("--threads", default="auto", show_default=True, expose_value=False, is_eager=True,
                         callback=_set_threads, metavar="auto|N",
                         help="CPU threads for torch. auto: the cores that other processes do not keep busy "
                              "(measured for 0.25 s at start), at least 1; busy cores otherwise slow torch down "
                              "many times. With OMP_NUM_THREADS set, auto keeps that.")(f)
        return f
    return deco


def data_options(folders: str = "cifar-10-batches-py/ or cifar-100-python/"):
    """Decorate a command with ``--data-dir`` (a folder holding ``folders``), ``--download``, ``--skip-md5``."""
    from ann2snn.plumbing.data import default_data_dir

    def deco(f):
        f = click.option("--skip-md5", is_flag=True,
                         help="Load dataset files that fail torchvision's MD5 check (logged). Needed for re-packed "
                              "copies.")(f)
        f = click.option("--download", is_flag=True, help="Fetch the dataset with torchvision if missing (online).")(f)
        f = click.option("--data-dir", type=T.DATA_DIR, default=default_data_dir,
                         show_default="$ANN2SNN_DATA or ./data", help=f"Folder holding {folders}.")(f)
        return f
    return deco


#: the image-folder options as library keys (read by ann2snn.plumbing.folder)
FOLDER_KEYS = ("image_size", "resize", "mean", "std", "workers", "skip_bad_images")


def folder_options(train: bool = False):
    """Decorate a command that reads image folders with ``--image-size``, ``--resize``, ``--mean``,
    ``--std``, ``--workers``, ``--skip-bad-images`` (``train``: the defaults as train-ann says them).

    For train-ann they set the run (stored in its checkpoint); for convert, sweep and entropy the
    input settings default to the checkpoint's and, when given, override them. None of them applies to
    CIFAR but ``--workers`` / ``--skip-bad-images``, which CIFAR ignores (its images are in memory).
    """
    default = "224" if train else "the checkpoint's"

    def deco(f):
        f = click.option("--skip-bad-images", is_flag=True,
                         help="Image folders: skip files that cannot be decoded (counted and listed in a note) "
                              "instead of stopping at the first, named.")(f)
        f = click.option("--workers", type=T.WORKERS, default="auto", show_default=True,
                         help="Image folders: processes that decode and transform images. auto: the usable "
                              "cores (shared among torchrun's processes), at most 8; 0: in this process.")(f)
        f = click.option("--std", type=T.Triple(positive=True), default=None,
                         show_default="ImageNet's 0.229,0.224,0.225" if train else default,
                         help="Image folders: per-channel std of the normalisation, R,G,B.")(f)
        f = click.option("--mean", type=T.Triple(), default=None,
                         show_default="ImageNet's 0.485,0.456,0.406" if train else default,
                         help="Image folders: per-channel mean of the normalisation, R,G,B (of pixels / 255).")(f)
        f = click.option("--resize", type=T.RESIZE, default=None,
                         show_default="--image-size / 0.875, 256 for 224" if train else default,
                         help="Image folders: evaluation resizes the shorter side to this, then crops the "
                              "centre --image-size square; 0: crop without resizing.")(f)
        f = click.option("--image-size", type=T.IMAGE_SIZE, default=None, show_default=default,
                         help="Image folders: side of the square crop the network sees (training: "
                              "RandomResizedCrop + flip; evaluation: center crop).")(f)
        return f
    return deco


def pop_folder_options(options: dict) -> dict:
    """Take the image-folder options out of a command's ``options`` (as library keys; None: not given)."""
    folder = {k: options.pop(k) for k in FOLDER_KEYS if k in options}
    folder["skip_bad_images"] = folder.get("skip_bad_images") or None
    return folder


def run_folder_options(f):
    """Decorate a training command with ``--resume`` and ``--checkpoint-minutes`` (passed as ``resume`` and
    ``checkpoint_minutes``; see :func:`ann2snn.ann.train.fit`)."""
    f = click.option("--checkpoint-minutes", type=T.floats(0, 1e6), default=30.0, show_default=True,
                     help="Also checkpoint every this many minutes within an epoch (0: at epoch ends only). Ctrl-C "
                          "or SIGTERM checkpoints after the current step and exits (130 / 143); --resume continues "
                          "from there exactly.")(f)
    f = click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")(f)
    return f


def old_bits_options(f):
    """The deprecated ``--int-bits M`` / ``--frac-bits N`` (hidden from the help; read by
    :func:`neuron_from_flags` / :func:`bits_from_flags`)."""
    f = click.option("--frac-bits", type=int, default=None, hidden=True,
                     help="Deprecated: write the bits as M+N (--neuron NAME:M+N, or --bits M+N).")(f)
    f = click.option("--int-bits", type=int, default=None, hidden=True,
                     help="Deprecated: write the bits as M+N (--neuron NAME:M+N, or --bits M+N).")(f)
    return f


def _given(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


def _old_flags(int_bits, frac_bits) -> list[str]:
    return [flag for flag, v in (("--int-bits", int_bits), ("--frac-bits", frac_bits)) if v is not None]


def _deprecated(old: list[str], write: str) -> None:
    verb = "is" if len(old) == 1 else "are"
    click.echo(f"note: {'/'.join(old)} {verb} deprecated; write {write}", err=True)


def neuron_from_flags(ctx, neuron: str, int_bits: int | None, frac_bits: int | None, names: tuple[str, str],
                      default_bits: tuple[int, int] | None = None) -> tuple[dict, set[str]]:
    """``--neuron NAME[:M+N]`` (and the deprecated ``--int-bits`` / ``--frac-bits``) → the settings.

    Returns:
        ``({"neuron": NAME, "int_bits": M or None, "frac_bits": N or None}, explicit)``: the keyword
        arguments the library took from the earlier flags, None where no bits were given; ``explicit``
        names the settings given on the command line (``neuron``, and ``int_bits`` / ``frac_bits``
        when bits were given either way). ``default_bits`` (the multi-bit neuron's bits when none are
        given, if they do not depend on anything else) completes the spelling the note suggests.

    Raises:
        click.UsageError: bits given both ways; the message says which to keep.
    """
    from ann2snn.ann.spec import format_neuron, parse_neuron

    spec = parse_neuron(neuron, names, "neuron")
    explicit = {"neuron"} if _given(ctx, "neuron") else set()
    old = _old_flags(int_bits, frac_bits)
    if old and "int_bits" in spec:
        raise click.UsageError(f"--neuron {neuron} and {'/'.join(old)} both give the bits: keep --neuron {neuron} "
                               f"and drop {'/'.join(old)} (deprecated)")
    if "int_bits" in spec:
        return spec, explicit | {"int_bits", "frac_bits"}
    settings = {**spec, "int_bits": int_bits, "frac_bits": frac_bits}
    if old:
        binary, multi = names
        if spec["neuron"] != binary or (int_bits in (None, 1) and frac_bits in (None, 0)):
            fill = default_bits or ("M", "N")
            m = fill[0] if int_bits is None else int_bits
            n = fill[1] if frac_bits is None else frac_bits
            if isinstance(m, int) and isinstance(n, int):
                check_bits(m, n)  # a mistake is one Error line, not a note and then the error
            _deprecated(old, f"--neuron {format_neuron(spec['neuron'], m, n)}")
        # (a binary neuron with other bits: the library's error says what to do)
        explicit |= {k for k, v in (("int_bits", int_bits), ("frac_bits", frac_bits)) if v is not None}
    return settings, explicit


def bits_from_flags(ctx, bits: tuple[int, int], int_bits: int | None, frac_bits: int | None) -> tuple[dict, set[str]]:
    """``--bits M+N`` (and the deprecated ``--int-bits`` / ``--frac-bits``) → ``{"int_bits", "frac_bits"}``.

    Returns:
        ``(settings, explicit)``: ``explicit`` holds ``int_bits`` / ``frac_bits`` when given on the
        command line, either way.

    Raises:
        click.UsageError: bits given both ways; the message says which to keep.
    """
    old = _old_flags(int_bits, frac_bits)
    if not old:
        return {"int_bits": bits[0], "frac_bits": bits[1]}, ({"int_bits", "frac_bits"} if _given(ctx, "bits")
                                                             else set())
    if _given(ctx, "bits"):
        text = f"{bits[0]}+{bits[1]}"
        raise click.UsageError(f"--bits {text} and {'/'.join(old)} both give the bits: keep --bits {text} and drop "
                               f"{'/'.join(old)} (deprecated)")
    m = bits[0] if int_bits is None else int_bits
    n = bits[1] if frac_bits is None else frac_bits
    check_bits(m, n)  # as --bits would: a mistake is one Error line, not a note and then the error
    _deprecated(old, f"--bits {m}+{n}")
    return {"int_bits": m, "frac_bits": n}, {k for k, v in (("int_bits", int_bits), ("frac_bits", frac_bits))
                                             if v is not None}


def correct_options(multiple: bool = False):
    """``--correct MODE`` (repeatable on sweep), ``--correct-T T_CAL`` and ``--correct-images N``
    (:mod:`ann2snn.conversion.correct`)."""
    from ann2snn.conversion.correct import CORRECT_MODES, DEFAULT_IMAGES, DEFAULT_T_CAL

    def decorate(f):
        f = click.option("--correct-images", type=click.IntRange(min=1), default=DEFAULT_IMAGES, show_default=True,
                         help="Training images that the correction reads (never held-out or test images).")(f)
        f = click.option("--correct-T", "correct_T", type=click.IntRange(min=1), default=DEFAULT_T_CAL,
                         show_default=True,
                         help="Time steps of the correction (T_cal); every simulated T uses this one correction.")(f)
        return click.option(
            "--correct", "corrections" if multiple else "correct", type=click.Choice(CORRECT_MODES),
            multiple=multiple, default=None if multiple else "none", show_default=not multiple,
            help="Correct each neuron after conversion, layer by layer on training images (SNN Calibration, Li et al. "
                 "2021): bias adds a per-channel current, potential a per-channel initial potential, bias+potential "
                 "both" + (" (repeatable; default none)." if multiple else "."))(f)
    return decorate


def maxpool_option(f):
    """``--maxpool refuse|spiking|avg`` (:func:`ann2snn.conversion.maxpool.apply_maxpool`)."""
    return click.option(
        "--maxpool", type=click.Choice(["refuse", "spiking", "avg"]), default="refuse", show_default=True,
        help="What conversion does with a max-pool. refuse: an error naming it. spiking: each max-pool module sends, "
             "every step, the increase of the window maximum of its accumulated input, so its time-sum is the ANN's "
             "max-pool of the summed input (no retraining). avg: swapped for average pooling, which changes the "
             "network: only for a network trained or fine-tuned with the swap.")(f)


def weights_options(f):
    """``--arch torchvision:NAME --weights FILE [--num-classes N] [--dataset D]``: a network trained elsewhere,
    read from its state_dict file instead of a train-ann checkpoint (convert, sweep)."""
    from ann2snn.cli import types as T

    f = click.option("--dataset", type=click.Choice(["cifar10", "cifar100", "imagefolder"]), default="cifar10",
                     show_default=True,
                     help="With --weights: the dataset of the network's images (calibration and test data); "
                          "imagefolder: --data-dir ROOT with train/<class>/ and val/<class>/ images, read at "
                          "--image-size (default 224) after --resize (256) with ImageNet's --mean/--std.")(f)
    f = click.option("--num-classes", type=T.ints(1, 1_000_000), default=None, show_default="the dataset's",
                     help="With --weights: classes of the network's head.")(f)
    f = click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="A state_dict file of the --arch network, trained elsewhere (weights_only=True, strict; "
                          "module./_orig_mod. prefixes stripped). It is a ReLU network: give --threshold "
                          "max|percentile:P, calibrated on the dataset's training images.")(f)
    f = click.option("--arch", type=T.Arch([]), default=None,
                     help="With --weights: torchvision:NAME, the network the file belongs to.")(f)
    return f

