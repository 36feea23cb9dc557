"""Segmentation scores, all from one confusion matrix (rows: truth, columns: prediction), and
depth errors (DepthErrors, at the end).

Absent classes: a class that appears in neither the truth nor the prediction has an undefined
IoU / Dice (0/0); it is reported as NaN (null in JSON) and excluded from the means. A class
absent from the truth but predicted somewhere has IoU 0 and counts. Recall is undefined for a
class absent from the truth and excluded from mean recall. Pixels labelled `ignore_index`
are dropped before counting.

Average precision (ScoreHistogram) is one-vs-rest per class over the softmax scores of every
non-ignored pixel; it is undefined (NaN) for a class absent from the truth and excluded from mAP.

The arithmetic (counts -> scores) is numpy alone and is the one implementation of each score:
the bootstrap (segbench.stats) recomputes mIoU and depth RMSE from resampled per-image counts
with `miou_from_counts` and `depth_rmse_from_sums`. The accumulators take torch tensors but
import torch only when used, so the aggregate and plot stages read this module without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        import torch

        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true class indices (same shape)."""
        import torch

        pred, target = pred.reshape(-1).to("cpu", torch.int64), target.reshape(-1).to("cpu", torch.int64)
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        idx = target[keep] * self.num_classes + pred[keep]
        self.matrix += torch.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def scores(self) -> Scores:
        return scores_from_confusion(self.matrix.numpy())


class PerImageCounts:
    """Per image and class: (tp, fp, fn) pixel counts, ignored pixels dropped. Summed over the
    images they give the split's confusion-matrix scores; resampled images, a bootstrap's
    (segbench.stats). Kept at evaluation only (80 test images x 6 classes: 1440 numbers)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.rows: list[torch.Tensor] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """A batch of predicted and true class indices, N x H x W (first dimension: the image)."""
        import torch

        c, n = self.num_classes, pred.shape[0]
        pred, target = pred.reshape(n, -1).to("cpu", torch.int64), target.reshape(n, -1).to("cpu", torch.int64)
        keep = (target != self.ignore_index) & (target >= 0) & (target < c)
        image = torch.arange(n).unsqueeze(1).expand_as(target)
        idx = (image * c * c + target * c + pred)[keep]
        matrix = torch.bincount(idx, minlength=n * c * c).reshape(n, c, c)
        tp = matrix.diagonal(dim1=1, dim2=2)
        self.rows.append(torch.stack([tp, matrix.sum(1) - tp, matrix.sum(2) - tp], dim=-1))

    def counts(self) -> np.ndarray:
        """[images, classes, 3] int64: tp, fp, fn."""
        if not self.rows:
            return np.zeros((0, self.num_classes, 3), np.int64)
        return np.concatenate([rows.numpy() for rows in self.rows])


@dataclass(frozen=True)
class Scores:
    iou: np.ndarray  # per class, NaN where undefined
    recall: np.ndarray
    precision: np.ndarray
    dice: np.ndarray
    accuracy: float
    frequency: np.ndarray  # share of (non-ignored) truth pixels per class

    @property
    def miou(self) -> float:
        return float(mean_of_defined(self.iou))

    @property
    def mrecall(self) -> float:
        return float(mean_of_defined(self.recall))

    @property
    def mdice(self) -> float:
        return float(mean_of_defined(self.dice))

    @property
    def fwiou(self) -> float:
        keep = ~np.isnan(self.iou)
        return float((self.frequency[keep] * self.iou[keep]).sum() / max(self.frequency[keep].sum(), 1e-12))


def mean_of_defined(values: np.ndarray) -> np.ndarray:
    """The mean over the last axis (the classes) of the values that are defined (not NaN); NaN
    where none is."""
    values = np.asarray(values, np.float64)
    defined = ~np.isnan(values)
    total, count = np.where(defined, values, 0).sum(-1), defined.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def class_iou(tp: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Per class tp / union (union = tp + fp + fn), NaN where the union is empty (0 / 0)."""
    return _ratio(tp, union)


