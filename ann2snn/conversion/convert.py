"""Replace every activation call site of a quantization-clip ANN by its own spiking neuron.

Conversion refuses to pass silently (docs/design.md §5, pitfall 1):

* every activation must be a :class:`~ann2snn.ann.activations.QuantClip` module; an ``nn.ReLU`` (or
  other ANN activation) module, or a functional call such as ``F.relu`` / ``torch.relu`` /
  ``x.relu()`` inside ``forward``, is an error naming the module or the source line;
* every site must be called exactly once per forward pass: a module reused at two call sites, or
  one never called, is an error naming it;
* after conversion, a probe forward pass checks that no ANN activation runs outside a neuron and
  that the number of neurons equals the number of call sites.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ann2snn.ann.activations import QuantClip
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.maxpool import check_maxpool_mode, make_pools_spiking
from ann2snn.conversion.neurons import MultiBitIF
from ann2snn.conversion.opcheck import FOREIGN_MODULES, check_operations, probe_sites
from ann2snn.ann.quantizer import check_bits

def find_activation_sites(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the model's activation sites in call order, after checking each is one call site.

    Args:
        model: an ANN whose activations are :class:`QuantClip` modules.
        example: one input batch, e.g. ``[1, 3, 32, 32]``, for a probe forward pass.

    Raises:
        UserError: a foreign activation module or functional call (named), a site reused or never
            called, or no site at all.
    """
    for name, m in model.named_modules():
        if isinstance(m, FOREIGN_MODULES):
            raise UserError(f"module '{name}' is {type(m).__name__}, which conversion cannot turn into a neuron "
                            "as it is; use QCFS activations, or calibrate thresholds (`threshold` max|percentile:P)")
    counts, calls = probe_sites(model, example)
    if calls:
        raise UserError(f"forward calls a functional activation at {calls[0]}; make every activation its own "
                        "QCFS module, or calibrate thresholds (`threshold` max|percentile:P), which rewrites ReLU calls")
    sites = [n for n in counts]
    if not sites:
        raise UserError("the model has no QCFS (or prepared ReLU) activation to convert")
    for name in sites:
        if counts[name] != 1:
            what = "never called" if counts[name] == 0 else f"called {counts[name]} times per forward pass"
            raise UserError(f"activation '{name}' is {what}; each call site needs its own module")
    return sites


