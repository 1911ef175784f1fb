"""The images each step after training reads: training images for calibration and correction (never
the held-out ones), and the held-out split for checks and planning (never the test set)."""

from __future__ import annotations

import torch

from ann2snn.plumbing.errors import UserError


def train_eval_batches(config: dict, data_dir: str, download: bool = False, skip_md5: bool = False,
                       folder: dict | None = None, batch_size: int = 128):
    """Un-augmented training images of the network of ``config``, normalised as it expects, in a seeded
    order (seed 0): batches ``(x float32 [B, 3, H, W], y int64 [B])``.

    For a run that held images out (``holdout`` in its config, :func:`ann2snn.plumbing.data.holdout_split`),
    only the images it trained on. For an image folder: ``data_dir/train`` under the evaluation transform
    (:func:`ann2snn.plumbing.folder.folder_eval_batches`, ``folder`` its options).

    Raises:
        UserError: missing data, or folder classes that differ from the checkpoint's.
    """
    from ann2snn.plumbing.data import FOLDER, CifarBatches, dataset_info, holdout_split, load_split
    from ann2snn.plumbing.folder import TRAIN_SPLIT, check_folder_options, folder_eval_batches

    if config["dataset"] == FOLDER:
        return folder_eval_batches(config, data_dir, TRAIN_SPLIT, batch_size, shuffle=True, options=folder)
    check_folder_options(config["dataset"], folder)
    info = dataset_info(config["dataset"])
    x, y = load_split(config["dataset"], data_dir, True, download, skip_md5)
    if config.get("holdout"):
        kept, _ = holdout_split(y, config["holdout"], info.num_classes)
        x, y = x[kept], y[kept]
    return CifarBatches(x, y, info, batch_size, "none", shuffle=True, seed=0)


def holdout_batches(config: dict, data_dir: str, download: bool = False, skip_md5: bool = False,
                    batch_size: int = 500, subset: int | None = None):
    """The held-out training images of a run trained with ``holdout`` N, un-augmented and normalised, in
    their index order: batches ``(x float32 [B, 3, 32, 32], y int64 [B])``; ``subset`` takes a seeded
    class-balanced part of them.

    Raises:
        UserError: the run held no images out (train it with `holdout`), or missing data.
    """
    from ann2snn.plumbing.data import CifarBatches, balanced_subset, dataset_info, holdout_split, load_split

    if not config.get("holdout"):
        raise UserError("this network was trained on every training image, so there is no held-out split to "
                        "check or plan on: train it with `holdout` N (e.g. 5000)")
    info = dataset_info(config["dataset"])
    x, y = load_split(config["dataset"], data_dir, True, download, skip_md5)
    _, held = holdout_split(y, config["holdout"], info.num_classes)
    x, y = x[held], y[held]
    if subset:
        idx = balanced_subset(y, subset, 0, info.num_classes)
        x, y = x[idx], y[idx]
    return CifarBatches(x, y, info, batch_size, "none")


def first_images(batches, n: int) -> torch.Tensor:
    """The first ``n`` images of ``batches`` (fewer if it has fewer), concatenated: ``[n, 3, H, W]``.

    Raises:
        UserError: ``batches`` yields no image.
    """
    parts, have = [], 0
    for x, _ in batches:
        parts.append(x[: n - have])
        have += len(parts[-1])
        if have >= n:
            break
    if not parts:
        raise UserError("no training images were found to correct with")
    return torch.cat(parts)
