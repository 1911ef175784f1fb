"""Checkpoint files: strict key matching, atomic writes, weights_only loads, kind checks."""

import os
import stat

import pytest
import torch
from torch import nn

import ann2snn.plumbing.checkpoint as checkpoint
from ann2snn.ann.build import build_ann, load_ann
from ann2snn.plumbing.checkpoint import (FORMAT, atomic_write_text, load_checkpoint, load_state_strict, save_checkpoint,
                                strip_prefixes)
from ann2snn.plumbing.errors import UserError
from ann2snn.conversion.snn import convert_checkpoint, load_snn
from ann2snn.ann.train import DEFAULTS

CONFIG = {**DEFAULTS, "arch": "resnet20", "dataset": "cifar10", "width": 0.25, "lambda_init": 1.0, "epochs": 2}




def randomized_ann(seed):
    """A tiny ResNet-20 whose every float tensor (weights, BN statistics, λ) is seed-specific."""
    model = build_ann(CONFIG)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith(("raw_lambda", "running_var"))
                        else torch.randn(t.shape, generator=g) * 0.1)
    return model.eval()


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def ann_checkpoint(model, **extra):
    return {"kind": "ann", "format": FORMAT, "config": CONFIG, "epoch": 2, "model_state": model.state_dict(),
            "metrics": [], "complete": True, **extra}


# --- strip_prefixes / load_state_strict ---------------------------------------------------------------


def test_strip_prefixes_removes_wrapper_components_at_any_depth():
    state = {"module.a": 1, "_orig_mod.b": 2, "module._orig_mod.c": 3, "_orig_mod.module.d": 4, "e": 5,
             "blocks.module.f": 6, "modules.g": 7, "x._orig_mod.y.module.z": 8, "my_module.h": 9}
    assert strip_prefixes(state) == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "blocks.f": 6, "modules.g": 7,
                                     "x.y.z": 8, "my_module.h": 9}
    # a key the model really has is kept as it is (a sub-module genuinely named "module")
    assert strip_prefixes({"blocks.module.f": 1}, own_keys={"blocks.module.f"}) == {"blocks.module.f": 1}
    with pytest.raises(UserError, match="twice"):
        strip_prefixes({"layers.module.w": 1, "layers.w": 2})


def _wrap_submodule(model, wrapper):
    """Wrap ``model.layers`` (a sub-module, not the whole model) as DataParallel or torch.compile would."""
    import copy

    model = copy.deepcopy(model)
    if wrapper == "DataParallel":
        model.layers = nn.DataParallel(model.layers)
    elif wrapper == "torch.compile":
        model.layers = torch.compile(model.layers)
    else:  # compiled inside, the whole model then under DDP
        model.layers = torch.compile(model.layers)
        model = nn.DataParallel(model)
    return model.state_dict()


@pytest.mark.parametrize("wrapper", ["DataParallel", "torch.compile", "both"])
def test_wrapped_submodule_loads_strictly(wrapper):
    source, target = randomized_ann(1), randomized_ann(2)
    state = _wrap_submodule(source, wrapper)
    assert any(".module." in k or "._orig_mod." in k for k in state)
    load_state_strict(target, state)
    assert states_equal(target.state_dict(), source.state_dict())
    # still strict below the wrapper: a key left unmatched is named, and nothing is loaded
    before = snapshot(target)
    broken = {k: v for k, v in state.items() if list(strip_prefixes({k: 0})) != ["layers.0.0.conv1.weight"]}
    assert len(broken) == len(state) - 1
    broken[next(k for k in state if k.endswith("fc.bias")).replace("fc.bias", "fc.extra")] = torch.zeros(1)
    with pytest.raises(UserError) as info:
        load_state_strict(target, broken)
    assert "missing keys ['layers.0.0.conv1.weight']" in str(info.value)
    assert "unexpected keys ['fc.extra']" in str(info.value)
    assert states_equal(target.state_dict(), before)


