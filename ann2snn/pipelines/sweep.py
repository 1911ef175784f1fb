"""Accuracy against time steps T, in one simulation per model, written as Table-9-style tables.

For every converted model, one simulation of ``max(T)`` steps gives the accuracy at every
``t <= max(T)`` (the network is causal; docs/design.md §3.7). Results go to ``sweep.csv``, ``sweep.md`` and
``sweep.json`` (the full per-t curves plus provenance).

Two ANN accuracies per row:

* the **ANN column**: the source ANN computed exactly as ``train-ann`` computes its test accuracy
  (:func:`ann2snn.ann.train.evaluate_as_trained`: float32, train-ann's memory layout on this device,
  500 images per batch, the run's own amp), once per checkpoint. It does not move with the sweep's
  speed options, and on train-ann's own test images it equals train-ann's ``test_acc``;
* ``ann_acc_simulated`` (sweep.json): the converted network in ANN mode, in the SNN's own arithmetic
  (its precision, layout, batch size, amp, folded BN). One step of an exact conversion
  (:func:`ann2snn.conversion.snn.exact_at_T1`) equals this one, bit for bit; sweep.md names it
  wherever it differs from the ANN column.

Where a row scores above its ANN at a swept T, sweep.md and sweep.json say why
(:func:`above_ann_note`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from fractions import Fraction

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
            raise UserError(f"bad `T` list {text!r}: give positive whole numbers separated by commas, e.g. 4,16,64,128")
        if len(item.lstrip("+")) > 7 or int(item) > MAX_T:
            raise UserError(f"`T` {item} is more than {MAX_T:,} steps (the seed reports T <= 128); a longer "
                            "simulation would not finish in reasonable time")
        values.append(int(item))
    return sorted(set(values))


def check_work(snn, batches, T_max: int, device, max_seconds: float = MAX_SECONDS) -> float:
    """Estimate a simulation's time from one timed forward pass; refuse one that cannot finish.

    Estimate: ``T_max × batches × (one ANN-mode forward of the first batch) × 1.5`` (a neuron step
    costs about 1.4 forward passes, benchmarks/ratios.py, the step ratio). Returns the estimate in seconds.

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
        raise UserError(f"`T` {T_max} on {len(batches)} batches would take about {seconds / 86400:,.0f} days "
                        "of simulation here; lower `T` or `subset`")
    return seconds


