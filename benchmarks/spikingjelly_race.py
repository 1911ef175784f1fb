"""This toolkit against SpikingJelly 2.0.0's ANN→SNN converter, on the same network, images and θ.

Usage: python benchmarks/spikingjelly_race.py [--checkpoint RUN] [--T 32] [--batch 256] [--images 512]
(needs ``pip install -e '.[benchmark]'``, which brings spikingjelly==2.0.0).

The race is fair only if both simulate the same SNN, so it is checked first:
- the network is a ReLU VGG-16 (``--checkpoint``: an ANN from ``train-ann --activation relu``; without
  it, the same architecture at its seeded initialisation);
- θ per site is ours (99.9th percentile of the site's activations on the calibration images), written into
  SpikingJelly's VoltageScaler pairs (x·1/θ → IFNode(v_th = 1, soft reset) → s·θ);
- our neuron is IF with v_init ``zero``, as SpikingJelly's IFNode starts at v = 0; BatchNorm is kept
  unfolded on both sides;
- both accumulate the logits over steps; the check reports how many predictions agree at T and the
  largest logit difference relative to the logit scale. They are not bit-identical: SpikingJelly
  compares v·(1/θ) with 1, we compare floor(v/θ) with 1, which rounds differently near the threshold.
Timing: both single-step (one network call per step), the same thread count, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time

import torch


def relu_vgg(checkpoint: str | None, width: float):
    from ann2snn.ann.build import build_ann, load_ann

    if checkpoint:
        ann, ckpt = load_ann(checkpoint)
        if ckpt["config"].get("activation") != "relu":
            raise SystemExit(f"{checkpoint} is not a ReLU network (activation {ckpt['config'].get('activation')})")
        return ann.eval(), f"{checkpoint} (epoch {ckpt.get('epoch')})"
    torch.manual_seed(0)
    ann = build_ann({"arch": "vgg16", "dataset": "cifar10", "width": width, "activation": "relu", "lambda_init": 1.0})
    return ann.eval(), f"VGG-16 x{width} ReLU at its seeded initialisation"


def images(n: int, data_dir: str = "./data"):
    """``n`` CIFAR-10 test images (normalised) when ``data_dir`` holds CIFAR-10, else smooth random ones."""
    try:
        from ann2snn.plumbing.data import DATASETS, load_split

        x, y = load_split("cifar10", data_dir, False, False, False)
        info = DATASETS["cifar10"]
        mean = torch.tensor(info.mean).view(1, 3, 1, 1)
        std = torch.tensor(info.std).view(1, 3, 1, 1)
        return (x[:n].float() / 255 - mean) / std, y[:n], "CIFAR-10 test images"
    except Exception:  # noqa: BLE001 - no data here: random images serve for speed
        g = torch.Generator().manual_seed(0)
        x = torch.nn.functional.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=32, mode="bilinear")
        return x, torch.randint(0, 10, (n,), generator=g), "random images"


def build_pair(ann, calib_x):
    """Our IF SNN (v_init zero) and SpikingJelly's, with the same θ per site."""
    import ann2snn
    from spikingjelly.activation_based.ann2snn import Converter
    from spikingjelly.activation_based.ann2snn.modules import VoltageScaler
    from spikingjelly.activation_based.ann2snn.recipes import RateCodingRecipe

    from ann2snn.conversion.simulate import neurons_of

    calib = [(calib_x[i:i + 128], None) for i in range(0, len(calib_x), 128)]
    ours = ann2snn.convert_model(ann, calibration=calib, neuron="if", v_init="zero", threshold="percentile:99.9",
                                 calib_batches=len(calib))
    thetas = [float(n.theta) for n in neurons_of(ours)]
    sj = Converter(RateCodingRecipe(dataloader=[calib_x[:128]], mode="99.9%", fuse_flag=False)).convert(ann)
    scalers = [m for m in sj.modules() if isinstance(m, VoltageScaler)]
    if len(scalers) != 2 * len(thetas):
        raise SystemExit(f"SpikingJelly made {len(scalers) // 2} neurons, we made {len(thetas)}: not the same SNN")
    for i, theta in enumerate(thetas):  # graph order on both sides (a sequential VGG)
        scalers[2 * i].scale.fill_(1.0 / theta)
        scalers[2 * i + 1].scale.fill_(theta)
    return ours.eval(), sj.eval(), thetas


