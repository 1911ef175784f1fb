"""A torchvision ResNet-18 through the command line: trained elsewhere, fine-tuned to QCFS from its weights
file, converted with its max-pool, swept; and the user mistakes on that path."""

import pytest
import torch

from ann2snn.ann.activations import QuantClip
from ann2snn.ann.build import load_ann
from ann2snn.cli.main import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


TINY = ["--subset", 100, "--test-subset", 50, "--batch-size", 50, "--epochs", 1, "--quiet"]


@pytest.mark.real_data
@pytest.mark.slow
def test_pretrained_resnet18_finetuned_to_qcfs_converted_with_its_max_pool(cifar10_dir, tmp_path, capsys):
    data = ["--data-dir", cifar10_dir]
    code, _, err = run(capsys, "train-ann", "--arch", "torchvision:resnet18", "--activation", "relu", *TINY, *data,
                       "--out", tmp_path / "relu")
    assert code == 0, err
    relu, _ = load_ann(tmp_path / "relu")
    weights = tmp_path / "resnet18.pt"
    torch.save(relu.state_dict(), weights)  # a state_dict as another training script would save it
    # converted straight from the weights file, without retraining: the calibrated ReLU path
    code, out, err = run(capsys, "convert", "--arch", "torchvision:resnet18", "--weights", weights, "--threshold",
                         "percentile:99.9", "--calib-batches", 1, "--maxpool", "spiking", *data, "--out",
                         tmp_path / "from_weights.pt")
    assert code == 0 and "17 neurons" in out, err
    code, out, err = run(capsys, "sweep", "--arch", "torchvision:resnet18", "--weights", weights, "--neuron", "if",
                         "--threshold", "max", "--calib-batches", 1, "--maxpool", "spiking", "--T", "1,4", "--subset",
                         50, "--no-ops", *data, "--quiet", "--out", tmp_path / "sweep_w")
    assert code == 0, err
    import json

    swept = json.loads((tmp_path / "sweep_w" / "sweep.json").read_text())["rows"][0]
    recorded = float(__import__("pandas").read_csv(tmp_path / "relu" / "metrics.csv")["test_acc"].iloc[-1])
    assert swept["ann_acc"] == recorded  # the same weights on the same 50 test images, as train-ann computed it
    code, _, err = run(capsys, "train-ann", "--arch", "torchvision:resnet18", "--weights", weights, "--activation",
                       "qcfs", "--levels", 8, "--lr", 1e-12, "--weight-decay", 0, *TINY, *data, "--out", tmp_path / "qcfs")
    assert code == 0, err
    qcfs, ckpt = load_ann(tmp_path / "qcfs")
    sites = [m for m in qcfs.modules() if isinstance(m, QuantClip)]
    assert len(sites) == 17  # every ReLU call site of torchvision's ResNet-18
    assert len({round(float(s.raw_lambda.detach()), 6) for s in sites}) > 1  # λ from data, not one constant
    from ann2snn.plumbing.checkpoint import file_sha256

    assert ckpt["config"]["weights_sha256"] == file_sha256(weights)
    start = relu.state_dict()
    for k, v in qcfs.state_dict().items():  # an lr of 1e-12: the fine-tuning starts from the file's weights
        if "act_site" not in k and v.is_floating_point() and "running" not in k:
            assert torch.allclose(v, start[k], atol=1e-6), k
    code, _, err = run(capsys, "convert", "--checkpoint", tmp_path / "qcfs", "--out", tmp_path / "refused.pt")
    assert code == 2 and "--maxpool spiking" in err and "module 'maxpool'" in err
    assert not (tmp_path / "refused.pt").exists()
    code, out, err = run(capsys, "convert", "--checkpoint", tmp_path / "qcfs", "--maxpool", "spiking", "--neuron",
                         "mbif:1+3", "--out", tmp_path / "snn.pt")
    assert code == 0 and "17 neurons" in out, err
    code, out, err = run(capsys, "sweep", "--checkpoint", tmp_path / "snn.pt", "--T", "1,8", "--subset", 50,
                         *data, "--quiet", "--out", tmp_path / "sweep")
    assert code == 0 and "| maxpool " in out and "| spiking " in out, err  # its own column, shown where used
    code, _, err = run(capsys, "export-nir", "--checkpoint", tmp_path / "snn.pt", "--out", tmp_path / "g.nir")
    assert code == 2 and "spiking max-pool 'maxpool'" in err


