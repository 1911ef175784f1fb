"""Correction after conversion: move each neuron's mean output towards its ANN activation's.

The method is the light pipeline of SNN Calibration (Li et al., "A Free Lunch From ANN: Towards
Efficient, Accurate Spiking Neural Networks Calibration", ICML 2021; the ``SNN_Calibration``
repository), with per-channel corrections (docs/design.md §3.10). Layer by layer from the input side,
on N training images and a correction length ``T_cal``:

* the target of site i is the mean, per channel (over images and positions), of its ANN activation
  ``a_c`` (the whole network in ANN mode);
* its SNN output is the mean of ``s_t`` over the ``T_cal`` steps, images and positions, ``r_c``, with
  every earlier site already corrected;
* **bias correction** adds the per-channel current ``b_c = a_c − r_c`` at every step;
* **potential correction** adds ``δ_c = (a_c − r_c)·T_cal`` to the initial potential (over T_cal
  steps an extra charge δ moves the summed output by about δ, reset by subtraction keeping it);
* ``bias+potential`` does both at each site: the bias first, then the potential from the residual
  error left with that bias.

One pass does every site: the images run through the network as one time-chunked call of ``T_cal``
steps (:attr:`~ann2snn.conversion.neurons.MultiBitIF.time_chunk`), so each layer sees all ``T_cal``
steps of its input at once, after every earlier site is corrected. Just before site i runs, a hook
tries its steps (:meth:`~ann2snn.conversion.neurons.MultiBitIF.dry_run`), sets its correction from the
mean error, and lets it run corrected. The cost is one ANN pass and one ``T_cal``-step simulation of
the images, plus one or two extra neuron runs per site (elementwise, cheap).

Where this differs from SNN_Calibration:

* the potential correction is per channel, like the bias, not per neuron position: the same SNN then
  takes images of any size, and one value per channel is estimated from all positions;
* images are corrected in groups of ``group`` (all of them by default); with several groups, each
  group measures the error left by the corrections so far and moves them by its share (the running
  mean of the per-group corrections), so one group of N images and the full method are the same;
* the bias lives in the neuron (its input current), not in the preceding layer's bias, so ANN mode
  stays the ANN exactly; :mod:`ann2snn.export.nir_graph` folds it into the layer before for NIR;
* weight calibration (their "advanced pipeline") is not done.
"""

from __future__ import annotations

import torch
from torch import nn

from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.simulate import reset_neurons, set_mode, stateful_of
from ann2snn.plumbing.errors import UserError

CORRECT_MODES = ("none", "bias", "potential", "bias+potential")
#: training images used by default (SNN Calibration uses about 1,000)
DEFAULT_IMAGES = 1000
#: the default correction length T_cal (docs/design.md §3.10 says why)
DEFAULT_T_CAL = 4


def check_correct_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`CORRECT_MODES`.

    Raises:
        UserError: another value.
    """
    if mode not in CORRECT_MODES:
        raise UserError(f"unknown correction {mode!r}: use one of {', '.join(CORRECT_MODES)}")
    return mode


def check_correct_options(T_cal, images) -> None:
    """Raise UserError unless ``T_cal`` and ``images`` are whole numbers >= 1."""
    def bad(value) -> bool:
        return isinstance(value, bool) or not isinstance(value, int) or value < 1

    if bad(T_cal):
        raise UserError(f"`correct_T` must be a whole number of time steps >= 1, got {T_cal!r}")
    if bad(images):
        raise UserError(f"`correct_images` must be a whole number of images >= 1, got {images!r}")


def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean per channel (axis 1) of ``x [N, C, ...]``, in float64: ``[C]``."""
    dims = [0] + list(range(2, x.dim()))
    return x.double().mean(dim=dims)


