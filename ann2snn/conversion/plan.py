"""A per-site bit plan: the cheapest SNN (bit-plane energy per image) within a given accuracy drop.

``make_plan`` searches each site's bits together with T (docs/design.md §3.12):

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
import time

import torch
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


class _Measure:
    """Simulations of one SNN on fixed images: accuracy, bit-plane energy and the KL to the ANN."""

    def __init__(self, snn: nn.Module, batches: list, input_shape: tuple, prepare=None):
        from ann2snn.conversion.simulate import set_mode

        self.snn, self.batches, self.input_shape, self.prepare = snn, batches, input_shape, prepare
        self.simulations = 0
        self.image_steps = 0
        self.counter = None  # one OpCounter (its fan-out maps probed once), reset before each run
        set_mode(snn, "ann")
        with torch.inference_mode():
            self.ann_logits = [snn(x) for x, _ in batches]
        self.ann_correct = sum(int((a.argmax(1) == y).sum()) for a, (_, y) in zip(self.ann_logits, batches))
        self.total = sum(len(y) for _, y in batches)
        set_mode(snn, "snn")

    def run(self, config: dict, T: int) -> dict:
        from ann2snn.analysis.opcount import OpCounter
        from ann2snn.conversion.simulate import simulate_snn

        apply_site_bits(self.snn, config)
        if self.prepare is not None:
            self.prepare(self.snn)
        sums: list = []

        def keep(_m, _i, out):
            sums.append(out.detach().double())

        if self.counter is None:
            self.counter = OpCounter(self.snn, input_shape=(1, *self.input_shape))
        counter = self.counter
        counter.reset()
        handle = self.snn.register_forward_hook(keep)
        try:
            correct, total = simulate_snn(self.snn, self.batches, T, observers=[counter])
        finally:
            handle.remove()
        self.simulations += 1
        self.image_steps += total * T
        kl = 0.0
        for b, ann in enumerate(self.ann_logits):
            avg = torch.stack(sums[b * T:(b + 1) * T]).sum(0) / T
            p = torch.log_softmax(ann.double(), 1)
            kl += float((p.exp() * (p - torch.log_softmax(avg, 1))).sum())
        return {"accuracy": int(correct[T - 1]) / total, "energy_uj": counter.totals(T)["energy_snn_bitplane_uj"],
                "kl": kl / total}


def make_plan(snn: nn.Module, holdout: list, max_drop: float, T_max: int, sens_images: int = 256,
              input_shape: tuple = (3, 32, 32), prepare=None, progress=None) -> dict:
    """Search per-site bits and T for the least bit-plane energy within ``max_drop`` points of the ANN.

    Args:
        snn: a converted network (thresholds set; its bits are changed in place while searching).
        holdout: batches ``(x [B, 3, H, W], y [B])`` of the held-out split (never test images).
        max_drop: the largest accuracy drop allowed, in percentage points (>= 0), against the ANN on the
            same held-out images.
        T_max: the largest T searched (T in :func:`T_grid`).
        sens_images: held-out images for the sensitivity simulations.
        prepare: called with the SNN after each change of bits (e.g. a correction); None for none.
        progress: called with one line per finished T.

    Returns:
        ``{"T", "site_bits", "holdout_accuracy", "ann_holdout_accuracy", "energy_uj", "feasible",
        "points": [{"T", "site_bits", "accuracy", "energy_uj", "kind"}], "pareto": [...], "simulations",
        "image_steps", "seconds"}``; accuracies in percent.

    Raises:
        UserError: ``max_drop`` below 0, ``T_max`` below 1, or an empty held-out split.
    """
    if not (isinstance(max_drop, (int, float)) and max_drop >= 0):
        raise UserError(f"`max_drop` must be a number of points >= 0, got {max_drop!r}")
    if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
        raise UserError(f"`T_max` must be a whole number >= 1, got {T_max!r}")
    holdout = list(holdout)
    if not holdout:
        raise UserError("the held-out split has no images")
    t0 = time.time()
    sites = [n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)]
    options = site_options()
    richest = {s: dict(options[0]) for s in sites}
    sens_batches, have = [], 0
    for x, y in holdout:
        if have >= sens_images:
            break
        sens_batches.append((x[: sens_images - have], y[: sens_images - have]))
        have += len(sens_batches[-1][1])
    full = _Measure(snn, holdout, input_shape, prepare)
    sens = _Measure(snn, sens_batches, input_shape, prepare)
    ann_acc = 100 * full.ann_correct / full.total
    points = []
    best = None
    for T in T_grid(T_max):
        def check(config, kind):
            r = full.run(config, T)
            point = {"T": T, "site_bits": {s: dict(o) for s, o in config.items()}, "accuracy": 100 * r["accuracy"],
                     "energy_uj": r["energy_uj"], "kind": kind}
            points.append(point)
            return point

        top = check(richest, "richest")
        if ann_acc - top["accuracy"] > max_drop:
            if progress:
                progress(f"T={T}: even the richest bits are {ann_acc - top['accuracy']:.2f} points below the ANN")
            continue
        base = sens.run(richest, T)
        moves = []
        for s in sites:
            for o in options[1:]:
                r = sens.run({**richest, s: o}, T)
                saved = base["energy_uj"] - r["energy_uj"]
                if saved > 0:
                    moves.append(((r["kl"] - base["kl"]) / saved, s, o, saved))
        moves.sort(key=lambda m: m[0])
        chain, config, saved_at = [dict(richest)], dict(richest), {s: 0.0 for s in sites}
        for _, s, o, saved in moves:
            if saved > saved_at[s]:
                config = {**config, s: o}
                saved_at[s] = saved
                chain.append(config)
        lo, hi, good = 0, len(chain) - 1, top
        while lo < hi:  # the cheapest configuration along the chain within max_drop
            mid = (lo + hi + 1) // 2
            p = check(chain[mid], "searched")
            if ann_acc - p["accuracy"] <= max_drop:
                lo, good = mid, p
            else:
                hi = mid - 1
        if best is None or good["energy_uj"] < best["energy_uj"]:
            best = good
        if progress:
            progress(f"T={T}: {len(chain) - 1} moves, the cheapest within {max_drop} points: {good['accuracy']:.2f} % "
                     f"at {good['energy_uj']:.4g} µJ per image")
    apply_site_bits(snn, richest)  # the network as it came: every site at the richest bits (prepared again)
    if prepare is not None:
        prepare(snn)
    for measure in (full, sens):
        if measure.counter is not None:
            measure.counter.remove()
    pareto = pareto_front(points)
    return {"T": best["T"] if best else None, "site_bits": best["site_bits"] if best else None,
            "holdout_accuracy": best["accuracy"] if best else None, "ann_holdout_accuracy": ann_acc,
            "energy_uj": best["energy_uj"] if best else None, "feasible": best is not None, "points": points,
            "pareto": pareto, "simulations": full.simulations + sens.simulations,
            "image_steps": full.image_steps + sens.image_steps, "seconds": round(time.time() - t0, 1),
            "holdout_images": full.total, "sens_images": sens.total}


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
    if not isinstance(plan, dict) or plan.get("schema") != PLAN_SCHEMA:
        got = plan.get("schema") if isinstance(plan, dict) else None
        raise UserError(f"the plan file has schema version {got!r}; this ann2snn reads version {PLAN_SCHEMA}: make it "
                        "again with `ann2snn plan`")
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
