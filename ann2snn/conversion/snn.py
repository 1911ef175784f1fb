"""Converted-SNN checkpoints: choose neuron settings, save, and load back strictly."""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from ann2snn.ann.build import build_ann, load_ann
from ann2snn.plumbing.checkpoint import FORMAT, file_sha256, load_checkpoint, load_state_strict, save_checkpoint
from ann2snn.conversion.convert import convert
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.neurons import V_INIT_MODES, MultiBitIF, resolve_cap
from ann2snn.ann.quantizer import check_bits, max_count
from ann2snn.conversion.simulate import neurons_of

EXAMPLE_SHAPE = (1, 3, 32, 32)


def neuron_settings(neuron: str, ann_config: dict, int_bits: int | None = None, frac_bits: int | None = None,
                    v_init: str = "half-lsb", warn=None, cap=None) -> dict:
    """Resolve ``--neuron if|mbif``, optional bits and the per-step ceiling against the source ANN.

    IF is MBIF(1, 0). ``mbif`` defaults to 1+3 (the seed's), or to the ANN's own bits when the ANN
    uses the matched activation. Converting a matched ANN to other bits, or to IF, is allowed with
    one warning line: the T = 1 identity then no longer holds. ``cap`` (``full``, ``theta`` or a
    count K, :func:`ann2snn.conversion.neurons.resolve_cap`) is stored as ``"cap": K`` only when it binds
    (K < 2^(m+n) − 1); otherwise ``"cap"`` is ``None``.

    Raises:
        UserError: unknown neuron or v_init, bits or a cap given with ``if``, bits or cap out of range.
    """
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    if v_init not in V_INIT_MODES:
        raise UserError(f"unknown `v_init` {v_init!r}: use one of {', '.join(V_INIT_MODES)}")
    matched = ann_config.get("activation") == "matched"
    if neuron == "if":
        if (int_bits not in (None, 1)) or (frac_bits not in (None, 0)):
            raise UserError("`neuron` if is MBIF(1,0): drop `int_bits`/`frac_bits`, or use `neuron` mbif")
        if cap not in (None, "full"):
            raise UserError("`neuron` if already sends at most θ per step (K = 1): drop `cap`, or use `neuron` mbif")
        m, n = 1, 0
    elif neuron == "mbif":
        default = (ann_config["int_bits"], ann_config["frac_bits"]) if matched else (1, 3)
        m = default[0] if int_bits is None else int_bits
        n = default[1] if frac_bits is None else frac_bits
    else:
        raise UserError(f"unknown neuron {neuron!r}: use 'if' or 'mbif'")
    check_bits(m, n)
    k = resolve_cap(cap, m, n)
    if matched and (m, n) != (ann_config["int_bits"], ann_config["frac_bits"]):
        warn(f"the ANN was trained with the matched {ann_config['int_bits']}+{ann_config['frac_bits']} activation; "
             f"converting to {m}+{n} loses the exact T=1 identity")
    return {"neuron": "if" if (m, n) == (1, 0) else "mbif", "int_bits": m, "frac_bits": n, "v_init": v_init,
            "cap": k if k < max_count(m, n) else None}


def parse_neuron_spec(spec: str) -> dict:
    """``if`` | ``if:1+0`` | ``mbif`` | ``mbif:M+N`` → keyword arguments of :func:`neuron_settings`.

    The grammar is :func:`ann2snn.ann.spec.parse_neuron`'s, shared with the direct-training neurons.

    Raises:
        UserError: another name, bits other than 1+0 on ``if``, or bits not written ``M+N`` or out of range.
    """
    from ann2snn.ann.spec import CONVERSION_NEURONS, parse_neuron

    return parse_neuron(spec, CONVERSION_NEURONS, "neurons")


def exact_neuron_hint(ann_config: dict) -> str | None:
    """For a QCFS(L) ANN with L = 2^n: the neuron that reproduces it exactly at T = 1, as CLI flags.

    One MBIF(1, n) step from ``v_0 = q/2`` with θ = λ and the count capped at K = L is QCFS(L)
    (both call :func:`ann2snn.ann.quantizer.fire_count`; docs/design.md §3.5). None for other ANNs.
    """
    levels = ann_config.get("levels", 4)
    if ann_config.get("activation", "qcfs") != "qcfs" or levels < 1 or levels & (levels - 1):
        return None
    n = levels.bit_length() - 1
    if n == 0:
        return "--neuron if --v-init half-lsb"
    return f"--neuron mbif:1+{n} --cap {levels} --v-init half-lsb"


