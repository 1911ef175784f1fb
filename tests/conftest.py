"""Shared pytest fixtures, and the rule that ties the real-data fixtures to the ``real_data`` marker."""

import os
import subprocess
import sys

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNPACK_CIFAR = os.path.join(REPO_ROOT, "..", "shared", "data", "unpack_cifar.py")

#: ``$ANN2SNN_DATA`` as the test run found it. The tests themselves run without it (fixture
#: ``no_user_data_dir``), so that a user's data folder changes nothing but where the real data comes from.
USER_DATA = os.environ.get("ANN2SNN_DATA")

#: dataset → (the folder torchvision reads under a data folder, one file that must be in it)
REAL_DATASETS = {"cifar10": ("cifar-10-batches-py", "test_batch"), "cifar100": ("cifar-100-python", "test")}
#: the fixtures that give real data; a test that uses one (even through another fixture) must be marked
#: ``real_data``, and a test marked ``real_data`` must use one
REAL_DATA_FIXTURES = {"cifar10_dir", "cifar100_dir"}


def real_data_dir(name, tmp_path_factory) -> str:
    """A data folder holding the real ``name`` (``cifar10`` or ``cifar100``), in this order:

    1. ``$ANN2SNN_DATA``, when it holds the dataset's folder (as ``--data-dir``'s default reads it);
    2. ``<repo root>/../shared/data/unpack_cifar.py`` (this project's offline copy), unpacked once per
       session into a temporary folder (about 6 s);
    3. else the test is skipped, saying both.

    The CIFAR-100 offline copy fails torchvision's MD5 check (its image order within a class differs):
    load it with ``skip_md5=True``.
    """
    folder, probe = REAL_DATASETS[name]
    if USER_DATA and os.path.isfile(os.path.join(USER_DATA, folder, probe)):
        return USER_DATA
    if not os.path.isfile(UNPACK_CIFAR):
        where = (f"$ANN2SNN_DATA={USER_DATA} holds no {folder}/{probe}" if USER_DATA
                 else "$ANN2SNN_DATA is not set")
        pytest.skip(f"real {name} is not available: {where}, and {os.path.normpath(UNPACK_CIFAR)} is missing")
    dest = tmp_path_factory.mktemp(name)
    result = subprocess.run([sys.executable, UNPACK_CIFAR, str(dest), name], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"unpack_cifar.py failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    assert os.path.isfile(os.path.join(dest, folder, probe))
    return str(dest)


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory):
    """A data folder holding the real CIFAR-10 (``cifar-10-batches-py/``): see :func:`real_data_dir`."""
    return real_data_dir("cifar10", tmp_path_factory)


@pytest.fixture(scope="session")
def cifar100_dir(tmp_path_factory):
    """A data folder holding the real CIFAR-100 (``cifar-100-python/``): see :func:`real_data_dir`."""
    return real_data_dir("cifar100", tmp_path_factory)


def pytest_collection_modifyitems(config, items):
    """Every test that gets real data is marked ``real_data``, and every test so marked gets real data, so
    that ``pytest -m real_data`` selects exactly the tests that skip without it."""
    wrong = []
    for item in items:
        uses = REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ()))
        marked = item.get_closest_marker("real_data") is not None
        if bool(uses) != marked:
            wrong.append(f"{item.nodeid}: " + ("uses " + ", ".join(sorted(uses)) + " but is not marked real_data"
                                               if uses else "is marked real_data but uses no real-data fixture"))
    if wrong:
        raise pytest.UsageError("real_data marker out of step with the fixtures:\n  " + "\n  ".join(wrong))


@pytest.fixture(autouse=True, scope="session")
def no_user_data_dir():
    """Run the tests (and the processes they start) without ``$ANN2SNN_DATA``: a test that relies on the
    default data folder then behaves the same on every machine. :data:`USER_DATA` keeps its value."""
    if USER_DATA is None:
        yield
        return
    del os.environ["ANN2SNN_DATA"]
    yield
    os.environ["ANN2SNN_DATA"] = USER_DATA


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


def write_fake_cifar10(root, per_file=10, smooth=False) -> str:
    """Write a small stand-in for CIFAR-10 in torchvision's file format under ``root`` (``per_file`` random
    images per file, labels 0..9 in turn) and return ``root``. ``smooth``: images with structure at a
    scale of 8 pixels (upsampled 4×4 noise plus a little pixel noise) instead of pixel noise, so that even an
    untrained network's predictions differ between them. Its MD5s are not torchvision's: it loads only
    with --skip-md5 (which logs one warning line)."""
    import pickle

    folder = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(folder)
    g = torch.Generator().manual_seed(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if smooth:
            coarse = torch.rand(per_file, 3, 4, 4, generator=g) * 255
            img = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear")
            img = img + 20 * torch.randn(per_file, 3, 32, 32, generator=g)
            data = img.round().clamp(0, 255).to(torch.uint8).reshape(per_file, 3072).numpy()
        else:
            data = torch.randint(0, 256, (per_file, 3072), generator=g, dtype=torch.uint8).numpy()
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": data, "labels": [i % 10 for i in range(per_file)]}, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return str(root)


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory):
    """A folder holding :func:`write_fake_cifar10`'s stand-in CIFAR-10 (10 images per file)."""
    return write_fake_cifar10(tmp_path_factory.mktemp("fake_cifar"))
