"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, a batch scheduler's notice).

While :class:`StopSignals` is active, the first SIGINT or SIGTERM only records the signal: the training
loop (:func:`ann2snn.ann.train.fit`) finishes the optimizer step it is in, writes a checkpoint and raises
:class:`TrainingInterrupted`. A second signal raises :class:`KeyboardInterrupt` at once (stop without
waiting for the checkpoint; the previous checkpoint, written atomically, stays as it was).
"""

from __future__ import annotations

import os
import signal
import threading

#: the signals that ask a training run to stop after a checkpoint
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal, after writing a checkpoint it can be resumed from.

    A :class:`KeyboardInterrupt`, so that a generic ``except Exception`` does not swallow the request
    to stop. The command line prints :attr:`message` and exits with ``128 + signum`` (130 for SIGINT,
    143 for SIGTERM).

    Attributes:
        signum: the signal's number.
        epoch: the epoch in progress (1-based), or the last complete one when ``batch == batches``.
        batch: the batches of that epoch done before the checkpoint (``0 < batch <= batches``).
        batches: the batches per epoch.
        checkpoint: the checkpoint file written.
        message: one line saying where the run stopped, the checkpoint, and how to continue.
    """

    def __init__(self, signum: int, epoch: int, batch: int, batches: int, checkpoint: str, epoch_end: bool,
                 advice: str = "continue with the same command and `resume`"):
        self.signum, self.epoch, self.batch, self.batches, self.checkpoint = signum, epoch, batch, batches, checkpoint
        self.epoch_end = epoch_end
        where = f"after epoch {epoch}" if epoch_end else f"at epoch {epoch}, batch {batch}/{batches}"
        self.message = f"interrupted {where}: checkpoint {checkpoint}; {advice}"
        super().__init__(self.message)

    def with_advice(self, advice: str) -> "TrainingInterrupted":
        """The same interruption, its message ending with ``advice`` (how a caller's user continues)."""
        return TrainingInterrupted(self.signum, self.epoch, self.batch, self.batches, self.checkpoint, self.epoch_end,
                                   advice)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal: ``128 + signum``."""
        return 128 + self.signum


class StopSignals:
    """Context manager: SIGINT and SIGTERM set :attr:`signum` instead of stopping the process.

    A second signal raises :class:`KeyboardInterrupt` from the handler. Handlers are installed only in
    the main thread (Python allows no other; elsewhere this does nothing and :attr:`signum` stays None),
    and not for a signal the process ignores (a shell script's background job ignores SIGINT: it keeps
    ignoring it). The previous handlers come back on exit.

    Args:
        announce: write one line on stderr when the first signal arrives (the rank that prints).
    """

    def __init__(self, announce: bool = True):
        self.announce = announce
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self.announce:  # os.write: safe inside a signal handler, unlike print on a buffered stream
            os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step to write a checkpoint "
                        "(send it again to stop at once, without one)\n".encode())

    def __enter__(self) -> "StopSignals":
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                if signal.getsignal(s) is not signal.SIG_IGN:
                    self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
