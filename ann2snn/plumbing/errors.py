"""The one exception type for user mistakes.

A :class:`UserError` is raised for anything the user can fix (a bad flag, missing data, a checkpoint
of the wrong kind). The command-line entry point prints its message on one line and exits with
status 2, with no traceback. Library callers can catch it like any other exception.
"""


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
