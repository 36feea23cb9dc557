"""Segmentation scores, all from one confusion matrix (rows: truth, columns: prediction).

Absent classes: a class that appears in neither the truth nor the prediction has an undefined
IoU / Dice (0/0); it is reported as NaN (null in JSON) and excluded from the means. A class
absent from the truth but predicted somewhere has IoU 0 and counts. Recall is undefined for a
class absent from the truth and excluded from mean recall. Pixels labelled `ignore_index`
are dropped before counting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true class indices (same shape)."""
        pred, target = pred.reshape(-1).to("cpu", torch.int64), target.reshape(-1).to("cpu", torch.int64)
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        idx = target[keep] * self.num_classes + pred[keep]
        self.matrix += torch.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def scores(self) -> "Scores":
        return scores_from_confusion(self.matrix.numpy())


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
        return _nanmean(self.iou)

    @property
    def mrecall(self) -> float:
        return _nanmean(self.recall)

    @property
    def mdice(self) -> float:
        return _nanmean(self.dice)

    @property
    def fwiou(self) -> float:
        keep = ~np.isnan(self.iou)
        return float((self.frequency[keep] * self.iou[keep]).sum() / max(self.frequency[keep].sum(), 1e-12))


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def scores_from_confusion(matrix: np.ndarray) -> Scores:
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    truth, predicted = matrix.sum(1), matrix.sum(0)
    total = matrix.sum()
    return Scores(
        iou=_ratio(tp, truth + predicted - tp),
        recall=_ratio(tp, truth),
        precision=_ratio(tp, predicted),
        dice=_ratio(2 * tp, truth + predicted),
        accuracy=float(tp.sum() / total) if total else float("nan"),
        frequency=truth / total if total else np.zeros_like(truth),
    )
