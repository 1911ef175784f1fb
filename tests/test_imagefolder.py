"""Image folders (dataset "imagefolder"): decoding of every image mode, order and per-image seeded augmentation,
mid-epoch positions, subsets and distributed shares, classes stored and checked, bad input, and (real data)
exact equality with the CIFAR path on the same images."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from ann2snn.plumbing import folder as F
from ann2snn.plumbing.data import DATASETS, CifarBatches, balanced_subset
from ann2snn.plumbing.errors import UserError

CIFAR = DATASETS["cifar10"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_folder(root, splits: dict) -> None:
    """``splits``: {split: {class: {file name: PIL image}}} → files under ``root``."""
    for split, classes in splits.items():
        for name, files in classes.items():
            os.makedirs(root / split / name, exist_ok=True)
            for fname, img in files.items():
                img.save(root / split / name / fname)


def flat(value, size=8, mode="RGB"):
    return Image.new(mode, (size, size), value)


def noise(seed, size=8):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def numbered_folder(root, n_per_class=4, classes=("ant", "bee", "cat"), size=8):
    """Flat grey PNGs whose value encodes their place in ImageFolder's order (class, then file name):
    image k has value 10·k + 5. Returns that order's uint8 images [N, 3, size, size] and labels."""
    spec, images, labels = {}, [], []
    for c, name in enumerate(classes):
        files = {}
        for j in range(n_per_class):
            k = c * n_per_class + j
            files[f"{j:03d}.png"] = flat((10 * k + 5,) * 3, size)
            images.append(torch.full((3, size, size), 10 * k + 5, dtype=torch.uint8))
            labels.append(c)
        spec[name] = files
    write_folder(root, {"train": spec, "val": spec})
    return torch.stack(images), torch.tensor(labels)