def exact_at_T1(ann_config: dict, settings: dict) -> bool:
    """Whether one step of the conversion ``settings`` (from :func:`neuron_settings`, with calibrated
    ``thresholds`` if any) computes exactly the source ANN of ``ann_config`` (docs/design.md §3.4–§3.5).

    True for θ = λ (no calibrated thresholds, no correction, one setting for every site), ``v_0 = q/2`` (``half-lsb``, or ``half-threshold``
    when n = 0, where θ/2 = q/2), and either a matched(m+n) ANN with an MBIF(m, n) neuron at its
    full count, or a QCFS(L) ANN with L = 2^n and the count capped at K = L. The neuron and the
    activation then call the same quantizer, so the logits at T = 1 equal the ANN's in the same
    arithmetic (dtype, memory layout, batch). ReLU ANNs: never.
    """
    if settings.get("thresholds") or settings.get("site_bits"):
        return False
    if (settings.get("correct") or {}).get("mode", "none") != "none":  # a correction changes the SNN, not the ANN
        return False
    m, n = settings["int_bits"], settings["frac_bits"]
    k = settings.get("cap") or max_count(m, n)
    if not (settings.get("v_init") == "half-lsb" or (settings.get("v_init") == "half-threshold" and n == 0)):
        return False
    activation = ann_config.get("activation", "qcfs")
    if activation == "matched":
        return (m, n) == (ann_config["int_bits"], ann_config["frac_bits"]) and k == max_count(m, n)
    if activation == "qcfs":
        return 2 ** n == ann_config.get("levels", 4) == k
    return False


def _stderr_note(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr)


def prepare_ann(ann: nn.Module, fold_bn: bool = False, example: torch.Tensor | None = None,
                maxpool: str = "refuse", note=_stderr_note) -> nn.Module:
    """Check every operation (:func:`ann2snn.conversion.opcheck.check_operations`, on the user's own model, so
    a refusal names the user's line), optionally fold BN into convs, then give every ReLU call site
    (``nn.ReLU`` modules or ``F.relu`` / ``torch.relu`` / ``x.relu()`` calls) its own site module.
    ``example`` is the probe input (default zeros of ``[1, 3, 32, 32]``).

    ``maxpool`` (:func:`ann2snn.conversion.maxpool.apply_maxpool`): ``refuse`` (a max-pool is an error),
    ``spiking`` (max-pool modules pass; :func:`convert` with the same ``maxpool`` makes them spiking)
    or ``avg`` (a copy with average pools, announced through ``note``). ``ann`` itself is not changed.
    """
    from ann2snn.conversion.calibrate import fold_batchnorm, prepare_relu_sites
    from ann2snn.conversion.maxpool import apply_maxpool
    from ann2snn.conversion.opcheck import check_operations

    example = torch.zeros(EXAMPLE_SHAPE) if example is None else example
    ann = apply_maxpool(ann, maxpool, note)
    relu_calls = check_operations(ann, example, "spiking" if maxpool == "spiking" else "refuse")
    if fold_bn:
        ann = fold_batchnorm(ann)
    if relu_calls or any(isinstance(m, nn.ReLU) for m in ann.modules()):
        ann = prepare_relu_sites(ann, example)
    return ann


def convert_ann(ann: nn.Module, settings: dict, note=_stderr_note) -> nn.Module:
    """Convert a loaded ANN with :func:`neuron_settings`' output (plus optional ``fold_bn``,
    ``maxpool`` and calibrated ``thresholds`` from :func:`calibrate_settings`)."""
    maxpool = settings.get("maxpool", "refuse")
    ann = prepare_ann(ann, settings.get("fold_bn", False), maxpool=maxpool, note=note)
    return convert(ann, torch.zeros(EXAMPLE_SHAPE), settings["int_bits"], settings["frac_bits"], settings["v_init"],
                   thresholds=settings.get("thresholds"), cap=settings.get("cap"),
                   maxpool="spiking" if maxpool == "spiking" else "refuse", site_bits=settings.get("site_bits"))


