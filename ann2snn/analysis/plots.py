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


def plot_firing_rates(curves: list[dict], path: str) -> None:
    """Per-layer firing rate (mean k/K per step) for each model with diagnostics."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot(111)
    for i, row in enumerate(curves):
        layers = row.get("layers")
        if not layers:
            continue
        ax.plot(range(1, len(layers) + 1), [r["firing_rate"] for r in layers], marker="o", markersize=3,
                color=f"C{i % 10}", label=_label(row))
    ax.set_xlabel("neuron site (in module order)")
    ax.set_ylabel("firing rate (mean k/K per step)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_energy_vs_accuracy(curves: list[dict], path: str) -> None:
    """Estimated energy per image (µJ, bit-plane figure, log x) against accuracy, one point per T."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot(111)
    for i, row in enumerate(curves):
        ops = row.get("ops")
        if not ops:
            continue
        color = f"C{i % 10}"
        ax.plot([o["energy_snn_bitplane_uj"] for o in ops], [o["accuracy"] for o in ops], marker="o",
                markersize=3, color=color, label=_label(row))
        for o in ops:
            ax.annotate(f"T={o['T']}", (o["energy_snn_bitplane_uj"], o["accuracy"]), fontsize=6)
        ax.scatter([ops[0]["energy_ann_uj"]], [100 * row["ann_acc"]], marker="*", s=80, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (µJ; SNN bit-plane estimate, ★ = ANN)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
