"""``@claims_out(kind)``: run a command while holding its ``--out`` (see :mod:`ann2snn.plumbing.outputs`).

Every command body wears it, so it is also where a :class:`~ann2snn.plumbing.errors.UserError` from
the body gets its argument names written as flags (:func:`ann2snn.cli.errors.flag_errors`), for a
command run through ``ann2snn.cli.main.main`` and for one run on its own alike.
"""

from __future__ import annotations

import functools

from ann2snn.cli.errors import flag_errors


def claims_out(kind: str = "dir"):
    """Decorate a click command body (below the click decorators) that takes an ``out`` argument."""
    def deco(f):
        @functools.wraps(f)
        @flag_errors
        def wrapper(*args, **kwargs):
            out = kwargs.get("out")
            if out is None:
                return f(*args, **kwargs)
            from ann2snn.plumbing.outputs import claim_output

            with claim_output(out, kind):
                return f(*args, **kwargs)
        return wrapper
    return deco