def test_unknown_torchvision_name_suggests(capsys, tmp_path):
    code, _, err = run(capsys, "train-ann", "--arch", "torchvision:resnet81", "--out", tmp_path / "x")
    assert code == 2 and "did you mean torchvision:resnet18" in err and err.count("\n") == 1


def test_weights_with_another_head_is_one_line(capsys, tmp_path):
    import torchvision

    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), weights)  # 1000 classes
    code, _, err = run(capsys, "train-ann", "--arch", "torchvision:resnet18", "--weights", weights, "--out",
                       tmp_path / "run", "--data-dir", tmp_path)
    assert code == 2 and "1000-class head" in err and "--num-classes 1000" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_weights_on_convert_and_sweep_need_arch_and_exclude_a_checkpoint(capsys, tmp_path):
    w = tmp_path / "w.pt"
    torch.save({}, w)
    code, _, err = run(capsys, "convert", "--weights", w, "--out", tmp_path / "s.pt")
    assert code == 2 and "--arch torchvision:" in err and err.count("\n") == 1
    code, _, err = run(capsys, "convert", "--checkpoint", w, "--arch", "torchvision:resnet18", "--weights", w,
                       "--out", tmp_path / "s.pt")
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "sweep", "--weights", w, "--neuron", "if", "--out", tmp_path / "sw")
    assert code == 2 and "--arch" in err and err.count("\n") == 1
    code, _, err = run(capsys, "sweep", "--arch", "torchvision:resnet18", "--weights", w, "--neuron", "if",
                       "--threshold", "max", "--out", tmp_path / "sw")
    assert code == 2 and "does not match the model: missing keys" in err



def test_a_weights_file_on_an_image_folder_keeps_its_preprocessing(tmp_path, capsys):
    """convert --weights on an image folder records the folder's input settings in the SNN file, so a
    sweep of that file reads the images as the conversion did; a head of another class count than the
    folder's is refused; --arch without torchvision: says what to write."""
    import torchvision
    from PIL import Image

    from ann2snn.plumbing.checkpoint import load_checkpoint

    data = tmp_path / "data"
    for split in ("train", "val"):
        for c, cls in enumerate(("ant", "bee")):
            (data / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (16, 16), (40 * c + i, 90, 200 - i)).save(data / split / cls / f"{i}.png")
    torch.manual_seed(0)
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    net = ["--arch", "torchvision:resnet18", "--weights", weights, "--dataset", "imagefolder", "--data-dir", data,
           "--image-size", 16, "--resize", 0, "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--workers", 0]
    code, _, err = run(capsys, "convert", *net, "--threshold", "max", "--calib-batches", 1, "--maxpool", "spiking",
                       "--quiet", "--out", tmp_path / "snn.pt")
    assert code == 0, err
    cfg = load_checkpoint(str(tmp_path / "snn.pt"))["config"]
    assert (cfg["image_size"], cfg["resize"], cfg["mean"], cfg["std"], cfg["classes"]) == \
        (16, 0, [0.5] * 3, [0.25] * 3, ["ant", "bee"])
    from ann2snn.pipelines.sweep import sweep_input_shape

    assert sweep_input_shape(cfg) == (3, 16, 16)  # not the 224-px default the file once fell back to
    code, _, err = run(capsys, "sweep", "--checkpoint", tmp_path / "snn.pt", "--data-dir", data, "--workers", 0,
                       "--T", 2, "--no-ops", "--quiet", "--out", tmp_path / "sweep")
    assert code == 0, err
    code, _, err = run(capsys, "convert", *net, "--num-classes", 5, "--threshold", "max", "--out", tmp_path / "x.pt")
    assert code == 2 and "--num-classes 5 does not match the image folder's 2 classes" in err
    code, _, err = run(capsys, "convert", "--arch", "resnet18", "--weights", weights, "--out", tmp_path / "x.pt")
    assert code == 2 and "write torchvision:NAME (e.g. torchvision:resnet18)" in err and err.count("\n") == 1
