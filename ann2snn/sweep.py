"""Accuracy against time steps T, in one simulation per model, written as Table-9-style tables.

For every converted model, one simulation of ``max(T)`` steps gives the accuracy at every
``t <= max(T)`` (the network is causal; DESIGN §3). The ANN column comes from the same network with
its neurons switched back to their source activations (ANN mode), which equals the ANN. Results go
to ``sweep.csv``, ``sweep.md`` and ``sweep.json`` (the full per-t curves plus provenance).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import pandas as pd
import torch

from .checkpoint import atomic_write_text
from .data import CifarBatches, balanced_subset, dataset_info, load_split
from .errors import UserError
from .simulate import evaluate_ann, set_mode, simulate_snn


def parse_T(text: str) -> list[int]:
    """Parse ``"4,16,64,128"`` into sorted unique positive ints.

    Raises:
        UserError: empty items, non-integers, or values < 1.
    """
    items = str(text).split(",")
    values = []
    for item in items:
        item = item.strip()
        if not item.lstrip("+").isdigit() or int(item) < 1:
            raise UserError(f"bad --T list {text!r}: give positive whole numbers separated by commas, e.g. 4,16,64,128")
        values.append(int(item))
    return sorted(set(values))


def test_batches(config: dict, data_dir: str, batch_size: int, subset: int | None, download: bool,
                 skip_md5: bool) -> CifarBatches:
    """The (optionally class-balanced subset of the) test split of ``config['dataset']``."""
    info = dataset_info(config["dataset"])
    x, y = load_split(config["dataset"], data_dir, False, download, skip_md5)
    if subset:
        idx = balanced_subset(y, subset, 0, info.num_classes)
        x, y = x[idx], y[idx]
    return CifarBatches(x, y, info, batch_size)


def describe_activation(config: dict) -> tuple[str, str]:
    """('qcfs', 'L=4') or ('matched', '1+3')."""
    if config.get("activation", "qcfs") == "matched":
        return "matched", f"{config['int_bits']}+{config['frac_bits']}"
    if config.get("activation") == "relu":
        return "relu", "-"
    return "qcfs", f"L={config.get('levels', 4)}"


def describe_neuron(conv: dict) -> str:
    return "IF" if (conv["int_bits"], conv["frac_bits"]) == (1, 0) else f"MBIF {conv['int_bits']}+{conv['frac_bits']}"


def sweep_model(snn, batches, T_max: int, progress: bool = False) -> dict:
    """Simulate once for ``T_max`` steps and evaluate ANN mode; returns accuracies (fractions)."""
    set_mode(snn, "ann")
    ann_correct, total = evaluate_ann(snn, batches, progress)
    set_mode(snn, "snn")
    t0 = time.time()
    correct, total_snn = simulate_snn(snn, batches, T_max, progress)
    return {"ann_acc": ann_correct / total, "curve": (correct.double() / total_snn).tolist(),
            "samples": total_snn, "snn_seconds": time.time() - t0}


def build_row(config: dict, conv: dict, result: dict, T_list: list[int], extra: dict) -> dict:
    act, act_param = describe_activation(config)
    row = {
        "dataset": config["dataset"], "network": config["arch"], "width": config.get("width", 1.0),
        "epochs": extra.get("epochs"), "activation": act, "L_or_bits": act_param,
        "neuron": describe_neuron(conv), "v_init": conv["v_init"], "threshold": conv.get("threshold", "lambda"),
    }
    for T in T_list:
        row[f"T={T}"] = round(100 * result["curve"][T - 1], 2)
    row["ANN"] = round(100 * result["ann_acc"], 2)
    return row


def provenance(argv: list[str] | None = None) -> dict:
    """Command line, git commit, versions and time of this run."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", None
    import torchvision

    from . import __version__
    return {
        "command": " ".join(["ann2snn"] + [str(a) for a in (argv if argv is not None else sys.argv[1:])]),
        "git_commit": commit, "git_dirty": dirty, "ann2snn": __version__, "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "platform": platform.platform(),
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_tables(rows: list[dict], curves: list[dict], prov: dict, out_dir: str, T_list: list[int]) -> list[str]:
    """Write sweep.csv, sweep.md and sweep.json into ``out_dir`` (each atomically); returns paths."""
    df = pd.DataFrame(rows)
    notes = sorted({f"{r['dataset']} {r['network']}: width {r['width']}, {r['epochs']} epochs, "
                    f"{r['activation']} {r['L_or_bits']}" for r in rows})
    samples = sorted({c["samples"] for c in curves})
    md = ("Top-1 accuracy (%) of the converted SNN at each T, and of the ANN.\n\n" + df.to_markdown(index=False)
          + "\n\n" + "\n".join(f"- {n}" for n in notes)
          + f"\n- test samples: {', '.join(map(str, samples))}; reset by subtraction; direct encoding"
          + f"\n- command: `{prov['command']}` (commit {prov['git_commit'][:12]})\n")
    paths = [os.path.join(out_dir, f"sweep.{ext}") for ext in ("csv", "md", "json")]
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(paths[0], df.to_csv(index=False))
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[2], json.dumps({"T": T_list, "provenance": prov, "rows": curves}, indent=1) + "\n")
    return paths