def test_real_submodule_named_module_is_not_stripped():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = nn.Linear(2, 2)

    torch.manual_seed(0)
    a, b, c = Holder(), Holder(), Holder()
    assert not torch.equal(a.module.weight, b.module.weight) and not torch.equal(a.module.weight, c.module.weight)
    load_state_strict(b, a.state_dict())
    assert torch.equal(a.module.weight, b.module.weight) and torch.equal(a.module.bias, b.module.bias)
    wrapped = nn.DataParallel(a).state_dict()
    assert sorted(wrapped) == ["module.module.bias", "module.module.weight"]
    load_state_strict(c, wrapped)  # module.module.weight → module.weight
    assert torch.equal(a.module.weight, c.module.weight) and torch.equal(a.module.bias, c.module.bias)


def _wrapped_state(model, wrapper):
    if wrapper == "plain":
        return model.state_dict()
    if wrapper == "DataParallel":  # real keys, as nn.DataParallel / DDP save them
        state = nn.DataParallel(model).state_dict()
        assert all(k.startswith("module.") for k in state)
        return state
    if wrapper == "torch.compile":  # real keys of an OptimizedModule (no compilation happens)
        state = torch.compile(model).state_dict()
        assert all(k.startswith("_orig_mod.") for k in state)
        return state
    return {"module._orig_mod." + k: v for k, v in model.state_dict().items()}  # compiled, then DDP


@pytest.mark.parametrize("wrapper", ["plain", "DataParallel", "torch.compile", "DDP+compile"])
def test_load_state_strict_strips_prefixes_and_loads_exactly(wrapper):
    source, target = randomized_ann(1), randomized_ann(2)
    assert not torch.equal(source.act1.raw_lambda, target.act1.raw_lambda)
    load_state_strict(target, _wrapped_state(source, wrapper))
    assert states_equal(target.state_dict(), source.state_dict())
    assert float(target.act1.raw_lambda.detach()) == float(source.act1.raw_lambda.detach())
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_missing_key_is_named_and_nothing_is_loaded():
    source, target = randomized_ann(1), randomized_ann(2)
    before = snapshot(target)
    state = dict(source.state_dict())
    del state["layers.2.0.act2.raw_lambda"]  # a λ (a future threshold) gone missing
    with pytest.raises(UserError) as info:
        load_state_strict(target, state, source="run/checkpoint.pt")
    msg = str(info.value)
    assert msg == "run/checkpoint.pt does not match the model: missing keys ['layers.2.0.act2.raw_lambda']"
    assert states_equal(target.state_dict(), before)  # no partial load


def test_unexpected_key_is_named():
    source, target = randomized_ann(1), randomized_ann(2)
    before = snapshot(target)
    state = {**source.state_dict(), "fc.extra_threshold": torch.ones(())}
    with pytest.raises(UserError) as info:
        load_state_strict(target, state)
    assert str(info.value) == "checkpoint does not match the model: unexpected keys ['fc.extra_threshold']"
    assert states_equal(target.state_dict(), before)


def test_unexpected_key_is_named_after_prefix_stripping():
    source, target = randomized_ann(1), randomized_ann(2)
    state = {**nn.DataParallel(source).state_dict(), "module.head.bias": torch.zeros(10)}
    with pytest.raises(UserError, match=r"unexpected keys \['head\.bias'\]$"):
        load_state_strict(target, state)


def test_renamed_key_names_both_sides():
    source, target = randomized_ann(1), randomized_ann(2)
    state = dict(source.state_dict())
    state["classifier.weight"] = state.pop("fc.weight")
    with pytest.raises(UserError) as info:
        load_state_strict(target, state)
    msg = str(info.value)
    assert "missing keys ['fc.weight']" in msg and "unexpected keys ['classifier.weight']" in msg


def test_many_missing_keys_are_counted():
    source, target = randomized_ann(1), randomized_ann(2)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("raw_lambda")}  # 19 λs dropped
    with pytest.raises(UserError) as info:
        load_state_strict(target, state)
    msg = str(info.value)
    assert "missing keys ['act1.raw_lambda', 'layers.0.0.act1.raw_lambda', 'layers.0.0.act2.raw_lambda']" in msg
    assert msg.endswith("and 16 more")


