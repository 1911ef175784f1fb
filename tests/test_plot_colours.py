"""The sweep's plots: every row has its own colour, the same in every plot, and the ANN is black, a colour
no row gets (read from the matplotlib artists, not from pixels)."""

import pytest


def _plot_curves(n):
    """``n`` rows of one QCFS ANN (30 %), the last one from another ANN (40 %), with ops and layers."""
    curves = []
    for i in range(n):
        c = {"dataset": "cifar10", "network": "vgg16", "activation": "qcfs", "L_or_bits": "L=4", "v_init": "half-lsb",
             "neuron": "IF" if i == 0 else f"MBIF {i}", "curve": [0.1 + 0.01 * i, 0.2, 0.3, 0.35],
             "ann_acc": 0.3 if i < n - 1 else 0.4}
        c["source_ann_sha256"] = "a" * 64 if i < n - 1 else "b" * 64  # the last row: another ANN
        c["ops"] = [{"T": t, "accuracy": 10.0 * t, "energy_snn_bitplane_uj": float(t + i), "energy_ann_uj": 50.0}
                    for t in (1, 2, 4)]
        c["layers"] = [{"site": f"s{j}", "firing_rate": 0.1 * (j + 1)} for j in range(3)]
        curves.append(c)
    return curves


@pytest.mark.parametrize("n", [2, 12])
def test_the_ann_has_its_own_colour_in_every_plot(tmp_path, n):
    from matplotlib.colors import to_rgba

    from ann2snn.analysis.plots import plot_accuracy_vs_T, plot_energy_vs_accuracy, plot_firing_rates, row_colors

    curves = _plot_curves(n)
    fig = plot_accuracy_vs_T(curves, str(tmp_path / "acc.png"))
    lines = fig.axes[0].get_lines()
    rows = [ln for ln in lines if not ln.get_label().startswith("ANN")]
    anns = [ln for ln in lines if ln.get_label().startswith("ANN")]
    row_rgba = [to_rgba(ln.get_color()) for ln in rows]
    assert len(rows) == n and len(set(row_rgba)) == n  # one colour per row, none repeated
    assert row_rgba == row_colors(n)  # row i gets colour i
    assert [ln.get_label() for ln in anns] == ["ANN vgg16 qcfs L=4: 30.00 %", "ANN vgg16 qcfs L=4: 40.00 %"]
    for ln in anns:
        assert to_rgba(ln.get_color()) == to_rgba("black") and to_rgba("black") not in row_rgba
    assert [ln.get_linestyle() for ln in anns] == ["--", ":"]
    # the same colours in the other two plots, and a black ANN star
    fig = plot_firing_rates(curves, str(tmp_path / "rates.png"))
    assert [to_rgba(ln.get_color()) for ln in fig.axes[0].get_lines()] == row_rgba
    fig = plot_energy_vs_accuracy(curves, str(tmp_path / "energy.png"))
    ax = fig.axes[0]
    energy_rows = [ln for ln in ax.get_lines() if ln.get_label() in [r.get_label() for r in rows]]
    assert [to_rgba(ln.get_color()) for ln in energy_rows] == row_rgba
    stars = ax.collections
    assert len(stars) == 2
    for star in stars:
        edge = [tuple(c) for c in star.get_edgecolor()]
        assert edge == [to_rgba("black")] and edge[0] not in row_rgba
    dotted = [ln for ln in ax.get_lines() if ln not in energy_rows]
    assert [to_rgba(ln.get_color()) for ln in dotted] == [to_rgba("black")] * 2


def test_row_colours_are_never_grey():
    from ann2snn.analysis.plots import row_colors

    for n in (1, 9, 10, 18, 19, 40):
        colours = row_colors(n)
        assert len(set(colours)) == n
        assert all(max(c[:3]) - min(c[:3]) > 0.05 for c in colours)  # not black, white or grey
