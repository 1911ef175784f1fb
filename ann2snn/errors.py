"""The one exception type for user mistakes.

A :class:`UserError` is raised for anything the user can fix (a bad flag, missing data, a checkpoint
of the wrong kind). The command-line entry point prints its message on one line and exits with
status 2, with no traceback. Library callers can catch it like any other exception.
"""


class UserError(Exception):
    """A mistake the user can fix; the message says what to do (one line)."""
