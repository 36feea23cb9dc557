"""Evaluation: run a model over a split, accumulate one confusion matrix, derive the scores."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from .metrics import ConfusionMatrix, Scores


@dataclass(frozen=True)
class Evaluation:
    confusion: ConfusionMatrix
    loss: float  # mean loss per batch, NaN when no loss function was given

    @property
    def scores(self) -> Scores:
        return self.confusion.scores()


@torch.inference_mode()
def run_evaluation(model: nn.Module, loader: DataLoader, num_classes: int, ignore_index: int,
                   device: torch.device, loss_fn: nn.Module | None = None) -> Evaluation:
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    total, batches = 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        logits = model(images)
        if loss_fn is not None:
            total += float(loss_fn(logits, masks))
            batches += 1
        confusion.update(logits.argmax(1), masks)
    model.train(was_training)
    return Evaluation(confusion, total / batches if batches else float("nan"))


def eval_report(evaluation: Evaluation, class_names: list[str]) -> dict:
    """The eval.json content: flat scores plus per-class values keyed by class name."""
    s = evaluation.scores
    return {
        "miou": s.miou, "mrecall": s.mrecall, "accuracy": s.accuracy, "mdice": s.mdice, "fwiou": s.fwiou,
        "iou_per_class": dict(zip(class_names, s.iou.tolist())),
        "recall_per_class": dict(zip(class_names, s.recall.tolist())),
        "dice_per_class": dict(zip(class_names, s.dice.tolist())),
    }


def evaluate_checkpoint(checkpoint_path, cache_dir, split: str, batch_size: int, device: str = "auto") -> tuple[dict, ConfusionMatrix]:
    from .checkpoint import load_checkpoint
    from .data.dataset import SegmentationCache
    from .train import resolve_device

    dev = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint_path)
    data = SegmentationCache(cache_dir, split)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    evaluation = run_evaluation(model.to(dev), loader, len(data.class_names), data.manifest["ignore_index"], dev)
    return eval_report(evaluation, data.class_names), evaluation.confusion