def scores_from_confusion(matrix: np.ndarray) -> Scores:
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    truth, predicted = matrix.sum(1), matrix.sum(0)
    total = matrix.sum()
    return Scores(
        iou=class_iou(tp, truth + predicted - tp),
        recall=_ratio(tp, truth),
        precision=_ratio(tp, predicted),
        dice=_ratio(2 * tp, truth + predicted),
        accuracy=float(tp.sum() / total) if total else float("nan"),
        frequency=truth / total if total else np.zeros_like(truth),
    )


def miou_from_counts(counts: np.ndarray) -> np.ndarray:
    """mIoU of per-class (tp, fp, fn) pixel counts [..., classes, 3] (PerImageCounts' layout, summed
    over images), as `Scores.miou` gives it from the confusion matrix of the same pixels."""
    counts = np.asarray(counts, np.float64)
    return mean_of_defined(class_iou(counts[..., 0], counts.sum(-1)))


class ScoreHistogram:
    """Per-class histograms of softmax scores, split by truth, for one-vs-rest average precision.

    Every non-ignored pixel adds, for each class c, its score for c to bin floor(score * bins) of
    the positive histogram (truth == c) or the negative one. Memory is O(classes * bins)
    whatever the split size; pixels in one bin are treated as tied; with 1000 bins AP stays within
    1e-3 of the exact value on the tests' random data (see tests/test_evaluate.py).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, bins: int = 1000) -> None:
        import torch

        self.num_classes, self.ignore_index, self.bins = num_classes, ignore_index, bins
        # [class, bin, is_positive]
        self.counts = torch.zeros(num_classes, bins, 2, dtype=torch.int64)

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: probs N x C x ... (softmax scores in [0, 1]), target N x ... class indices."""
        import torch

        c = self.num_classes
        probs = probs.detach().to("cpu", torch.float32).movedim(1, -1).reshape(-1, c)
        target = target.reshape(-1).to("cpu", torch.int64)
        keep = (target != self.ignore_index) & (target >= 0) & (target < c)
        probs, target = probs[keep], target[keep]
        for k in range(c):  # one class at a time keeps the temporaries at one int64 per pixel
            bin_idx = (probs[:, k] * self.bins).to(torch.int64).clamp_(0, self.bins - 1)
            flat = bin_idx * 2 + (target == k).to(torch.int64)
            self.counts[k] += torch.bincount(flat, minlength=self.bins * 2).reshape(self.bins, 2)

    def average_precision(self) -> np.ndarray:
        """Per-class AP; NaN for a class absent from the truth (AP undefined)."""
        counts = self.counts.numpy()
        return np.array([average_precision_from_counts(counts[k, :, 1], counts[k, :, 0]) for k in range(self.num_classes)])

    def map(self) -> float:
        return float(mean_of_defined(self.average_precision()))


def average_precision_from_counts(positives: np.ndarray, negatives: np.ndarray) -> float:
    """AP = sum_n (R_n - R_{n-1}) * P_n over thresholds from the highest score bin down.

    positives[b] / negatives[b]: how many positive / negative samples scored in bin b
    (bins ordered by increasing score). Samples sharing a bin share one threshold.
    """
    tp = np.cumsum(np.asarray(positives, np.float64)[::-1])
    fp = np.cumsum(np.asarray(negatives, np.float64)[::-1])
    total = tp[-1] if len(tp) else 0.0
    if total == 0:
        return float("nan")
    seen = tp + fp
    precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
    recall_step = np.diff(np.concatenate([[0.0], tp])) / total
    return float((recall_step * precision).sum())


