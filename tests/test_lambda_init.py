"""--lambda-init auto: λ from data, positive and finite, with a fallback for silent sites."""

import torch
from torch import nn

from ann2snn.ann.activations import QCFS, MatchedQuant
from ann2snn.ann.lambda_init import FALLBACK_LAMBDA, PERCENTILE, init_lambda_from_data

from helpers import random_batches, tiny_ann


class TwoSites(nn.Module):
    def __init__(self):
        super().__init__()
        self.flat = nn.Flatten()
        self.dead = nn.Linear(3 * 32 * 32, 8)
        self.act_dead = QCFS(4, 8.0)
        self.live = nn.Linear(3 * 32 * 32, 8)
        self.act_live = MatchedQuant(1, 3, 8.0)
        self.bn = nn.BatchNorm1d(8)
        with torch.no_grad():
            self.dead.weight.zero_()
            self.dead.bias.fill_(-1.0)  # every input of act_dead is -1: the site never fires

    def forward(self, x):
        x = self.flat(x)
        return self.act_dead(self.dead(x)) + self.act_live(self.bn(self.live(x)))


def test_auto_lambda_is_a_high_percentile_with_a_fallback():
    model = TwoSites()
    batches = random_batches(64, 32)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    lams = init_lambda_from_data(model, batches, num_batches=2)
    assert lams[0] == FALLBACK_LAMBDA == float(model.act_dead.raw_lambda.detach())
    # BN running statistics are left as they were
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v)
    # the live site: the 99.9th percentile of its (batch-normalised) input over both batches
    with torch.no_grad():
        model.train()
        pre = torch.cat([model.bn(model.live(model.flat(x))).flatten() for x, _ in batches])
    assert abs(lams[1] - float(torch.quantile(pre, PERCENTILE / 100))) < 1e-4
    assert 1.0 < lams[1] < 5.0


def test_auto_lambda_on_real_architectures_is_positive_and_finite():
    for arch in ("vgg16", "resnet18", "resnet20"):
        model = tiny_ann(arch, width=0.125)
        lams = [float(m.raw_lambda.detach()) for m in model.modules() if isinstance(m, (QCFS, MatchedQuant))]
        assert lams and all(0 < v < float("inf") for v in lams)
        assert len(set(lams)) > 1  # chosen per site, not one global value