def calibrate_settings(ann: nn.Module, ann_config: dict, settings: dict, threshold: str, calib_batches: int,
                       fold_bn: bool, data_dir: str, download: bool = False, skip_md5: bool = False,
                       progress: bool = False, folder: dict | None = None) -> dict:
    """Add calibrated thresholds (``threshold`` = max | percentile:P) to ``settings``.

    Uses ``calib_batches`` batches of 128 un-augmented training images in a seeded order (with a
    progress bar if ``progress``; :func:`ann2snn.plumbing.splits.train_eval_batches`: never held-out images). For an ANN trained on an image folder: ``data_dir/train`` under the
    evaluation transform of the ANN's config (:func:`ann2snn.plumbing.folder.folder_eval_batches`), its
    classes checked against the checkpoint's; ``folder`` holds the image-folder options (``workers``,
    ``skip_bad_images``, and ``image_size``/``resize``/``mean``/``std`` to override the stored ones).
    With ``threshold == "lambda"`` the λs are the thresholds; a ReLU ANN then is an error.

    Raises:
        UserError: a bad threshold spec, ``lambda`` for a ReLU network, or data problems.
    """
    from ann2snn.conversion.calibrate import calibrate_thresholds, parse_threshold
    from ann2snn.plumbing.splits import train_eval_batches

    mode, _ = parse_threshold(threshold)
    settings = {**settings, "threshold": threshold, "fold_bn": bool(fold_bn)}
    if mode == "lambda":
        if ann_config.get("activation") == "relu":
            raise UserError("a ReLU network has no λ: calibrate its thresholds with `threshold` max or percentile:P")
        return settings
    prepared = prepare_ann(ann, fold_bn, maxpool=settings.get("maxpool", "refuse"), note=lambda _m: None)
    batches = train_eval_batches(ann_config, data_dir, download, skip_md5, folder)
    thresholds = calibrate_thresholds(prepared, batches, threshold, calib_batches, progress=progress)
    return {**settings, "calib_batches": calib_batches, "thresholds": thresholds}


def correct_settings(snn: nn.Module, ann_config: dict, settings: dict, mode: str, T_cal: int, images: int,
                     data_dir: str, download: bool = False, skip_md5: bool = False,
                     folder: dict | None = None) -> dict:
    """Correct a freshly converted ``snn`` in place (:func:`ann2snn.conversion.correct.correct_snn`) on
    ``images`` un-augmented training images in a seeded order (never held-out or test images:
    :func:`ann2snn.plumbing.splits.train_eval_batches`), and return ``settings`` with ``"correct"``:
    ``{"mode", "T_cal", "images", "sites": [...]}`` (the per-site errors before and after).

    ``mode`` ``none`` leaves the network as it is and records ``{"mode": "none"}``.

    Raises:
        UserError: an unknown mode, ``T_cal`` or ``images`` below 1, or no training data.
    """
    from ann2snn.ann.evaluate import model_dtype
    from ann2snn.conversion.correct import check_correct_mode, check_correct_options, correct_snn
    from ann2snn.plumbing.splits import first_images, train_eval_batches

    check_correct_mode(mode)
    check_correct_options(T_cal, images)
    if mode == "none":
        return {**settings, "correct": {"mode": "none"}}
    try:
        batches = train_eval_batches(ann_config, data_dir, download, skip_md5, folder)
    except UserError as e:
        raise UserError(f"`correct` {mode} reads training images, and none were found: {e}") from None
    x = first_images(batches, images).to(model_dtype(snn))
    report = correct_snn(snn, x, mode, T_cal)
    return {**settings, "correct": report}


def correction_buffers(snn: nn.Module, settings: dict, state: dict) -> None:
    """Give every neuron of a rebuilt ``snn`` the correction buffers it needs, shaped as in ``state``, so that a
    strict load fills them: those ``settings["correct"]`` names (a missing one is then reported by the load),
    and any that ``state`` holds (a network corrected with :func:`ann2snn.conversion.correct.correct_snn`
    after conversion)."""
    mode = (settings.get("correct") or {}).get("mode", "none")
    kinds = [k for k, part in (("bias_current", "bias"), ("v_offset", "potential")) if part in mode.split("+")]
    for name, m in snn.named_modules():
        if isinstance(m, MultiBitIF):
            for kind in ("bias_current", "v_offset"):
                like = state.get(f"{name}.{kind}")
                if like is not None or kind in kinds:
                    setattr(m, kind, torch.zeros_like(like) if like is not None else torch.zeros(1))


def correction_mode_of(snn: nn.Module) -> str:
    """``none``, ``bias``, ``potential`` or ``bias+potential``: what the neurons of ``snn`` carry."""
    neurons = neurons_of(snn)
    bias = any(m.bias_current is not None for m in neurons)
    potential = any(m.v_offset is not None for m in neurons)
    return "+".join(k for k, on in (("bias", bias), ("potential", potential)) if on) or "none"


