"""PNG figures of a sweep (matplotlib's Agg backend, no pyplot global state), written atomically."""

from __future__ import annotations

from ann2snn.plumbing.checkpoint import atomic_write


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _label(row: dict) -> str:
    corrected = f", {row['correction']}" if row.get("correction", "none") != "none" else ""
    act = row["activation"] if row["L_or_bits"] == "-" else f"{row['activation']} {row['L_or_bits']}"
    return f"{row['network']} {act} → {row['neuron']} ({row['v_init']}{corrected})"


#: the ANN's colour in every plot: black, which no row gets (:func:`row_colors` leaves out the greys)
ANN_COLOR = "black"


def row_colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct RGBA colours for the rows of a sweep, in row order (row i gets colour i in every
    plot of the sweep, whatever the other rows hold). Matplotlib's ``tab10`` for up to 9 rows and
    ``tab20`` for up to 18, each without its greys; more rows take evenly spaced hues of ``hsv``. No
    colour is black or grey, so none can be mistaken for the ANN (:data:`ANN_COLOR`)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgba

    def not_grey(c):
        r, g, b, _ = c
        return max(r, g, b) - min(r, g, b) > 0.05

    for name, size in (("tab10", 10), ("tab20", 20)):
        palette = [c for c in (colormaps[name](i) for i in range(size)) if not_grey(c)]
        if n <= len(palette):
            return [to_rgba(c) for c in palette[:n]]
    return [to_rgba(colormaps["hsv"](i / n)) for i in range(n)]


def _anns(curves: list[dict]) -> dict:
    """Each distinct ANN of the rows (by source checkpoint and accuracy), in row order → its label."""
    anns: dict = {}
    for row in curves:
        key = (row.get("source_ann_sha256"), round(100 * row["ann_acc"], 2))
        kind = row["activation"] if row["L_or_bits"] == "-" else f"{row['activation']} {row['L_or_bits']}"
        anns.setdefault(key, f"ANN {row['network']} {kind}: {key[1]:.2f} %")
    return anns


