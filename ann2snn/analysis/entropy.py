"""Spike entropy of multi-bit spikes: the seed's Table 1 (analytic) and Fig. 7 (measured).

The seed (§3.1, Table 1) argues that multi-bit spikes carry more information than binary ones: for a
membrane potential ``U ~ N(0, 1)`` and threshold ``V_th``, an (m, n) neuron emits the count

    k = clip( floor(U / (V_th · 2^-n)), 0, K ),     K = 2^(m+n) − 1          (docs/design.md §3.1, fire rule)

and the Shannon entropy ``H(k) = −Σ_k P(k) · log2 P(k)`` (in bits) grows with m and n, towards the
differential entropy of the potential itself, ``h(U) = ½·log2(2πe) ≈ 2.0471`` bits.

This module computes these probabilities exactly from the normal CDF (float64, ``math.erfc``), and
says where the result differs from the paper's printed values: at V_th = 0.6 the formulas give
0.8475 / 1.2197 / 1.5381 / 1.9291 bits for 1+0 / 2+0 / 1+1 / 2+1, where Table 1 prints
0.848 / 1.149 / 1.361 / 1.998. Only 1+0 agrees. The toolkit reports the computed values.

The empirical mode (the seed's Fig. 7 experiment) converts a trained ANN to IF / MBIF neurons,
simulates it, and histograms the spike counts ``k_t = round(s_t / q)`` of one neuron site over all
elements and time steps.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ann2snn.plumbing.errors import UserError, positive_number
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.ann.quantizer import check_bits, max_count
from ann2snn.conversion.simulate import Observer, simulate_snn

#: Table 1 of the seed paper: spike entropy (bits) for U ~ N(0,1) at V_th = 0.6, keyed by (m, n)
PAPER_TABLE1 = {(1, 0): 0.848, (2, 0): 1.149, (1, 1): 1.361, (2, 1): 1.998}
#: the threshold Table 1 was computed for
PAPER_V_TH = 0.6
#: |computed − paper| above this is reported as a difference (Table 1 prints 3 decimals)
PAPER_TOLERANCE = 0.005
#: the bit widths of Table 1, in its order
DEFAULT_BITS = ((1, 0), (2, 0), (1, 1), (2, 1))


def _check_v_th(v_th: float) -> float:
    return positive_number("the threshold V_th", v_th)


def _survival(x: float) -> float:
    """P(U >= x) for U ~ N(0,1), accurate in the upper tail (``0.5·erfc(x/√2)``)."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def bits_label(int_bits: int, frac_bits: int) -> str:
    """``"m+n"``, as the seed writes bit widths."""
    return f"{int_bits}+{frac_bits}"


def spike_value_probs(v_th: float, int_bits: int, frac_bits: int) -> np.ndarray:
    """Exact distribution of the spike count for a standard-normal membrane potential.

    With ``U ~ N(0, 1)``, quantum ``q = V_th · 2^-n`` and ``K = 2^(m+n) − 1`` (seed §3.1; docs/design.md §3.1),
    the count ``k = clip(floor(U / q), 0, K)`` has

        P(0) = Φ(q)    (every U < q, negative potentials included, gives no spike)
        P(k) = Φ((k+1)q) − Φ(kq)   for 0 < k < K
        P(K) = 1 − Φ(Kq)

    computed in float64 from ``math.erfc`` (upper-tail form, so small tail masses keep their
    precision).

    Args:
        v_th: threshold V_th > 0, in units of the potential's standard deviation.
        int_bits: m >= 0. frac_bits: n >= 0 (1 <= m+n <= 16).

    Returns:
        ``np.ndarray`` float64 of shape ``[K + 1]``: ``P(k)`` for ``k = 0..K``; it sums to 1 (up to
        rounding in the last bit).

    Raises:
        UserError: V_th not a positive finite number, or bad bit widths.
    """
    v_th = _check_v_th(v_th)
    check_bits(int_bits, frac_bits)
    q = v_th * 2.0 ** -frac_bits
    k_max = max_count(int_bits, frac_bits)
    tail = np.array([_survival(k * q) for k in range(1, k_max + 1)], dtype=np.float64)  # P(U >= kq)
    probs = np.empty(k_max + 1, dtype=np.float64)
    probs[0] = 0.5 * math.erfc(-q / math.sqrt(2.0))  # Φ(q)
    probs[1:k_max] = tail[:-1] - tail[1:]
    probs[k_max] = tail[-1]
    return probs


