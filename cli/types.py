"""Checked numeric option types: every number a command takes has a range, tested before any work.

``ints(lo, hi)`` is ``click.IntRange`` (so a 20-digit number is refused, not an overflow later).
``floats(lo, hi, ...)`` also refuses nan and ±inf, which ``click.FloatRange`` lets through.
Both give click's one-line error (exit 2): ``Invalid value for '--width': ...``.
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


def upto(hi: int) -> click.IntRange:
    """A whole number <= ``hi``; the lower end is checked by the command, with its own message."""
    return click.IntRange(max=hi)


#: upper bounds shared by several commands (each far above any real run, below what overflows)
EPOCHS = upto(100_000)
BATCH = upto(1_000_000)
IMAGES = upto(10_000_000)
SEED = ints(0, 2**32 - 1)
LR = floats(None, 1e6)
WEIGHT_DECAY = floats(None, 1e3)
WIDTH = floats(None, 64)
CALIB = upto(100_000)
