"""ann2snn: convert quantization-clip ANNs into spiking networks with (multi-bit) IF neurons.

The public API (see the README's "Python API"): :func:`convert_model`, :func:`simulate_logits`,
:func:`iter_steps`, :func:`accuracy_sweep`, :func:`ann_parity`, the neuron :class:`MultiBitIF`, the ANN
activations :class:`QCFS` / :class:`MatchedQuant`, :func:`swap_maxpool_for_avgpool`,
:func:`record_spike_counts` and :func:`load_snn` (checkpoints written by ``ann2snn convert``).
"""

__version__ = "0.1.0"

from .activations import QCFS, MatchedQuant  # noqa: E402
from .api import accuracy_sweep, ann_parity, convert_model, iter_steps, simulate_logits  # noqa: E402
from .errors import UserError  # noqa: E402
from .neurons import MultiBitIF  # noqa: E402
from .opcheck import swap_maxpool_for_avgpool  # noqa: E402
from .simulate import record_spike_counts  # noqa: E402
from .snn import load_snn  # noqa: E402

__all__ = ["QCFS", "MatchedQuant", "MultiBitIF", "UserError", "ann_parity", "convert_model", "iter_steps",
           "load_snn", "record_spike_counts", "simulate_logits", "accuracy_sweep", "swap_maxpool_for_avgpool"]
