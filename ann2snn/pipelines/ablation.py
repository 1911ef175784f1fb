"""The seed's Table 3 ablation for direct training: one train-snn run per (row, seed), one table.

Rows (the seed's Table 3, ResNet-20), each a neuron written ``NAME[:M+N]`` (:mod:`ann2snn.ann.spec`)
with an optional ``+ic``: ``lif`` (LIF = MBLIF 1+0), ``lif+ic`` (LIF with the interlaminar
connection), ``mblif:2+0``, ``mblif:1+1``, ``mblif:2+1`` (multi-bit spikes, no IC) and ``mblif:2+1+ic``
(the seed's full method). The names without the colon (``mblif2+1``, ...) are read too
(:data:`OLD_ROW_NAMES`). Every row shares the same settings (width, epochs, T, subset, ...); only the
neuron's bits and ``ic`` change, and each row is trained once per seed.

Each run is an ordinary :func:`ann2snn.pipelines.train_snn.train_snn` run folder,
``<out>/<row without the colon>-seed<S>/`` (``mblif2+1-seed0``: no colon in file names), so
an ablation that was cut off continues where it stopped when the same command is run
again: finished runs are skipped, a partial run resumes from its last epoch, and a run folder whose
stored settings differ from the requested ones is refused (it belongs to another ablation).

The table (``ablation.csv`` / ``.md`` / ``.json`` in ``<out>``) has one line per row: the test
accuracy (%) at t = T of the last epoch of each seed, their mean and their sample standard deviation
(ddof = 1; 0 with one seed), and the seed's published CIFAR-10 / CIFAR-100 values beside them for
reference (taken at the seed's full scale, not comparable in level to a reduced run).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from ann2snn.plumbing.checkpoint import atomic_write_text
from ann2snn.plumbing.errors import UserError

#: the seed's Table 3 rows: train-snn settings that differ between rows
ROWS = {
    "lif": {"neuron": "lif", "int_bits": 1, "frac_bits": 0, "ic": False},
    "lif+ic": {"neuron": "lif", "int_bits": 1, "frac_bits": 0, "ic": True},
    "mblif:2+0": {"neuron": "mblif", "int_bits": 2, "frac_bits": 0, "ic": False},
    "mblif:1+1": {"neuron": "mblif", "int_bits": 1, "frac_bits": 1, "ic": False},
    "mblif:2+1": {"neuron": "mblif", "int_bits": 2, "frac_bits": 1, "ic": False},
    "mblif:2+1+ic": {"neuron": "mblif", "int_bits": 2, "frac_bits": 1, "ic": True},
}
#: the rows' earlier names (before the neuron grammar NAME[:M+N]), still read by :func:`parse_rows`
OLD_ROW_NAMES = {row.replace(":", ""): row for row in ROWS if ":" in row}
#: the seed's Table 3 (ResNet-20, T = 4, full scale): top-1 % on CIFAR-10 / CIFAR-100 (docs/design.md §4)
SEED_TABLE3 = {
    "lif": (93.21, 72.71), "lif+ic": (93.69, 73.33), "mblif:2+0": (94.34, 75.30),
    "mblif:1+1": (94.44, 74.48), "mblif:2+1": (94.61, 75.65), "mblif:2+1+ic": (94.93, 76.51),
}
#: settings the rows set themselves (an ablation's common settings may not contain them)
ROW_KEYS = {"neuron", "int_bits", "frac_bits", "ic"}
TABLE_NAME = "ablation"


def parse_rows(text: str) -> list[str]:
    """``"all"`` or a comma-separated list of :data:`ROWS` names (or :data:`OLD_ROW_NAMES`), in the
    order given; returns the :data:`ROWS` names.

    Raises:
        UserError: an unknown or repeated row name, or an empty list.
    """
    if text.strip() == "all":
        return list(ROWS)
    given = [r.strip() for r in text.split(",")]
    bad = [r for r in given if r not in ROWS and r not in OLD_ROW_NAMES]
    if bad:
        raise UserError(f"unknown ablation row {bad[0]!r} in `rows`: use 'all' or a comma list of {', '.join(ROWS)}")
    rows = [OLD_ROW_NAMES.get(r, r) for r in given]
    if len(set(rows)) != len(rows):
        raise UserError(f"`rows` names a row twice: {text!r}")
    return rows


def parse_seeds(text: str) -> list[int]:
    """A comma-separated list of distinct whole-number seeds, e.g. ``"0,1"``.

    Raises:
        UserError: not whole numbers, negative, repeated, or empty.
    """
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"`seeds` must be distinct whole numbers >= 0 separated by commas (e.g. 0,1), got {text!r}")
    return seeds


def run_dir(out_dir: str, row: str, seed: int) -> str:
    """The run folder of one (row, seed): ``<out_dir>/<row without its colon>-seed<seed>``
    (``mblif:2+1`` → ``mblif2+1-seed0``; the folders of ablations run before the grammar)."""
    return os.path.join(out_dir, f"{row.replace(':', '')}-seed{seed}")


def run_configs(common: dict, rows: list[str], seeds: list[int]) -> list[tuple[str, int, dict]]:
    """``(row, seed, resolved train-snn config)`` for every run, all checked before anything runs.

    Raises:
        UserError: ``common`` sets a row's own key (neuron, bits, ic, seed), or any setting is bad.
    """
    from ann2snn.pipelines.train_snn import resolve_config

    clash = sorted((ROW_KEYS | {"seed"}) & {k for k, v in common.items() if v is not None})
    if clash:
        raise UserError(f"ablate sets {', '.join(clash)} per row and seed itself; leave "
                        f"{'it' if len(clash) == 1 else 'them'} out")
    rows = parse_rows(",".join(rows)) if rows else []  # ROWS names (earlier names read too), each once
    return [(row, seed, resolve_config({**common, **ROWS[row], "seed": seed})) for row in rows for seed in seeds]


def run_ablation(common: dict, rows: list[str], seeds: list[int], out_dir: str, progress: bool = True,
                 stop_after: int | None = None) -> list[str]:
    """Train every (row, seed) run that is not finished, then write the table; returns its paths.

    Args:
        common: train-snn settings shared by all rows (no neuron, bits, ic or seed).
        rows: names from :data:`ROWS`.
        seeds: one run per row and seed.
        out_dir: holds one run folder per (row, seed) and the ``ablation.*`` table.
        stop_after: stop each run after this many epochs in total (tests; the table is then partial).

    Raises:
        UserError: bad settings, or a run folder that holds a run with other settings.
        TrainingInterrupted: SIGINT / SIGTERM stopped a run after its checkpoint; running again continues.
    """
    from ann2snn.plumbing.checkpoint import check_output_dir
    from ann2snn.pipelines.train_snn import train_snn

    from ann2snn.plumbing.distributed import setup
    from ann2snn.plumbing.interrupt import TrainingInterrupted

    runs = run_configs(common, rows, seeds)
    check_output_dir(out_dir, "`out_dir`")
    check_existing_runs(out_dir, runs)  # before any training: never mix two ablations in one folder
    d = setup(runs[0][2]["device"])
    for row, seed, config in runs:
        folder = run_dir(out_dir, row, seed)
        resume = os.path.isfile(os.path.join(folder, "checkpoint.pt"))
        if d.is_main:
            print(f"== ablation row {row}, seed {seed}: {folder}{' (resuming)' if resume else ''}", flush=True)
        try:
            train_snn(config, folder, resume=resume, explicit=set(config) - RESUME_FREE_KEYS, stop_after=stop_after,
                      progress=progress)
        except TrainingInterrupted as e:  # an ablation resumes by running again
            raise e.with_advice("run the same command again to continue") from None
    return write_ablation_table(out_dir, runs) if d.is_main else []


#: settings that may differ from an existing run folder's (where the data lives, where it computes, and
#: whether the neuron step is fused: the same spikes and gradients either way; a resumed run keeps its own)
RESUME_FREE_KEYS = {"data_dir", "download", "skip_md5", "device", "fuse"}


def check_existing_runs(out_dir: str, runs: list[tuple[str, int, dict]]) -> None:
    """Refuse an ``out_dir`` whose existing run folders were trained with other settings.

    Raises:
        UserError: naming the first folder and setting that differ.
    """
    from ann2snn.pipelines.train_snn import load_snn_checkpoint, resolve_config

    for row, seed, config in runs:
        folder = run_dir(out_dir, row, seed)
        if not os.path.isfile(os.path.join(folder, "checkpoint.pt")):
            continue
        stored = resolve_config(load_snn_checkpoint(folder)["config"])
        for key in sorted(set(config) - RESUME_FREE_KEYS):
            if stored.get(key) != config[key]:
                raise UserError(f"{out_dir} holds an ablation run ({folder}) with `{key}` = "
                                f"{stored.get(key)!r}, not {config[key]!r}; re-run it with its own settings, "
                                "or choose another `out_dir`")


def summarize(out_dir: str, runs: list[tuple[str, int, dict]]) -> tuple[pd.DataFrame, list[dict]]:
    """The table's rows (mean ± std over seeds) and per-run details, from the runs' checkpoints.

    A run that has not finished all its epochs is listed in the details and left out of the means.
    """
    from ann2snn.direct.mblif import describe_mblif
    from ann2snn.pipelines.train_snn import load_snn_checkpoint

    details, by_row = [], {}
    for row, seed, config in runs:
        ckpt = load_snn_checkpoint(run_dir(out_dir, row, seed))
        last = ckpt["metrics"][-1]
        done = ckpt["epoch"] >= ckpt["config"]["epochs"]
        acc = 100 * last["test_acc"]
        details.append({"row": row, "seed": seed, "epochs_done": ckpt["epoch"], "complete": done,
                        "test_acc_at_T": acc, "curve": [100 * last[f"test_acc_t{t}"] for t in range(1, config["T"] + 1)],
                        "train_acc": 100 * last["train_acc"], "config": ckpt["config"]})
        if done:
            by_row.setdefault(row, []).append((seed, acc))
    table = []
    for row in dict.fromkeys(r for r, _, _ in runs):
        cfg = ROWS[row]
        accs = [a for _, a in by_row.get(row, [])]
        mean = float(np.mean(accs)) if accs else float("nan")
        std = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0 if accs else float("nan")
        table.append({
            "row": row, "neuron": describe_mblif(cfg["int_bits"], cfg["frac_bits"]), "ic": cfg["ic"],
            "seeds": len(accs), "acc_mean": round(mean, 2), "acc_std": round(std, 2),
            "acc": f"{mean:.2f} ± {std:.2f}" if accs else "not run",
            "per_seed": " / ".join(f"{a:.2f}" for _, a in by_row.get(row, [])),
            "seed_paper_c10": SEED_TABLE3[row][0], "seed_paper_c100": SEED_TABLE3[row][1],
        })
    return pd.DataFrame(table), details


def write_ablation_table(out_dir: str, runs: list[tuple[str, int, dict]]) -> list[str]:
    """Write ``ablation.csv``, ``ablation.md`` and ``ablation.json`` (atomically) from the run folders."""
    from ann2snn.plumbing.provenance import provenance

    df, details = summarize(out_dir, runs)
    c = runs[0][2]
    settings = (f"{c['arch']} width {c['width']:g}, {c['dataset']}, T = {c['T']}, tau = {c['tau']:g}, "
                f"V_th = {c['v_th']:g}, reset {c['reset']}, {c['epochs']} epochs, batch {c['batch_size']}, "
                f"lr {c['lr']:g}, weight decay {c['weight_decay']:g}, train subset {c['subset'] or 'all'}, "
                f"test subset {c['test_subset'] or 'all'}, augment {c['augment']}")
    partial = [f"{d['row']} seed {d['seed']} ({d['epochs_done']}/{d['config']['epochs']} epochs)"
               for d in details if not d["complete"]]
    prov = provenance()
    md = ("Direct-training ablation (the seed's Table 3 rows): test top-1 accuracy (%) at t = T after the last "
          "epoch, mean ± sample std over seeds.\n\n" + df.to_markdown(index=False)
          + f"\n\n- settings: {settings}"
          + "\n- seed_paper_*: the seed's Table 3 at full scale (ResNet-20, 100 epochs, full data), for the "
            "ordering only; a reduced run is not comparable in level"
          + (f"\n- NOT FINISHED (left out of the means): {'; '.join(partial)}" if partial else "")
          + f"\n- command: `{prov['command']}` (commit {prov['git_commit'][:12]})\n")
    paths = [os.path.join(out_dir, f"{TABLE_NAME}.{ext}") for ext in ("csv", "md", "json")]
    atomic_write_text(paths[0], df.to_csv(index=False))
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[2], json.dumps({"provenance": prov, "settings": settings, "table": df.to_dict("records"),
                                            "runs": details}, indent=1) + "\n")
    return paths
