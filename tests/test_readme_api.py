"""The Python API block of docs/guides/own-model.md runs as written and computes what it says.

(tests/test_doc_blocks.py runs every other code block of the README and docs/; this one is run here,
with checks of its results.)"""

import os
import re

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = "docs/guides/own-model.md"


def test_python_api_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the block saves my_snn.pt in the working folder
    text = open(os.path.join(ROOT, PAGE), encoding="utf-8").read()
    section = text.split("## The Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(code, f"{PAGE} (The Python API)", "exec"), scope)
    out, table = scope["out"], scope["table"]
    assert out.shape == (8, 4, 10)
    assert list(table["T"]) == [1, 4, 8] and table["accuracy"].between(0, 100).all()
    # T = 8 from sweep equals the argmax of the summed per-step outputs of simulate
    labels = scope["model"](scope["x"]).argmax(1)
    assert table["accuracy"].iloc[-1] == 100.0 * float((out.sum(0).argmax(1) == labels).float().mean())


def test_api_errors():
    import pytest
    from torch import nn

    import ann2snn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10)).eval()
    with pytest.raises(ann2snn.UserError, match="calibration="):
        ann2snn.convert_model(model)
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Linear(4 * 15 * 15, 10)).eval()
    with pytest.raises(ann2snn.UserError, match="max-pooling"):
        ann2snn.convert_model(pooled, calibration=[(torch.randn(2, 3, 32, 32), None)])
    snn = ann2snn.convert_model(model, calibration=[(torch.randn(2, 3, 32, 32), None)], calib_batches=1,
                                neuron="if")
    with pytest.raises(ann2snn.UserError, match="T must be"):
        ann2snn.simulate_logits(snn, torch.randn(1, 3, 32, 32), 0)


def test_public_names_are_not_shadowed_by_submodules():
    import types

    import ann2snn
    import ann2snn.cli.main  # noqa: F401  (imports every submodule the CLI uses)

    for name in ann2snn.__all__:
        assert not isinstance(getattr(ann2snn, name), types.ModuleType), name
