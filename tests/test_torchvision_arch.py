"""torchvision networks trained elsewhere: `arch="torchvision:<name>"`, `weights` files, their max-pool."""

import pytest
import torch
from torch import nn

from ann2snn.ann.activations import QCFS, QuantClip
from ann2snn.ann.build import build_ann
from ann2snn.plumbing.errors import UserError

CFG = {"arch": "torchvision:resnet18", "dataset": "cifar10", "activation": "relu"}


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(UserError, match=r"did you mean torchvision:resnet18"):
        build_ann({**CFG, "arch": "torchvision:resnet81"})


def test_every_relu_call_site_gets_its_own_activation():
    """torchvision's ResNet-18 calls ReLU 17 times (the stem, then twice in each of 8 blocks) through
    9 nn.ReLU modules: each block reuses its one module."""
    import torchvision

    tv = torchvision.models.resnet18(num_classes=10)
    assert sum(isinstance(m, nn.ReLU) for m in tv.modules()) == 9
    model = build_ann({**CFG, "activation": "qcfs", "lambda_init": 8.0, "num_classes": 10})
    sites = [m for m in model.modules() if isinstance(m, QuantClip)]
    assert len(sites) == 17 and all(isinstance(s, QCFS) for s in sites)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert isinstance(model.maxpool, nn.MaxPool2d)  # kept as torchvision has it


def test_weights_load_into_the_rewritten_network_and_compute_the_same(tmp_path):
    torch.manual_seed(0)
    import torchvision

    tv = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "w.pt"
    torch.save({f"module.{k}": v for k, v in tv.state_dict().items()}, path)  # a DataParallel prefix too
    plain = build_ann(CFG, weights=str(path)).eval()
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(plain(x), tv(x))
    qcfs = build_ann({**CFG, "activation": "qcfs", "lambda_init": 8.0}, weights=str(path))
    own = {k: v for k, v in qcfs.state_dict().items() if "act_site" not in k}
    assert own.keys() == tv.state_dict().keys()
    assert all(torch.equal(own[k], v) for k, v in tv.state_dict().items())


def test_weights_of_another_network_or_head_are_named(tmp_path):
    import torchvision

    other = tmp_path / "r34.pt"
    torch.save(torchvision.models.resnet34(num_classes=10).state_dict(), other)
    with pytest.raises(UserError, match=r"unexpected keys \['layer1.2"):
        build_ann(CFG, weights=str(other))
    head = tmp_path / "r18_1000.pt"
    torch.save(torchvision.models.resnet18().state_dict(), head)
    with pytest.raises(UserError, match=r"1000-class head \(fc.weight\).*`num_classes` 1000"):
        build_ann(CFG, weights=str(head))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        build_ann(CFG, weights=str(junk))
    with pytest.raises(UserError, match="does not exist"):
        build_ann(CFG, weights=str(tmp_path / "missing.pt"))
    with pytest.raises(UserError, match="this project's own"):
        build_ann({**CFG, "arch": "vgg16"}, weights=str(head))


def test_a_pretrained_resnet18_converts_with_its_max_pool_without_retraining():
    """The calibrated ReLU path on torchvision's ResNet-18 with `maxpool` spiking: ANN-mode parity is
    exact, and the SNN's time-averaged logits approach the ANN's."""
    from ann2snn import convert_model
    from ann2snn.api import iter_steps
    from ann2snn.conversion.maxpool import SpikingMaxPool
    from ann2snn.conversion.simulate import set_mode

    torch.manual_seed(0)
    ann = build_ann(CFG).eval()
    g = torch.Generator().manual_seed(1)
    calib = [(torch.rand(4, 3, 64, 64, generator=g), torch.zeros(4, dtype=torch.long)) for _ in range(2)]
    snn = convert_model(ann, calibration=calib, threshold="max", neuron="mbif", int_bits=1, frac_bits=3,
                        maxpool="spiking", example=torch.zeros(1, 3, 64, 64))
    assert isinstance(snn.maxpool, SpikingMaxPool)
    x = calib[0][0]
    set_mode(snn, "ann")
    with torch.no_grad():
        assert torch.equal(snn(x), ann(x))
        ref = ann(x)
    set_mode(snn, "snn")
    acc, err = 0, {}
    for t, out in enumerate(iter_steps(snn, x, 64), 1):
        acc = acc + out
        if t in (8, 64):
            err[t] = float((acc / t - ref).abs().max() / ref.abs().max())
    # measured 6.2 % at T = 8 and 0.78 % at T = 64 (largest logit error over the largest |logit|)
    assert err[64] < 0.02 and err[64] < err[8] / 4, err