def convert_checkpoint(ann_path, settings_args: dict, out_path: str, calibration: dict | None = None,
                       correction: dict | None = None, plan: dict | None = None) -> dict:
    """Load an ANN checkpoint, convert it and save the SNN checkpoint atomically.

    ``ann_path``: a train-ann checkpoint (file or run folder), or an ANN checkpoint dict already in memory
    (:func:`ann2snn.ann.build.weights_checkpoint`: a network trained elsewhere).

    ``settings_args``: the keyword arguments of :func:`neuron_settings`, and ``maxpool`` (``refuse``,
    ``spiking`` or ``avg``, :func:`ann2snn.conversion.maxpool.apply_maxpool`; stored in the SNN checkpoint).
    ``calibration`` holds the keyword arguments of :func:`calibrate_settings` after ``settings``
    (threshold, calib_batches, fold_bn, data_dir, ...); None keeps θ = λ. ``correction`` holds those of
    :func:`correct_settings` after ``settings`` (mode, T_cal, images, data_dir, ...); None corrects nothing.
    ``plan``: a plan file's contents (:func:`ann2snn.pipelines.plan.run_plan`): its per-site bits are applied,
    after checking that it was made for this network (:func:`ann2snn.conversion.plan.check_plan`).
    The SNN checkpoint records the neuron settings and its source ANN (path, SHA-256, epoch).
    Returns the saved checkpoint dict.
    """
    from ann2snn.conversion.maxpool import check_maxpool_mode

    settings_args = dict(settings_args)
    maxpool = check_maxpool_mode(settings_args.pop("maxpool", "refuse"))
    if isinstance(ann_path, dict):  # an in-memory ANN checkpoint (ann2snn.ann.build.weights_checkpoint)
        from ann2snn.ann.build import ann_from_checkpoint

        ann, ckpt = ann_from_checkpoint(ann_path)
    else:
        ann, ckpt = load_ann(ann_path)
    settings = {**neuron_settings(ann_config=ckpt["config"], **settings_args), "maxpool": maxpool}
    if calibration is not None:
        settings = calibrate_settings(ann, ckpt["config"], settings, **calibration)
    elif ckpt["config"].get("activation") == "relu":
        raise UserError("a ReLU network has no λ: calibrate its thresholds with `threshold` max or percentile:P")
    if plan is not None:
        from ann2snn.conversion.plan import check_plan

        probe = convert_ann(ann, settings, note=lambda _m: None)
        check_plan(plan, [n for n, m in probe.named_modules() if isinstance(m, MultiBitIF)],
                   file_sha256(ckpt["path"]) if ckpt.get("path") and os.path.isfile(ckpt["path"]) else None)
        settings = {**settings, "site_bits": plan["site_bits"],
                    "plan": {k: plan.get(k) for k in ("T", "max_drop", "holdout_accuracy", "ann_holdout_accuracy",
                                                      "energy_uj")}}
    snn = convert_ann(ann, settings)
    if correction is not None:
        settings = correct_settings(snn, ckpt["config"], settings, **correction)
    out = {
        "kind": "snn", "format": FORMAT, "config": ckpt["config"], "conversion": settings,
        "source": {"path": ckpt["path"], "sha256": file_sha256(ckpt["path"]), "epoch": ckpt.get("epoch"),
                   "complete": ckpt.get("complete"), "metrics": ckpt.get("metrics", [])[-1:]},
        "model_state": snn.state_dict(),
    }
    save_checkpoint(out, out_path)
    return out


USER_MODEL = "user-model"  # config["arch"] of an SNN converted from the user's own model (save_snn)


