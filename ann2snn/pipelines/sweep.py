"""Accuracy against time steps T, in one simulation per model, written as Table-9-style tables.

For every converted model, one simulation of ``max(T)`` steps gives the accuracy at every
``t <= max(T)`` (the network is causal; DESIGN §3). The ANN column comes from the same network with
its neurons switched back to their source activations (ANN mode), which equals the ANN. Results go
to ``sweep.csv``, ``sweep.md`` and ``sweep.json`` (the full per-t curves plus provenance).
"""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import torch

from ann2snn.plumbing.checkpoint import atomic_write_text
from ann2snn.plumbing.data import CifarBatches, balanced_subset, dataset_info, load_split
from ann2snn.plumbing.device import autocast, place
from ann2snn.plumbing.distributed import Dist, all_reduce_sum
from ann2snn.plumbing.errors import UserError
from ann2snn.ann.evaluate import evaluate_ann
from ann2snn.conversion.simulate import (auto_time_chunk, neurons_of, set_fused, set_mode,
                                         simulate_snn)


#: the longest simulation a sweep accepts (780 × the seed's longest, T = 128)
MAX_T = 100_000
#: a sweep whose estimated simulation time is longer than this is refused before it starts
MAX_SECONDS = 7 * 24 * 3600


def parse_T(text: str) -> list[int]:
    """Parse ``"4,16,64,128"`` into sorted unique ints in ``[1, MAX_T]``.

    Raises:
        UserError: empty items, non-integers, values < 1 or > :data:`MAX_T`.
    """
    items = str(text).split(",")
    values = []
    for item in items:
        item = item.strip()
        if not (item.isascii() and item.lstrip("+").isdigit()) or int(item) < 1:
            raise UserError(f"bad --T list {text!r}: give positive whole numbers separated by commas, e.g. 4,16,64,128")
        if len(item.lstrip("+")) > 7 or int(item) > MAX_T:
            raise UserError(f"--T {item} is more than {MAX_T:,} steps (the seed reports T <= 128); a longer "
                            "simulation would not finish in reasonable time")
        values.append(int(item))
    return sorted(set(values))


def check_work(snn, batches, T_max: int, device, max_seconds: float = MAX_SECONDS) -> float:
    """Estimate a simulation's time from one timed forward pass; refuse one that cannot finish.

    Estimate: ``T_max × batches × (one ANN-mode forward of the first batch) × 1.5`` (a neuron step
    costs about 1.4 forward passes, benchmarks/ratios.py P1). Returns the estimate in seconds.

    Raises:
        UserError: the estimate exceeds ``max_seconds`` (7 days by default).
    """
    x, _ = next(iter(batches))
    set_mode(snn, "ann")
    t0 = time.perf_counter()
    with torch.inference_mode():
        snn(x.to(next(snn.parameters()).dtype))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) * 1.5 * T_max * max(1, len(batches))
    if seconds > max_seconds:
        raise UserError(f"--T {T_max} on {len(batches)} batches would take about {seconds / 86400:,.0f} days "
                        "of simulation here; lower --T or --subset")
    return seconds


