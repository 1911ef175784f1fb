"""``@claims_out(kind)``: run a command while holding its ``--out`` (see :mod:`ann2snn.plumbing.outputs`)."""

from __future__ import annotations

import functools


def claims_out(kind: str = "dir"):
    """Decorate a click command body (below the click decorators) that takes an ``out`` argument."""
    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            out = kwargs.get("out")
            if out is None:
                return f(*args, **kwargs)
            from ann2snn.plumbing.outputs import claim_output

            with claim_output(out, kind):
                return f(*args, **kwargs)
        return wrapper
    return deco
