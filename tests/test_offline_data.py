"""--download on this project's offline machines unpacks the packed copy instead of failing on urlopen."""

import os

import pytest

from ann2snn.plumbing import data
from ann2snn.plumbing.errors import UserError


@pytest.mark.skipif(data.offline_copy() is None, reason="no ../shared/data/unpack_cifar.py next to this checkout")
def test_download_uses_the_offline_copy(tmp_path, capsys):
    x, y = data.load_split("cifar10", str(tmp_path), False, download=True)
    assert tuple(x.shape) == (10000, 3, 32, 32) and int(y.bincount().min()) == 1000
    assert "unpacking the offline copy" in capsys.readouterr().err


def test_missing_data_names_the_offline_route(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "offline_copy", lambda: "/x/shared/data/unpack_cifar.py")
    with pytest.raises(UserError, match=r"`download`.*offline on this project's machines: python "
                                        r"/x/shared/data/unpack_cifar.py .* cifar10"):
        data.load_split("cifar10", str(tmp_path), True)
    assert not os.listdir(tmp_path)
