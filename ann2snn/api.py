"""The public Python API: convert your own model, simulate it, sweep T, check ANN-mode parity.

    import ann2snn
    snn = ann2snn.convert_model(model, calibration=train_batches, neuron="mbif", frac_bits=3)
    logits = ann2snn.simulate_logits(snn, x, T=32)          # [T, B, classes], per step
    table = ann2snn.accuracy_sweep(snn, test_batches, [1, 4, 16, 64])   # pandas DataFrame: T, accuracy
    assert ann2snn.ann_parity(snn, model, x)

The CLI (``ann2snn convert`` / ``sweep``) runs the same pieces (:mod:`ann2snn.conversion.snn`,
:mod:`ann2snn.conversion.calibrate`, :mod:`ann2snn.conversion.simulate`).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import pandas as pd
import torch
from torch import nn

from ann2snn.plumbing.errors import UserError
from ann2snn.plumbing.probe import kept_modes


def convert_model(model: nn.Module, calibration: Iterable | None = None, neuron: str = "mbif", int_bits: int = 1,
                  frac_bits: int = 3, v_init: str = "half-lsb", cap=None, threshold: str = "percentile:99.9",
                  calib_batches: int = 10, fold_bn: bool = False, example: torch.Tensor | None = None,
                  maxpool: str = "refuse", correct: str = "none", correct_T: int = 4,
                  correct_images: int = 1000, site_bits: dict[str, dict] | None = None) -> nn.Module:
    """Convert an ANN into an SNN in one call: every activation call site becomes its own neuron.

    Every operation between the sites is checked first (:func:`ann2snn.conversion.opcheck.check_operations`):
    max-pooling (unless ``maxpool`` says otherwise), unhandled activations and the like are refused
    naming your source line.

    Args:
        model: the ANN. QCFS / matched sites take θ = λ; ReLU sites (``nn.ReLU``, ``F.relu``, ...)
            need ``calibration``.
        calibration: batches ``(x [B, C, H, W], y)`` of training images; θ of each site is
            ``threshold`` (``max`` or ``percentile:P``) of its activations on ``calib_batches`` of them.
        neuron: ``"if"`` (= MBIF(1, 0)) or ``"mbif"`` with ``int_bits`` m and ``frac_bits`` n.
        v_init: ``half-lsb`` (q/2) | ``half-threshold`` (θ/2) | ``zero``.
        cap: per-step ceiling: ``None``/``"full"``, ``"theta"`` (K = 2^n) or a count K.
        fold_bn: fold each BatchNorm into the conv before it first.
        example: one input batch for the probe passes (default ``[1, 3, 32, 32]`` zeros).
        maxpool: ``"refuse"`` (default: a max-pool is an error), ``"spiking"`` (each max-pool module
            becomes a :class:`~ann2snn.conversion.maxpool.SpikingMaxPool`: its time-summed output is the
            max-pool of the time-summed input, exactly for power-of-two quanta) or ``"avg"`` (swapped for
            average pooling: changes the network, so only for a model trained with the swap).
        correct: ``"none"``, ``"bias"``, ``"potential"`` or ``"bias+potential"``: after conversion, correct
            each neuron layer by layer (:mod:`ann2snn.conversion.correct`, after SNN Calibration, Li et al.
            2021) on the first ``correct_images`` images of ``calibration``, at ``correct_T`` time steps
            (T_cal). Acts in SNN mode only: ANN-mode parity stays exact.
        site_bits: per-site bits replacing ``int_bits``/``frac_bits``/``cap`` at the sites named:
            ``{site: {"int_bits": m, "frac_bits": n, "cap": None | "theta" | K}}`` (site names as the
            converted network's neuron names; e.g. a plan's).

    Returns:
        The converted network (a copy; ``model`` is unchanged), in eval mode, neurons in SNN mode.
        Its attribute ``ann2snn_conversion`` keeps the settings :func:`save_snn` stores (a
        ``copy.deepcopy`` of an ``fx.GraphModule`` result drops it: save the returned network).

    Raises:
        UserError: a refused operation, a ReLU site without ``calibration``, bad bits / cap / v_init, an
            unknown ``correct`` mode, or ``correct`` without ``calibration`` images.
    """
    from ann2snn.conversion.correct import check_correct_mode, check_correct_options

    check_correct_mode(correct)
    check_correct_options(correct_T, correct_images)
    if correct != "none" and calibration is None:
        raise UserError(f"`correct` {correct} reads training images: pass calibration=<batches of training images>")
    from ann2snn.conversion.calibrate import calibrate_thresholds
    from ann2snn.conversion.convert import convert
    from ann2snn.conversion.sites import ReLUSite
    from ann2snn.conversion.snn import prepare_ann

    if neuron == "if":
        int_bits, frac_bits = 1, 0
    elif neuron != "mbif":
        raise UserError(f"unknown neuron {neuron!r}: use 'if' or 'mbif'")
    example = torch.zeros(1, 3, 32, 32) if example is None else example
    with kept_modes(model):  # your model keeps its train/eval modes (and its weights and hooks)
        prepared = prepare_ann(model.eval(), fold_bn, example, maxpool)
    thresholds = None
    if any(isinstance(m, ReLUSite) for m in prepared.modules()):
        if calibration is None:
            raise UserError("the model has ReLU sites, which have no λ: pass calibration=<batches of training "
                            "images> (and threshold='max' or 'percentile:P')")
        thresholds = calibrate_thresholds(prepared, calibration, threshold, calib_batches)
    snn = convert(prepared, example, int_bits, frac_bits, v_init, thresholds=thresholds, cap=cap,
                  maxpool="spiking" if maxpool == "spiking" else "refuse", site_bits=site_bits)
    # what save_snn needs to rebuild the same structure from a fresh instance of the user's model
    snn.ann2snn_conversion = {"fold_bn": bool(fold_bn), "example_shape": list(example.shape),
                              "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
                              "threshold": threshold if thresholds is not None else "lambda", "maxpool": maxpool}
    if correct != "none":
        from ann2snn.ann.evaluate import model_dtype
        from ann2snn.conversion.correct import correct_snn
        from ann2snn.plumbing.splits import first_images

        try:
            images = first_images(calibration, correct_images).to(model_dtype(snn))
        except UserError:
            raise UserError("calibration= gave no images the second time it was read (for `correct`): pass a list "
                            "of batches, not a one-shot generator") from None
        snn.ann2snn_conversion["correct"] = correct_snn(snn, images, correct, correct_T)
    return snn


@torch.inference_mode()
def iter_steps(snn: nn.Module, x: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
    """Yield the output of each time step, ``[B, classes]``, for ``T`` steps of the input ``x``
    (direct encoding: ``x [B, C, H, W]`` is the current at every step). Membrane potentials start
    from v_0 and are reset when the iterator ends. Memory does not grow with T."""
    from ann2snn.ann.evaluate import as_model_input, model_dtype
    from ann2snn.conversion.simulate import reset_neurons, set_mode

    if T < 1:
        raise UserError(f"T must be >= 1, got {T}")
    snn.eval()
    set_mode(snn, "snn")
    x = as_model_input(x, model_dtype(snn))
    reset_neurons(snn)
    try:
        for _ in range(T):
            yield snn(x)
    finally:
        reset_neurons(snn)


def simulate_logits(snn: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """Per-step outputs ``[T, B, classes]`` of ``T`` steps (see :func:`iter_steps`). The prediction at
    step t is the argmax of ``out[:t].sum(0)``."""
    return torch.stack(list(iter_steps(snn, x, T)))


def accuracy_sweep(snn: nn.Module, batches: Iterable, T_list: list[int]) -> pd.DataFrame:
    """Top-1 accuracy (%) at every T of ``T_list`` from one simulation of ``max(T_list)`` steps.

    Args:
        batches: ``(x [B, C, H, W], y [B])`` pairs.

    Returns:
        A DataFrame with columns ``T`` and ``accuracy`` (percent), one row per T.
    """
    from ann2snn.conversion.simulate import set_mode, simulate_snn

    T_list = sorted(set(int(t) for t in T_list))
    if not T_list or T_list[0] < 1:
        raise UserError(f"T_list must hold whole numbers >= 1, got {T_list}")
    set_mode(snn, "snn")
    correct, total = simulate_snn(snn, batches, T_list[-1])
    return pd.DataFrame({"T": T_list, "accuracy": [100.0 * int(correct[t - 1]) / total for t in T_list]})


@torch.inference_mode()
def ann_parity(snn: nn.Module, ann: nn.Module, x: torch.Tensor) -> bool:
    """True when the SNN with every neuron switched back to its source activation (ANN mode) gives
    exactly (``torch.equal``) the ANN's output on ``x``."""
    from ann2snn.conversion.simulate import set_mode

    set_mode(snn, "ann")
    try:
        with kept_modes(ann):  # your ANN keeps its train/eval modes
            return bool(torch.equal(snn.eval()(x), ann.eval()(x)))
    finally:
        set_mode(snn, "snn")