@torch.inference_mode()
def sj_logits(sj, x, T):
    from spikingjelly.activation_based import functional

    functional.reset_net(sj)
    acc, out = None, []
    for _ in range(T):
        step = sj(x)
        acc = step if acc is None else acc + step
        out.append(acc)
    functional.reset_net(sj)
    return torch.stack(out)


@torch.inference_mode()
def our_logits(snn, x, T):
    import ann2snn

    acc, out = None, []
    for step in ann2snn.iter_steps(snn, x, T):
        acc = step if acc is None else acc + step
        out.append(acc)
    return torch.stack(out)


@torch.inference_mode()
def sj_simulate(sj, batches, T):
    """SpikingJelly's usual loop: reset, T single steps, accumulate, count hits at every t."""
    from spikingjelly.activation_based import functional

    correct = torch.zeros(T, dtype=torch.int64)
    for x, y in batches:
        functional.reset_net(sj)
        acc = None
        for t in range(T):
            out = sj(x)
            acc = out if acc is None else acc + out
            correct[t] += int((acc.argmax(1) == y).sum())
    functional.reset_net(sj)
    return correct


def race(checkpoint=None, width=0.25, T=32, batch=256, n_images=512, repeat=3, data_dir="./data") -> dict:
    """Check agreement, then time both simulations; returns the numbers for the benchmark table."""
    from ann2snn.conversion.simulate import set_fused, simulate_snn

    ann, net_desc = relu_vgg(checkpoint, width)
    x, y, img_desc = images(n_images, data_dir)
    ours, sj, thetas = build_pair(ann, x[: min(len(x), 512)])
    check_x = x[:128]
    a, b = our_logits(ours, check_x, T), sj_logits(sj, check_x, T)
    scale = float(a[-1].abs().max().clamp_min(1e-12))
    agree = float((a[-1].argmax(1) == b[-1].argmax(1)).double().mean())
    rel = float((a - b).abs().max()) / scale
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    result = {"network": net_desc, "images": f"{len(x)} {img_desc}", "T": T, "batch": batch, "sites": len(thetas),
              "agree_at_T": agree, "max_rel_logit_diff": rel}

    def best(fn):
        fn()  # warm-up (and the fused step's compilation)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    for fused in (False, True):
        set_fused(ours, fused)
        result[f"ours_s_{'fused' if fused else 'plain'}"] = best(lambda: simulate_snn(ours, batches, T))
    result["sj_s"] = best(lambda: sj_simulate(sj, batches, T))
    # the channels_last option (sweep --channels-last) on our side, and the same layout given to SpikingJelly
    ours.to(memory_format=torch.channels_last)
    sj.to(memory_format=torch.channels_last)
    result["ours_s_fused_channels_last"] = best(lambda: simulate_snn(ours, batches, T))
    result["sj_s_channels_last"] = best(lambda: sj_simulate(sj, batches, T))
    ours.to(memory_format=torch.contiguous_format)
    sj.to(memory_format=torch.contiguous_format)
    ours_acc = simulate_snn(ours, batches, T)[0][-1].item() / len(x)
    result["acc_ours"], result["acc_sj"] = ours_acc, sj_simulate(sj, batches, T)[-1].item() / len(x)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    r = race(args.checkpoint, args.width, args.T, args.batch, args.images, args.repeat)
    for k, v in r.items():
        print(f"{k}: {v}")
    print(f"ours (fused) / SpikingJelly: {r['ours_s_fused'] / r['sj_s']:.3f}; "
          f"ours (plain) / SpikingJelly: {r['ours_s_plain'] / r['sj_s']:.3f}")


if __name__ == "__main__":
    main()
