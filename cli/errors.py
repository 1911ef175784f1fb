"""Library error messages as the command line shows them: backticked argument names become flags.

The library names an argument in a :class:`~ann2snn.plumbing.errors.UserError` message by its Python
name in single backticks (``"`threshold`"``, ``"`int_bits`"``; the rule is in
:mod:`ann2snn.plumbing.errors`). :func:`to_flags` writes each as the option that sets it: ``--`` and
the name with ``_`` as ``-`` (``int_bits`` → ``--int-bits``, ``T`` → ``--T``), or the flag in
:data:`FLAGS` where the Python name differs from the flag (the sweep's repeatable options, whose
Python names are plural; ``out_dir``). Nothing else in a message changes.

tests/test_error_flags.py checks that every name the library puts in backticks becomes an option
that some command really has.
"""

from __future__ import annotations

import functools

from ann2snn.plumbing.errors import ARGUMENT, UserError

#: Python names whose flag is not ``--`` + the name with ``_`` as ``-``
FLAGS = {
    "checkpoints": "--checkpoint",
    "neurons": "--neuron",
    "v_inits": "--v-init",
    "caps": "--cap",
    "thresholds": "--threshold",
    "corrections": "--correct",
    "out_dir": "--out",
}


def flag(name: str) -> str:
    """The command-line option that sets the argument ``name`` (``int_bits`` → ``--int-bits``)."""
    return FLAGS.get(name) or "--" + name.replace("_", "-")


def to_flags(message: str) -> str:
    """``message`` with every backticked argument name written as its flag; the rest unchanged."""
    return ARGUMENT.sub(lambda m: flag(m.group(1)), message)


def flag_errors(f):
    """Decorate a command body: a :class:`UserError` it raises leaves with its message through :func:`to_flags`.

    ``ann2snn.cli.main.main`` translates every error it prints; this covers a command run on its own
    (``click.testing.CliRunner().invoke(command, ...)``), which never passes through ``main``.
    """
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except UserError as e:
            e.args = (to_flags(str(e)),)
            raise
    return wrapper
