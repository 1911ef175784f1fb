"""Shared pytest fixtures."""

import os
import subprocess
import sys

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNPACK_CIFAR = os.path.join(REPO_ROOT, "..", "shared", "data", "unpack_cifar.py")


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory):
    """A data folder holding the real CIFAR-10 (``cifar-10-batches-py/``), unpacked once per session.

    Uses ``<repo root>/../shared/data/unpack_cifar.py`` (about 6 s); skips when that script is absent.
    """
    if not os.path.isfile(UNPACK_CIFAR):
        pytest.skip(f"real CIFAR-10 is not available: {os.path.normpath(UNPACK_CIFAR)} is missing")
    dest = tmp_path_factory.mktemp("cifar10")
    result = subprocess.run([sys.executable, UNPACK_CIFAR, str(dest), "cifar10"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"unpack_cifar.py failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    assert os.path.isfile(os.path.join(dest, "cifar-10-batches-py", "test_batch"))
    return str(dest)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The models in the tests are tiny: one thread is as fast, and much faster on a busy machine.

    ``ANN2SNN_TEST_THREADS=N`` runs them with N threads instead (``.ci/run`` runs the exactness
    tests with 1 and 2 threads)."""
    before = torch.get_num_threads()
    n = os.environ.get("ANN2SNN_TEST_THREADS", "1")
    torch.set_num_threads(int(n))
    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = n  # so the CLI's --threads auto keeps this count (cli/main.py)
    yield
    torch.set_num_threads(before)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


def write_fake_cifar10(root) -> str:
    """Write a tiny stand-in for CIFAR-10 in torchvision's file format under ``root`` (10 random images
    per file, one per class) and return ``root``. Its MD5s are not torchvision's: it loads only with
    --skip-md5 (which logs one warning line)."""
    import pickle

    folder = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(folder)
    g = torch.Generator().manual_seed(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = torch.randint(0, 256, (10, 3072), generator=g, dtype=torch.uint8).numpy()
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": data, "labels": list(range(10))}, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return str(root)


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory):
    """A folder holding :func:`write_fake_cifar10`'s stand-in CIFAR-10."""
    return write_fake_cifar10(tmp_path_factory.mktemp("fake_cifar"))
