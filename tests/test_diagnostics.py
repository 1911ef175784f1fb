"""Per-layer diagnostics against hand-computed values on a one-neuron-layer net."""

import pytest
import torch
from torch import nn

from ann2snn.ann.activations import QCFS
from ann2snn.conversion.convert import convert
from ann2snn.analysis.diagnostics import LayerDiagnostics
from ann2snn.conversion.simulate import simulate_snn

from helpers import random_batches, tiny_ann


class OneLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = QCFS(levels=4, lambda_init=1.0)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.act(x))


def test_hand_computed_diagnostics():
    # four constant inputs per image: 0 (never fires), 0.25, 0.5 and 3.0 (saturates IF every step)
    x = torch.tensor([[0.0, 0.25, 0.5, 3.0]] * 2)
    y = torch.tensor([0, 1])
    snn = convert(OneLayer().eval(), x[:1], 1, 0, "half-lsb")  # IF, θ = 1, v0 = 0.5
    diag = LayerDiagnostics(snn, [4])
    simulate_snn(snn, [(x, y)], 4, observers=[diag])
    row = diag.rows()[0]
    # spikes per element over 4 steps: 0.25 → t2 (v=1.0), t4?: v: .75,1.0→0,.25,.5 → 1 spike;
    # 0.5 → v: 1.0→0 (t1), .5, 1.0→0 (t3), .5 → 2 spikes; 3.0 → 4 spikes
    assert row["firing_rate"] == pytest.approx((0 + 1 + 2 + 4) / 16)
    assert row["never_fired"] == pytest.approx(1 / 4)
    assert row["saturated"] == pytest.approx((1 + 2 + 4) / 16)  # K = 1 for IF: every spike is at K
    assert row["first_spike_step"] == 1
    # rate·θ at T=4: 0, 0.25, 0.5, 1.0; ANN (QCFS L=4, λ=1): 0, 0.25, 0.5, 1.0 → error 0
    assert row["err_T=4"] == pytest.approx(0.0)
    diag.remove()


def test_diagnostics_on_a_resnet_do_not_change_accuracy():
    ann = tiny_ann("resnet20")
    batches = random_batches(40, 20, model=ann)
    snn = convert(ann, torch.zeros(1, 3, 32, 32), 1, 3)
    plain, _ = simulate_snn(snn, batches, 8)
    diag = LayerDiagnostics(snn, [1, 8])
    watched, _ = simulate_snn(snn, batches, 8, observers=[diag])
    assert torch.equal(plain, watched)
    rows = diag.rows()
    assert len(rows) == 19
    for r in rows:
        assert 0 <= r["firing_rate"] <= 1 and 0 <= r["never_fired"] <= 1 and 0 <= r["saturated"] <= 1
        assert r["err_T=8"] >= 0
    # averaged over layers, the rate error shrinks from T=1 to T=8
    assert sum(r["err_T=8"] for r in rows) < sum(r["err_T=1"] for r in rows)