def test_shape_mismatch_is_named():
    source, target = randomized_ann(1), randomized_ann(2)
    before = snapshot(target)
    state = dict(source.state_dict())
    state["fc.weight"] = torch.zeros(100, state["fc.weight"].shape[1])  # a CIFAR-100 head
    with pytest.raises(UserError) as info:
        load_state_strict(target, state, source="x.pt")
    assert str(info.value) == (f"x.pt does not match the model: fc.weight has shape (100, 16), "
                               f"the model expects {tuple(before['fc.weight'].shape)}")
    assert tuple(before["fc.weight"].shape) == (10, 16)
    assert states_equal(target.state_dict(), before)


# --- save_checkpoint: atomic ------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    model = randomized_ann(3)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(ann_checkpoint(model), str(path))
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    ckpt = load_checkpoint(str(path), kind="ann")
    assert ckpt["kind"] == "ann" and ckpt["format"] == FORMAT and ckpt["epoch"] == 2
    assert ckpt["config"] == CONFIG and ckpt["path"] == str(path)
    assert states_equal(ckpt["model_state"], model.state_dict())
    # a run folder stands for its checkpoint.pt
    save_checkpoint(ann_checkpoint(model), str(tmp_path / "run" / "checkpoint.pt"))
    assert load_checkpoint(str(tmp_path / "run"))["path"] == str(tmp_path / "run" / "checkpoint.pt")


class Crash(Exception):
    pass


@pytest.mark.parametrize("error", [OSError("No space left on device"), Crash("boom"), KeyboardInterrupt()],
                         ids=["OSError", "Exception", "KeyboardInterrupt"])
