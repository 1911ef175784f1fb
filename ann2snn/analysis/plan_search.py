"""The search behind ``ann2snn plan`` (docs/design.md §3.12; the options, schema and checks of a plan are in
:mod:`ann2snn.conversion.plan`)."""

from __future__ import annotations

import time

import torch
from torch import nn

from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.plan import T_grid, apply_site_bits, pareto_front, site_options
from ann2snn.plumbing.errors import UserError


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


