"""Small shared helpers for the tests (tiny models with non-trivial state; running the results/ scripts)."""

import contextlib
import importlib.util
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from ann2snn.ann.build import build_ann
from ann2snn.ann.lambda_init import init_lambda_from_data


def tiny_ann(arch="resnet20", activation="qcfs", width=0.25, seed=0, **extra) -> nn.Module:
    """A small CIFAR model with randomised BN statistics and data-driven λs, in eval mode."""
    torch.manual_seed(seed)
    model = build_ann({"arch": arch, "dataset": "cifar10", "width": width, "activation": activation,
                       "lambda_init": 1.0, **extra})
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    x = random_batches(16, 16, seed=seed + 1)[0][0]
    init_lambda_from_data(model, [(x, None)], num_batches=1)
    model.eval()
    # centre and sharpen the analog output layer, so that predictions differ between images
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen = []
    handle = fc.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
    with torch.no_grad():
        model(x)
        handle.remove()
        feats = seen[0]
        fc.weight.mul_(1.0 / (feats.std(0).mean() + 1e-6))
        fc.bias.copy_(-(feats.mean(0) @ fc.weight.T))
    return model


def random_batches(n=96, batch_size=32, seed=0, model=None):
    """Random images; labels are the model's own predictions when a model is given (else random)."""
    g = torch.Generator().manual_seed(seed)
    # smooth random images, so that globally pooled features (and predictions) differ between images
    coarse = torch.randn(n, 3, 4, 4, generator=g) * 1.5
    x = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") + 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    if model is not None:
        with torch.no_grad():
            y = model(x).argmax(1)
    else:
        y = torch.randint(0, 10, (n,), generator=g)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


def real_images(data_dir, n=8, offset=0):
    """``n`` real CIFAR-10 test images from ``offset`` on, normalised as in training (``data_dir``: the
    ``cifar10_dir`` fixture's folder)."""
    from ann2snn.plumbing.data import DATASETS, CifarBatches, load_split

    x, y = load_split("cifar10", data_dir, False)
    return next(iter(CifarBatches(x[offset:offset + n], y[offset:offset + n], DATASETS["cifar10"], n)))[0]


def load_results_script(name):
    """Import results/<name>.py as a module (results/ put on sys.path for its shared `report` helpers)."""
    folder = str(Path(__file__).resolve().parents[1] / "results")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, f"{folder}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(main, *args):
    """Run a results script's main(argv) in this process: SimpleNamespace(returncode, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
    return SimpleNamespace(returncode=code, stderr=err.getvalue())