def load_test_batches(config: dict, data_dir: str, batch_size: int, subset: int | None, download: bool,
                 skip_md5: bool, device: torch.device | str = "cpu", d: Dist = Dist(), folder: dict | None = None):
    """The (optionally class-balanced subset of the) test split of ``config['dataset']``, on ``device``.

    Under distributed runs each rank gets every ``world``-th sample and ``ceil(batch_size / world)``
    samples per batch (results do not depend on the batch size). For a model trained on an image
    folder: ``data_dir/val`` under the evaluation transform of ``config``, its classes checked against
    the stored ones (:func:`ann2snn.plumbing.folder.folder_eval_batches`; ``folder``: the image-folder
    options ``workers``, ``skip_bad_images``, and ``image_size``/``resize``/``mean``/``std`` overriding
    the stored settings).
    """
    from ann2snn.plumbing.folder import FOLDER, VAL_SPLIT, check_folder_options, folder_eval_batches

    check_folder_options(config["dataset"], folder)
    if config["dataset"] == FOLDER:
        return folder_eval_batches(config, data_dir, VAL_SPLIT, -(-batch_size // d.world), subset, options=folder,
                                   device=device, rank=d.rank, world=d.world)
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
    """'IF', 'MBIF 1+3', or 'MBIF 1+3 K=8' when the per-step count is capped; with per-site bits (a plan),
    each setting and its number of sites, e.g. 'per site: 1+3 ×9, 1+2 K=4 ×6'."""
    if conv.get("site_bits"):
        from ann2snn.conversion.plan import bits_summary

        return "per site: " + bits_summary(conv["site_bits"])
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
        raise UserError(f"unknown `precision` {precision!r}: use float32 or float64")
    if precision == "float64" and amp not in (None, "none"):
        raise UserError("`precision` float64 and `amp` bf16 contradict each other: pick one")
    return PRECISIONS[precision]


def sweep_model(snn, batches, T_max: int, progress: bool = False, T_list: list[int] | None = None,
                ops: bool = True, diagnostics: bool = False, time_chunk: int | str = 1,
                device: torch.device | str = "cpu", amp: str = "none", d: Dist = Dist(),
                precision: str = "float32", fuse: str | bool = "auto", channels_last: bool = False,
                input_shape: tuple | None = None) -> dict:
    """Evaluate ANN mode, then simulate once for ``T_max`` steps; returns accuracies (fractions).

    ``ann_acc_simulated`` is the network in ANN mode in the simulation's own arithmetic (precision,
    layout, batches, amp): the exact reference of a T = 1 identity. It is not the sweep's ANN column,
    which :func:`ann_reference` computes as train-ann does.

    With ``ops``, operation counts and energies per image at each T of ``T_list``
    (:class:`~ann2snn.analysis.opcount.OpCounter`, probed at ``input_shape`` ``(C, H, W)``, by default
    the first batch's); with ``diagnostics``, per-layer statistics
    (:class:`~ann2snn.analysis.diagnostics.LayerDiagnostics`). Both watch the same single simulation.
    ``time_chunk="auto"`` picks :func:`~ann2snn.conversion.simulate.auto_time_chunk` (1 with observers).
    The model runs on ``device`` (under bfloat16 autocast with ``amp="bf16"``); under distributed
    runs the counts are summed over ranks (observers are refused there, see the CLI).
    ``precision="float64"`` runs every layer, quantizer and membrane potential in float64
    (:data:`PRECISIONS`); ``ann_acc_simulated`` is then the float64 ANN. ``fuse`` picks the fused or the
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

        # the fan-out maps are probed at the batches' own image size (32 px for CIFAR, e.g. 224 for a folder);
        # given as `input_shape`, no batch is read (an image folder's is decoded) to learn it
        image_shape = tuple(input_shape or next(iter(batches))[0].shape[1:])
        counter = OpCounter(snn, input_shape=(1, *image_shape))
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
    result = {"ann_acc_simulated": ann_correct / total, "curve": curve, "samples": total_snn,
              "snn_seconds": time.time() - t0, "time_chunk": time_chunk, "precision": precision,
              "fused": fused and all(n.fused for n in neurons_of(snn)),
              "channels_last": bool(channels_last) or device.type == "cuda"}
    if counter is not None:
        result["ops"] = [{**counter.totals(T), "accuracy": round(100 * curve[T - 1], 2)} for T in T_list]
    if diag is not None:
        result["layers"] = diag.rows()
    return result


def describe_correction(conv: dict) -> str:
    """'none', or e.g. 'bias T_cal=4' (:mod:`ann2snn.conversion.correct`)."""
    correct = conv.get("correct") or {}
    mode = correct.get("mode", "none")
    return mode if mode == "none" else f"{mode} T_cal={correct['T_cal']}"


#: columns a table shows only where some row differs from this value
QUIET_COLUMNS = {"maxpool": "refuse", "correction": "none"}


def shown_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as the tables show them (sweep.md, the command's output): the columns of
    :data:`QUIET_COLUMNS` are left out where every row has their default (sweep.csv keeps every column)."""
    df = pd.DataFrame(rows)
    return df.drop(columns=[c for c, v in QUIET_COLUMNS.items() if c in df and (df[c] == v).all()])


def build_row(config: dict, conv: dict, result: dict, T_list: list[int], extra: dict) -> dict:
    act, act_param = describe_activation(config)
    row = {
        "dataset": config["dataset"], "network": config["arch"], "width": config.get("width", 1.0),
        # a network trained elsewhere (`weights`) has no epoch count of ours
        "epochs": extra.get("epochs") if extra.get("epochs") is not None else "-",
        "activation": act, "L_or_bits": act_param,
        "neuron": describe_converted_neuron(conv), "v_init": conv["v_init"],
        "threshold": conv.get("threshold", "lambda") + (" fold-bn" if conv.get("fold_bn") else ""),
        "maxpool": conv.get("maxpool", "refuse"),
        "correction": describe_correction(conv),
    }
    for T in T_list:
        row[f"T={T}"] = round(100 * result["curve"][T - 1], 2)
    row["ANN"] = round(100 * result["ann_acc"], 2)
    return row


def ann_reference(ckpt: dict, snn, batches, device: torch.device, d: Dist = Dist(),
                  progress: bool = False) -> float:
    """The ANN column of a checkpoint: top-1 (a fraction) on the sweep's test images, computed as
    ``train-ann`` computes its test accuracy (:func:`ann2snn.ann.train.evaluate_as_trained`).

    An ANN checkpoint is evaluated as the ANN itself; an SNN checkpoint as a copy of ``snn`` (loaded
    from it, float32, not yet placed) in ANN mode, which runs the very operations of its source ANN
    (the same weights, each neuron calling its source activation), except after BN folding, where it
    is the folded network (the file holds no other; :func:`ann_notes` says so).

    Why not the simulated network's own ANN mode: a float32 convolution may round its last bit
    differently in another memory layout (``channels_last``) or at another batch size, and a
    quantizer's floor turns that into another level, so the ANN column moved by an image or two with
    the SNN's speed options. Computed with train-ann's own function, layout, batch size, dtype and
    amp, it is train-ann's computation on the same images, whatever the sweep's options (on the same
    device, thread count and torch build).
    """
    from ann2snn.ann.build import ann_from_checkpoint
    from ann2snn.ann.train import EVAL_BATCH, evaluate_as_trained, evaluate_batches_as_trained

    if ckpt["kind"] == "ann":
        net = ann_from_checkpoint(ckpt)[0]
    else:
        net = copy.deepcopy(snn)
        set_mode(net, "ann")
    if hasattr(batches, "rebatched"):  # an image folder's val batches (decoded again, in train-ann's batches)
        correct, total = evaluate_batches_as_trained(net, batches.rebatched(EVAL_BATCH), ckpt["config"], device, d,
                                                     progress)
    else:
        correct, total = evaluate_as_trained(net, batches.images, batches.labels, batches.info, ckpt["config"],
                                             device, d, progress)
    return correct / total


def train_ann_recorded(ckpt: dict, subset: int | None) -> float | None:
    """The test accuracy (a fraction) train-ann recorded for the checkpoint's weights, when the sweep
    runs on train-ann's own test images (the same ``subset`` as its ``test_subset``, both a seeded
    class-balanced subset of the test split, or both the whole split); else None."""
    cfg = ckpt["config"]
    if (cfg.get("test_subset") or None) != (subset or None):
        return None
    metrics = ckpt.get("metrics") if ckpt["kind"] == "ann" else (ckpt.get("source") or {}).get("metrics")
    if not metrics or "test_acc" not in metrics[-1]:
        return None
    return float(metrics[-1]["test_acc"])


def simulated_options(cfg: dict, conv: dict, kind: str, precision: str, channels_last: bool, device: torch.device,
                      batch: int, per_process: float, amp: str) -> list[str]:
    """What makes a row's ``ann_acc_simulated`` arithmetic differ from the ANN column's (train-ann's):
    e.g. ``["float64", "channels_last layout", "batches of 7"]``; empty when it is the same computation."""
    from ann2snn.ann.train import EVAL_BATCH

    opts = []
    if precision != "float32":
        opts.append(precision)
    if channels_last != (device.type == "cuda"):
        opts.append("channels_last layout" if channels_last else "the default memory layout")
    if batch != EVAL_BATCH and per_process > min(batch, EVAL_BATCH):
        opts.append(f"batches of {batch}")
    if amp != cfg.get("amp", "none"):
        opts.append(f"amp {amp}")
    if kind == "ann" and conv.get("fold_bn"):
        opts.append("BN folded into the convolutions")
    return opts


def _fraction_of(f: Fraction, symbol: str) -> str:
    """``θ/32``, ``θ``, ``15/8·θ``."""
    if f == 1:
        return symbol
    if f.numerator == 1:
        return f"{symbol}/{f.denominator}"
    return f"{f}·{symbol}"


def _ann_label(cfg: dict) -> str:
    """``qcfs L=4``, ``matched 1+3``, ``relu``."""
    act, param = describe_activation(cfg)
    return act if param == "-" else f"{act} {param}"


def _ann_grid(cfg: dict) -> tuple[Fraction, Fraction] | None:
    """(rounding step, ceiling) of the ANN's activation in units of its λ; None for ReLU."""
    act = cfg.get("activation", "qcfs")
    if act == "qcfs":
        return Fraction(1, cfg.get("levels", 4)), Fraction(1)
    if act == "matched":
        m, n = cfg["int_bits"], cfg["frac_bits"]
        return Fraction(1, 2 ** n), Fraction(2 ** (m + n) - 1, 2 ** n)
    return None


def above_ann_note(curve: dict, T_list: list[int]) -> dict | None:
    """Why a row scores above its own ANN, or None when it does not at any T of ``T_list``.

    ``curve`` is one entry of ``run_sweep``'s ``curves`` (its ``curve``, ``ann_acc``,
    ``ann_acc_simulated``, ``ann_simulated_options``, ``samples``, ``train_config`` and
    ``conversion``). The reasons are read off the conversion (docs/design.md §3.2–§3.5): after T steps an MBIF(m, n)
    neuron with threshold θ averages to multiples of θ/(2^n·T), up to K·θ/2^n per step, while a
    QCFS(L) ANN rounds to λ/L and clips at λ (a matched(m+n) ANN: λ/2^n and (2^m − 2^-n)·λ; a ReLU
    ANN neither rounds nor clips). A finer or higher-reaching SNN computes another function than the
    ANN it was converted from, which may score a few images either side of it; a start other than
    ``v_0 = q/2`` biases its rounding; calibrated thresholds move its clip. At T = 1 an exact
    conversion is its ANN in the SNN's own arithmetic, so a difference there is float rounding.

    Returns:
        ``{"T": [t, ...], "points": max excess (percentage points), "images": max excess in images,
        "samples": n, "reasons": [str, ...], "text": one sentence for sweep.md}``.
    """
    from ann2snn.conversion.snn import exact_at_T1

    n = curve["samples"]
    ann_count = round(curve["ann_acc"] * n)
    above = [t for t in T_list if round(curve["curve"][t - 1] * n) > ann_count]
    if not above:
        return None
    images = max(round(curve["curve"][t - 1] * n) - ann_count for t in above)
    points = round(100 * images / n, 2)
    cfg, conv = curve["train_config"], curve["conversion"]
    m, nb = conv["int_bits"], conv["frac_bits"]
    k = conv.get("cap") or (2 ** (m + nb) - 1)
    ceiling = Fraction(k, 2 ** nb)

    def step(t):  # the resolution of a neuron's average output after t steps, in units of θ
        return Fraction(1, 2 ** nb * t)

    calibrated = bool(conv.get("thresholds"))
    exact = exact_at_T1(cfg, conv)
    grid = _ann_grid(cfg)
    act = describe_activation(cfg)
    ann_name = f"the {_ann_label(cfg)} ANN" if act[0] != "relu" else "the ReLU ANN"
    reasons = []
    sim = curve.get("ann_acc_simulated", curve["ann_acc"])
    opts = ", ".join(curve.get("ann_simulated_options") or []) or "the converted network in ANN mode"
    if round(sim * n) != ann_count:
        if exact and above[0] == 1:
            reasons.append(f"at T = 1 this conversion is its ANN exactly in the SNN's own arithmetic ({opts}), where "
                           f"the ANN scores {100 * sim:.2f} %; the ANN column is computed as train-ann computes it, and "
                           "the two arithmetics' rounding differences became other quantization levels on a few images")
        else:
            reasons.append(f"it runs in {opts}, in which its ANN scores {100 * sim:.2f} % (the ANN column is computed "
                           "as train-ann computes it)")
    if grid is None:
        t = above[-1]
        reasons.append(f"{ann_name} neither rounds nor clips; the SNN clips each site at its calibrated θ "
                       f"({conv.get('threshold', 'calibrated')}) and after T steps averages to multiples of "
                       f"{'θ/T' if nb == 0 else f'θ/({2 ** nb}·T)'} ({_fraction_of(step(t), 'θ')} at T = {t}): "
                       "another function than the ANN, not a finer copy of it")
    elif calibrated:
        reasons.append(f"its thresholds θ are calibrated ({conv.get('threshold')}), not {ann_name}'s λ: its neurons "
                       "clip and round at other values than the ANN's activations")
    else:
        ann_step, ann_ceiling = grid
        finer = [t for t in above if step(t) < ann_step]
        if finer:
            t = finer[0]
            what = (f"after T = {t} steps its neurons average to multiples of" if t > 1
                    else "each step rounds to multiples of")
            reasons.append(("one step is the ANN exactly, but " if exact else "")
                           + f"{what} {_fraction_of(step(t), 'θ')} where {ann_name} rounds to "
                           f"{_fraction_of(ann_step, 'λ')} (θ = λ): a finer quantization than the ANN's, closer to an "
                           "unquantized activation")
        if ceiling > ann_ceiling:
            reasons.append(f"each step sends up to {_fraction_of(ceiling, 'θ')} where {ann_name} clips at "
                           f"{_fraction_of(ann_ceiling, 'λ')}: it passes values the ANN clips, closer to an "
                           "unclipped ReLU")
    if conv.get("v_init") == "zero":
        reasons.append("it starts from v_0 = 0, so its neurons round down where the ANN rounds to the nearest level"
                       if grid is not None else "it starts from v_0 = 0, so its neurons round down")
    elif conv.get("v_init") == "half-threshold" and nb > 0:
        reasons.append(f"it starts from v_0 = θ/2, not q/2 = {_fraction_of(Fraction(1, 2 ** (nb + 1)), 'θ')}, which "
                       "moves every rounding point of a neuron's average down by (θ/2 − q/2)/T: a bias the ANN "
                       "does not have")
    if conv.get("fold_bn"):
        reasons.append("BN is folded into the convolutions (the same network up to float rounding)")
    if not reasons:
        reasons.append("nothing in the conversion at these T: it rounds no finer and clips no higher than the ANN, "
                       "so the difference is these images")
    p = curve["ann_acc"]
    se = 100 * math.sqrt(max(p * (1 - p), 0.0) / n)
    count = (f"{images:,} of {n:,} test images (one accuracy on {n:,} images has a binomial standard error of "
             f"±{se:.2f} points)")
    label = (f"{curve.get('network', '')} {_ann_label(cfg)} → {describe_converted_neuron(conv)} "
             f"({conv.get('v_init')})").strip()
    text = (f"{label} is above its ANN ({100 * p:.2f} %) at T = {', '.join(map(str, above))}, by up to {points:.2f} "
            f"points: {count}. Why it can be: " + "; ".join(reasons) + ".")
    return {"T": above, "points": points, "images": images, "samples": n, "reasons": reasons, "text": text}


def ann_notes(curves: list[dict]) -> list[str]:
    """sweep.md lines on each checkpoint's ANN column: where it is the BN-folded network, where
    train-ann recorded another value on the same images, and where the ANN in the SNN's own arithmetic
    (``ann_acc_simulated``, the reference of the T = 1 identity) differs from it."""
    from ann2snn.conversion.snn import exact_at_T1

    notes = []
    groups: dict[str, list[dict]] = {}
    for c in curves:
        groups.setdefault(c["checkpoint"], []).append(c)
    for path, group in groups.items():
        first = group[0]
        label = f"{first['network']} {_ann_label(first['train_config'])} ({path})"
        col = 100 * first["ann_acc"]
        if first["checkpoint_kind"] == "snn" and first["conversion"].get("fold_bn"):
            notes.append(f"{label}: the ANN column is the BN-folded network in ANN mode (this SNN file holds no "
                         "unfolded ANN); it differs from the ANN only by float rounding")
        rec = first.get("ann_train_recorded")
        if rec is not None and round(rec * first["samples"]) != round(first["ann_acc"] * first["samples"]):
            notes.append(f"{label}: train-ann recorded {100 * rec:.2f} % on these test images; computed here the same "
                         f"way: {col:.2f} % (as when train-ann ran on another device, thread count or torch build, "
                         "where float32 rounds differently)")
        seen = set()
        for c in group:
            opts = tuple(c.get("ann_simulated_options") or ())
            sim = c.get("ann_acc_simulated", c["ann_acc"])
            key = (opts, round(sim * c["samples"]))
            if key[1] == round(c["ann_acc"] * c["samples"]) or key in seen:
                continue
            seen.add(key)
            exact = any(exact_at_T1(g["train_config"], g["conversion"]) for g in group
                        if tuple(g.get("ann_simulated_options") or ()) == opts)
            why = "; the exact conversions' T = 1 equals this one" if exact else ""
            notes.append(f"{label}: ANN in {', '.join(opts) or 'the converted network in ANN mode'} (the SNN's own "
                         f"arithmetic{why}): {100 * sim:.2f} % (the ANN column, as train-ann computes it: {col:.2f} %)")
    return notes


def _label(row: dict) -> dict:
    return {k: row[k] for k in ("dataset", "network", "activation", "L_or_bits", "neuron", "v_init", "threshold",
                                "correction") if k in row}


#: how the ANN column is computed (a line of sweep.md and of sweep.json's ``notes``)
ANN_COLUMN_NOTE = ("ANN: the source ANN's top-1 computed as train-ann computes its test accuracy (float32, 500 "
                   "images per batch and process, train-ann's memory layout on this device, the run's own amp), "
                   "whatever the SNN's precision, layout, batch size, time chunk or fused step")


def sweep_notes(curves: list[dict], T_list: list[int]) -> list[str]:
    """The notes of sweep.md after the ANN-column line: :func:`ann_notes`, then one
    :func:`above_ann_note` per row that scores above its ANN at some T of ``T_list`` (a curve's
    ``above_ann`` when it has one)."""
    above = [c["above_ann"] if "above_ann" in c else above_ann_note(c, T_list) for c in curves]
    return ann_notes(curves) + [a["text"] for a in above if a is not None]


def write_tables(rows: list[dict], curves: list[dict], prov: dict, out_dir: str, T_list: list[int],
                 plots: bool = False, memory: dict | None = None) -> list[str]:
    """Write sweep.csv/.md/.json, sweep_ops.csv and sweep_layers.csv (when measured) and the PNG
    plots (with ``plots``) into ``out_dir``, each atomically; returns the paths written.

    ``memory`` (:func:`plan_memory`'s record: the batch size and the memory estimate) goes into sweep.json.
    sweep.md says how the ANN column is computed, where the ANN in the SNN's own arithmetic differs
    from it (:func:`ann_notes`) and why a row scores above its ANN (:func:`above_ann_note`, also in
    sweep.json as each row's ``above_ann`` and in the top-level ``notes``)."""
    df = pd.DataFrame(rows)
    notes = sorted({f"{r['dataset']} {r['network']}: width {r['width']}, "
                    + (f"{r['epochs']} epochs, " if r["epochs"] != "-" else "trained elsewhere, ")
                    + f"{r['activation']} {r['L_or_bits']}" for r in rows})
    samples = sorted({c["samples"] for c in curves})
    curves = [c if "above_ann" in c else {**c, "above_ann": above_ann_note(c, T_list)} for c in curves]
    extra = sweep_notes(curves, T_list)
    md = ("Top-1 accuracy (%) of the converted SNN at each T, and of the ANN.\n\n" + shown_table(rows).to_markdown(index=False)
          + "\n\n" + "\n".join(f"- {n}" for n in notes)
          + f"\n- test samples: {', '.join(map(str, samples))}; reset by subtraction; direct encoding"
          + f"\n- {ANN_COLUMN_NOTE}" + "".join(f"\n- {n}" for n in extra)
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
    atomic_write_text(paths[2], json.dumps({"T": T_list, "provenance": prov, "notes": [ANN_COLUMN_NOTE, *extra],
                                            **({"memory": memory} if memory is not None else {}),
                                            "rows": curves}, indent=1) + "\n")
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


def _memory_line(memory: dict) -> str:
    """``estimate 3.1 GiB of 11.2 GiB usable`` (:func:`plan_memory`'s record)."""
    from ann2snn.plumbing.memory import format_bytes

    usable = memory.get("usable_bytes")
    return f"estimate {format_bytes(memory['estimate_bytes'])}" + (
        f" of {format_bytes(usable)} usable" if usable is not None else "")


def parse_time_chunk(value) -> int | str:
    """``"auto"`` or a whole number >= 1 (int or text); UserError otherwise."""
    if value == "auto":
        return "auto"
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UserError(f"`time_chunk` must be 'auto' or a whole number >= 1, got {value!r}")
    return int(text)


def _as_T_list(T) -> list[int]:
    """``T`` as sorted unique step counts: a text list ``"4,16,64"``, one int, or a sequence of ints."""
    if isinstance(T, str):
        return parse_T(T)
    if isinstance(T, int) and not isinstance(T, bool):
        T = [T]
    try:
        items = list(T)
    except TypeError:
        items = None
    if not items or not all(isinstance(t, int) and not isinstance(t, bool) for t in items):
        raise UserError(f"bad `T` list {T!r}: give whole numbers of time steps, e.g. [4, 16, 64, 128]")
    return parse_T(",".join(str(t) for t in items))


def _check_plan(checkpoints: list[str], loaded: dict[str, dict], specs: list[dict], v_inits: list[str], caps: list,
                thresholds: list[str], fold_bn: bool) -> None:
    """Check every setting of :func:`_plan_models` before any calibration (UserError on the first bad one)."""
    from ann2snn.conversion.calibrate import parse_threshold
    from ann2snn.conversion.snn import neuron_settings

    from ann2snn.conversion.snn import USER_MODEL, user_model_error

    for path in checkpoints:
        ckpt = loaded[path]
        if ckpt["kind"] == "snn":
            if ckpt["config"].get("arch") == USER_MODEL:  # as snn_from_checkpoint says, before any work
                raise user_model_error(ckpt)
            continue
        if not specs:
            raise UserError(f"{path} is an ANN checkpoint: convert it first, or give `neurons` "
                            "(e.g. if and mbif:1+3)")
        if ckpt["config"].get("activation") == "relu" and not fold_bn and any(
                parse_threshold(t)[0] == "lambda" for t in thresholds):
            raise UserError(f"{path} is a ReLU network, which has no λ: give `threshold` max or percentile:P")
        for spec in specs:
            is_if = spec["neuron"] == "if" or (spec.get("int_bits"), spec.get("frac_bits")) == (1, 0)
            for v_init, cap in ((v, c) for v in v_inits for c in caps):
                neuron_settings(ann_config=ckpt["config"], v_init=v_init, **spec, cap=None if is_if else cap,
                                warn=lambda _msg: None)


#: test images of each dataset's test split
TEST_IMAGES = {"cifar10": 10_000, "cifar100": 10_000}


def sweep_input_shape(config: dict, folder: dict | None = None) -> tuple[int, int, int]:
    """``(C, H, W)`` of the test images a checkpoint's network is swept on: CIFAR's 32 px, or an image
    folder's ``image_size`` (``folder``'s, else the checkpoint's; :func:`ann2snn.plumbing.folder.run_settings`)."""
    from ann2snn.plumbing.folder import FOLDER, run_settings

    if config.get("dataset") == FOLDER:
        size = run_settings(config, folder)["image_size"]
        return (3, size, size)
    return (3, 32, 32)


def _probe_network(ckpt: dict, specs: list[dict], caps: list, fold_bn: bool, maxpool: str):
    """A network shaped as the sweep's most demanding model of ``ckpt``, for the memory probe: the SNN
    checkpoint's own, or the ANN converted (θ = 1 at every site; calibration is not needed for shapes)
    to the neuron and cap with the largest count K (the widest counting buffers)."""
    from ann2snn.ann.build import ann_from_checkpoint
    from ann2snn.conversion.convert import convert
    from ann2snn.conversion.neurons import resolve_cap
    from ann2snn.conversion.opcheck import SITE_TYPES
    from ann2snn.conversion.snn import EXAMPLE_SHAPE, neuron_settings, prepare_ann, snn_from_checkpoint

    if ckpt["kind"] == "snn":
        return snn_from_checkpoint(ckpt)[0]
    options = [neuron_settings(ann_config=ckpt["config"], **spec, warn=lambda _msg: None,
                               cap=None if spec["neuron"] == "if" or (spec.get("int_bits"), spec.get("frac_bits"))
                               == (1, 0) else cap) for spec in specs for cap in caps]
    widest = max(options, key=lambda o: resolve_cap(o["cap"], o["int_bits"], o["frac_bits"]))
    example = torch.zeros(EXAMPLE_SHAPE)
    prepared = prepare_ann(ann_from_checkpoint(ckpt)[0], fold_bn, example, maxpool, note=lambda _m: None)
    sites = [n for n, m in prepared.named_modules() if n and isinstance(m, SITE_TYPES)]
    return convert(prepared, example, widest["int_bits"], widest["frac_bits"], widest["v_init"],
                   thresholds={n: 1.0 for n in sites}, cap=widest["cap"],
                   maxpool="spiking" if maxpool == "spiking" else "refuse")


def plan_memory(checkpoints: list[str], loaded: dict[str, dict], specs: list[dict], caps: list, fold_bn: bool,
                maxpool: str, batch_size, subset: int | None, ops: bool, diagnostics: bool, time_chunk,
                precision: str, device: torch.device, d: Dist = Dist(), data_dir: str | None = None,
                folder: dict | None = None) -> dict:
    """Check that the sweep fits in memory at ``batch_size`` (an int), or choose the largest batch that
    does (``"auto"``: at most 500, at most the test images), before any calibration or simulation.
    The images: CIFAR's test split is held in memory (uint8); an image folder's val split is decoded by
    ``workers`` processes, each with two batches in flight (uint8).

    One probe per checkpoint (:func:`ann2snn.analysis.memory.estimate_memory`), compared with the memory
    available on ``device`` (:func:`ann2snn.plumbing.memory.available_bytes`; on the CPU shared by the
    node's torchrun processes). Returns :func:`ann2snn.analysis.memory.plan_batch`'s record.

    Raises:
        UserError: the batch does not fit (one line: the estimate, the memory available, the largest
            batch that fits, or what to drop when even 1 does not).
    """
    from ann2snn.analysis.memory import estimate_memory, plan_batch
    from ann2snn.plumbing import memory

    chunk = 1 if time_chunk == "auto" else time_chunk  # auto takes what is left (at most a quarter on CUDA)
    world = d.world

    def estimates(with_observers: bool = True):
        from ann2snn.plumbing.folder import FOLDER, VAL_SPLIT, resolve_workers, scan_split

        out = []
        for path in dict.fromkeys(checkpoints):
            cfg = loaded[path]["config"]
            shape = sweep_input_shape(cfg, folder)
            on_folder = cfg["dataset"] == FOLDER
            images = subset or (len(scan_split(data_dir, VAL_SPLIT)) if on_folder else TEST_IMAGES.get(cfg["dataset"]))
            per_process = None if images is None else -(-images // world)
            resident = 0 if on_folder or images is None else images * math.prod(shape)
            in_flight = 2 * resolve_workers((folder or {}).get("workers")) if on_folder else 0
            out.append(estimate_memory(_probe_network(loaded[path], specs, caps, fold_bn, maxpool), shape,
                                       ops=ops and with_observers, diagnostics=diagnostics and with_observers,
                                       time_chunk=chunk, precision=precision, test_images=per_process,
                                       resident_bytes=resident, batches_in_flight=in_flight, label=path,
                                       resizable=on_folder))
        return out

    found = estimates()
    available = memory.available_bytes(device)
    if available is not None and device.type == "cpu" and d.enabled:
        available //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    cap = 500
    known = [e.test_images for e in found if e.test_images is not None]
    if known:
        cap = min(cap, max(known))
    per_process = batch_size if batch_size == "auto" else -(-batch_size // world)
    plan = plan_batch(found, available, per_process, cap, without_observers=lambda: estimates(False))
    if batch_size != "auto":
        plan["batch_size"] = batch_size
    return plan


def _plan_models(checkpoints: list[str], loaded: dict[str, dict], specs: list[dict], v_inits: list[str], caps: list,
                 thresholds: list[str], calib_batches: int, fold_bn: bool, data_dir: str, download: bool,
                 skip_md5: bool, maxpool: str = "refuse", folder: dict | None = None,
                 corrections: tuple = ("none",), correct_T: int = 4, correct_images: int = 1000) -> list:
    """The models of a sweep, as ``(label, loader)`` pairs, validated before any simulation starts.

    An SNN checkpoint is one model. An ANN checkpoint gives one model per (neuron, v_init, cap,
    threshold, correction) combination, without duplicates (IF ignores the cap, and its half-threshold
    start is its half-lsb start); each threshold calibration is shared by every neuron. Every conversion
    takes ``maxpool`` (:func:`ann2snn.conversion.maxpool.apply_maxpool`); each correction other than
    ``none`` runs after it (:func:`ann2snn.conversion.snn.correct_settings`).
    """
    from ann2snn.ann.build import ann_from_checkpoint
    from ann2snn.conversion.calibrate import parse_threshold
    from ann2snn.conversion.snn import (calibrate_settings, convert_ann, correct_settings, neuron_settings,
                                        snn_from_checkpoint)

    def converted(ann, settings, ckpt, mode):
        snn = convert_ann(ann, settings)
        if mode != "none":
            settings = correct_settings(snn, ckpt["config"], settings, mode, correct_T, correct_images, data_dir,
                                        download, skip_md5, folder)
        fake = {**ckpt, "conversion": settings, "source": {"path": ckpt["path"], "sha256": None,
                                                           "epoch": ckpt.get("epoch")}}
        return snn, fake

    _check_plan(checkpoints, loaded, specs, v_inits, caps, thresholds, fold_bn)
    models = []
    for path in checkpoints:
        ckpt = loaded[path]
        if ckpt["kind"] == "snn":
            models.append((path, lambda ckpt=ckpt: snn_from_checkpoint(ckpt)))
            continue
        if not specs:
            raise UserError(f"{path} is an ANN checkpoint: convert it first, or give `neurons` "
                            "(e.g. if and mbif:1+3)")
        ann, ckpt = ann_from_checkpoint(ckpt)
        calibrated = {}  # threshold → settings carrying the calibrated θs (shared by every neuron)
        for text in thresholds:
            if parse_threshold(text)[0] == "lambda" and not fold_bn:
                if ckpt["config"].get("activation") == "relu":
                    raise UserError(f"{path} is a ReLU network, which has no λ: give `threshold` max or percentile:P")
                calibrated[text] = {}
                continue
            base = {**neuron_settings("if", ann_config=ckpt["config"]), "maxpool": maxpool}
            cal = calibrate_settings(ann, ckpt["config"], base, text, calib_batches, fold_bn, data_dir, download,
                                     skip_md5, folder=folder)
            calibrated[text] = {k: cal[k] for k in ("threshold", "fold_bn", "calib_batches", "thresholds") if k in cal}
        seen = set()
        for spec in specs:
            for v_init, cap in ((v, c) for v in v_inits for c in caps):
                is_if = spec["neuron"] == "if" or (spec.get("int_bits"), spec.get("frac_bits")) == (1, 0)
                settings = {**neuron_settings(ann_config=ckpt["config"], v_init=v_init, **spec,
                                              cap=None if is_if else cap), "maxpool": maxpool}
                key = (settings["int_bits"], settings["frac_bits"], settings["cap"],
                       "half-lsb" if settings["neuron"] == "if" and v_init == "half-threshold" else v_init)
                if key in seen:  # IF: half-threshold == half-lsb (both θ/2)
                    continue
                seen.add(key)
                for text in thresholds:
                    full = {**settings, **calibrated[text]}
                    for mode in corrections:
                        models.append((path, lambda ann=ann, s=full, c=ckpt, m=mode: converted(ann, s, c, m)))
    return models


def run_sweep(checkpoints, T="4,16,64,128", *, neurons=(), v_inits=(), caps=(), thresholds=(),
              calib_batches: int = 10, fold_bn: bool = False, data_dir: str | None = None, download: bool = False,
              skip_md5: bool = False, batch_size: int | str = 500, subset: int | None = None, ops: bool = True,
              diagnostics: bool = False, time_chunk="auto", precision: str = "float32", fuse="auto",
              channels_last: bool = False, plots: bool = False, device: str = "auto", amp: str = "none",
              out: str | None = None, progress: bool = False, echo=None, argv: list[str] | None = None,
              maxpool: str = "refuse", arch: str | None = None, weights: str | None = None,
              num_classes: int | None = None, dataset: str = "cifar10", folder: dict | None = None,
              corrections=(), correct_T: int | None = None, correct_images: int | None = None) -> dict:
    """A whole sweep from checkpoints: accuracy at every T of ``T`` in one simulation per model.

    This is what ``ann2snn sweep`` runs. Each SNN checkpoint (from ``ann2snn convert``) is one model;
    each ANN checkpoint (from ``ann2snn train-ann``) is converted in memory once per combination of
    ``neurons`` × ``v_inits`` × ``caps`` × ``thresholds`` (duplicates dropped; a calibration is
    shared by every neuron). Every checkpoint is read once and every setting is checked before the
    first simulation. The ANN column is the source ANN computed as train-ann computes its test
    accuracy, once per checkpoint (:func:`ann_reference`), so it does not move with ``precision``,
    ``channels_last``, ``batch_size``, ``time_chunk``, ``fuse``, ``amp``, ``ops`` or ``diagnostics``;
    the converted network in ANN mode in the SNN's own arithmetic is each curve's
    ``ann_acc_simulated`` (the T = 1 identity's reference; sweep.md names it where it differs).

    Args:
        checkpoints: paths of ANN or SNN checkpoints (files, or train-ann run folders).
        T: the time steps to report: ``"4,16,64,128"``, an int, or a list of ints (1 ≤ T ≤ :data:`MAX_T`).
        neurons: for ANN checkpoints: ``if``, ``mbif`` or ``mbif:M+N`` (m integer, n fractional bits).
        v_inits: initial potentials (``half-lsb`` (default), ``half-threshold``, ``zero``).
        caps: per-step ceilings of MBIF neurons: ``full`` (default), ``theta`` or a count K.
        thresholds: θ per site: ``lambda`` (default), ``max`` or ``percentile:P`` (ReLU ANNs need one).
        calib_batches: training batches of 128 for a calibrated threshold.
        fold_bn: fold each BatchNorm into the conv before it first.
        corrections: for ANN checkpoints: ``none`` (default), ``bias``, ``potential`` and/or
            ``bias+potential``, each a model of its own (:mod:`ann2snn.conversion.correct`): every T of the
            sweep is simulated with the one correction made at ``correct_T`` steps (T_cal, default 4) on
            ``correct_images`` training images (default 1,000; never held-out or test images).
        maxpool: for ANN checkpoints: ``refuse`` (default; a max-pool is an error), ``spiking`` (each
            max-pool module becomes a :class:`~ann2snn.conversion.maxpool.SpikingMaxPool`) or ``avg``
            (swapped for average pooling, which changes the network). The ANN column stays the ANN as
            trained, with its max-pool.
        arch, weights, num_classes, dataset: a network trained elsewhere, swept beside ``checkpoints``:
            ``arch`` ``torchvision:<name>``, its ``state_dict`` file ``weights``, its head's class count
            (default: the dataset's) and the ``dataset`` of its images. It is a ReLU network: give
            ``thresholds`` (e.g. ``percentile:99.9``), calibrated on the dataset's training images.
        data_dir: folder with the CIFAR files (default ``$ANN2SNN_DATA`` or ``./data``), or the image
            folder (``train/``, ``val/``) of models trained on one.
        batch_size, subset: test images per batch (``"auto"``: the largest batch that fits in memory, at
            most 500 and the test images); a seeded class-balanced subset of N test images. Before any
            calibration, the sweep checks that its batch fits in the memory available
            (:func:`plan_memory`) and refuses one that does not, naming the largest that does.
        ops, diagnostics, plots: operation counts and energy per T; per-layer statistics; PNG plots.
        time_chunk, precision, fuse, channels_last, device, amp: how the simulation runs (see
            :func:`sweep_model`).
        folder: for models trained on an image folder: ``workers``, ``skip_bad_images``, and
            ``image_size``/``resize``/``mean``/``std`` overriding the checkpoint's settings
            (:func:`ann2snn.plumbing.folder.folder_eval_batches`).
        out: folder for sweep.csv/.md/.json (and sweep_ops.csv, sweep_layers.csv, plots); None writes
            nothing. The folder is held for the run: a second run into it is refused.
        progress: progress bars. ``echo``: called with one line per finished model (e.g. ``print``),
            then with each note (``note: ...``) that sweep.md adds below its table.
        argv: the ``ann2snn sweep`` arguments, for the provenance (default: this Python call).

    Returns:
        ``{"T": [...], "rows": [...], "curves": [...], "paths": [...], "provenance": {...},
        "notes": [...], "memory": {...}}``: one row per model (accuracies in percent per T and the ANN's), the per-t
        curves as fractions with their settings, checkpoint hashes, ``ann_acc`` (the ANN column),
        ``ann_acc_simulated`` and ``ann_simulated_options`` (the ANN in the SNN's arithmetic and
        what differs from train-ann's), ``ann_train_recorded`` (train-ann's ``test_acc`` when
        these are its test images, else None) and ``above_ann`` (:func:`above_ann_note`), the
        files written, and sweep.md's notes; ``memory``: the batch size and its memory estimate
        (:func:`plan_memory`, also in sweep.json). Under torchrun only rank 0 gets rows; the other
        ranks get ``rows == []``.

    Raises:
        UserError: any bad setting or checkpoint, missing data, a sweep that cannot finish, or a batch
            that does not fit in memory.
    """
    import contextlib

    from ann2snn.conversion.calibrate import parse_threshold
    from ann2snn.conversion.maxpool import check_maxpool_mode
    from ann2snn.conversion.snn import parse_neuron_spec
    from ann2snn.plumbing.checkpoint import check_output_dir, file_sha256, load_checkpoint
    from ann2snn.plumbing.data import default_data_dir
    from ann2snn.plumbing.device import resolve_device
    from ann2snn.plumbing.distributed import device_for, setup
    from ann2snn.plumbing.outputs import claim_output
    from ann2snn.plumbing.provenance import provenance

    from ann2snn.plumbing import fuse as fuse_mod
    from ann2snn.plumbing.device import check_amp

    T_list = _as_T_list(T)
    if isinstance(checkpoints, (str, os.PathLike)):
        checkpoints = [checkpoints]
    checkpoints = [os.fspath(p) for p in checkpoints]
    if weights is not None:
        weights = os.fspath(weights)
        if arch is None:
            raise UserError("`weights` needs `arch` torchvision:<name>: the network the file's state_dict belongs to")
        if weights in checkpoints:
            raise UserError(f"{weights} is given both as a checkpoint and as `weights`")
    elif arch is not None or num_classes is not None:
        raise UserError("`arch` and `num_classes` describe a `weights` file: give `weights` too")
    if not checkpoints and weights is None:
        raise UserError("give at least one checkpoint in `checkpoints` (or `arch` with `weights`)")
    if out is not None:
        check_output_dir(out, what="`out`")
    # provenance of the code as it starts (a long sweep must not record a commit made while it ran)
    command = None if argv is not None else f"python: ann2snn.run_sweep({checkpoints!r}, T={T_list!r}, ...)"
    prov = provenance(argv, command=command)
    check_amp(amp)
    fuse_mod.resolve(fuse)
    precision_dtype(precision, amp)
    time_chunk = parse_time_chunk(time_chunk)
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise UserError(f"`subset` must be a number of test images >= 1 (leave it out for all), got {subset!r}")
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UserError(f"`batch_size` must be >= 1 or 'auto', got {batch_size!r}")
    if isinstance(calib_batches, bool) or not isinstance(calib_batches, int) or calib_batches < 1:
        raise UserError(f"`calib_batches` must be a whole number >= 1, got {calib_batches!r}")
    if time_chunk != "auto" and time_chunk > 1 and (ops or diagnostics or plots):
        raise UserError("`time_chunk` > 1 runs without per-step observers: switch off `ops` and drop "
                        "`diagnostics`/`plots`")
    specs = [parse_neuron_spec(s) for s in ([neurons] if isinstance(neurons, str) else neurons)]
    check_maxpool_mode(maxpool)
    from ann2snn.conversion.correct import (DEFAULT_IMAGES, DEFAULT_T_CAL, check_correct_mode,
                                            check_correct_options)

    given = {"v_inits": v_inits, "caps": caps, "thresholds": thresholds, "corrections": corrections}
    corrections = tuple(dict.fromkeys([corrections] if isinstance(corrections, str) else corrections)) or ("none",)
    for mode in corrections:
        check_correct_mode(mode)
    if (correct_T is not None or correct_images is not None) and set(corrections) == {"none"}:
        raise UserError("`correct_T` and `correct_images` set up a correction: give `corrections` too (bias, "
                        "potential or bias+potential)")
    correct_T = DEFAULT_T_CAL if correct_T is None else correct_T
    correct_images = DEFAULT_IMAGES if correct_images is None else correct_images
    check_correct_options(correct_T, correct_images)
    v_inits = list(dict.fromkeys([v_inits] if isinstance(v_inits, str) else v_inits)) or ["half-lsb"]
    caps = list(dict.fromkeys([caps] if isinstance(caps, (str, int)) else caps)) or ["full"]
    thresholds = list(dict.fromkeys([thresholds] if isinstance(thresholds, str) else thresholds)) or ["lambda"]
    for text in thresholds:
        parse_threshold(text)
    if any(c != "full" for c in caps) and specs and all(s["neuron"] == "if" for s in specs):
        raise UserError("an IF neuron already sends at most θ per step (K = 1): drop `caps`, or add an mbif neuron")
    data_dir = default_data_dir() if data_dir is None else data_dir
    d = setup(device)
    dev = device_for(d, resolve_device(device))
    if d.enabled and (ops or diagnostics or plots):
        raise UserError("a distributed sweep (torchrun) counts accuracy only: switch off `ops` and drop "
                        "`diagnostics`/`plots` (run those in one process)")
    if d.enabled and batch_size == "auto":
        raise UserError("`batch_size` auto sizes one process's batch from its own memory: give a number under torchrun")
    # the output is claimed first: an unwritable or busy `out` is refused before any checkpoint is read
    with claim_output(out, "dir", what="`out`") if out is not None else contextlib.nullcontext():
        loaded, hashes = {}, {}
        if weights is not None:  # a network trained elsewhere: an ANN checkpoint made in memory
            from ann2snn.ann.build import weights_checkpoint

            from ann2snn.plumbing.folder import folder_extra_config

            loaded[weights] = weights_checkpoint(arch, weights, dataset, num_classes,
                                                 folder_extra_config(dataset, data_dir, folder))
            hashes[weights] = loaded[weights]["config"]["weights_sha256"]
            checkpoints = checkpoints + [weights]
        for path in checkpoints:
            if path not in loaded:
                loaded[path] = load_checkpoint(path)
                hashes[path] = file_sha256(loaded[path]["path"])  # the file as read, not as it may be later
        in_memory = specs or any(given.values()) or fold_bn or maxpool != "refuse"
        if in_memory and all(c["kind"] == "snn" for c in loaded.values()):
            raise UserError("`neurons`, `v_inits`, `caps`, `thresholds`, `fold_bn`, `maxpool` and `corrections` convert "
                            "ANN checkpoints in memory, but every `checkpoints` is an SNN checkpoint; drop them")
        from ann2snn.plumbing.folder import TRAIN_SPLIT, VAL_SPLIT, check_folder_run

        calibrates = (fold_bn or any(parse_threshold(t)[0] != "lambda" for t in thresholds)
                      or any(mode != "none" for mode in corrections))
        for c in loaded.values():  # image folders: options, settings and classes before any calibration
            check_folder_run(c["config"], data_dir, [VAL_SPLIT] + ([TRAIN_SPLIT] if c["kind"] == "ann" and calibrates
                                                                   else []), folder)
        _check_plan(checkpoints, loaded, specs, v_inits, caps, thresholds, fold_bn)
        memory = plan_memory(checkpoints, loaded, specs, caps, fold_bn, maxpool, batch_size, subset, ops,
                             diagnostics or plots, time_chunk, precision, dev, d, data_dir, folder)
        if batch_size == "auto" and d.is_main and echo is not None:
            echo(f"batch size auto: {memory['batch_size']} images per batch ({_memory_line(memory)})")
        batch_size = memory["batch_size"]
        models = _plan_models(checkpoints, loaded, specs, v_inits, caps, thresholds, calib_batches, fold_bn,
                              data_dir, download, skip_md5, maxpool, folder, corrections, correct_T, correct_images)
        rows, curves, data_cache, references = [], [], {}, {}
        for path, load in models:
            snn, ckpt = load()
            cfg, conv = ckpt["config"], ckpt["conversion"]
            data_key = (cfg["dataset"], *(json.dumps(cfg.get(k)) for k in ("classes", "image_size", "resize", "mean",
                                                                              "std")))
            if data_key not in data_cache:
                data_cache[data_key] = load_test_batches(cfg, data_dir, batch_size, subset, download, skip_md5,
                                                         dev, d, folder)
            batches = data_cache[data_key]
            if path not in references:  # the ANN column: one evaluation per checkpoint, as train-ann's
                references[path] = ann_reference(loaded[path], snn, batches, dev, d, progress and d.is_main)
            result = sweep_model(snn, batches, max(T_list), progress=progress and d.is_main,
                                 T_list=T_list, ops=ops, diagnostics=diagnostics or plots, time_chunk=time_chunk,
                                 device=dev, amp=amp, d=d, precision=precision, fuse=fuse,
                                 channels_last=channels_last, input_shape=sweep_input_shape(cfg, folder))
            result["ann_acc"] = references[path]
            epochs = ckpt["source"].get("epoch") if ckpt["kind"] == "snn" else ckpt.get("epoch")
            row = build_row(cfg, conv, result, T_list, {"epochs": epochs})
            rows.append(row)
            sha = hashes[path]
            options = simulated_options(cfg, conv, ckpt["kind"], precision, result["channels_last"], dev,
                                        batches.batch_size, result["samples"] / d.world, amp)
            curves.append({**row, **{k: result[k] for k in ("ops", "layers") if k in result},
                           "curve": result["curve"], "ann_acc": result["ann_acc"],
                           "ann_acc_simulated": result["ann_acc_simulated"], "ann_simulated_options": options,
                           "ann_train_recorded": train_ann_recorded(loaded[path], subset), "samples": result["samples"],
                           "snn_seconds": round(result["snn_seconds"], 2), "time_chunk": result["time_chunk"],
                           "precision": precision, "fused": result["fused"],
                           "channels_last": result["channels_last"],
                           "device": str(dev), "amp": amp, "processes": d.world, "checkpoint": ckpt["path"],
                           "checkpoint_kind": ckpt["kind"], "checkpoint_sha256": sha,
                           "source_ann_sha256": ckpt["source"]["sha256"] if ckpt["kind"] == "snn" else sha,
                           "train_config": cfg, "conversion": conv})
            if d.is_main and echo is not None:
                corrected = f", {row['correction']}" if row["correction"] != "none" else ""
                act = row["activation"] if row["L_or_bits"] == "-" else f"{row['activation']} {row['L_or_bits']}"
                echo(f"{row['network']} {act} → {row['neuron']} ({row['v_init']}"
                     f"{corrected}): "
                     + ", ".join(f"{k} {row[k]}" for k in row if k.startswith("T=")) + f"; ANN {row['ANN']}")
        if not d.is_main:
            return {"T": T_list, "rows": [], "curves": [], "paths": [], "provenance": prov, "notes": [],
                    "memory": memory}
        curves = [{**c, "above_ann": above_ann_note(c, T_list)} for c in curves]
        notes = sweep_notes(curves, T_list)
        if echo is not None:
            for note in notes:
                echo(f"note: {note}")
        paths = write_tables(rows, curves, prov, out, T_list, plots=plots, memory=memory) if out is not None else []
    return {"T": T_list, "rows": rows, "curves": curves, "paths": paths, "provenance": prov,
            "notes": [ANN_COLUMN_NOTE, *notes], "memory": memory}
