"""Data-driven initial λ for quantization-clip activations (``--lambda-init auto``).

QCFS initialises every λ at 8.0, tuned for 300 epochs. With BN outputs near N(0, 1) most
activations then quantize to 0 and short runs learn slowly. ``auto`` instead sets each site's λ,
before the first step, to the 99.9th percentile of that site's pre-activation over a few training
batches: the robust maximum that Rueckauer et al. (2017) use for conversion thresholds. It keeps
the clip above nearly all of the signal while the quantum stays fine. Sites are set in call order,
each seeing the λs already chosen upstream. A site whose 99.9th percentile is not positive (it is
never, or almost never, active) falls back to ``FALLBACK_LAMBDA = 1.0``, the scale of a BN output.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ann2snn.ann.activations import QuantClip
from ann2snn.plumbing.probe import probe_pass

PERCENTILE = 99.9
FALLBACK_LAMBDA = 1.0
SAMPLES_PER_BATCH = 100_000  # random sample per batch: torch.quantile caps its input size


@torch.no_grad()
def init_lambda_from_data(model: nn.Module, batches, num_batches: int = 4, seed: int = 0) -> list[float]:
    """Set every :class:`QuantClip` site's λ from data; returns the λs in call order.

    BN layers run in training mode (batch statistics, as in the first training step); their running
    statistics are restored afterwards, so only the λs change. ``batches`` yields ``(x, y)``.
    """
    sites = [m for m in model.modules() if isinstance(m, QuantClip)]
    data = [x for x, _ in itertools.islice(iter(batches), num_batches)]
    saved = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for site in sites:
        samples = []

        def hook(_m, inputs):
            flat = inputs[0].detach().flatten().float()
            if flat.numel() > SAMPLES_PER_BATCH:
                flat = flat[torch.randint(0, flat.numel(), (SAMPLES_PER_BATCH,), generator=g)]
            samples.append(flat)

        with probe_pass(model, [site.register_forward_pre_hook(hook)], train=True):
            for x in data:
                model(x)
        value = float(torch.quantile(torch.cat(samples), PERCENTILE / 100.0)) if samples else 0.0
        lam = value if value > 0 and value < float("inf") else FALLBACK_LAMBDA
        site.raw_lambda.fill_(lam)
        chosen.append(lam)
    own = model.state_dict()
    for k, v in saved.items():
        own[k].copy_(v)
    return chosen
