"""Save and load an SNN converted from the user's own model (ann2snn.save_snn / load_snn)."""

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import ann2snn
from helpers import random_batches, tiny_ann


class UserNet(nn.Module):
    """A user's CNN: F.relu calls only, BatchNorm, average pooling."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.avg_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


def _user_net(seed=0):
    torch.manual_seed(seed)
    net = UserNet().eval()
    net.b1.running_mean.uniform_(-0.2, 0.2)
    net.b1.running_var.uniform_(0.5, 1.5)
    return net


@pytest.mark.parametrize("fold_bn,neuron,cap", [(False, "mbif", None), (True, "if", None), (False, "mbif", "theta")])
def test_round_trip_gives_the_same_network(tmp_path, fold_bn, neuron, cap):
    calib = random_batches(64, 32, seed=1)
    snn = ann2snn.convert_model(_user_net(), calibration=calib, neuron=neuron, cap=cap, fold_bn=fold_bn,
                                threshold="percentile:99")
    path = tmp_path / "snn.pt"
    ann2snn.save_snn(snn, str(path))
    loaded, ckpt = ann2snn.load_snn(str(path), ann=_user_net(seed=7))  # other weights: all come from the file
    assert ckpt["config"]["model_class"].endswith("UserNet")
    assert loaded.state_dict().keys() == snn.state_dict().keys()
    x = random_batches(4, 4, seed=2)[0][0]
    assert torch.equal(ann2snn.simulate_logits(loaded, x, 6), ann2snn.simulate_logits(snn, x, 6))
    if not fold_bn:  # ANN mode of the loaded SNN is the user's ANN again (folding BN rounds differently)
        assert ann2snn.ann_parity(loaded, _user_net(), x)


def test_round_trip_of_a_qcfs_model_with_its_lambdas(tmp_path):
    ann = tiny_ann("vgg16", width=0.125)
    snn = ann2snn.convert_model(ann, neuron="mbif", frac_bits=2, cap="theta")
    ann2snn.save_snn(snn, str(tmp_path / "q.pt"))
    fresh = tiny_ann("vgg16", width=0.125, seed=3)
    loaded, _ = ann2snn.load_snn(str(tmp_path / "q.pt"), ann=fresh)
    x = random_batches(2, 2, seed=4)[0][0]
    assert torch.equal(ann2snn.simulate_logits(loaded, x, 1), ann(x).unsqueeze(0))  # the exact T = 1 identity


def test_mistakes_get_one_clear_line(tmp_path):
    snn = ann2snn.convert_model(_user_net(), calibration=random_batches(32, 32), neuron="if")
    path = str(tmp_path / "snn.pt")
    ann2snn.save_snn(snn, path)
    with pytest.raises(ann2snn.UserError, match=r"your own model \(.*UserNet\).*ann=<a fresh instance"):
        ann2snn.load_snn(path)
    with pytest.raises(ann2snn.UserError, match="carries no conversion settings"):
        ann2snn.save_snn(_user_net(), path)

    class Other(UserNet):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8 * 8 * 8, 100)

    with pytest.raises(ann2snn.UserError):
        ann2snn.load_snn(path, ann=Other())
    result = subprocess.run([sys.executable, "-m", "ann2snn", "sweep", "--checkpoint", path, "--T", "1",
                             "--out", str(tmp_path / "sweep")],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "your own model" in lines[0] and "Traceback" not in result.stderr
