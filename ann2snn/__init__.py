"""ann2snn: convert quantization-clip ANNs into spiking networks with (multi-bit) IF neurons.

The public API (docs/api.md; an example in docs/guides/own-model.md): :func:`convert_model`, :func:`simulate_logits`,
:func:`iter_steps`, :func:`accuracy_sweep`, :func:`ann_parity`, the neuron :class:`MultiBitIF`, the ANN
activations :class:`QCFS` / :class:`MatchedQuant`, :func:`swap_maxpool_for_avgpool`,
:func:`record_spike_counts`, :func:`check_bitplanes` (Fig. 4 on your network), and
:func:`save_snn` / :func:`load_snn` (your own converted model, or checkpoints of ``ann2snn convert``),
and :func:`set_fused` (each neuron step as one compiled kernel, bit-identical), and
:func:`run_sweep` (a whole sweep from checkpoints, as ``ann2snn sweep`` runs it), :func:`correct_snn`
(correction after conversion) and :func:`run_plan` (a per-site bit plan, as ``ann2snn plan`` makes it).
"""

from ann2snn.plumbing.version import __version__  # noqa: E402

from ann2snn.ann.activations import QCFS, MatchedQuant  # noqa: E402
from .api import accuracy_sweep, ann_parity, convert_model, iter_steps, simulate_logits  # noqa: E402
from ann2snn.plumbing.errors import UserError  # noqa: E402
from ann2snn.conversion.neurons import MultiBitIF  # noqa: E402
from ann2snn.ann.pools import swap_maxpool_for_avgpool  # noqa: E402
from ann2snn.conversion.simulate import record_spike_counts, set_fused  # noqa: E402
from ann2snn.conversion.snn import load_snn, save_snn  # noqa: E402
from ann2snn.analysis.bitplane import check_bitplanes  # noqa: E402
from ann2snn.pipelines.sweep import run_sweep  # noqa: E402
from ann2snn.conversion.correct import correct_snn  # noqa: E402
from ann2snn.pipelines.plan import run_plan  # noqa: E402

__all__ = ["QCFS", "MatchedQuant", "MultiBitIF", "UserError", "ann_parity", "convert_model", "iter_steps",
           "load_snn", "save_snn", "check_bitplanes", "record_spike_counts", "simulate_logits", "accuracy_sweep", "swap_maxpool_for_avgpool",
           "set_fused", "run_sweep", "correct_snn", "run_plan"]
