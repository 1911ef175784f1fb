"""λ stays positive during training, whatever --lambda-init and --lr (docs/design.md §2)."""

import pytest
import torch

from ann2snn.ann.activations import LAMBDA_MIN, LambdaGuard, QuantClip
from ann2snn.ann.build import load_ann
from ann2snn.cli.main import main


@pytest.mark.parametrize("activation,lambda_init,lr", [("qcfs", "0.01", "1"), ("qcfs", "0.001", "5"),
                                                         ("matched", "0.05", "20"), ("qcfs", "1e-6", "100")])
def test_adversarial_training_keeps_lambda_positive(fake_cifar, tmp_path, capsys, activation, lambda_init, lr):
    run = tmp_path / "run"
    assert main(["train-ann", "--arch", "resnet20", "--width", "0.25", "--activation", activation,
                 "--lambda-init", lambda_init, "--lr", lr, "--epochs", "6", "--batch-size", "2",
                 "--data-dir", fake_cifar, "--skip-md5", "--out", str(run), "--quiet"]) == 0
    ann, _ = load_ann(str(run))
    floor = torch.tensor(LAMBDA_MIN).item()  # LAMBDA_MIN in float32
    lams = [m.raw_lambda.item() for m in ann.modules() if isinstance(m, QuantClip)]
    assert min(lams) >= floor
    err = capsys.readouterr().err
    # these settings push some sites below the floor: the user is told, once per site, by name
    warnings = [line for line in err.splitlines() if line.startswith("warning: λ of activation")]
    assert warnings and len(warnings) == len(set(warnings)) and "lower --lr" in warnings[0]
    assert len(warnings) >= sum(lam == floor for lam in lams)  # a warned site may have recovered since
    # and the result converts
    assert main(["convert", "--checkpoint", str(run), "--neuron", "if", "--out", str(tmp_path / "snn.pt")]) == 0


def test_guard_clamps_and_reports_once():
    from ann2snn.ann.activations import QCFS

    model = torch.nn.Sequential(QCFS(4, 1.0), QCFS(4, 1.0))
    guard = LambdaGuard(model)
    with torch.no_grad():
        model[0].raw_lambda.fill_(-38.0)
    guard.after_step()
    assert model[0].raw_lambda.item() == torch.tensor(LAMBDA_MIN).item() and model[1].raw_lambda.item() == 1.0
    lines = guard.report()
    assert len(lines) == 1 and "'0'" in lines[0] and "-38" in lines[0]
    with torch.no_grad():
        model[0].raw_lambda.fill_(-1.0)
    guard.after_step()
    assert guard.report() == []  # said once per site