def _fingerprint(model):
    return ([(n, m.training) for n, m in model.named_modules()],
            {k: v.clone() for k, v in model.state_dict().items()},
            [(n, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for n, m in model.named_modules()])


@pytest.mark.parametrize("maxpool", ["spiking", "avg"])
def test_the_api_never_changes_your_model(maxpool):
    """Mode (mixed: a frozen BN in eval inside a network in train mode), weights, BN statistics and
    hooks of the user's model are as before conversion and the parity check."""
    from ann2snn import convert_model
    from ann2snn.api import ann_parity

    torch.manual_seed(0)
    ann = build_ann(CFG).train()
    ann.bn1.eval()
    calls = []
    ann.layer1.register_forward_hook(lambda *_: calls.append(1))
    before = _fingerprint(ann)
    g = torch.Generator().manual_seed(1)
    calib = [(torch.rand(2, 3, 32, 32, generator=g), torch.zeros(2, dtype=torch.long))]
    snn = convert_model(ann, calibration=calib, threshold="max", maxpool=maxpool)
    ann_parity(snn, ann, calib[0][0]) if maxpool == "spiking" else None
    after = _fingerprint(ann)
    assert before[0] == after[0]
    assert before[1].keys() == after[1].keys() and all(torch.equal(before[1][k], after[1][k]) for k in before[1])
    assert before[2] == after[2]
    assert isinstance(ann.maxpool, nn.MaxPool2d)


def test_avg_without_retraining_is_measurably_off_where_spiking_is_not():
    """The same untrained-elsewhere ResNet-18, converted both ways without retraining. Measured: the
    average-pool swap is 56 % off the ANN's logits (even its ANN mode: it is another network), the
    spiking max-pool 0.78 % at T = 64 (largest logit error over the largest |logit|)."""
    from ann2snn import convert_model
    from ann2snn.api import iter_steps
    from ann2snn.conversion.simulate import set_mode

    torch.manual_seed(0)
    ann = build_ann(CFG).eval()
    g = torch.Generator().manual_seed(1)
    calib = [(torch.rand(4, 3, 64, 64, generator=g), torch.zeros(4, dtype=torch.long)) for _ in range(2)]
    x = calib[0][0]
    with torch.no_grad():
        ref = ann(x)
    err = {}
    for maxpool in ("avg", "spiking"):
        snn = convert_model(ann, calibration=calib, threshold="max", neuron="mbif", int_bits=1, frac_bits=3,
                            maxpool=maxpool, example=torch.zeros(1, 3, 64, 64))
        set_mode(snn, "ann")
        with torch.no_grad():
            err[maxpool, "ann"] = float((snn(x) - ref).abs().max() / ref.abs().max())
        set_mode(snn, "snn")
        acc = sum(iter_steps(snn, x, 64))
        err[maxpool, "T=64"] = float((acc / 64 - ref).abs().max() / ref.abs().max())
    assert err["spiking", "ann"] == 0.0 and err["spiking", "T=64"] < 0.02
    assert err["avg", "ann"] > 0.3 and err["avg", "T=64"] > 0.3, err


def test_train_with_average_pools_as_qcfs_does():
    model = build_ann({**CFG, "activation": "qcfs", "lambda_init": 8.0, "maxpool": "avg"})
    assert isinstance(model.maxpool, nn.AvgPool2d) and model.maxpool.kernel_size == 3 and model.maxpool.stride == 2
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    with pytest.raises(UserError, match="average pools already"):
        build_ann({"arch": "vgg16", "dataset": "cifar10", "maxpool": "avg"})