def entropy_bits(probs) -> float:
    """Shannon entropy ``−Σ p·log2 p`` in bits of a probability vector (zeros contribute 0)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def spike_entropy(v_th: float, int_bits: int, frac_bits: int) -> float:
    """Shannon entropy (bits) of the spike count of an (m, n) neuron for ``U ~ N(0, 1)``.

    This is the quantity of the seed's Table 1 (§3.1): e.g. 0.8475 bits for IF (1+0) at V_th = 0.6.
    It is at most ``log2(K + 1) = m + n`` bits.

    Raises:
        UserError: as :func:`spike_value_probs`.
    """
    return entropy_bits(spike_value_probs(v_th, int_bits, frac_bits))


def potential_entropy() -> float:
    """Differential entropy of the potential ``U ~ N(0, 1)`` in bits: ``½·log2(2πe) ≈ 2.0471``.

    The seed (§3.1) uses it as the information of the analog potential that the spikes quantize.
    """
    return 0.5 * math.log2(2 * math.pi * math.e)


def entropy_table(v_th: float = PAPER_V_TH,
                  bits_list: Sequence[tuple[int, int]] = DEFAULT_BITS) -> tuple[pd.DataFrame, list[str]]:
    """The seed's Table 1 recomputed, beside the values the paper prints.

    Args:
        v_th: threshold V_th (the paper's table is for 0.6; at other values there is no paper
            column to compare with).
        bits_list: ``(m, n)`` pairs, one row each.

    Returns:
        ``(table, notes)``. ``table`` has one row per bit width and the columns ``bits`` (``"m+n"``),
        ``K``, ``computed_entropy`` (bits, from the formulas), ``paper_table1`` (bits, NaN where the
        paper has no value), ``difference`` (computed − paper) and ``max_entropy`` (``log2(K+1)``).
        ``notes`` is a list of plain sentences, one for each row whose computed value differs from
        the paper by more than :data:`PAPER_TOLERANCE`, plus one if V_th is not the paper's 0.6 or if
        a bit width is not in the paper's table.

    Raises:
        UserError: as :func:`spike_value_probs`.
    """
    v_th = _check_v_th(v_th)
    at_paper_v_th = math.isclose(v_th, PAPER_V_TH, rel_tol=0, abs_tol=1e-12)
    rows, notes = [], []
    for m, n in bits_list:
        h = spike_entropy(v_th, m, n)
        paper = PAPER_TABLE1.get((m, n)) if at_paper_v_th else None
        diff = None if paper is None else h - paper
        rows.append({"bits": bits_label(m, n), "K": max_count(m, n), "computed_entropy": round(h, 4),
                     "paper_table1": float("nan") if paper is None else paper,
                     "difference": float("nan") if diff is None else round(diff, 4),
                     "max_entropy": float(m + n)})
        if diff is not None and abs(diff) > PAPER_TOLERANCE:
            notes.append(f"{bits_label(m, n)}: the formulas give {h:.4f} bits, but the seed's Table 1 prints "
                         f"{paper:.3f} (difference {diff:+.4f}); this table reports the computed value")
    missing = [bits_label(*b) for b in bits_list if b not in PAPER_TABLE1]
    if at_paper_v_th and missing:
        notes.append(f"the seed's Table 1 has no value for {', '.join(missing)} (it lists 1+0, 2+0, 1+1, 2+1)")
    if not at_paper_v_th:
        notes.append(f"the seed's Table 1 is for V_th = {PAPER_V_TH} only; there are no paper values to "
                     f"compare with at V_th = {v_th:g}")
    return pd.DataFrame(rows), notes


def analytic_results(v_th: float = PAPER_V_TH,
                     bits_list: Sequence[tuple[int, int]] = DEFAULT_BITS) -> list[dict]:
    """The analytic distributions in the same form as :func:`empirical_spike_entropy`'s results
    (keys ``bits, int_bits, frac_bits, K, probs, entropy_bits, max_entropy_bits``), for plotting."""
    out = []
    for m, n in bits_list:
        probs = spike_value_probs(v_th, m, n)
        out.append({"bits": bits_label(m, n), "int_bits": m, "frac_bits": n, "K": max_count(m, n),
                    "probs": probs.tolist(), "entropy_bits": entropy_bits(probs), "max_entropy_bits": float(m + n)})
    return out


# --- empirical mode (the seed's Fig. 7) ------------------------------------------------------------


def neuron_sites(ann: nn.Module, convert_settings: dict | None = None) -> list[str]:
    """Names (as in ``named_modules()``) of the neurons that conversion gives ``ann``, in module
    order: the names :func:`empirical_spike_entropy` accepts as ``site``.

    Found by converting once to IF (with ``convert_settings`` merged in, as
    :func:`empirical_spike_entropy` does), so the names are exactly those of the converted network.

    Raises:
        UserError: anything conversion refuses (no convertible site, a λ <= 0, ...).
    """
    from ann2snn.conversion.snn import convert_ann

    snn = convert_ann(ann, _settings(1, 0, "half-lsb", convert_settings))
    return [name for name, m in snn.named_modules() if isinstance(m, MultiBitIF)]


def _settings(m: int, n: int, v_init: str, extra: dict | None) -> dict:
    return {**(extra or {}), "neuron": "if" if (m, n) == (1, 0) else "mbif", "int_bits": m, "frac_bits": n,
            "v_init": v_init}


def _site_error(site, sites: Sequence[str]) -> UserError:
    return UserError(f"{site!r} is not a neuron site; use one of: {', '.join(sites)}")


class SpikeCountHistogram(Observer):
    """Histogram of the spike counts ``k_t = round(s_t / q)`` of one neuron site of a converted SNN.

    Registers a forward hook on the :class:`~ann2snn.conversion.neurons.MultiBitIF` named ``site`` (a name from
    ``model.named_modules()``); every spiking step adds all elements of its output ``[B, ...]`` to
    ``counts``, an int64 tensor of shape ``[K + 1]``. Steps run in ANN mode are ignored. Call
    :meth:`close` (or use it as a context manager) to remove the hook.

    Raises:
        UserError: if ``site`` names no neuron of ``model`` (the message lists the valid names).
    """

    def __init__(self, model: nn.Module, site: str):
        modules = dict(model.named_modules())
        neuron = modules.get(site)
        if not isinstance(neuron, MultiBitIF):
            raise _site_error(site, [n for n, m in modules.items() if isinstance(m, MultiBitIF)])
        self.site, self.neuron = site, neuron
        self.k_max = neuron.k_max
        self.counts = torch.zeros(self.k_max + 1, dtype=torch.int64)
        self.steps = 0      # spiking forward calls seen
        self.samples = 0    # images seen (sum of batch sizes)
        self._handle = neuron.register_forward_hook(self._hook)

    def _hook(self, module: MultiBitIF, inputs, output: torch.Tensor) -> None:
        if module.mode != "snn":
            return
        k = torch.round(output.detach() / module.quantum()).to(torch.int64).flatten().cpu()
        if k.numel() and (int(k.min()) < 0 or int(k.max()) > self.k_max):
            raise RuntimeError(f"spike count outside 0..{self.k_max} at {self.site}")  # a bug, not user input
        self.counts += torch.bincount(k, minlength=self.k_max + 1)
        self.steps += 1

    def begin_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.samples += len(x)

    def close(self) -> None:
        """Remove the forward hook (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> "SpikeCountHistogram":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def summary(self) -> dict:
        """``histogram`` (list of K+1 ints), ``probs``, ``entropy_bits``, ``mean_count`` (mean k),
        ``firing_fraction`` (share of elements·steps with k > 0), ``elements`` (elements·steps)."""
        total = int(self.counts.sum())
        probs = (self.counts.double() / total).tolist() if total else [float("nan")] * (self.k_max + 1)
        ks = torch.arange(self.k_max + 1, dtype=torch.float64)
        return {
            "histogram": self.counts.tolist(), "probs": probs,
            "entropy_bits": entropy_bits(probs) if total else float("nan"),
            "mean_count": float((self.counts.double() * ks).sum() / total) if total else float("nan"),
            "firing_fraction": float(self.counts[1:].sum()) / total if total else float("nan"),
            "elements": total,
        }


def empirical_spike_entropy(ann: nn.Module, batches: Iterable, site: str | None = None,
                            bits_list: Sequence[tuple[int, int]] = DEFAULT_BITS, T: int = 4,
                            v_init: str = "half-lsb", progress: bool = False,
                            convert_settings: dict | None = None) -> list[dict]:
    """Measured spike-count entropy at one neuron site, per bit width (the seed's Fig. 7 experiment).

    For each ``(m, n)``: convert ``ann`` (θ = λ at every site; IF is 1+0), simulate ``T`` steps over
    ``batches`` (direct encoding, reset by subtraction) and histogram ``k_t = round(s_t / q)`` at
    ``site`` over all elements, images and steps. The hook is removed afterwards.

    Args:
        ann: a QCFS / matched ANN (not changed).
        batches: re-iterable ``(x [B, 3, H, W], y [B])`` batches (a one-shot iterator is read into a
            list first).
        site: the neuron site's module name (as ``named_modules()`` gives it); None = the first site.
        bits_list: ``(m, n)`` pairs.
        T: time steps (>= 1).
        v_init: ``half-lsb`` | ``half-threshold`` | ``zero``.
        progress: show progress bars.
        convert_settings: extra keys for :func:`ann2snn.conversion.snn.convert_ann`'s settings (bits and
            v_init are set here), e.g. calibrated thresholds.

    Returns:
        One dict per bit width with ``bits`` (``"m+n"``), ``int_bits``, ``frac_bits``, ``neuron``
        (``IF``/``MBIF``), ``site``, ``theta`` (the site's θ), ``T``, ``v_init``, ``K``,
        ``histogram`` (K+1 counts), ``probs`` (K+1 frequencies), ``entropy_bits`` (Shannon, bits),
        ``max_entropy_bits`` (``log2(K+1)``), ``mean_count`` (mean k), ``mean_value_theta`` (mean
        spike value ``k·2^-n``, in units of θ), ``firing_fraction`` (share with k > 0),
        ``elements`` (elements × steps × images counted) and ``samples`` (images).

    Raises:
        UserError: ``site`` is not a neuron site (the valid names are listed), bad bits, T < 1, bad
            v_init, no batches, or anything conversion refuses.
    """
    from ann2snn.conversion.snn import convert_ann

    if not (isinstance(T, int) and T >= 1):
        raise UserError(f"T must be a whole number >= 1, got {T!r}")
    bits_list = list(bits_list)
    if not bits_list:
        raise UserError("give at least one bit width")
    for m, n in bits_list:
        check_bits(m, n)
    sites = neuron_sites(ann, convert_settings)
    if site is None:
        site = sites[0]
    elif site not in sites:
        raise _site_error(site, sites)
    if iter(batches) is batches:  # a generator would be empty for the second bit width
        batches = list(batches)
    results = []
    for m, n in bits_list:
        snn = convert_ann(ann, _settings(m, n, v_init, convert_settings))
        with SpikeCountHistogram(snn, site) as obs:
            simulate_snn(snn, batches, T, progress=progress, observers=[obs])
        stats = obs.summary()
        if stats["elements"] == 0:
            raise UserError("the batches hold no images: nothing to measure")
        results.append({
            "bits": bits_label(m, n), "int_bits": m, "frac_bits": n, "neuron": "IF" if (m, n) == (1, 0) else "MBIF",
            "site": site, "theta": float(obs.neuron.theta), "T": T, "v_init": v_init, "K": obs.k_max, **stats,
            "max_entropy_bits": float(m + n), "mean_value_theta": stats["mean_count"] * 2.0 ** -n,
            "samples": obs.samples,
        })
    return results


def results_frame(results: Sequence[dict]) -> pd.DataFrame:
    """Empirical results as a table (one row per bit width; the histogram as ``;``-joined counts)."""
    cols = ["bits", "neuron", "site", "theta", "T", "v_init", "K", "entropy_bits", "max_entropy_bits",
            "mean_count", "mean_value_theta", "firing_fraction", "samples", "elements"]
    rows = []
    for r in results:
        row = {c: r[c] for c in cols}
        row["histogram"] = ";".join(str(int(c)) for c in r["histogram"])
        rows.append(row)
    return pd.DataFrame(rows, columns=cols + ["histogram"])


def plot_spike_histograms(results: Sequence[dict], path: str, title: str | None = None) -> str:
    """Write a PNG with one panel per bit width: P(k) against the spike count k, titled with the
    entropy in bits.

    Args:
        results: dicts with ``bits``, ``probs`` and ``entropy_bits`` (and optionally
            ``max_entropy_bits``), as :func:`empirical_spike_entropy` or :func:`analytic_results`
            return them.
        path: the PNG file, written atomically (a temporary file renamed onto it).
        title: an optional figure title.

    Returns:
        ``path``.

    Raises:
        UserError: if ``results`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from ann2snn.plumbing.checkpoint import atomic_write

    results = list(results)
    if not results:
        raise UserError("nothing to plot: no results")
    ncols = min(4, len(results))
    nrows = (len(results) + ncols - 1) // ncols
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows + (0.4 if title else 0)), dpi=100)
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax, r in zip(axes, results):
        probs = np.asarray(r["probs"], dtype=np.float64)
        ks = np.arange(len(probs))
        if len(probs) <= 64:
            ax.bar(ks, probs, width=0.8, color="tab:blue")
        else:
            ax.stairs(probs, np.arange(len(probs) + 1) - 0.5, fill=True, color="tab:blue")
        peak = r.get("max_entropy_bits")
        limit = f" (max {peak:g})" if peak is not None else ""
        ax.set_title(f"{r['bits']}: H = {r['entropy_bits']:.4f} bits{limit}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("spike count k")
        ax.set_ylabel("P(k)")
        ax.set_ylim(0, 1)
    for ax in axes[len(results):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path
