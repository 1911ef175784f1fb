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
    return f"{row['network']} {row['activation']} {row['L_or_bits']} → {row['neuron']} ({row['v_init']})"


def plot_accuracy_vs_T(curves: list[dict], path: str) -> None:
    """Accuracy (%) against t = 1..T_max (log x) for each model, its ANN as a dashed line."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot(111)
    anns = {}
    for i, row in enumerate(curves):
        color = f"C{i % 10}"
        t = list(range(1, len(row["curve"]) + 1))
        ax.plot(t, [100 * a for a in row["curve"]], color=color, label=_label(row))
        anns.setdefault(round(100 * row["ann_acc"], 2), color)
    for acc, color in anns.items():
        ax.axhline(acc, color=color, linestyle="--", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("SNN accuracy against T (dashed: ANN)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


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


def plot_firing_rates(curves: list[dict], path: str) -> None:
    """Per-layer firing rate (mean k/K per step, log y) for each model with diagnostics, against the
    neuron sites' names (module names, in network order)."""
    fig = _figure(8.5, 5.0)
    ax = fig.add_subplot(111)
    site_lists = {tuple(r["site"] for r in row["layers"]) for row in curves if row.get("layers")}
    names = list(next(iter(site_lists))) if len(site_lists) == 1 else []  # names only when all models share them
    rates = []
    longest = 0
    for i, row in enumerate(curves):
        layers = row.get("layers")
        if not layers:
            continue
        values = [r["firing_rate"] for r in layers]
        rates += values
        longest = max(longest, len(layers))
        ax.plot(range(len(layers)), values, marker="o", markersize=3, color=f"C{i % 10}", label=_label(row))
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
    _log_ticks(ax, rates)
    ax.set_title("Firing rate per layer")
    ax.grid(True, alpha=0.3)
    if rates:
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_energy_vs_accuracy(curves: list[dict], path: str) -> None:
    """Estimated energy per image (µJ, bit-plane figure, log x) against accuracy, one point per T.

    The ANN is a hollow star drawn under the SNN points, with a dotted line at its accuracy, so it
    never hides a point."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot(111)
    for i, row in enumerate(curves):
        ops = row.get("ops")
        if not ops:
            continue
        color = f"C{i % 10}"
        ax.plot([o["energy_snn_bitplane_uj"] for o in ops], [o["accuracy"] for o in ops], marker="o",
                markersize=3, color=color, label=_label(row), zorder=3)
        for o in ops:
            ax.annotate(f"T={o['T']}", (o["energy_snn_bitplane_uj"], o["accuracy"]), fontsize=6,
                        xytext=(3, -8), textcoords="offset points")
        ann_acc = 100 * row["ann_acc"]
        ax.axhline(ann_acc, color=color, linestyle=":", linewidth=0.8, zorder=1)
        ax.scatter([ops[0]["energy_ann_uj"]], [ann_acc], marker="*", s=120, facecolors="none",
                   edgecolors=color, linewidths=1.2, zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (µJ; SNN: bit-plane estimate; ☆ and dotted line: the ANN)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy against estimated energy, one point per T")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
