"""Tasks as data: what a model learns, how a batch unpacks, which losses and scores it has.

A task object is all that train and evaluate know about what is being learned; they contain no
task-specific branch. A task owns:

- `outputs`: what the model returns; `targets`: the batch layout after the image (("mask",) or ("mask", "depth")) and `unpack`;
- `criterion`: the named loss terms (segbench.losses.Criterion) and their weights;
- `meters`: the accumulators that score a split (a confusion matrix, depth errors, ...) and, at
  evaluation, keep the per-image statistics a bootstrap over test images needs;
- `scores`: what is logged per epoch and may select the best epoch (`train.select`), with
  whether higher is better;
- `prepare`: what a fresh model needs from the training split before it trains;
- `baselines`: the eval.json keys comparing the model with a trivial predictor.

Adding a task is one class plus one `TASKS` line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .catalog import TASKS as TASKS_DECLARED
from .data.dataset import SegmentationCache
from .losses import Criterion, DepthLoss, Term, build_loss, class_weights_from_manifest
from .metrics import ConfusionMatrix, DepthErrors, DepthScores, PerImageCounts, ScoreHistogram
from .models.multitask import set_depth_statistics
from .registry import Registry


class MaskMeter:
    """Scores the "out" logits against the "mask" target: one confusion matrix (plus softmax-score
    histograms for average precision when `ap_bins` is given, per-image counts with `per_image`)."""

    def __init__(self, num_classes: int, ignore_index: int, ap_bins: int | None = None, per_image: bool = False) -> None:
        self.confusion = ConfusionMatrix(num_classes, ignore_index)
        self.histogram = ScoreHistogram(num_classes, ignore_index, ap_bins) if ap_bins else None
        self.images = PerImageCounts(num_classes, ignore_index) if per_image else None

    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        logits, mask = outputs["out"], targets["mask"]
        prediction = logits.argmax(1)
        self.confusion.update(prediction, mask)
        if self.images is not None:
            self.images.update(prediction, mask)
        if self.histogram is not None:
            self.histogram.update(logits.float().softmax(1), mask)

    def scores(self) -> dict[str, float]:
        return {"miou": self.confusion.scores().miou}

    def per_image(self) -> dict[str, np.ndarray]:
        """segbench.stats' per-image statistics: {"mask_counts": [images, classes, (tp, fp, fn)]}."""
        return {} if self.images is None else {"mask_counts": self.images.counts()}

    def report(self, class_names: list[str]) -> dict[str, Any]:
        """Flat scores plus per-class values keyed by class name."""
        s = self.confusion.scores()
        report: dict[str, Any] = {
            "miou": s.miou, "mrecall": s.mrecall, "accuracy": s.accuracy, "mdice": s.mdice, "fwiou": s.fwiou,
            "iou_per_class": dict(zip(class_names, s.iou.tolist())),
            "recall_per_class": dict(zip(class_names, s.recall.tolist())),
            "dice_per_class": dict(zip(class_names, s.dice.tolist())),
        }
        if self.histogram is not None:
            report["map"] = self.histogram.map()
            report["ap_per_class"] = dict(zip(class_names, self.histogram.average_precision().tolist()))
        return report


class DepthMeter:
    """Scores the "depth" output against the "depth" target (metres; 0 = unknown, not counted)."""

    def __init__(self, per_image: bool = False) -> None:
        self.errors = DepthErrors(per_image)
        self.keeps_images = per_image

    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        self.errors.update(outputs["depth"].float(), targets["depth"])

    def scores(self) -> dict[str, float]:
        return {"depth_rmse": self.errors.scores().rmse}

    def per_image(self) -> dict[str, np.ndarray]:
        return {"depth_sums": self.errors.per_image_sums()} if self.keeps_images else {}

    def report(self, class_names: list[str]) -> dict[str, Any]:
        return self.errors.scores().as_dict()