def test_save_is_atomic_when_the_write_fails_midway(tmp_path, monkeypatch, error):
    path = tmp_path / "checkpoint.pt"
    old_model = randomized_ann(4)
    save_checkpoint(ann_checkpoint(old_model), str(path))
    old_bytes = path.read_bytes()
    written = []

    def half_save(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            written.append(f.name)
            f.write(old_bytes[:1000])  # a partial archive...
        else:
            written.append(str(f))
            with open(f, "wb") as fh:
                fh.write(old_bytes[:1000])
        raise error  # ...then the disk fills up / the run is killed

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(type(error)):
        save_checkpoint(ann_checkpoint(randomized_ann(5)), str(path))
    monkeypatch.undo()

    assert len(written) == 1
    tmp = written[0]
    assert tmp != str(path) and os.path.dirname(tmp) == str(tmp_path)  # same folder: the rename is atomic
    assert os.path.basename(tmp).startswith("checkpoint.pt.") and tmp.endswith(".tmp")
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temporary file left behind
    assert path.read_bytes() == old_bytes
    assert states_equal(load_checkpoint(str(path))["model_state"], old_model.state_dict())


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError("killed")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_checkpoint({"kind": "ann"}, str(tmp_path / "new" / "checkpoint.pt"))
    assert os.listdir(tmp_path / "new") == []


def test_atomic_write_text_replaces_whole_file(tmp_path):
    path = tmp_path / "metrics.csv"
    atomic_write_text(str(path), "epoch,loss\n1,2.0\n")
    atomic_write_text(str(path), "epoch,loss\n1,2.0\n2,1.5\n")
    assert path.read_text() == "epoch,loss\n1,2.0\n2,1.5\n"

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("epoch,lo")
        raise OSError("killed")

    with pytest.raises(OSError):
        checkpoint.atomic_write(str(path), broken)
    assert path.read_text() == "epoch,loss\n1,2.0\n2,1.5\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_save_to_a_name_without_extension(tmp_path):
    path = tmp_path / "snn_model"
    save_checkpoint(ann_checkpoint(randomized_ann(6)), str(path))
    assert load_checkpoint(str(path))["epoch"] == 2


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_saved_files_follow_the_umask(tmp_path, mask):
    """Atomic writes (a temporary file, then a rename) give the mode an ordinary ``open(path, "w")`` gives:
    0o666 without the umask's bits, whatever umask the test run itself has."""
    old = os.umask(mask)
    try:
        save_checkpoint({"kind": "ann"}, str(tmp_path / "c.pt"))
        atomic_write_text(str(tmp_path / "m.csv"), "a\n")
        with open(tmp_path / "plain.txt", "w") as f:  # what an ordinary write gives
            f.write("a\n")
    finally:
        os.umask(old)
    expected = 0o666 & ~mask
    assert stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == expected
    assert stat.S_IMODE(os.stat(tmp_path / "m.csv").st_mode) == expected
    assert stat.S_IMODE(os.stat(tmp_path / "c.pt").st_mode) == expected


# --- load_checkpoint: weights_only -------------------------------------------------------------------------


class Settings:
    """An arbitrary Python object (not a tensor or plain type) inside a checkpoint."""

    def __init__(self, lr):
        self.lr = lr


def record(marker):
    with open(marker, "w") as f:
        f.write("code ran")
    return {}


class Payload:
    """Unpickling this calls record(marker): a stand-in for arbitrary code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return record, (self.marker,)


def test_custom_object_is_rejected(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save({"kind": "ann", "format": FORMAT, "config": Settings(0.1), "model_state": {}}, path)
    assert isinstance(torch.load(path, weights_only=False)["config"], Settings)  # a valid torch file otherwise
    with pytest.raises(UserError, match=r"custom\.pt is not a readable checkpoint"):
        load_checkpoint(str(path))


def test_code_in_a_pickle_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"kind": "ann", "format": FORMAT, "config": Payload(str(marker)), "model_state": {}}, path)
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_checkpoint(str(path), kind="ann")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: an unrestricted load does run it
    assert marker.read_text() == "code ran"


# --- load_checkpoint: what the file is ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ann_and_snn(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds")
    model = randomized_ann(7)
    ann = d / "ann.pt"
    save_checkpoint(ann_checkpoint(model), str(ann))
    snn = d / "snn.pt"
    convert_checkpoint(str(ann), {"neuron": "if", "int_bits": None, "frac_bits": None, "v_init": "zero"}, str(snn))
    return str(ann), str(snn), model


def test_kind_checks(ann_and_snn):
    ann, snn, _ = ann_and_snn
    assert load_checkpoint(ann, kind="ann")["kind"] == "ann"
    assert load_checkpoint(snn, kind="snn")["kind"] == "snn"
    assert load_checkpoint(ann)["kind"] == "ann" and load_checkpoint(snn)["kind"] == "snn"
    with pytest.raises(UserError) as info:
        load_checkpoint(ann, kind="snn")
    assert str(info.value) == (f"{ann} is an ANN checkpoint, but an SNN checkpoint (from `ann2snn convert`) "
                               "is needed here")
    with pytest.raises(UserError) as info:
        load_checkpoint(snn, kind="ann")
    assert str(info.value) == (f"{snn} is an SNN checkpoint, but an ANN checkpoint (from `ann2snn train-ann`) "
                               "is needed here")


def test_loaders_check_the_kind(ann_and_snn):
    ann, snn, model = ann_and_snn
    loaded, ckpt = load_ann(ann)
    assert states_equal(loaded.state_dict(), model.state_dict()) and not loaded.training
    with pytest.raises(UserError, match="is an SNN checkpoint"):
        load_ann(snn)
    with pytest.raises(UserError, match="is an ANN checkpoint"):
        load_snn(ann)


def test_snn_checkpoint_round_trip_and_provenance(ann_and_snn):
    ann, snn, model = ann_and_snn
    net, ckpt = load_snn(snn)
    assert ckpt["conversion"] == {"neuron": "if", "int_bits": 1, "frac_bits": 0, "v_init": "zero", "cap": None,
                                  "maxpool": "refuse"}
    assert ckpt["source"]["path"] == ann and ckpt["source"]["sha256"] == checkpoint.file_sha256(ann)
    assert ckpt["source"]["epoch"] == 2
    assert states_equal(net.state_dict(), ckpt["model_state"])
    thetas = {k: v for k, v in ckpt["model_state"].items() if k.endswith(".theta")}
    assert len(thetas) == 19
    assert torch.equal(thetas["layers.1.2.act2.theta"], model.layers[1][2].act2.raw_lambda.detach())


def test_snn_checkpoint_missing_a_threshold(tmp_path, ann_and_snn):
    _, snn, _ = ann_and_snn
    ckpt = torch.load(snn, weights_only=True)
    del ckpt["model_state"]["layers.1.2.act2.theta"]
    path = tmp_path / "no_theta.pt"
    torch.save(ckpt, path)
    with pytest.raises(UserError, match=r"missing keys \['layers\.1\.2\.act2\.theta'\]"):
        load_snn(str(path))


def test_snn_checkpoint_with_nonpositive_threshold(tmp_path, ann_and_snn):
    _, snn, _ = ann_and_snn
    ckpt = torch.load(snn, weights_only=True)
    ckpt["model_state"]["act1.theta"] = torch.tensor(-0.5)
    path = tmp_path / "neg_theta.pt"
    torch.save(ckpt, path)
    with pytest.raises(UserError, match="theta=-0.5 is not a positive number"):
        load_snn(str(path))


def test_ann_checkpoint_saved_from_a_wrapped_model_loads(tmp_path):
    model = randomized_ann(8)
    path = tmp_path / "ddp.pt"
    save_checkpoint(ann_checkpoint(model, model_state=nn.DataParallel(model).state_dict()), str(path))
    loaded, _ = load_ann(str(path))
    assert states_equal(loaded.state_dict(), model.state_dict())


@pytest.mark.parametrize("obj", [
    torch.zeros(3),
    [1, 2, 3],
    {"conv1.weight": torch.zeros(1)},  # a bare state_dict
    {"kind": "ann", "format": FORMAT, "config": {}},  # no model_state
    {"kind": "onnx", "format": FORMAT, "model_state": {}},
], ids=["tensor", "list", "state_dict", "no-model-state", "bad-kind"])
def test_not_an_ann2snn_checkpoint(tmp_path, obj):
    path = tmp_path / "thing.pt"
    torch.save(obj, path)
    with pytest.raises(UserError) as info:
        load_checkpoint(str(path))
    assert str(info.value) == f"{path} is not an ann2snn checkpoint (made by train-ann or convert)"


@pytest.mark.parametrize("fmt", [None, 0, 3])
def test_other_format_is_refused(tmp_path, fmt):
    path = tmp_path / "old.pt"
    obj = {"kind": "ann", "config": {}, "model_state": {}}
    if fmt is not None:
        obj["format"] = fmt
    torch.save(obj, path)
    with pytest.raises(UserError) as info:
        load_checkpoint(str(path))
    assert str(info.value) == f"{path} has checkpoint format {fmt!r}; this ann2snn reads formats 1 and 2"


def test_missing_paths(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(str(tmp_path / "nope.pt"))
    (tmp_path / "emptyrun").mkdir()  # a run folder without checkpoint.pt
    with pytest.raises(UserError) as info:
        load_checkpoint(str(tmp_path / "emptyrun"))
    assert str(info.value) == (f"{tmp_path / 'emptyrun'} is a folder with no checkpoint.pt in it: give a run folder "
                               "of train-ann (after its first epoch) or a checkpoint file")


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"PK\x03\x04 not really a zip"],
                         ids=["empty", "zeros", "fake-zip"])
def test_unreadable_files(tmp_path, content, ann_and_snn):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        load_checkpoint(str(path))
    msg = str(info.value)
    assert msg.startswith(f"{path} is not a readable checkpoint")
    assert "\n" not in msg


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_checkpoint(tmp_path, ann_and_snn, keep):
    ann, _, _ = ann_and_snn
    data = open(ann, "rb").read()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_checkpoint(str(path))


@pytest.mark.parametrize("name,content", [("metrics.csv", b"epoch,loss\n1,2.3\n"), ("sweep.json", b'{"T": [1]}\n'),
                                          ("notes.md", "| λ | θ |\n".encode())])
def test_text_file_passed_as_checkpoint_is_called_a_text_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        load_checkpoint(str(path))
    assert str(info.value) == (f"{path} is not a readable checkpoint: it is a text file (CSV, JSON, Markdown?); "
                               "pass the .pt file from train-ann or convert")