def save_snn(snn: nn.Module, path: str) -> dict:
    """Save an SNN made by :func:`ann2snn.convert_model` from your own model, atomically.

    The file holds the weights, every neuron's θ and the conversion settings (bits, v_init, cap,
    fold_bn, the probe's input shape), loadable with ``torch.load(weights_only=True)``. Load it with
    :func:`load_snn` and a fresh instance of the same model class: ``load_snn(path, ann=MyNet())``.

    Returns:
        The saved checkpoint dict.

    Raises:
        UserError: ``snn`` was not made by ``convert_model`` (no conversion settings on it), or
            its neurons no longer share one setting.
    """
    conversion = getattr(snn, "ann2snn_conversion", None)
    if not isinstance(conversion, dict):
        raise UserError("this network carries no conversion settings: save an SNN returned by "
                        "ann2snn.convert_model (SNNs of `ann2snn convert` are saved by that command)")
    v_inits = {m.v_init for m in neurons_of(snn)}
    if len(v_inits) != 1:
        raise UserError(f"the neurons start from {len(v_inits)} different v_init settings; save_snn stores one for all")
    bits = {name: (m.int_bits, m.frac_bits, m.cap) for name, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    m, n, k = max(set(bits.values()), key=list(bits.values()).count)  # the most common bits are the default
    settings = {**conversion, "neuron": "if" if (m, n) == (1, 0) else "mbif", "int_bits": m, "frac_bits": n,
                "v_init": v_inits.pop(), "cap": k if k < max_count(m, n) else None}
    if len(set(bits.values())) > 1:  # per-site bits (a plan): each site's own
        settings["site_bits"] = site_bits_of(snn)
    carried = correction_mode_of(snn)  # what the neurons carry, however they were corrected
    if carried != (settings.get("correct") or {}).get("mode", "none"):
        settings["correct"] = {"mode": carried, "note": "corrected after convert_model (its report is not kept)"}
    out = {"kind": "snn", "format": FORMAT, "conversion": settings,
           "config": {"arch": USER_MODEL, "model_class": conversion.get("model_class")},
           "model_state": snn.state_dict()}
    save_checkpoint(out, path)
    return out


def site_bits_of(snn: nn.Module) -> dict[str, dict]:
    """Every neuron's bits, by site name: ``{site: {"int_bits": m, "frac_bits": n, "cap": K or None}}`` (``cap``
    None where K is the full ``2^(m+n) − 1``), as :func:`ann2snn.conversion.convert.convert` takes them."""
    return {name: {"int_bits": m.int_bits, "frac_bits": m.frac_bits,
                   "cap": m.cap if m.cap < max_count(m.int_bits, m.frac_bits) else None}
            for name, m in snn.named_modules() if isinstance(m, MultiBitIF)}


def user_model_error(ckpt: dict) -> UserError:
    """The error for an SNN file of the user's own model read without that model (a command cannot rebuild it)."""
    return UserError(f"{ckpt['path']} was converted from your own model ({ckpt['config'].get('model_class')}): "
                     "load it in Python with ann2snn.load_snn(path, ann=<a fresh instance of that model>)")


def load_snn(path: str, ann: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a converted SNN from its checkpoint, strictly (every key, every θ > 0).

    Args:
        path: an SNN checkpoint from ``ann2snn convert`` or :func:`save_snn`.
        ann: for a :func:`save_snn` file, a fresh instance of the model it was converted from (its
            weights are replaced by the file's); None for ``ann2snn convert`` checkpoints, whose
            architecture is in the file.

    Returns:
        ``(snn, checkpoint dict)``; the SNN is in eval mode with its neurons in SNN mode.

    Raises:
        UserError: missing/corrupt file, an ANN checkpoint, unmatched keys, a θ <= 0, or a
            :func:`save_snn` file without ``ann``.
    """
    return snn_from_checkpoint(load_checkpoint(path, kind="snn"), ann)


def snn_from_checkpoint(ckpt: dict, ann: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """:func:`load_snn` for an SNN checkpoint dict already read by
    :func:`ann2snn.plumbing.checkpoint.load_checkpoint` (so a caller reads each file once).

    Raises:
        UserError: as :func:`load_snn`, except for reading the file.
    """
    settings = ckpt["conversion"]
    if ckpt["config"].get("arch") == USER_MODEL:
        if ann is None:
            raise user_model_error(ckpt)
        example = torch.zeros(tuple(settings.get("example_shape", EXAMPLE_SHAPE)))
        maxpool = settings.get("maxpool", "refuse")
        skeleton = prepare_ann(ann.eval(), settings.get("fold_bn", False), example, maxpool, note=lambda _m: None)
        sites = [n for n, _ in skeleton.named_modules() if n and _is_site(skeleton.get_submodule(n))]
        snn = convert(skeleton, example, settings["int_bits"], settings["frac_bits"], settings["v_init"],
                      thresholds={s: 1.0 for s in sites}, cap=settings.get("cap"),
                      maxpool="spiking" if maxpool == "spiking" else "refuse",
                      site_bits=settings.get("site_bits"))  # θ comes from the file
        snn.ann2snn_conversion = {k: settings[k] for k in ("fold_bn", "example_shape", "model_class", "threshold",
                                                           "maxpool", "correct") if k in settings}
    else:
        if ann is not None:
            raise UserError(f"{ckpt['path']} is a toolkit network ({ckpt['config'].get('arch')}), rebuilt from the "
                            "file: call load_snn(path) without ann")
        snn = convert_ann(build_ann(ckpt["config"]).eval(), settings, note=lambda _m: None)
    correction_buffers(snn, settings, ckpt["model_state"])
    load_state_strict(snn, ckpt["model_state"], source=ckpt["path"])
    for neuron in neurons_of(snn):
        neuron.check_theta()
    return snn.eval(), ckpt


def _is_site(m: nn.Module) -> bool:
    from ann2snn.conversion.opcheck import SITE_TYPES

    return isinstance(m, SITE_TYPES)
