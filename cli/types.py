"""Checked option types: every value a command takes is tested by its option, before any work.

``ints(lo, hi)`` is ``click.IntRange`` (so a 20-digit number is refused, not an overflow later).
``floats(lo, hi, ...)`` also refuses nan and ±inf, which ``click.FloatRange`` lets through.
:class:`Count` is ``--subset`` / ``--test-subset``: a number N >= 1 or ``all``. :class:`Triple` is
``--mean`` / ``--std`` (``R,G,B``), :class:`AutoCount` ``--workers`` (``auto`` or N). :class:`NeuronSpec`
and :class:`Bits` are the neuron grammar ``NAME[:M+N]`` and bits ``M+N`` (:mod:`ann2snn.ann.spec`).
Paths are ``click.Path`` (:data:`CHECKPOINT`, :data:`OUT_FILE`, :data:`OUT_DIR`, :data:`DATA_DIR`).
All give a one-line error (exit 2): ``Invalid value for '--width': ...``.
"""

from __future__ import annotations

import math

import click

ints = click.IntRange


class Floats(click.ParamType):
    """A finite float in ``[lo, hi]`` (``lo_open`` / ``hi_open`` exclude an end; ``lo=None``: no
    lower end here, because the command checks it with a message of its own)."""

    name = "float"

    def __init__(self, lo: float | None, hi: float, lo_open: bool = False, hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def describe(self) -> str:
        low = "" if self.lo is None else f"{self.lo:g} {'<' if self.lo_open else '<='} "
        return f"{low}x {'<' if self.hi_open else '<='} {self.hi:g}"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            v = value
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a valid float", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value} is not a finite number (need {self.describe()})", param, ctx)
        low_bad = self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo))
        if low_bad or v > self.hi or (self.hi_open and v == self.hi):
            self.fail(f"{value} is not in the range {self.describe()}", param, ctx)
        return v


def floats(lo: float | None, hi: float, lo_open: bool = False, hi_open: bool = False) -> Floats:
    return Floats(lo, hi, lo_open, hi_open)


def counts(hi: int) -> click.IntRange:
    """A whole number from 1 to ``hi`` (batch sizes, epochs, time steps, ...)."""
    return click.IntRange(1, hi)


class Count(click.ParamType):
    """``--subset`` / ``--test-subset``: a number N of images (or samples) from 1 to ``hi``, or ``all``
    (converted to None, which every library function reads as the whole split). 0 is refused: leave
    the option out, or write ``all``."""

    name = "count"

    def __init__(self, noun: str = "images", hi: int = 10_000_000):
        self.noun, self.hi = noun, hi

    def get_metavar(self, param, ctx=None) -> str:  # click < 8.2 passes only ``param``
        return "N|all"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            text = "all" if value is None else str(value)
        else:
            text = str(value).strip()
        if text.lower() == "all":
            return None
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            self.fail(f"must be a number of {self.noun} >= 1 or 'all', got {text}", param, ctx)
        if int(text) > self.hi:
            self.fail(f"{text} is more than {self.hi} {self.noun}", param, ctx)
        return int(text)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem("all")] if "all".startswith(incomplete) else []


class SpecError(click.BadParameter):
    """A bad neuron or bits spec: the library's message (which names the option) as it stands, one line."""

    def format_message(self) -> str:
        return self.message


def _spec_error(e, option: str, value) -> SpecError:
    from ann2snn.cli.errors import to_flags

    message = to_flags(str(e))
    if repr(str(value)) not in message:  # a range error (check_bits) names no option: say which
        message = f"{option} {value}: {message}"
    return SpecError(message)


class NeuronSpec(click.ParamType):
    """A neuron written ``NAME[:M+N]`` (``names`` = (binary, multi-bit), e.g. ``("if", "mbif")``),
    checked with :func:`ann2snn.ann.spec.parse_neuron`; the value stays the text as written (stripped)."""

    name = "neuron"

    def __init__(self, names: tuple[str, str]):
        self.names = names

    def get_metavar(self, param, ctx=None) -> str:
        return "NAME[:M+N]"

    def convert(self, value, param, ctx):
        from ann2snn.ann.spec import parse_neuron
        from ann2snn.plumbing.errors import UserError

        try:
            parse_neuron(value, self.names, "neuron")
        except UserError as e:
            raise _spec_error(e, "--neuron", value) from None
        return str(value).strip()

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in self.names if n.startswith(incomplete)]


class Bits(click.ParamType):
    """Bits written ``M+N`` (``1+3``) → ``(M, N)``, checked with :func:`ann2snn.ann.spec.parse_bits`."""

    name = "bits"

    def get_metavar(self, param, ctx=None) -> str:
        return "M+N"

    def convert(self, value, param, ctx):
        from ann2snn.ann.spec import parse_bits
        from ann2snn.plumbing.errors import UserError

        if isinstance(value, tuple):
            return value
        try:
            return parse_bits(value, "bits")
        except UserError as e:
            raise _spec_error(e, "--bits", value) from None