def convert(model: nn.Module, example: torch.Tensor, int_bits: int = 1, frac_bits: int = 0,
            v_init: str = "half-lsb", thresholds: dict[str, float] | None = None, cap=None,
            maxpool: str = "refuse", site_bits: dict[str, dict] | None = None) -> nn.Module:
    """Return a converted copy of ``model``: each QCFS/matched site becomes a :class:`MultiBitIF`.

    The neuron's threshold is the site's λ (``θ = λ``); IF is ``int_bits=1, frac_bits=0``. The
    source activation is kept inside each neuron for ANN-mode parity checks. The input model is
    not changed.

    Args:
        model: the ANN (see :func:`find_activation_sites`).
        example: an input batch ``[B, 3, H, W]`` for the probe passes.
        int_bits, frac_bits: the neuron's m and n (1 <= m+n <= 16).
        v_init: ``half-lsb`` | ``half-threshold`` | ``zero``.
        thresholds: θ per site name, overriding λ (from :func:`ann2snn.conversion.calibrate.calibrate_thresholds`);
            required for ReLU sites (:class:`ann2snn.conversion.calibrate.ReLUSite`).
        cap: the neurons' per-step ceiling (``None``/``"full"``, ``"theta"`` or a count K; see
            :func:`ann2snn.conversion.neurons.resolve_cap`).
        maxpool: ``"refuse"`` (a max-pool is an error naming it) or ``"spiking"``: every max-pool
            module becomes its own :class:`~ann2snn.conversion.maxpool.SpikingMaxPool`
            (``"avg"`` is applied before, by :func:`ann2snn.conversion.maxpool.apply_maxpool`).
        site_bits: per-site bits that replace ``int_bits``, ``frac_bits`` and ``cap`` at the sites named:
            ``{site: {"int_bits": m, "frac_bits": n, "cap": None | "full" | "theta" | K}}`` (e.g. a plan of
            :mod:`ann2snn.conversion.plan`). Every name must be a site of this network.

    Raises:
        UserError: bad bits or v_init, a λ <= 0, a ReLU site without threshold, a max-pool with
            ``maxpool="refuse"`` (or a functional one), a max-pool module called at several places,
            ``site_bits`` naming sites the network does not have (or bad bits there), or any failed
            call-site check.
    """
    check_bits(int_bits, frac_bits)
    if check_maxpool_mode(maxpool) == "avg":
        raise UserError("`maxpool` avg swaps the pools before conversion: call ann2snn.conversion.maxpool.apply_maxpool "
                        "first, then convert with maxpool='refuse'")
    check_operations(model, example, maxpool)
    snn = copy.deepcopy(model).eval()
    pools = make_pools_spiking(snn) if maxpool == "spiking" else []
    for name in pools:  # the ANN's pool while the structure is probed; spiking at the end
        snn.get_submodule(name).mode = "ann"
    _check_pools_called_once(snn, example, pools)
    sites = find_activation_sites(snn, example)
    site_bits = site_bits or {}
    unknown = sorted(set(site_bits) - set(sites))
    if unknown:
        missing = sorted(set(sites) - set(site_bits))
        raise UserError(f"per-site bits name {len(unknown)} site(s) this network does not have: "
                        f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}"
                        + (f"; its sites without bits: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                           if missing else "") + " (a plan made for another network?)")
    thresholds = thresholds or {}
    for name in sites:
        site = snn.get_submodule(name)
        if name in thresholds:
            theta = torch.tensor(float(thresholds[name]))
        elif isinstance(site, QuantClip):
            lam = float(site.raw_lambda.detach())
            if not lam > 0:
                raise UserError(f"activation '{name}' has λ={lam:g} <= 0, which is no threshold; retrain it "
                                "(λ must stay positive)")
            theta = site.threshold().detach()
        else:
            raise UserError(f"ReLU site '{name}' has no threshold: calibrate the ReLU network's thresholds first "
                            "(`threshold` max|percentile:P)")
        parent_name, _, child = name.rpartition(".")
        parent = snn.get_submodule(parent_name) if parent_name else snn
        own = site_bits.get(name)
        m, n, k = (own["int_bits"], own["frac_bits"], own.get("cap")) if own else (int_bits, frac_bits, cap)
        if own:
            check_bits(m, n)
        setattr(parent, child, MultiBitIF(theta, m, n, v_init, ann_activation=site, cap=k))
    check_converted(snn, example, expected=len(sites))
    for name in pools:
        snn.get_submodule(name).mode = "snn"
    return snn


def _check_pools_called_once(snn: nn.Module, example: torch.Tensor, pools: list[str]) -> None:
    """A spiking max-pool keeps state: one module called at two places would mix them. Refuse that."""
    if not pools:
        return
    from ann2snn.plumbing.probe import probe_pass

    counts = {name: 0 for name in pools}
    handles = [snn.get_submodule(name).register_forward_hook(
        lambda *_a, name=name: counts.__setitem__(name, counts[name] + 1)) for name in pools]
    with probe_pass(snn, handles), torch.no_grad():  # the pools are in ANN mode: no state touched
        snn(example)
    for name, c in counts.items():
        if c > 1:
            raise UserError(f"max-pool '{name}' is called {c} times per forward pass; a spiking max-pool keeps "
                            "state, so each call site needs its own module")


def check_converted(snn: nn.Module, example: torch.Tensor, expected: int) -> None:
    """Probe a converted net: every neuron runs once and no ANN activation runs outside a neuron.

    Raises:
        RuntimeError: if conversion left an activation behind or the counts do not match
            (a bug in conversion, not a user error).
    """
    from ann2snn.conversion.simulate import reset_neurons

    counts, calls = probe_sites(snn, example)
    reset_neurons(snn)
    neurons = {n for n, m in snn.named_modules() if isinstance(m, MultiBitIF)}
    inner = tuple(n + "." for n in neurons)
    left = [n for n in counts if n not in neurons and not n.startswith(inner)]
    if left or calls:
        raise RuntimeError(f"conversion left ANN activations: {left or calls}")
    ran = [n for n in neurons if counts[n] == 1]
    if len(neurons) != expected or len(ran) != expected:
        raise RuntimeError(f"conversion made {len(neurons)} neurons ({len(ran)} ran once) for {expected} sites")
