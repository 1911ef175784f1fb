"""Progress bars: tqdm on a terminal, a few plain lines in a log.

:func:`progress_bar` is what every loop with a progress display calls. When its stream (stderr by
default) is a terminal it is a ``tqdm`` bar. Otherwise (output piped or redirected to a log file, a
batch job, a CI run) a bar redrawn with ``\\r`` would fill the log with one long line of overwritten
frames, so it is a :class:`LineProgress` instead: plain newline-terminated lines, one when at least
10 % of the total *and* at least 30 s have passed since the last one (whichever of the two is
rarer; with no known total, every 30 s), and a final line when the bar closes. So a log gets at
most about 11 lines per bar, and none more often than every 30 s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

#: a plain line needs at least this much of the total since the previous line
MIN_FRACTION = 0.1
#: ... and at least this many seconds since the previous line
MIN_INTERVAL_S = 30.0


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, and streams without ``isatty``)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """The part of tqdm's interface that ann2snn uses, written as occasional plain lines.

    Each line reads ``desc: n/total unit (p%), s s[, postfix]``. Iterating over it yields the
    iterable's items and counts them; :meth:`update` counts by hand. Lines go to ``file`` (default
    stderr), at most one per ``min_fraction`` of the total and ``min_interval`` seconds (both must
    have passed), and one final line from :meth:`close` (also at the end of an iteration) when
    anything was counted.
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 file=None, min_fraction: float = MIN_FRACTION, min_interval: float = MIN_INTERVAL_S,
                 clock=time.monotonic, initial: int = 0):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:  # an iterable without a length
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.file = file
        self.min_fraction, self.min_interval, self.clock = min_fraction, min_interval, clock
        self.n, self.postfix, self.closed = initial, "", False  # initial: counted before (a resumed epoch)
        self.start = self.last_time = clock()
        self.last_n = initial

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return len(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line if one is due (never the final count: :meth:`close` writes that)."""
        self.n += n
        now = self.clock()
        if now - self.last_time < self.min_interval:
            return
        if self.total is not None and (self.n >= self.total or self.n - self.last_n < self.min_fraction * self.total):
            return
        self._line(now)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def close(self) -> None:
        """Write the final line (once; not when nothing was counted, nor when the last line already said it)."""
        if self.closed:
            return
        self.closed = True
        if self.n > self.last_n:
            self._line(self.clock())

    def _line(self, now: float) -> None:
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        text = f"{self.desc + ': ' if self.desc else ''}{count} {self.unit}{share}, {now - self.start:.0f} s"
        if self.postfix:
            text += f", {self.postfix}"
        print(text, file=self.file if self.file is not None else sys.stderr, flush=True)
        self.last_time, self.last_n = now, self.n


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 disable: bool = False, leave: bool = False, file=None, initial: int = 0):
    """A progress display over ``iterable`` (or counted with ``update``): a tqdm bar when ``file``
    (default stderr) is a terminal, else a :class:`LineProgress` of a few plain lines. The count starts
    at ``initial`` (a resumed epoch's batches done before).

    ``disable=True`` gives a silent tqdm (it only passes the items through). ``leave`` is tqdm's (keep
    the finished bar on screen); the plain lines always end with a final one.
    """
    from tqdm.auto import tqdm

    stream = sys.stderr if file is None else file
    if disable or is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, file=file,
                    initial=initial)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file, initial=initial)