def as_uint8(x, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
    """Undo the normalisation: batches back to 0..255 (rounded)."""
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return torch.round((x * s + m) * 255).to(torch.int64)


def eval_batches(split, size, batch_size=4, **kw):
    kw = {"mean": (0.0,) * 3, "std": (1.0,) * 3, "workers": 0, **kw}
    return F.FolderBatches(split, batch_size, F.eval_transform(size, 0), **kw)


def test_every_image_mode_decodes_as_rgb(tmp_path):
    """PNG RGB, grayscale, palette, RGBA; JPEG RGB and CMYK (flat colours): pixels as PIL's RGB says."""
    pal = flat(0, mode="P")
    pal.putpalette([0, 0, 0, 12, 34, 56] + [0] * 762)
    pal.paste(1, (0, 0, 8, 8))
    files = {"a_rgb.png": flat((10, 200, 30)), "b_gray.png": flat(77, mode="L"), "c_pal.png": pal,
             "d_rgba.png": flat((90, 80, 70, 3), mode="RGBA"), "e_rgb.jpg": flat((120, 60, 240)),
             "f_cmyk.jpg": flat((40, 100, 200, 0), mode="CMYK"), "g_upper.JPEG": flat((1, 2, 3))}
    write_folder(tmp_path, {"train": {"x": files}})
    split = F.scan_split(tmp_path, "train")
    assert [os.path.basename(p) for p in split.paths] == sorted(files)
    x = torch.cat([b for b, _ in eval_batches(split, 8, batch_size=3)])
    pixels = as_uint8(x)[:, :, 4, 4].tolist()
    # by hand: RGB as is, L → (v, v, v), palette entry 1, alpha dropped, CMYK with K = 0 → 255 − C, M, Y
    expected = [[10, 200, 30], [77, 77, 77], [12, 34, 56], [90, 80, 70], [120, 60, 240], [215, 155, 55], [1, 2, 3]]
    for name, got, want in zip(sorted(files), pixels, expected):
        tol = 3 if name.endswith(("jpg", "JPEG")) else 0  # JPEG is lossy even on flat colours
        assert max(abs(g - w) for g, w in zip(got, want)) <= tol, (name, got, want)


def test_eval_transform_crops_the_centre_and_resizes_the_shorter_side(tmp_path):
    arr = np.arange(12 * 10 * 3, dtype=np.int64).reshape(12, 10, 3) % 251  # 12 high, 10 wide, position-coded
    write_folder(tmp_path, {"val": {"x": {"a.png": Image.fromarray(arr.astype(np.uint8))}}})
    split = F.scan_split(tmp_path, "val")
    (x, _), = list(eval_batches(split, 6))
    centre = torch.from_numpy(arr[3:9, 2:8]).permute(2, 0, 1)  # (12 − 6) / 2 = 3 rows, (10 − 6) / 2 = 2 columns
    assert torch.equal(as_uint8(x)[0], centre)
    resized = F.FolderBatches(split, 1, F.eval_transform(4, 5), workers=0)
    assert next(iter(resized))[0].shape == (1, 3, 4, 4)
    # defaults: ImageNet's 224 crop of a 256 resize, ImageNet's mean and std
    assert F.resolve_settings() == {"image_size": 224, "resize": 256, "mean": [0.485, 0.456, 0.406],
                                    "std": [0.229, 0.224, 0.225]}
    assert F.resolve_settings(32)["resize"] == 37  # round(32 / 0.875)
    assert F.resolve_settings(32, 0, "0.5, 0.5,0.5", [1, 2, 3])["mean"] == [0.5] * 3
    for bad, match in (({"resize": 100}, "`resize` 100 is smaller"), ({"image_size": 0}, "`image_size`"),
                       ({"mean": [1, 2]}, "`mean` must be three"), ({"std": [1, 0, 1]}, "`std` must be three positive")):
        with pytest.raises(UserError, match=match):
            F.resolve_settings(**bad)


def test_order_is_the_cifar_path_order_and_normalisation_the_same_arithmetic(tmp_path):
    """Same images in the same listing order: every batch torch.equal to CifarBatches', for two epochs,
    one process and each rank of two (training shares from DistributedSampler; evaluation every sample once)."""
    images, labels = numbered_folder(tmp_path, n_per_class=5)
    split = F.scan_split(tmp_path, "train")
    assert torch.equal(split.targets, labels)
    for rank, world, shuffle in ((0, 1, True), (0, 1, False), (0, 2, True), (1, 2, True), (1, 2, False)):
        ours = eval_batches(split, 8, batch_size=4, mean=CIFAR.mean, std=CIFAR.std, shuffle=shuffle, seed=7,
                            rank=rank, world=world)
        ref = CifarBatches(images, labels, CIFAR, 4, shuffle=shuffle, seed=7, rank=rank, world=world)
        for epoch in (0, 1):
            ours.set_epoch(epoch), ref.set_epoch(epoch)
            a, b = list(ours), list(ref)
            assert len(a) == len(b) == len(ours) == len(ref)
            for (xa, ya), (xb, yb) in zip(a, b):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # the order read back from the pixel values: a permutation drawn from (seed, epoch) only
    ours = eval_batches(split, 8, batch_size=4, shuffle=True, seed=7)
    first = torch.cat([as_uint8(x)[:, 0, 0, 0] for x, _ in ours])
    assert sorted(first.tolist()) == sorted(range(5, 150, 10))
    assert torch.equal(first, torch.cat([as_uint8(x)[:, 0, 0, 0] for x, _ in ours]))
    ours.set_epoch(1)
    assert not torch.equal(first, torch.cat([as_uint8(x)[:, 0, 0, 0] for x, _ in ours]))


def test_augmentation_is_seeded_per_image_not_per_batch(tmp_path, monkeypatch):
    """RandomResizedCrop + flip: the same crops whatever the batch size and worker count; other crops in
    another epoch; torch's global generator untouched; set_position skips batches without decoding them."""
    write_folder(tmp_path, {"train": {"a": {f"{i}.png": noise(i, 16) for i in range(5)},
                                      "b": {f"{i}.png": noise(10 + i, 16) for i in range(4)}}})
    split = F.scan_split(tmp_path, "train")

    def epoch(batch_size, workers, e=0):
        b = F.FolderBatches(split, batch_size, F.train_transform(8), shuffle=True, seed=3, workers=workers)
        b.set_epoch(e)
        return torch.cat([x for x, _ in b])

    rng = torch.get_rng_state()
    one = epoch(3, 0)
    assert torch.equal(torch.get_rng_state(), rng)
    assert one.shape == (9, 3, 8, 8)
    assert torch.equal(one, epoch(4, 2))  # two worker processes, another batch size
    other = epoch(3, 0, e=1)
    assert not any(torch.equal(one[i], other[j]) for i in range(9) for j in range(9))
    # a batch-seeded crop would change when the batch does; a per-image seed gives each image its own crop
    assert F.sample_seed(3, 0, 1) != F.sample_seed(3, 0, 2) != F.sample_seed(3, 1, 1)

    calls = []
    real = F.pil_rgb_loader
    b = F.FolderBatches(split, 2, F.train_transform(8), shuffle=True, seed=3, workers=0)
    full = list(b)
    with monkeypatch.context() as m:  # count the files decoded (workers=0: in this process)
        m.setattr(F, "pil_rgb_loader", lambda path: calls.append(path) or real(path))
        b.set_position(3)
        tail = list(b)
    assert len(calls) == 9 - 3 * 2 and len(tail) == 2 and len(b) == 5
    for (xa, ya), (xb, yb) in zip(tail, full[3:]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert len(list(b)) == 2  # every pass of this epoch starts there ...
    b.set_epoch(0)
    assert len(list(b)) == 5  # ... until set_epoch
    b.set_position(5)
    assert list(b) == []
    for bad in (-1, 6, 1.0):
        with pytest.raises(ValueError, match="outside 0..5"):
            b.set_position(bad)


def test_subset_is_balanced_and_seeded(tmp_path):
    numbered_folder(tmp_path, n_per_class=6)
    config = {"dataset": "imagefolder", "data_dir": str(tmp_path), "seed": 4, "subset": 7, "test_subset": 3,
              "batch_size": 4, "augment": "none", "image_size": 8, "resize": 0, "mean": [0] * 3, "std": [1] * 3,
              "workers": 0}
    train, val, cal = F.load_folder_data(F.resolve_folder_config(config))
    split = F.scan_split(tmp_path, "train")
    assert torch.equal(train.indices, balanced_subset(split.targets, 7, 4, 3))
    assert torch.bincount(train.labels).tolist() == [3, 2, 2]
    assert torch.equal(val.indices, balanced_subset(split.targets, 3, 0, 3))
    seen = sorted(as_uint8(torch.cat([x for x, _ in train]))[:, 0, 0, 0].tolist())
    assert seen == sorted((10 * train.indices + 5).tolist())  # the pixels of exactly the chosen images
    assert torch.equal(cal.indices, train.indices)


def test_train_ann_stores_the_classes_and_every_reader_checks_them(tmp_path, capsys):
    from ann2snn.pipelines.sweep import run_sweep
    from ann2snn.pipelines.train_ann import train_ann
    from ann2snn.plumbing.checkpoint import load_checkpoint

    good = tmp_path / "good"
    numbered_folder(good, n_per_class=2, size=16)
    config = {"arch": "resnet20", "width": 0.25, "dataset": "imagefolder", "data_dir": str(good), "epochs": 1,
              "batch_size": 3, "image_size": 16, "workers": 0}
    ckpt_path = train_ann(config, str(tmp_path / "run"), progress=False)
    ckpt = load_checkpoint(ckpt_path)
    stored = {k: ckpt["config"][k] for k in ("classes", "num_classes", "image_size", "resize", "mean", "std")}
    assert stored == {"classes": ["ant", "bee", "cat"], "num_classes": 3, "image_size": 16, "resize": 18,
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert ckpt["model_state"]["fc.weight"].shape[0] == 3  # num_classes defaults to the folder's class count

    other = tmp_path / "other"  # val lacks "cat" and has "dog"
    write_folder(other, {"train": {c: {"0.png": flat((1, 1, 1))} for c in ("ant", "bee", "cat")},
                         "val": {c: {"0.png": flat((1, 1, 1))} for c in ("ant", "bee", "dog")}})
    with pytest.raises(UserError, match=r"missing 1: cat; extra 1: dog"):
        run_sweep([ckpt_path], T=2, neurons=["mbif"], data_dir=str(other), ops=False)
    with pytest.raises(UserError, match=r"differ from those of .*train \(missing 1: cat; extra 1: dog\)"):
        train_ann({**config, "data_dir": str(other)}, str(tmp_path / "run2"), progress=False)
    renamed = tmp_path / "renamed"  # a resumed run must see its own classes
    numbered_folder(renamed, n_per_class=2, size=16, classes=("ant", "bee", "cow"))
    with pytest.raises(UserError, match=r"the run being resumed \(missing 1: cat; extra 1: cow\)"):
        train_ann({**config, "data_dir": str(renamed), "epochs": 2}, str(tmp_path / "run"), resume=True,
                  progress=False)
    with pytest.raises(UserError, match="`num_classes` 2 is below the 3 classes"):
        train_ann({**config, "num_classes": 2}, str(tmp_path / "run3"), progress=False)
    with pytest.raises(UserError, match="`image_size` applies to `dataset` imagefolder only"):
        train_ann({**config, "dataset": "cifar10"}, str(tmp_path / "run4"), progress=False)
    with pytest.raises(UserError, match="`arch` vgg16 cannot take 64×64 images"):
        train_ann({**config, "arch": "vgg16", "image_size": 64}, str(tmp_path / "run5"), progress=False)
    # the sweep reads the val folder under the stored evaluation transform
    result = run_sweep([ckpt_path], T=2, neurons=["mbif"], data_dir=str(good), ops=False, folder={"workers": 0})
    assert result["rows"][0]["dataset"] == "imagefolder" and result["curves"][0]["samples"] == 6
    # its ANN column is train-ann's own evaluation of the same val images
    assert result["curves"][0]["ann_acc"] == result["curves"][0]["ann_train_recorded"] == ckpt["metrics"][-1]["test_acc"]
    with pytest.raises(UserError, match="unknown image-folder option"):
        run_sweep([ckpt_path], T=2, neurons=["mbif"], data_dir=str(good), ops=False, folder={"threads": 2})
    assert not any(p.name.startswith("run") and p.name != "run" for p in tmp_path.iterdir())


def test_empty_and_missing_folders_are_named(tmp_path):
    with pytest.raises(UserError, match="no train/ folder in `data_dir`"):
        F.scan_split(tmp_path, "train")
    os.makedirs(tmp_path / "train")
    with pytest.raises(UserError, match="holds no class folder"):
        F.scan_split(tmp_path, "train")
    write_folder(tmp_path, {"train": {"full": {"a.png": flat(1)}}})
    os.makedirs(tmp_path / "train" / "empty")
    (tmp_path / "train" / "notes").mkdir()
    (tmp_path / "train" / "notes" / "readme.txt").write_text("not an image")
    with pytest.raises(UserError, match=r"2 class folder\(s\) of .* hold no image \(empty, notes\)"):
        F.scan_split(tmp_path, "train")


def test_unreadable_images_stop_the_run_naming_the_file_unless_skipped(tmp_path, capsys):
    from ann2snn.pipelines.train_ann import train_ann

    good = noise(0, 16)
    buf = tmp_path / "t.jpg"
    good.save(buf, format="JPEG")
    truncated = buf.read_bytes()[:200]
    write_folder(tmp_path / "data", {"train": {"a": {"0.png": good, "1.png": good}, "b": {"0.png": good}},
                                     "val": {"a": {"0.png": good}, "b": {"0.png": good}}})
    (tmp_path / "data" / "train" / "b" / "1.jpg").write_bytes(truncated)
    (tmp_path / "data" / "train" / "a" / "2.png").write_bytes(b"not a png at all")
    split = F.scan_split(tmp_path / "data", "train")
    for workers in (0, 2):
        b = F.FolderBatches(split, 2, F.eval_transform(16, 0), workers=workers)
        with pytest.raises(UserError, match=r"cannot read image .*a/2\.png \(UnidentifiedImageError.*`skip_bad_images`"):
            list(b)
    b = F.FolderBatches(split, 2, F.eval_transform(16, 0), workers=0, skip_bad_images=True)
    x = torch.cat([x for x, _ in b])
    assert x.shape[0] == 3 and sorted(os.path.basename(p) for p in b.skipped) == ["1.jpg", "2.png"]
    assert "truncated" in b.skipped[str(tmp_path / "data" / "train" / "b" / "1.jpg")].lower()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: skipped 2 unreadable image(s)") and "1.jpg" in err
    assert len(list(b)) == 2 and capsys.readouterr().err == ""  # noted once, not at every epoch

    out = tmp_path / "run"
    config = {"arch": "resnet20", "width": 0.25, "dataset": "imagefolder", "data_dir": str(tmp_path / "data"),
              "epochs": 1, "batch_size": 2, "image_size": 16, "workers": 0, "augment": "none"}
    with pytest.raises(UserError, match="cannot read image"):
        train_ann(config, str(out), progress=False)
    assert not out.exists()  # nothing written
    train_ann({**config, "skip_bad_images": True}, str(out), progress=False)
    assert (out / "checkpoint.pt").is_file()


# ------------------------------------------------------------------------------------------- real CIFAR-10

@pytest.fixture(scope="module")
def cifar_folder(cifar10_dir, tmp_path_factory):
    """The first 20 training and 20 test images of each CIFAR-10 class as a PNG folder (make_folder), and
    the CIFAR indices of its images in the folder's order."""
    from ann2snn.plumbing.make_folder import make_cifar_folder

    root = tmp_path_factory.mktemp("cifar_png") / "c10"
    done = make_cifar_folder(root, cifar10_dir, per_class=20)
    assert done["train"] == done["val"] == 200
    assert done["classes"] == CIFAR10_CLASSES
    order = {s: [int(os.path.basename(p)[:5]) for p in F.scan_split(root, s).paths] for s in ("train", "val")}
    return root, order


def cifar_eval_config(root):
    return {"dataset": "imagefolder", "data_dir": str(root), "classes": CIFAR10_CLASSES,
            "num_classes": 10, "image_size": 32, "resize": 0, "mean": list(CIFAR.mean), "std": list(CIFAR.std)}


@pytest.mark.real_data
def test_a_png_folder_of_cifar_evaluates_exactly_as_cifar(cifar_folder, cifar10_dir):
    """32 pixels, no resize, CIFAR's mean and std: the sweep's test batches are torch.equal to CifarBatches
    of the same images, and the ANN logits and the SNN's whole accuracy curve are equal."""
    from ann2snn.conversion.convert import convert
    from ann2snn.pipelines.sweep import load_test_batches, sweep_model
    from ann2snn.plumbing.data import load_split
    from helpers import tiny_ann

    root, order = cifar_folder
    x, y = load_split("cifar10", cifar10_dir, False)
    idx = order["val"]
    assert [int(v) for v in y[idx]] == sorted(int(v) for v in y[idx])  # class-major, as the folder lists them
    ours = load_test_batches(cifar_eval_config(root), str(root), 64, None, False, False, folder={"workers": 2})
    ref = CifarBatches(x[idx], y[idx], CIFAR, 64)
    ann = tiny_ann()
    logits = []
    for (xa, ya), (xb, yb) in zip(ours, ref, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        with torch.no_grad():
            logits.append((ann(xa), ann(xb)))
    assert all(torch.equal(a, b) for a, b in logits)
    snn = convert(ann, torch.zeros(1, 3, 32, 32), 1, 3)
    a, b = sweep_model(snn, ours, 4, ops=False), sweep_model(snn, ref, 4, ops=False)
    assert a["ann_acc_simulated"] == b["ann_acc_simulated"] and a["curve"] == b["curve"] and a["samples"] == 200


@pytest.mark.real_data
def test_one_epoch_without_augmentation_trains_as_on_cifar(cifar_folder, cifar10_dir, tmp_path):
    """Augmentation off, the same seed: the folder's shuffled epoch is CIFAR's (same randperm of the same listing),
    so one epoch of SGD steps (ann.train.fit) ends in torch.equal weights. With augmentation on, the two paths
    differ by design (RandomResizedCrop seeded per image vs CIFAR's padded crop drawn per batch)."""
    from ann2snn.ann.build import build_ann
    from ann2snn.ann.train import DEFAULTS, fit
    from ann2snn.plumbing.data import load_split

    root, order = cifar_folder
    x, y = load_split("cifar10", cifar10_dir, True)
    idx = order["train"]
    settings = cifar_eval_config(root)
    split = F.scan_split(root, "train")
    ours = F.FolderBatches(split, 32, F.train_transform(32, "none", 0), CIFAR.mean, CIFAR.std, shuffle=True,
                           seed=5, workers=2)
    ref = CifarBatches(x[idx], y[idx], CIFAR, 32, "none", shuffle=True, seed=5)
    config = {**DEFAULTS, **settings, "arch": "resnet20", "width": 0.25, "epochs": 1, "lambda_init": 2.0, "seed": 5}
    states = []
    for name, batches in (("folder", ours), ("cifar", ref)):
        torch.manual_seed(0)
        model = build_ann(config)
        path = fit(model, config, batches, batches, lambda m, b: {"test_acc": 0.0}, "ann", None,
                   str(tmp_path / name / "checkpoint.pt"), progress=False)
        states.append(torch.load(path, weights_only=True)["model_state"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    torch.manual_seed(0)
    assert not torch.equal(states[0]["fc.weight"], build_ann(config).state_dict()["fc.weight"])  # it trained


def test_make_folder_refuses_an_existing_folder_and_writes_nothing_on_error(tmp_path, capsys):
    from ann2snn.plumbing.make_folder import main

    (tmp_path / "exists").mkdir()
    assert main([str(tmp_path / "exists")]) == 2
    assert capsys.readouterr().err == f"Error: {tmp_path / 'exists'} already exists: choose a new folder\n"
    assert main([str(tmp_path / "new"), "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data-dir" in err and "`" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists"]


def test_the_command_line_reads_image_folders(tmp_path, capsys):
    """train-ann, convert (calibrated), sweep and entropy with --dataset imagefolder and the folder flags; a bad
    file is one Error line naming it (exit 2, no run folder), --skip-bad-images a note."""
    from ann2snn.cli.main import main
    from ann2snn.plumbing.checkpoint import load_checkpoint

    data = tmp_path / "data"
    numbered_folder(data, n_per_class=2, size=16)
    run = tmp_path / "run"
    common = ["--data-dir", str(data), "--workers", "0", "--quiet"]
    assert main(["train-ann", "--dataset", "imagefolder", "--arch", "resnet20", "--width", "0.25", "--epochs", "1",
                 "--batch-size", "3", "--image-size", "12", "--resize", "14", "--mean", "0.5,0.5,0.5",
                 "--std", "0.25,0.5,1", "--out", str(run), *common]) == 0
    config = load_checkpoint(str(run / "checkpoint.pt"))["config"]
    assert (config["image_size"], config["resize"], config["mean"], config["std"], config["classes"]) == \
        (12, 14, [0.5] * 3, [0.25, 0.5, 1.0], ["ant", "bee", "cat"])
    assert main(["convert", "--checkpoint", str(run), "--neuron", "if", "--threshold", "max", "--calib-batches", "1",
                 "--out", str(tmp_path / "snn.pt"), *common]) == 0
    assert main(["sweep", "--checkpoint", str(tmp_path / "snn.pt"), "--T", "2", "--no-ops", "--image-size", "16",
                 "--resize", "0", "--out", str(tmp_path / "sweep"), *common]) == 0
    assert "| imagefolder |" in capsys.readouterr().out
    assert main(["entropy", "--checkpoint", str(run), "--subset", "3", "--batch-size", "3", *common]) == 0
    assert "(3 test images" in capsys.readouterr().out
    assert main(["entropy", "--workers", "2"]) == 2
    assert capsys.readouterr().err == "Error: --workers applies only to the measured mode: add --checkpoint, or drop it\n"

    (data / "train" / "bee" / "zz.png").write_bytes(b"broken")
    argv = ["train-ann", "--dataset", "imagefolder", "--arch", "resnet20", "--width", "0.25", "--epochs", "1",
            "--batch-size", "3", "--image-size", "12", "--out", str(tmp_path / "run2"), *common]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"Error: cannot read image {data / 'train' / 'bee' / 'zz.png'}")
    assert "--skip-bad-images" in err and not (tmp_path / "run2").exists()
    assert main(argv + ["--skip-bad-images"]) == 0
    assert capsys.readouterr().err.count("note: skipped 1 unreadable image(s)") == 1


@pytest.mark.exactness  # equal to the uninterrupted run's at the same kernels and threads
def test_an_interrupted_folder_run_resumes_exactly(tmp_path, monkeypatch):
    """SIGTERM at batch 2 of 4 in the first epoch (two worker processes decoding): the mid-epoch checkpoint,
    resumed with set_position, ends in the uninterrupted run's weights, optimizer state, RNG state and metrics:
    the crops of the skipped and the remaining images do not depend on where the epoch started."""
    import signal

    import ann2snn.pipelines.train_ann as train_ann_mod
    from ann2snn.pipelines.train_ann import train_ann
    from ann2snn.plumbing.interrupt import TrainingInterrupted
    from test_midepoch import assert_same_run, wrap_loader

    write_folder(tmp_path / "data", {split: {c: {f"{i}.png": noise(100 * k + i + (50 if split == "val" else 0), 16)
                                                 for i in range(5 if split == "train" else 2)}
                                             for k, c in enumerate(("ant", "bee", "cat"))}
                                     for split in ("train", "val")})
    config = {"arch": "resnet20", "width": 0.25, "dataset": "imagefolder", "data_dir": str(tmp_path / "data"),
              "epochs": 2, "batch_size": 4, "image_size": 12, "workers": 2}
    straight = torch.load(train_ann(config, str(tmp_path / "straight"), progress=False, checkpoint_minutes=0),
                          weights_only=True)
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        wrap_loader(m, train_ann_mod, "load_data", epoch=0, batch=1, signum=signal.SIGTERM)
        with pytest.raises(TrainingInterrupted) as info:
            train_ann(config, str(out), progress=False, checkpoint_minutes=0)
    assert (info.value.epoch, info.value.batch, info.value.batches) == (1, 2, 4)  # ceil(15 / 4) batches
    assert torch.load(out / "checkpoint.pt", weights_only=True)["position"]["batch"] == 2
    resumed = torch.load(train_ann(config, str(out), resume=True, progress=False, checkpoint_minutes=0),
                         weights_only=True)
    assert_same_run(straight, resumed)


@pytest.mark.real_data
@pytest.mark.slow
def test_a_resnet18_trained_on_the_folder_at_64px_converts_with_its_max_pool(cifar_folder, tmp_path, capsys):
    """torchvision's ResNet-18 with its max-pool, trained briefly on real CIFAR-10 images at 64 px from the
    folder, saved as a state_dict, loaded through `weights` and converted with `maxpool` spiking, without
    retraining. ANN-mode parity is exact; on the real val images the IF and MBIF(1+3) logits approach
    the ANN's as T grows (stated: the mean |SNN − ANN| logit error over the mean |ANN logit| at T = 64 is
    below half its T = 8 value, and below 0.2 for IF, 0.1 for MBIF); the average-pool swap without
    retraining is off even in ANN mode."""
    from ann2snn import convert_model
    from ann2snn.api import iter_steps
    from ann2snn.ann.build import build_ann, load_ann
    from ann2snn.cli.main import main
    from ann2snn.conversion.simulate import set_mode

    root, _ = cifar_folder
    code = main(["train-ann", "--arch", "torchvision:resnet18", "--activation", "relu", "--dataset", "imagefolder",
                 "--data-dir", str(root), "--image-size", "64", "--epochs", "2", "--batch-size", "50", "--lr", "0.05",
                 "--workers", "0", "--quiet", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    trained, ckpt = load_ann(tmp_path / "run")
    weights = tmp_path / "resnet18.pt"
    torch.save(trained.state_dict(), weights)
    ann = build_ann(ckpt["config"], weights=str(weights)).eval()  # what a user rebuilds from the file
    cfg = ckpt["config"]
    val = F.folder_eval_batches(cfg, str(root), "val", 50, options={"workers": 0})
    train = F.folder_eval_batches(cfg, str(root), "train", 50, shuffle=True, options={"workers": 0})
    x = next(iter(val))[0]
    assert x.shape == (50, 3, 64, 64)
    with torch.no_grad():
        ref = ann(x)
    scale = float(ref.abs().mean())
    for neuron, bits in (("if", (1, 0)), ("mbif", (1, 3))):
        snn = convert_model(ann, calibration=train, threshold="percentile:99.9", calib_batches=2, neuron=neuron,
                            int_bits=bits[0], frac_bits=bits[1], maxpool="spiking", example=torch.zeros(1, 3, 64, 64))
        set_mode(snn, "ann")
        with torch.no_grad():
            assert torch.equal(snn(x), ref)
        set_mode(snn, "snn")
        acc, err = 0, {}
        for t, out in enumerate(iter_steps(snn, x, 64), 1):
            acc = acc + out
            if t in (8, 64):
                err[t] = float((acc / t - ref).abs().mean()) / scale
        # measured: IF 0.49 at T = 8, 0.11 at T = 64; MBIF(1+3) 0.023 and 0.0034
        assert err[64] < err[8] / 2 and err[64] < {"if": 0.2, "mbif": 0.1}[neuron], (neuron, err)
    avg = convert_model(ann, calibration=train, threshold="percentile:99.9", calib_batches=2, maxpool="avg",
                        example=torch.zeros(1, 3, 64, 64))
    set_mode(avg, "ann")
    with torch.no_grad():
        assert float((avg(x) - ref).abs().mean()) / scale > 0.1


def test_a_sweep_counts_operations_at_the_folders_own_image_size(tmp_path, capsys):
    """The operation counter's fan-out maps are probed at the batches' image size (here 16 px), not
    CIFAR's 32: the ANN's MACs in sweep_ops.csv equal ann_macs at 16 px, and
    differ from 32 px's."""
    import pandas as pd

    from ann2snn.analysis.opcount import ann_macs
    from ann2snn.ann.build import load_ann
    from ann2snn.cli.main import main

    data = tmp_path / "data"
    numbered_folder(data, n_per_class=2, size=16)
    common = ["--data-dir", str(data), "--workers", "0", "--quiet"]
    assert main(["train-ann", "--dataset", "imagefolder", "--arch", "resnet20", "--width", "0.25", "--epochs", "1",
                 "--batch-size", "3", "--image-size", "16", "--resize", "0", "--out", str(tmp_path / "run"),
                 *common]) == 0
    assert main(["sweep", "--checkpoint", str(tmp_path / "run"), "--neuron", "if", "--threshold", "max",
                 "--calib-batches", "1", "--T", "2", "--out", str(tmp_path / "sweep"), *common]) == 0, \
        capsys.readouterr().err
    ops = pd.read_csv(tmp_path / "sweep" / "sweep_ops.csv")
    ann, _ = load_ann(tmp_path / "run")
    assert int(ops["ann_macs"].iloc[0]) == ann_macs(ann, (1, 3, 16, 16))["total"]
    assert ann_macs(ann, (1, 3, 16, 16))["total"] != ann_macs(ann, (1, 3, 32, 32))["total"]