# --- depth ---------------------------------------------------------------------------------------
# Over every valid pixel of a split (truth > 0; 0 marks unknown depth), in metres:
#   RMSE = sqrt(mean (p - t)^2)        MAE = mean |p - t|        AbsRel = mean |p - t| / t
#   delta_k = share of pixels with max(p / t, t / p) < 1.25^k, k = 1, 2, 3 (Eigen et al., 2014)
# Predictions are clamped to DEPTH_FLOOR first, so a non-positive prediction counts as a large
# ratio error rather than an undefined one. Sums accumulate in float64 per batch, so the values
# do not depend on how the split is batched.
DEPTH_FLOOR = 1e-3
DELTA_BASE = 1.25


@dataclass(frozen=True)
class DepthScores:
    rmse: float
    mae: float
    abs_rel: float
    delta1: float
    delta2: float
    delta3: float
    pixels: int

    def as_dict(self, prefix: str = "depth_") -> dict[str, float]:
        return {f"{prefix}rmse": self.rmse, f"{prefix}mae": self.mae, f"{prefix}abs_rel": self.abs_rel,
                f"{prefix}delta1": self.delta1, f"{prefix}delta2": self.delta2, f"{prefix}delta3": self.delta3}


class DepthErrors:
    """Accumulates depth errors batch by batch; `scores()` gives the split's DepthScores. With
    `per_image`, also each image's sums (`per_image_sums()`), for a bootstrap over images."""

    def __init__(self, per_image: bool = False) -> None:
        self.sums = np.zeros(6, np.float64)  # squared error, abs error, abs rel, delta1..3 counts
        self.pixels = 0
        self.rows: list[np.ndarray] | None = [] if per_image else None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred and target in metres, the same number of elements per image (first dimension: the
        image); target 0 (or less) is not counted."""
        import torch

        n = target.shape[0] if target.dim() > 1 else 1
        pred = pred.detach().reshape(n, -1).to("cpu", torch.float64)
        target = target.detach().reshape(n, -1).to("cpu", torch.float64)
        valid = target > 0
        p, t = pred.clamp_min(DEPTH_FLOOR), torch.where(valid, target, torch.ones_like(target))
        err = torch.where(valid, p - t, torch.zeros_like(p))
        ratio = torch.maximum(p / t, t / p)
        per_image = torch.stack([(err ** 2).sum(1), err.abs().sum(1), (err.abs() / t).sum(1),
                                 *(((ratio < DELTA_BASE ** k) & valid).sum(1).double() for k in (1, 2, 3)),
                                 valid.sum(1).double()], dim=1).numpy()
        self.sums += per_image[:, :6].sum(0)
        self.pixels += int(per_image[:, 6].sum())
        if self.rows is not None:
            self.rows.append(per_image)

    def per_image_sums(self) -> np.ndarray:
        """[images, 7]: squared error, |error|, |error| / truth, delta1..3 counts, valid pixels.
        Summed over any images, `depth_scores_from_sums` gives their scores."""
        return np.concatenate(self.rows) if self.rows else np.zeros((0, 7), np.float64)

    def scores(self) -> DepthScores:
        return depth_scores_from_sums(np.append(self.sums, self.pixels))


def depth_rmse_from_sums(sums: np.ndarray) -> np.ndarray:
    """RMSE in metres from depth sums [..., 7] (DepthErrors' per-image layout, summed over images);
    NaN where there is no valid pixel."""
    sums = np.asarray(sums, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sums[..., 6] > 0, np.sqrt(sums[..., 0] / np.maximum(sums[..., 6], 1)), np.nan)


def depth_scores_from_sums(sums: np.ndarray) -> DepthScores:
    """Every depth score from one row of depth sums [7] (see `depth_rmse_from_sums`)."""
    sums = np.asarray(sums, np.float64)
    pixels = int(sums[6])
    if pixels == 0:
        nan = float("nan")
        return DepthScores(nan, nan, nan, nan, nan, nan, 0)
    ab, rel, d1, d2, d3 = sums[1:6] / pixels
    return DepthScores(float(depth_rmse_from_sums(sums)), float(ab), float(rel), float(d1), float(d2), float(d3), pixels)