class Segmentation:
    """Per-pixel classes: logits "out" against the "mask" target, scored by a confusion matrix."""

    name = "segmentation"
    outputs: tuple[str, ...] = TASKS_DECLARED[name].outputs  # what the model must return
    targets: tuple[str, ...] = TASKS_DECLARED[name].targets
    scores: dict[str, bool] = TASKS_DECLARED[name].scores  # logged per epoch; True: higher is better

    def dataset(self, cache_dir: str | Path, split: str, **kwargs: Any) -> SegmentationCache:
        return SegmentationCache(cache_dir, split, depth="depth" in self.targets, **kwargs)

    def unpack(self, batch, device: torch.device,
               memory_format: torch.memory_format = torch.preserve_format) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(images, {target name: tensor}) on `device`."""
        images, *rest = batch
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        return images, {name: t.to(device, non_blocking=True) for name, t in zip(self.targets, rest)}

    def mask_loss(self, cfg, manifest: dict) -> nn.Module:
        weights = class_weights_from_manifest(manifest, cfg.class_weighting) if cfg.loss == "weighted_ce" else None
        return build_loss(cfg.loss, manifest["ignore_index"], beta=cfg.beta, focal_gamma=cfg.focal_gamma,
                          class_weights=weights)

    def criterion(self, cfg, manifest: dict) -> Criterion:
        """`cfg`: the training settings (a TrainConfig); weighted_ce's class weights come from the
        training split's pixel counts in `manifest`."""
        return Criterion({"mask": Term(self.mask_loss(cfg, manifest), "out", "mask")})

    def meters(self, num_classes: int, ignore_index: int, ap_bins: int | None = None, per_image: bool = False) -> list:
        return [MaskMeter(num_classes, ignore_index, ap_bins, per_image)]

    def prepare(self, model: nn.Module, manifest: dict) -> None:
        """Nothing to set before training."""

    def baselines(self, data: SegmentationCache, report: dict) -> dict[str, float]:
        return {}


class SegDepth(Segmentation):
    """Mask plus a depth map: loss = mask loss + depth_weight x depth loss (in units of the training
    depth std); depth errors beside the mask scores, against the training split's mean depth."""

    name = "seg_depth"
    outputs = TASKS_DECLARED[name].outputs
    targets = TASKS_DECLARED[name].targets
    scores = TASKS_DECLARED[name].scores

    def criterion(self, cfg, manifest: dict) -> Criterion:
        depth = DepthLoss(cfg.depth_loss, scale=manifest["depth"]["std"], delta=cfg.huber_delta)
        return Criterion({"mask": Term(self.mask_loss(cfg, manifest), "out", "mask"),
                          "depth": Term(depth, "depth", "depth", cfg.depth_weight)})

    def meters(self, num_classes: int, ignore_index: int, ap_bins: int | None = None, per_image: bool = False) -> list:
        return [*super().meters(num_classes, ignore_index, ap_bins, per_image), DepthMeter(per_image)]

    def prepare(self, model: nn.Module, manifest: dict) -> None:
        """The depth head starts at the mean training depth and learns a residual in std units."""
        set_depth_statistics(model, manifest["depth"]["mean"], manifest["depth"]["std"])

    def baselines(self, data: SegmentationCache, report: dict) -> dict[str, float]:
        """The model's depth RMSE against the errors of predicting the training mean everywhere."""
        baseline = mean_depth_baseline(data.depths, data.manifest["depth"]["mean"])
        return depth_baseline_report(report["depth_rmse"], baseline)


def mean_depth_baseline(depths: np.ndarray, mean: float) -> DepthScores:
    """The errors of predicting `mean` (the training split's mean depth) at every pixel of `depths`."""
    errors = DepthErrors()
    for i in range(0, len(depths), 64):
        block = torch.from_numpy(np.asarray(depths[i:i + 64], np.float32))
        errors.update(torch.full_like(block, mean), block)
    return errors.scores()


def depth_baseline_report(model_rmse: float, baseline: DepthScores) -> dict[str, float]:
    """eval.json keys comparing a model's depth RMSE with the mean-depth predictor's."""
    ratio = baseline.rmse / model_rmse if model_rmse > 0 else float("nan")
    return {"depth_rmse_mean_baseline": baseline.rmse, "depth_abs_rel_mean_baseline": baseline.abs_rel,
            "depth_rmse_vs_mean_baseline": ratio}


TASKS: Registry[Segmentation] = Registry("task")
TASKS.add(Segmentation.name, Segmentation())
TASKS.add(SegDepth.name, SegDepth())


def get_task(name: str) -> Segmentation:
    return TASKS.get(name, "task")