def test_batches(config: dict, data_dir: str, batch_size: int, subset: int | None, download: bool,
                 skip_md5: bool, device: torch.device | str = "cpu", d: Dist = Dist()) -> CifarBatches:
    """The (optionally class-balanced subset of the) test split of ``config['dataset']``, on ``device``.

    Under distributed runs each rank gets every ``world``-th sample and ``ceil(batch_size / world)``
    samples per batch (results do not depend on the batch size).
    """
    info = dataset_info(config["dataset"])
    x, y = load_split(config["dataset"], data_dir, False, download, skip_md5)
    if subset:
        idx = balanced_subset(y, subset, 0, info.num_classes)
        x, y = x[idx], y[idx]
    return CifarBatches(x, y, info, -(-batch_size // d.world), device=device, rank=d.rank, world=d.world)


def describe_activation(config: dict) -> tuple[str, str]:
    """('qcfs', 'L=4') or ('matched', '1+3')."""
    if config.get("activation", "qcfs") == "matched":
        return "matched", f"{config['int_bits']}+{config['frac_bits']}"
    if config.get("activation") == "relu":
        return "relu", "-"
    return "qcfs", f"L={config.get('levels', 4)}"


def describe_converted_neuron(conv: dict) -> str:
    """'IF', 'MBIF 1+3', or 'MBIF 1+3 K=8' when the per-step count is capped."""
    if (conv["int_bits"], conv["frac_bits"]) == (1, 0):
        return "IF"
    cap = f" K={conv['cap']}" if conv.get("cap") else ""
    return f"MBIF {conv['int_bits']}+{conv['frac_bits']}{cap}"


#: simulation precisions: float32 (fast; a floor can turn a last-bit rounding difference between batch
#: sizes, time chunks or CPU kernels into a different spike) and float64 (reproducible in practice).
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


def precision_dtype(precision: str, amp: str = "none") -> torch.dtype:
    """The torch dtype of ``precision`` (``float32`` | ``float64``).

    Raises:
        UserError: an unknown precision, or float64 with bfloat16 autocast.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: use float32 or float64")
    if precision == "float64" and amp not in (None, "none"):
        raise UserError("--precision float64 and --amp bf16 contradict each other: pick one")
    return PRECISIONS[precision]


def sweep_model(snn, batches, T_max: int, progress: bool = False, T_list: list[int] | None = None,
                ops: bool = True, diagnostics: bool = False, time_chunk: int | str = 1,
                device: torch.device | str = "cpu", amp: str = "none", d: Dist = Dist(),
                precision: str = "float32", fuse: str | bool = "auto", channels_last: bool = False) -> dict:
    """Evaluate ANN mode, then simulate once for ``T_max`` steps; returns accuracies (fractions).

    With ``ops``, operation counts and energies per image at each T of ``T_list``
    (:class:`~ann2snn.analysis.opcount.OpCounter`); with ``diagnostics``, per-layer statistics
    (:class:`~ann2snn.analysis.diagnostics.LayerDiagnostics`). Both watch the same single simulation.
    ``time_chunk="auto"`` picks :func:`~ann2snn.conversion.simulate.auto_time_chunk` (1 with observers).
    The model runs on ``device`` (under bfloat16 autocast with ``amp="bf16"``); under distributed
    runs the counts are summed over ranks (observers are refused there, see the CLI).
    ``precision="float64"`` runs every layer, quantizer and membrane potential in float64
    (:data:`PRECISIONS`); the ANN column is then the float64 ANN. ``fuse`` picks the fused or the
    plain neuron step (:func:`~ann2snn.conversion.simulate.set_fused`; same results).
    ``channels_last`` puts the network in that memory format on the CPU too (faster convolutions;
    float32 may then differ by a rare spike, see :func:`~ann2snn.plumbing.device.place`).

    Raises:
        UserError: an unknown precision, or float64 together with ``amp="bf16"``.
    """
    device = torch.device(device)
    snn = place(snn.to(precision_dtype(precision, amp)), device, True if channels_last else None)
    T_list = T_list or [T_max]
    check_work(snn, batches, T_max, device)
    set_mode(snn, "ann")
    with autocast(device, amp):
        ann_correct, total = evaluate_ann(snn, batches, progress)
    ann_correct, total = all_reduce_sum(d, torch.tensor([ann_correct, total], device=device)).tolist()
    set_mode(snn, "snn")
    fused = set_fused(snn, fuse, device, image_steps=total * T_max)
    if time_chunk == "auto":
        time_chunk = 1 if (ops or diagnostics) else auto_time_chunk(snn, batches, T_max, device)
    observers = []
    counter = diag = None
    if ops:
        from ann2snn.analysis.opcount import OpCounter

        counter = OpCounter(snn)
        observers.append(counter)
    if diagnostics:
        from ann2snn.analysis.diagnostics import LayerDiagnostics

        diag = LayerDiagnostics(snn, T_list)
        observers.append(diag)
    t0 = time.time()
    try:
        with autocast(device, amp):
            correct, total_snn = simulate_snn(snn, batches, T_max, progress, observers=observers,
                                              time_chunk=time_chunk)
    finally:
        for obs in observers:
            obs.remove()
    correct = all_reduce_sum(d, correct.to(device)).cpu()
    total_snn = int(all_reduce_sum(d, torch.tensor(total_snn, device=device)))
    curve = (correct.double() / total_snn).tolist()
    result = {"ann_acc": ann_correct / total, "curve": curve, "samples": total_snn,
              "snn_seconds": time.time() - t0, "time_chunk": time_chunk, "precision": precision,
              "fused": fused and all(n.fused for n in neurons_of(snn)),
              "channels_last": bool(channels_last) or device.type == "cuda"}
    if counter is not None:
        result["ops"] = [{**counter.totals(T), "accuracy": round(100 * curve[T - 1], 2)} for T in T_list]
    if diag is not None:
        result["layers"] = diag.rows()
    return result


def build_row(config: dict, conv: dict, result: dict, T_list: list[int], extra: dict) -> dict:
    act, act_param = describe_activation(config)
    row = {
        "dataset": config["dataset"], "network": config["arch"], "width": config.get("width", 1.0),
        "epochs": extra.get("epochs"), "activation": act, "L_or_bits": act_param,
        "neuron": describe_converted_neuron(conv), "v_init": conv["v_init"],
        "threshold": conv.get("threshold", "lambda") + (" fold-bn" if conv.get("fold_bn") else ""),
    }
    for T in T_list:
        row[f"T={T}"] = round(100 * result["curve"][T - 1], 2)
    row["ANN"] = round(100 * result["ann_acc"], 2)
    return row


def _label(row: dict) -> dict:
    return {k: row[k] for k in ("dataset", "network", "activation", "L_or_bits", "neuron", "v_init")}


def write_tables(rows: list[dict], curves: list[dict], prov: dict, out_dir: str, T_list: list[int],
                 plots: bool = False) -> list[str]:
    """Write sweep.csv/.md/.json, sweep_ops.csv and sweep_layers.csv (when measured) and the PNG
    plots (with ``plots``) into ``out_dir``, each atomically; returns the paths written."""
    df = pd.DataFrame(rows)
    notes = sorted({f"{r['dataset']} {r['network']}: width {r['width']}, {r['epochs']} epochs, "
                    f"{r['activation']} {r['L_or_bits']}" for r in rows})
    samples = sorted({c["samples"] for c in curves})
    md = ("Top-1 accuracy (%) of the converted SNN at each T, and of the ANN.\n\n" + df.to_markdown(index=False)
          + "\n\n" + "\n".join(f"- {n}" for n in notes)
          + f"\n- test samples: {', '.join(map(str, samples))}; reset by subtraction; direct encoding"
          + f"\n- command: `{prov['command']}` (commit {prov['git_commit'][:12]})\n")
    ops_rows = [{**_label(c), **o} for c in curves for o in c.get("ops", [])]
    layer_rows = [{**_label(c), **r} for c in curves for r in c.get("layers", [])]
    if ops_rows:
        ops_df = pd.DataFrame(ops_rows)
        shown = ops_df[["network", "activation", "L_or_bits", "neuron", "v_init", "T", "accuracy", "events", "bit_acs",
                        "energy_snn_uj", "energy_snn_bitplane_uj", "energy_ann_uj"]]
        md += ("\nOperations and energy per image (synaptic events, bit-plane accumulates; 45 nm figures: "
               "0.9 pJ/AC, 4.6 pJ/MAC, Horowitz ISSCC 2014; see ann2snn/analysis/opcount.py for what is counted):\n\n"
               + shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    paths = [os.path.join(out_dir, f"sweep.{ext}") for ext in ("csv", "md", "json")]
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(paths[0], df.to_csv(index=False))
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[2], json.dumps({"T": T_list, "provenance": prov, "rows": curves}, indent=1) + "\n")
    if ops_rows:
        paths.append(os.path.join(out_dir, "sweep_ops.csv"))
        atomic_write_text(paths[-1], pd.DataFrame(ops_rows).to_csv(index=False))
    if layer_rows:
        paths.append(os.path.join(out_dir, "sweep_layers.csv"))
        atomic_write_text(paths[-1], pd.DataFrame(layer_rows).to_csv(index=False))
    if plots:
        from ann2snn.analysis.plots import plot_accuracy_vs_T, plot_energy_vs_accuracy, plot_firing_rates

        for name, fn in (("accuracy_vs_T.png", plot_accuracy_vs_T), ("firing_rates.png", plot_firing_rates),
                         ("energy_vs_accuracy.png", plot_energy_vs_accuracy)):
            if name == "firing_rates.png" and not layer_rows or name == "energy_vs_accuracy.png" and not ops_rows:
                continue
            paths.append(os.path.join(out_dir, name))
            fn(curves, paths[-1])
    return paths
