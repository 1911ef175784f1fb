"""--download on this project's offline machines unpacks the packed copy instead of failing on urlopen.

The route is tested everywhere with a stand-in unpack script; the real packed copy only where it is
(``../shared/data/`` next to the checkout: a property of this project's machines, not real data that
``$ANN2SNN_DATA`` could stand in for)."""

import os
import pickle
import sys
import textwrap

import pytest
import torch

from ann2snn.plumbing import data
from ann2snn.plumbing.errors import UserError

# writes a 20-image cifar-10-batches-py/ under argv[1], as unpack_cifar.py DEST cifar10 would (not its MD5s)
STAND_IN = textwrap.dedent("""
    import os, pickle, sys
    import numpy as np
    dest, name = sys.argv[1], sys.argv[2]
    assert name == "cifar10", name
    folder = os.path.join(dest, "cifar-10-batches-py")
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(os.path.join(folder, f), "wb") as out:
            pickle.dump({"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(20)]}, out)
    with open(os.path.join(folder, "batches.meta"), "wb") as out:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, out)
    print("cifar10: ok")
""")


def test_download_runs_the_offline_unpack_script_and_loads_what_it_wrote(tmp_path, monkeypatch, capsys):
    script = tmp_path / "unpack_cifar.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(data, "offline_copy", lambda: str(script))
    root = tmp_path / "data"
    x, y = data.load_split("cifar10", str(root), False, download=True, skip_md5=True)
    err = capsys.readouterr().err
    assert "unpacking the offline copy" in err and str(script) in err
    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        written = pickle.load(f)
    assert torch.equal(x, torch.from_numpy(written["data"]).reshape(20, 3, 32, 32))
    assert y.tolist() == written["labels"]
    # a second call finds the files and leaves them alone (no second unpacking)
    data.load_split("cifar10", str(root), False, download=True, skip_md5=True)
    assert "unpacking" not in capsys.readouterr().err


def test_a_failing_unpack_script_is_reported_and_download_goes_on(tmp_path, monkeypatch, capsys):
    script = tmp_path / "unpack_cifar.py"
    script.write_text("import sys\nsys.exit('no packed copy here')\n")
    monkeypatch.setattr(data, "offline_copy", lambda: str(script))
    monkeypatch.setattr(sys.modules["torchvision.datasets"].CIFAR10, "download",
                        lambda self: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(UserError, match="could not download cifar10"):
        data.load_split("cifar10", str(tmp_path / "data"), False, download=True)
    assert "no packed copy here" in capsys.readouterr().err


@pytest.mark.skipif(data.offline_copy() is None, reason="no ../shared/data/unpack_cifar.py next to this checkout")
def test_download_uses_the_offline_copy(tmp_path, capsys):
    x, y = data.load_split("cifar10", str(tmp_path), False, download=True)
    assert tuple(x.shape) == (10000, 3, 32, 32) and int(y.bincount().min()) == 1000
    assert "unpacking the offline copy" in capsys.readouterr().err


def test_missing_data_names_the_offline_route(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "offline_copy", lambda: "/x/shared/data/unpack_cifar.py")
    with pytest.raises(UserError) as info:
        data.load_split("cifar10", str(tmp_path), True)
    # word for word the instruction of the README's quick start and docs/data.md, with this call's paths
    offline = (f"Offline, put torchvision's cifar-10-batches-py/ in {tmp_path}, or point `data_dir` or "
               "$ANN2SNN_DATA at the folder that holds it.")
    assert str(info.value) == (
        f"cifar10 not found in {tmp_path} (torchvision's cifar-10-batches-py/). Online, add `download`. "
        f"{offline} On this machine, `download` unpacks the packed copy in /x/shared/data/.")
    assert not os.listdir(tmp_path)
    # without the packed copy the last sentence is left out, and the rest stays
    monkeypatch.setattr(data, "offline_copy", lambda: None)
    with pytest.raises(UserError) as info:
        data.load_split("cifar10", str(tmp_path), True)
    assert str(info.value) == (f"cifar10 not found in {tmp_path} (torchvision's cifar-10-batches-py/). Online, "
                               f"add `download`. {offline}")


def test_a_failed_download_leaves_nothing_behind_and_says_the_same(tmp_path, monkeypatch):
    """The download-failure message ends with the missing-data message's offline instruction, and the
    partial archive and the folder the call made are removed (a folder that was there stays)."""
    monkeypatch.setattr(data, "offline_copy", lambda: None)

    def fail(self):  # torchvision's download: it has written part of the archive when the network drops
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, self.filename), "wb") as f:
            f.write(b"partial")
        raise OSError("Name or service not known")

    monkeypatch.setattr(sys.modules["torchvision.datasets"].CIFAR10, "download", fail)
    root = tmp_path / "data"
    with pytest.raises(UserError) as info:
        data.load_split("cifar10", str(root), True, download=True)
    assert str(info.value) == (f"could not download cifar10 into {root} (Name or service not known). "
                               + data.offline_instruction("cifar10", str(root)))
    assert not root.exists()
    root.mkdir()
    (root / "mine.txt").write_text("kept")
    with pytest.raises(UserError):
        data.load_split("cifar10", str(root), True, download=True)
    assert sorted(os.listdir(root)) == ["mine.txt"]
