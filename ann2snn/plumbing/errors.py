"""The one exception type for user mistakes, and how its messages name arguments.

A :class:`UserError` is raised for anything the user can fix (a bad argument, missing data, a checkpoint
of the wrong kind). The command-line entry point prints its message on one line and exits with
status 2, with no traceback. Library callers can catch it like any other exception.

Messages speak to a Python caller, and the command line rewrites them for its own users:

- An argument that a command-line option also sets is named in single backticks with its Python
  name, the function argument or config key: ``f"bad `threshold` {text!r}: ..."``,
  ``"`width` must be > 0"``, ``"drop `int_bits`/`frac_bits`"``. The CLI shows each as its flag
  (``--threshold``, ``--width``, ``--int-bits/--frac-bits``; ``ann2snn.cli.errors.to_flags``), so
  the name must be one that some command's option sets (tests/test_error_flags.py checks this).
- Only such names go in single backticks: :data:`ARGUMENT` (a Python identifier between single
  backticks) is all the translator touches. Values stay outside them (``"`neuron` if"`` reads
  ``--neuron if`` on the command line), and so do arguments that no option sets (``T_list``,
  ``calibration=``), which are named plainly. A command is named plainly (``train-ann``), or as a
  whole command line in backticks, which always holds a space (``"`ann2snn train-snn`"``) and so is
  left as it is.
"""

import re

#: an argument name as messages write it (group 1): a Python identifier between single backticks
ARGUMENT = re.compile(r"(?<!`)`([A-Za-z_][A-Za-z0-9_]*)`(?!`)")


class UserError(ValueError):
    """A mistake the user can fix; the message says what to do (one line).

    A :class:`ValueError`, so library callers that catch bad arguments as ``ValueError`` catch it too.
    """


def positive_number(name: str, value) -> float:
    """``value`` as a finite float > 0; UserError naming ``name`` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (v > 0 and v < float("inf")):
        raise UserError(f"{name} must be a positive number, got {value!r}")
    return v
