"""``ann2snn plan``: search per-site bits and T on the held-out split, and write the plan with its
Pareto front (plan.json, plan_pareto.csv, plan_pareto.png). The search is
:func:`ann2snn.analysis.plan_search.make_plan`."""

from __future__ import annotations

import json
import os

import pandas as pd

from ann2snn.plumbing.errors import UserError


def _paths(out: str) -> tuple[str, str]:
    stem = out[:-5] if out.endswith(".json") else out
    return f"{stem}_pareto.csv", f"{stem}_pareto.png"


def run_plan(checkpoint: str, max_drop: float = 0.5, T_max: int = 8, out: str | None = None, *,
             threshold: str | None = None, calib_batches: int = 10, v_init: str = "half-lsb",
             correct: str = "none", correct_T: int = 4, correct_images: int = 1000, holdout_images: int | None = None,
             sens_images: int = 256, maxpool: str = "refuse", data_dir: str | None = None, download: bool = False,
             skip_md5: bool = False, plots: bool = True, echo=None, argv: list[str] | None = None) -> dict:
    """Make a plan for the ANN checkpoint ``checkpoint`` and write it (see :mod:`ann2snn.conversion.plan`).

    Args:
        checkpoint: a train-ann checkpoint trained with ``holdout`` N (its held-out images are read;
            the test set never is).
        max_drop: the accuracy drop allowed against the ANN on the held-out images, in points (>= 0).
        T_max: the largest T searched (1 ≤ T_max ≤ the sweep's limit).
        out: the plan file (JSON); the Pareto front goes beside it as ``<stem>_pareto.csv`` and, with
            ``plots``, ``<stem>_pareto.png``. None writes nothing.
        threshold: θ per site: ``lambda`` (QCFS/matched; the default for them) or ``max`` /
            ``percentile:P`` from training images (the default for ReLU networks: percentile:99.9).
        calib_batches, v_init, maxpool: as for ``convert``.
        correct, correct_T, correct_images: a correction made again after every change of bits
            (:mod:`ann2snn.conversion.correct`); ``none`` by default.
        holdout_images: a seeded class-balanced part of the held-out split (default: all of it).
        sens_images: held-out images for the sensitivity simulations.

    Returns:
        The plan dict written to ``out`` (``schema``, ``T``, ``site_bits``, accuracies in percent, the
        energy in µJ per image, ``pareto``, ``points``, the search's cost, the conversion settings and
        the source ANN's path and SHA-256).

    Raises:
        UserError: a bad setting, an ANN without a held-out split, an SNN checkpoint, missing data.
    """
    from ann2snn.ann.build import load_ann
    from ann2snn.conversion.correct import check_correct_mode, check_correct_options
    from ann2snn.analysis.plan_search import make_plan
    from ann2snn.conversion.plan import PLAN_SCHEMA, bits_summary, site_options
    from ann2snn.conversion.snn import calibrate_settings, convert_ann, neuron_settings
    from ann2snn.pipelines.sweep import MAX_T
    from ann2snn.plumbing.checkpoint import atomic_write_text, check_output_file, file_sha256, load_checkpoint
    from ann2snn.plumbing.data import default_data_dir
    from ann2snn.plumbing.provenance import provenance
    from ann2snn.plumbing.splits import first_images, holdout_batches, train_eval_batches

    if not (isinstance(max_drop, (int, float)) and not isinstance(max_drop, bool) and max_drop >= 0):
        raise UserError(f"`max_drop` must be a number of points >= 0, got {max_drop!r}")
    if isinstance(T_max, bool) or not isinstance(T_max, int) or not 1 <= T_max <= MAX_T:
        raise UserError(f"`T_max` must be a whole number from 1 to {MAX_T:,} (the sweep's limit), got {T_max!r}")
    check_correct_mode(correct)
    check_correct_options(correct_T, correct_images)
    def bad(value) -> bool:
        return value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1)

    if bad(holdout_images):
        raise UserError(f"`holdout_images` must be a whole number of images >= 1, got {holdout_images!r}")
    if bad(sens_images):
        raise UserError(f"`sens_images` must be a whole number of images >= 1, got {sens_images!r}")
    if out is not None:
        check_output_file(out)
    prov = provenance(argv, command=None if argv is not None else f"python: ann2snn.run_plan({checkpoint!r}, ...)")
    data_dir = default_data_dir() if data_dir is None else data_dir
    ckpt = load_checkpoint(checkpoint)
    if ckpt["kind"] != "ann":
        raise UserError(f"{ckpt['path']} is an SNN checkpoint: plan from the ANN checkpoint it was converted from")
    config = ckpt["config"]
    if not config.get("holdout"):
        raise UserError(f"{ckpt['path']} was trained on every training image, so there is no held-out split to plan "
                        "on: train it with `holdout` N (e.g. 5000)")
    relu = config.get("activation") == "relu"
    threshold = threshold or ("percentile:99.9" if relu else "lambda")
    holdout = list(holdout_batches(config, data_dir, download, skip_md5, subset=holdout_images))
    ann, ckpt = load_ann(checkpoint)
    richest = site_options()[0]
    settings = {**neuron_settings("mbif", config, richest["int_bits"], richest["frac_bits"], v_init,
                                  warn=lambda _m: None), "maxpool": maxpool}
    settings = calibrate_settings(ann, config, settings, threshold, calib_batches, False, data_dir, download, skip_md5)
    snn = convert_ann(ann, settings)
    prepare = None
    if correct != "none":
        from ann2snn.conversion.correct import correct_snn
        from ann2snn.conversion.neurons import MultiBitIF

        images = first_images(train_eval_batches(config, data_dir, download, skip_md5), correct_images)

        def correct_again(net):  # after each change of bits: the corrections of the new bits
            for m in net.modules():
                if isinstance(m, MultiBitIF):
                    m.bias_current = m.v_offset = None
            correct_snn(net, images, correct, correct_T)

        prepare = correct_again

    result = make_plan(snn, holdout, max_drop, T_max, sens_images, input_shape=tuple(holdout[0][0].shape[1:]),
                       prepare=prepare, progress=echo)
    plan = {"schema": PLAN_SCHEMA, "max_drop": max_drop, "T_max": T_max, **result,
            "conversion": {"threshold": threshold, "calib_batches": calib_batches, "v_init": v_init,
                           "maxpool": maxpool, "correct": correct, "correct_T": correct_T,
                           "correct_images": correct_images},
            "search": "greedy by measured sensitivity (docs/design.md §3.12)",
            "source": {"path": ckpt["path"], "sha256": file_sha256(ckpt["path"]), "arch": config["arch"],
                       "dataset": config["dataset"], "holdout": config["holdout"]},
            "provenance": prov}
    if out is not None:
        csv, png = _paths(out)
        front = pd.DataFrame([{"T": p["T"], "accuracy": round(p["accuracy"], 2), "energy_uj": p["energy_uj"],
                               "bits": bits_summary(p["site_bits"])} for p in result["pareto"]])
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        atomic_write_text(csv, front.to_csv(index=False))
        if plots:
            from ann2snn.analysis.plots import plot_plan_pareto

            plot_plan_pareto(result, png, max_drop)
        atomic_write_text(out, json.dumps(plan, indent=1))
    return plan


def load_plan(path: str) -> dict:
    """Read a plan file (JSON).

    Raises:
        UserError: the file is missing or not a plan.
    """
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except FileNotFoundError:
        raise UserError(f"no plan file at {path}: make one with `ann2snn plan`") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a plan file ({type(e).__name__}); make one with `ann2snn plan`") from None
    if not isinstance(plan, dict):
        raise UserError(f"{path} is not a plan file; make one with `ann2snn plan`")
    return plan