class BatchOrAuto(click.ParamType):
    """``--batch-size`` of the sweep: a whole number from 1 to ``hi``, or ``auto`` (kept as the text)."""

    name = "batch"

    def __init__(self, hi: int = 1_000_000):
        self.hi = hi

    def get_metavar(self, param, ctx=None) -> str:  # click < 8.2 passes only ``param``
        return "N|auto"

    def convert(self, value, param, ctx):
        text = str(value).strip()
        if text.lower() == "auto":
            return "auto"
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= self.hi:
            self.fail(f"must be a whole number from 1 to {self.hi} or 'auto', got {text}", param, ctx)
        return int(text)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem("auto")] if "auto".startswith(incomplete) else []

class Triple(click.ParamType):
    """Three finite numbers written ``R,G,B`` (``--mean 0.485,0.456,0.406``) → a tuple; ``positive``:
    each > 0 (``--std``)."""

    name = "r,g,b"

    def __init__(self, positive: bool = False):
        self.positive = positive

    def get_metavar(self, param, ctx=None) -> str:
        return "R,G,B"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        items = [v.strip() for v in str(value).split(",")]
        try:
            out = tuple(float(v) for v in items)
        except ValueError:
            out = ()
        if len(out) != 3 or not all(math.isfinite(v) for v in out):
            self.fail(f"must be three numbers R,G,B (e.g. 0.485,0.456,0.406), got {value}", param, ctx)
        if self.positive and not all(v > 0 for v in out):
            self.fail(f"must be three positive numbers R,G,B, got {value}", param, ctx)
        return out


class AutoCount(click.ParamType):
    """``auto`` or a whole number from ``lo`` to ``hi`` (``--workers``) → ``"auto"`` or the int."""

    name = "auto|N"

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        text = str(value).strip()
        if text.lower() == "auto":
            return "auto"
        if not (text.isascii() and text.isdigit()) or not self.lo <= int(text) <= self.hi:
            self.fail(f"must be auto or a whole number from {self.lo} to {self.hi}, got {value}", param, ctx)
        return int(text)


#: upper bounds shared by several commands (each far above any real run, below what overflows)
EPOCHS = counts(100_000)
BATCH = counts(1_000_000)
IMAGES = Count("images")
SAMPLES = Count("samples")  # train-snn: CIFAR images or DVS recordings
SEED = ints(0, 2**32 - 1)
LR = floats(0, 1e6, lo_open=True)
MOMENTUM = floats(0, 1, hi_open=True)
WEIGHT_DECAY = floats(0, 1e3)
WIDTH = floats(0, 64, lo_open=True)
CALIB = counts(100_000)
IMAGE_SIZE = counts(65_536)  # pixels
RESIZE = ints(0, 65_536)  # pixels; 0: no resize
NUM_CLASSES = counts(1_000_000)
WORKERS = AutoCount(0, 1024)
STEPS = counts(10_000)  # time steps T of a training run

#: an existing checkpoint file or run folder
CHECKPOINT = click.Path(exists=True)
#: a file to write (an existing folder there is refused)
OUT_FILE = click.Path(dir_okay=False)
#: a folder to write into (an existing file there is refused)
OUT_DIR = click.Path(file_okay=False)
#: the data folder (it may not exist yet: the data check says how to get the data)
DATA_DIR = click.Path(file_okay=False)


class Arch(click.ParamType):
    """An architecture: one of this project's ``presets``, or ``torchvision:<name>`` (any torchvision
    classification network; an unknown name is refused with the nearest names)."""

    name = "arch"

    def __init__(self, presets):
        self.presets = list(presets)

    def get_metavar(self, param, ctx=None):
        return "[" + "|".join(self.presets + ["torchvision:NAME"]) + "]"

    def convert(self, value, param, ctx):
        value = str(value)
        if value in self.presets:
            return value
        if value.startswith("torchvision:"):
            from ann2snn.models.torchvision_arch import build_torchvision_check

            try:
                build_torchvision_check(value)
            except ValueError as e:
                self.fail(str(e), param, ctx)
            return value
        if not self.presets:  # --arch beside --weights: a torchvision network only
            self.fail(f"{value!r}: --weights files are read into torchvision networks, so write torchvision:NAME "
                      f"(e.g. torchvision:{value}); this project's own networks load from their train-ann "
                      "checkpoint (--checkpoint)", param, ctx)
        self.fail(f"{value!r} is not one of {', '.join(map(repr, self.presets))} or torchvision:NAME", param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(p) for p in self.presets + ["torchvision:"] if p.startswith(incomplete)]

