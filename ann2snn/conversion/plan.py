"""A per-site bit plan: the cheapest SNN (bit-plane energy per image) within a given accuracy drop.

This module holds what a plan *is* (its options, its file's schema and checks, applying its bits); the
search, which measures energy with the operation counter, is :func:`ann2snn.analysis.plan_search.make_plan`.

The search looks at each site's bits together with T (docs/design.md §3.12):

* **options per site**: m in {1, 2}, n in {0, …, 4}, and the cap ``full`` or ``theta``. Two options that
  behave the same (the same quantum q = θ·2^-n and the same largest count K) are one: 14 in all.
* **T**: 1, 2, 4, … up to ``T_max`` (and ``T_max`` itself).
* **accuracy** is measured on the held-out split of the ANN's training run (``holdout`` in its
  config), never on the test set; the drop is the ANN's accuracy on those images minus the SNN's at T.
* **energy** is the bit-plane estimate of :mod:`ann2snn.analysis.opcount` (one accumulate per set bit
  of a spike's count), measured in the same simulations.

The search, at each T, is **greedy by measured sensitivity**:

1. every site starts at the richest option (2+4, K = 63); if that misses the drop, T is infeasible;
2. sensitivity: for every site and every other option, one simulation of ``sens_images`` held-out
   images with only that site changed measures the damage (the KL divergence of the SNN's
   time-averaged logits from the ANN's) and the energy saved;
3. the moves are sorted by damage per µJ saved and applied in that order (a site moves only to an
   option cheaper than its current one), giving a chain of ever cheaper configurations;
4. a binary search along the chain finds the cheapest configuration whose drop on the held-out split
   is within ``max_drop`` (about log2 of the chain's length simulations of the held-out images).

Cost per T: ``1 + S·13`` simulations of ``sens_images`` images (S sites) and about ``2 + log2(S·13)``
of the held-out images. The plan is the feasible configuration of least energy over all T; every
configuration measured on the held-out split is a point of the Pareto front (energy against accuracy).
"""

from __future__ import annotations

import math

from torch import nn

from ann2snn.conversion.neurons import MultiBitIF, resolve_cap
from ann2snn.plumbing.errors import UserError

#: the plan file's schema version (a plan of another version is refused)
PLAN_SCHEMA = 1


def site_options() -> list[dict]:
    """The distinct per-site options, richest first (most bits per step, then the larger K, then the finer
    quantum): ``{"int_bits", "frac_bits", "cap"}`` (``cap`` None for the full count ``2^(m+n) − 1``, else K).

    A neuron's behaviour depends on its quantum q = θ·2^-n and its largest count K only, so options with
    the same (n, K) are one, written with the fewest integer bits: for n = 0, 1+0 (IF) and 2+0 (K = 3);
    for n = 1…4, 1+n and 2+n at their full count and 1+n capped at θ (K = 2^n; 2+n capped at θ is the
    same neuron). 14 options.
    """
    out = [{"int_bits": 1, "frac_bits": 0, "cap": None}, {"int_bits": 2, "frac_bits": 0, "cap": None}]
    for n in range(1, 5):
        out += [{"int_bits": 1, "frac_bits": n, "cap": None}, {"int_bits": 2, "frac_bits": n, "cap": None},
                {"int_bits": 1, "frac_bits": n, "cap": 1 << n}]
    out.sort(key=lambda o: (-_k(o).bit_length(), -_k(o), -o["frac_bits"]))
    return out


def bits_summary(site_bits: dict[str, dict]) -> str:
    """Each setting of a plan's ``site_bits`` and its number of sites, most common first, e.g.
    ``'1+3 ×9, 1+2 K=4 ×6'``."""
    from collections import Counter

    kinds = Counter(f"{b['int_bits']}+{b['frac_bits']}" + (f" K={b['cap']}" if b.get("cap") else "")
                    for b in site_bits.values())
    return ", ".join(f"{k} ×{c}" for k, c in kinds.most_common())


def check_plan_schema(plan, source: str = "the plan file") -> dict:
    """``plan`` if it is a dict of this :data:`PLAN_SCHEMA` version; UserError otherwise."""
    got = plan.get("schema") if isinstance(plan, dict) else None
    if got != PLAN_SCHEMA:
        raise UserError(f"{source} has plan schema version {got!r}; this ann2snn reads version {PLAN_SCHEMA}: make "
                        "it again with `ann2snn plan`")
    return plan


def _k(option: dict) -> int:
    return option["cap"] or resolve_cap("full", option["int_bits"], option["frac_bits"])


def T_grid(T_max: int) -> list[int]:
    """1, 2, 4, … up to ``T_max``, and ``T_max`` itself."""
    grid = [1 << i for i in range(int(math.log2(T_max)) + 1)]
    return sorted(set(grid + [T_max]))


def apply_site_bits(snn: nn.Module, config: dict[str, dict]) -> None:
    """Set every neuron named in ``config`` to its bits in place (θ unchanged; state reset)."""
    for name, m in snn.named_modules():
        if isinstance(m, MultiBitIF) and name in config:
            o = config[name]
            m.int_bits, m.frac_bits = o["int_bits"], o["frac_bits"]
            m.cap = resolve_cap(o.get("cap"), o["int_bits"], o["frac_bits"])
            m.reset()


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other point beats on both energy (lower) and accuracy (higher), by energy."""
    front = []
    for p in sorted(points, key=lambda p: (p["energy_uj"], -p["accuracy"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


def check_plan(plan: dict, sites: list[str], ann_sha256: str | None = None) -> dict:
    """Raise UserError unless ``plan`` (a plan file's contents) has this schema version and names exactly
    ``sites`` (and, where both are known, was made for the ANN file of ``ann_sha256``); returns it."""
    check_plan_schema(plan)
    if not plan.get("site_bits"):
        raise UserError("the plan found no configuration within its `max_drop`: it has no bits to apply")
    planned = set(plan["site_bits"])
    if planned != set(sites):
        extra, missing = sorted(planned - set(sites)), sorted(set(sites) - planned)
        raise UserError("the plan was made for another network: "
                        + (f"sites it names that this network lacks: {', '.join(extra[:5])}" if extra else "")
                        + ("; " if extra and missing else "")
                        + (f"sites of this network it lacks: {', '.join(missing[:5])}" if missing else ""))
    for site, bits in plan["site_bits"].items():
        try:
            if not isinstance(bits, dict) or any(isinstance(bits[k], bool) or not isinstance(bits[k], int)
                                                 for k in ("int_bits", "frac_bits")):
                raise UserError("not whole numbers")
            from ann2snn.ann.quantizer import check_bits

            check_bits(bits["int_bits"], bits["frac_bits"])
            resolve_cap(bits.get("cap"), bits["int_bits"], bits["frac_bits"])
        except (KeyError, UserError):
            raise UserError(f"the plan's bits for site {site} are not int_bits, frac_bits and cap within range "
                            f"({bits!r}): make the plan again with `ann2snn plan`") from None
    want = (plan.get("source") or {}).get("sha256")
    if ann_sha256 and not want:
        raise UserError("the plan names no ANN file (no source SHA-256), so it cannot be checked against this one: "
                        "make it again with `ann2snn plan`")
    if ann_sha256 and want != ann_sha256:
        raise UserError("the plan was made for another ANN file (its SHA-256 differs): make it again for this one")
    return plan