def _site_order(snn: nn.Module, x: torch.Tensor) -> list[tuple[str, MultiBitIF]]:
    """The neurons of ``snn`` in call order (one probe step in ANN mode on ``x``)."""
    names = {m: n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    order: list[MultiBitIF] = []
    handles = [m.register_forward_hook(lambda m, *_: order.append(m)) for m in names]
    set_mode(snn, "ann")
    try:
        with torch.inference_mode():
            snn(x[:1])
    finally:
        for h in handles:
            h.remove()
    return [(names[m], m) for m in dict.fromkeys(order)]


@torch.inference_mode()
def ann_means(snn: nn.Module, x: torch.Tensor, batch: int = 250) -> dict[str, torch.Tensor]:
    """The per-channel mean of every site's ANN activation on images ``x [N, C, H, W]``: ``{site: [C]}``
    (float64), the network in ANN mode, ``batch`` images at a time."""
    names = {m: n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    sums: dict[str, torch.Tensor] = {}

    def hook(m, _inp, out):
        n = names[m]
        part = _channel_mean(out) * len(out)
        sums[n] = part if n not in sums else sums[n] + part

    handles = [m.register_forward_hook(hook) for m in names]
    set_mode(snn, "ann")
    try:
        for i in range(0, len(x), batch):
            snn(x[i:i + batch])
    finally:
        for h in handles:
            h.remove()
    return {n: s / len(x) for n, s in sums.items()}


@torch.inference_mode()
def correct_snn(snn: nn.Module, images: torch.Tensor, mode: str, T_cal: int = DEFAULT_T_CAL,
                group: int | None = None) -> dict:
    """Correct a converted SNN in place, layer by layer (see the module docstring).

    Args:
        snn: a converted network (:func:`ann2snn.conversion.convert.convert`), in its own dtype and device.
        images: training images ``[N, C, H, W]``, already normalised as the network expects, in its dtype
            and on its device (never test images).
        mode: ``bias`` | ``potential`` | ``bias+potential`` (``none`` returns at once).
        T_cal: the correction length in time steps.
        group: images per time-chunked pass; memory grows with ``group × T_cal``. Default: all N in one
            pass when that fits in a quarter of the memory available (:func:`auto_group`), else the largest
            group that does.

    Returns:
        ``{"mode", "T_cal", "images", "sites": [{"site", "error_before", "error_after"}]}``, the errors being
        the mean over channels of ``|a_c − r_c|`` at T_cal in the units of the site's output, measured
        before and after the site's own correction in the first group (earlier sites already corrected).

    Raises:
        UserError: an unknown mode, or ``T_cal`` / ``group`` below 1.
    """
    check_correct_mode(mode)
    check_correct_options(T_cal, len(images) if group is None else group)
    report = {"mode": mode, "T_cal": T_cal, "images": len(images), "sites": []}
    if mode == "none":
        return report
    group = auto_group(snn, images, T_cal) if group is None else group
    report["group"] = group
    snn.eval()
    order = _site_order(snn, images)
    stateful = stateful_of(snn)
    chunks = [m.time_chunk for m in stateful]  # the caller's, restored at the end
    seen = 0
    errors: dict[str, dict] = {}
    for start in range(0, len(images), group):
        x = images[start:start + group]
        targets = ann_means(snn, x)
        weight = len(x) / (seen + len(x))  # running mean of the per-group corrections
        handles = [m.register_forward_pre_hook(_corrector(name, targets[name], mode, T_cal, weight, errors))
                   for name, m in order]
        set_mode(snn, "snn")
        reset_neurons(snn)
        for m in stateful:
            m.time_chunk = T_cal
        try:
            snn(x.repeat(T_cal, *([1] * (x.dim() - 1))))
        finally:
            for h in handles:
                h.remove()
            for m, c in zip(stateful, chunks):
                m.time_chunk = c
            reset_neurons(snn)
        seen += len(x)
    report["sites"] = [{"site": name, **errors[name]} for name, _ in order]
    return report


#: live copies of a layer's output per image-step in a correction pass (input, output, v, a dry run's steps)
GROUP_COPIES = 6


@torch.inference_mode()
def auto_group(snn: nn.Module, images: torch.Tensor, T_cal: int, budget: int | None = None) -> int:
    """Images per correction pass: all of them when ``N · T_cal · GROUP_COPIES · (bytes of the widest layer
    output per image)`` fits in ``budget`` (default: a quarter of
    :func:`ann2snn.plumbing.memory.available_bytes` on the images' device), else the largest group that fits
    (at least 1)."""
    from ann2snn.plumbing.memory import available_bytes

    widest = 0

    def hook(_m, _i, out):
        nonlocal widest
        if isinstance(out, torch.Tensor):
            widest = max(widest, out[:1].numel() * out.element_size())

    leaves = [m for m in snn.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    set_mode(snn, "ann")
    try:
        snn(images[:1])
    finally:
        for h in handles:
            h.remove()
    if budget is None:
        free = available_bytes(images.device)
        if free is None:
            return len(images)
        budget = free // 4
    per_image = max(1, T_cal * GROUP_COPIES * widest)
    return int(max(1, min(len(images), budget // per_image)))


def _corrector(name: str, target: torch.Tensor, mode: str, T_cal: int, weight: float, errors: dict):
    """The forward pre-hook of one site: try its T_cal steps, correct, and let it run corrected."""

    def hook(m: MultiBitIF, args):
        x = args[0]

        def residual() -> torch.Tensor:  # a_c − r_c with the site's current corrections, float64 [C]
            return target - _channel_mean(m.dry_run(x, T_cal))

        r = residual()
        before = float(r.abs().mean())
        zeros = torch.zeros(r.numel(), dtype=m.theta.dtype, device=x.device)
        if "bias" in mode.split("+"):
            b = (m.bias_current if m.bias_current is not None else zeros).double()
            m.set_correction(bias_current=b + weight * r)
            r = residual()
        if "potential" in mode.split("+"):
            d = (m.v_offset if m.v_offset is not None else zeros).double()
            m.set_correction(v_offset=d + weight * r * T_cal)
            r = residual()
        errors.setdefault(name, {"error_before": before, "error_after": float(r.abs().mean())})

    return hook