#: line styles of the ANN reference lines, in order of the ANNs (one sweep rarely has more than one)
ANN_STYLES = ["--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]


def plot_accuracy_vs_T(curves: list[dict], path: str):
    """Accuracy (%) against t = 1..T_max (log x) for each model, each ANN as a black dashed line.

    Row i is drawn in ``row_colors(len(curves))[i]``; the ANN lines are :data:`ANN_COLOR`, one line
    style per distinct ANN (:data:`ANN_STYLES`), labelled with its accuracy. Returns the Figure."""
    fig = _figure(11, 4.5)
    ax = fig.add_subplot(111)
    colors = row_colors(len(curves))
    for row, color in zip(curves, colors):
        t = list(range(1, len(row["curve"]) + 1))
        ax.plot(t, [100 * a for a in row["curve"]], color=color, label=_label(row))
    for j, ((_, acc), label) in enumerate(_anns(curves).items()):
        ax.axhline(acc, color=ANN_COLOR, linestyle=ANN_STYLES[j % len(ANN_STYLES)], linewidth=1.0, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("SNN accuracy against T (black: ANN)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a curve
    _save(fig, path)
    return fig


def _log_ticks(ax, values) -> None:
    """Label a log y axis at 1-2-5 steps inside the data's range (matplotlib labels only powers of ten,
    and often none falls where the curves are)."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    pos = [v for v in values if v > 0]
    if not pos:
        return
    lo, hi = min(pos), max(pos)
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5)]
    inside = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5] or [lo, hi]
    ax.yaxis.set_major_locator(FixedLocator(inside))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_ylim(min(inside + [lo]) / 1.3, max(inside + [hi]) * 1.3)


def plot_firing_rates(curves: list[dict], path: str):
    """Per-layer firing rate (mean k/K per step, log y) for each model with diagnostics, against the
    neuron sites' names (module names, in network order). Row i in ``row_colors(len(curves))[i]``, as
    in the other plots. Returns the Figure."""
    fig = _figure(12, 5.0)
    ax = fig.add_subplot(111)
    site_lists = {tuple(r["site"] for r in row["layers"]) for row in curves if row.get("layers")}
    names = list(next(iter(site_lists))) if len(site_lists) == 1 else []  # names only when all models share them
    rates = [r["firing_rate"] for row in curves for r in row.get("layers") or []]
    positive = [v for v in rates if v > 0]
    floor = min(positive) / 3 if positive else 1e-3  # where a silent site (rate 0) is drawn: a log axis has no 0
    longest = 0
    for row, color in zip(curves, row_colors(len(curves))):
        layers = row.get("layers")
        if not layers:
            continue
        values = [r["firing_rate"] for r in layers]
        longest = max(longest, len(layers))
        ax.plot(range(len(layers)), [v if v > 0 else floor for v in values], marker="o", markersize=3, color=color,
                label=_label(row))
        silent = [i for i, v in enumerate(values) if v <= 0]
        if silent:
            ax.scatter(silent, [floor] * len(silent), s=40, facecolors="none", edgecolors=color, zorder=3)
    if names:
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("neuron site (module name, in network order)")
    else:  # models with different sites: a name would be wrong for some curve
        ax.set_xticks(range(longest))
        ax.set_xticklabels([str(i + 1) for i in range(longest)], fontsize=7)
        ax.set_xlabel("neuron site (index in network order; the models have different sites)")
    ax.set_ylabel("firing rate (mean k/K per step)")
    ax.set_yscale("log")
    _log_ticks(ax, positive + ([floor] if len(positive) < len(rates) else []))
    silent_note = "; ringed at the bottom: silent sites (rate 0)" if len(positive) < len(rates) else ""
    ax.set_title("Firing rate per layer" + silent_note, fontsize=10)
    ax.grid(True, alpha=0.3)
    if rates:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)
    return fig


def plot_energy_vs_accuracy(curves: list[dict], path: str):
    """Estimated energy per image (µJ, bit-plane figure, log x) against accuracy, one point per T.

    Row i in ``row_colors(len(curves))[i]``, as in the other plots. Each distinct ANN is a hollow
    black star (:data:`ANN_COLOR`) drawn under the SNN points, with a dotted black line at its
    accuracy, so it never hides a point. Returns the Figure."""
    fig = _figure(11, 4.5)
    ax = fig.add_subplot(111)
    anns = {}
    for row, color in zip(curves, row_colors(len(curves))):
        ops = row.get("ops")
        if not ops:
            continue
        ax.plot([o["energy_snn_bitplane_uj"] for o in ops], [o["accuracy"] for o in ops], marker="o",
                markersize=3, color=color, label=_label(row), zorder=3)
        for o in (ops[0], ops[-1]) if len(ops) > 1 else ops:  # the ends only: inner labels would overlap
            ax.annotate(f"T={o['T']}", (o["energy_snn_bitplane_uj"], o["accuracy"]), fontsize=6, color=color,
                        xytext=(3, -8), textcoords="offset points")
        key = (row.get("source_ann_sha256"), round(100 * row["ann_acc"], 2))
        anns.setdefault(key, (ops[0]["energy_ann_uj"], 100 * row["ann_acc"], _anns([row])[key]))
    for energy, acc, label in anns.values():
        ax.axhline(acc, color=ANN_COLOR, linestyle=":", linewidth=0.8, zorder=1)
        ax.scatter([energy], [acc], marker="*", s=120, facecolors="none", edgecolors=ANN_COLOR, linewidths=1.2,
                   zorder=2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (µJ; SNN: bit-plane estimate; ☆ and dotted line: the ANN)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy against estimated energy, one point per T (the first and last T labelled)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)
    return fig


def plot_plan_pareto(result: dict, path: str, max_drop: float):
    """Energy per image against held-out accuracy of every configuration a plan measured, its Pareto front,
    the ANN, the allowed drop and the plan (:func:`ann2snn.analysis.plan_search.make_plan`'s result)."""
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    pts = result["points"]
    ax.scatter([p["energy_uj"] for p in pts], [p["accuracy"] for p in pts], s=12, color="0.6",
               label="configurations measured")
    front = result["pareto"]
    ax.plot([p["energy_uj"] for p in front], [p["accuracy"] for p in front], "o-", color="C0", label="Pareto front")
    ax.axhline(result["ann_holdout_accuracy"], color="k", lw=1, label="ANN")
    ax.axhline(result["ann_holdout_accuracy"] - max_drop, color="k", lw=1, ls="--", label=f"ANN − {max_drop} points")
    if result["feasible"]:
        ax.scatter([result["energy_uj"]], [result["holdout_accuracy"]], s=90, marker="*", color="C3", zorder=3,
                   label=f"plan (T = {result['T']})")
    ax.set_xlabel("bit-plane energy per image (µJ)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
