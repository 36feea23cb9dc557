"""Evaluation: run a model over a split, accumulate one confusion matrix (plus softmax-score
histograms for average precision), derive the scores, and draw the confusion matrix and a grid
of predictions.

Nothing here knows about DVC or where files go: the caller (cli.py, a notebook) picks paths.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .errors import DataError
from .io import atomic_path
from .metrics import ConfusionMatrix, ScoreHistogram, Scores

# Colours for class indices 0..19 (then tab20b); fixed so every model's figures agree.
# No pure red or mid grey: those mark wrong and ignored pixels.
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#bcbd22", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#aec7e8", "#98df8a",
            "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#7b4173"]
IGNORED_RGB = (0.6, 0.6, 0.6)
ERROR_RGB = (1.0, 0.0, 0.0)


@dataclass(frozen=True)
class Evaluation:
    confusion: ConfusionMatrix
    loss: float  # mean loss per batch, NaN when no loss function was given
    histogram: ScoreHistogram | None = None  # softmax-score histograms, when AP was asked for

    @property
    def scores(self) -> Scores:
        return self.confusion.scores()


@torch.inference_mode()
def run_evaluation(model: nn.Module, loader: DataLoader, num_classes: int, ignore_index: int,
                   device: torch.device, loss_fn: nn.Module | None = None, ap_bins: int | None = None) -> Evaluation:
    """One pass over `loader`. `ap_bins` also collects the score histograms for average precision
    (off by default: the per-epoch validation during training does not need it)."""
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    histogram = ScoreHistogram(num_classes, ignore_index, ap_bins) if ap_bins else None
    total, batches = 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        logits = model(images)
        if loss_fn is not None:
            total += float(loss_fn(logits, masks))
            batches += 1
        confusion.update(logits.argmax(1), masks)
        if histogram is not None:
            histogram.update(logits.float().softmax(1), masks)
    model.train(was_training)
    return Evaluation(confusion, total / batches if batches else float("nan"), histogram)


def eval_report(evaluation: Evaluation, class_names: list[str], split: str | None = None) -> dict:
    """The eval.json content: flat scores plus per-class values keyed by class name."""
    s = evaluation.scores
    report: dict = {} if split is None else {"split": split}
    report.update({
        "miou": s.miou, "mrecall": s.mrecall, "accuracy": s.accuracy, "mdice": s.mdice, "fwiou": s.fwiou,
        "iou_per_class": dict(zip(class_names, s.iou.tolist())),
        "recall_per_class": dict(zip(class_names, s.recall.tolist())),
        "dice_per_class": dict(zip(class_names, s.dice.tolist())),
    })
    if evaluation.histogram is not None:
        ap = evaluation.histogram.average_precision()
        report["map"] = evaluation.histogram.map()
        report["ap_per_class"] = dict(zip(class_names, ap.tolist()))
    return report


def resolve_split(manifest: dict, requested: str, where: str = "cache") -> str:
    """The split to score: `requested` when the cache has it; a missing test split falls back to val."""
    available = [s for s, n in manifest.get("splits", {}).items() if n]
    if requested in available:
        return requested
    if requested == "test" and "val" in available:
        return "val"
    raise DataError(f"{where}: no {requested!r} split to evaluate on (has: {', '.join(available) or 'none'}); "
                    "set evaluate.split to one of val, test that exists")


# --- prediction samples --------------------------------------------------------------------

@dataclass(frozen=True)
class PredictionSamples:
    """A few images with truth and prediction, for looking at."""

    images: np.ndarray  # N x H x W x 3 uint8 RGB (un-normalised)
    truth: np.ndarray  # N x H x W class indices (ignore_index for void)
    prediction: np.ndarray  # N x H x W class indices
    indices: list[int]  # positions in their split


@torch.inference_mode()
def predict_samples(model: nn.Module, data, count: int, device: torch.device) -> PredictionSamples:
    """Predict the first `count` items of a SegmentationCache (deterministic: no shuffling)."""
    indices = list(range(min(count, len(data))))
    if not indices:
        raise DataError("no samples to draw: the split is empty")
    items = [data[i] for i in indices]
    images = torch.stack([x for x, _ in items])
    truth = torch.stack([m for _, m in items])
    was_training = model.training
    model.eval()
    prediction = model(images.to(device)).argmax(1).cpu()
    model.train(was_training)
    rgb = images.permute(0, 2, 3, 1).numpy() * data.std + data.mean
    return PredictionSamples(np.clip(rgb, 0, 255).round().astype(np.uint8), truth.numpy(), prediction.numpy(), indices)


# --- figures and plot data -------------------------------------------------------------------

def class_palette(num_classes: int) -> np.ndarray:
    """num_classes x 3 RGB floats in [0, 1]; the same class index always gets the same colour."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    more = colormaps["tab20b"]
    return np.array([to_rgb(_PALETTE[k]) if k < len(_PALETTE) else more((k - len(_PALETTE)) % 20)[:3]
                     for k in range(num_classes)])


def colourise(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    out = np.empty(mask.shape + (3,))
    out[:] = IGNORED_RGB
    valid = mask < len(palette)
    out[valid] = palette[mask[valid]]
    return out


def error_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """The input dimmed, wrong pixels red, ignored pixels grey."""
    out = image.astype(np.float64) / 255 * 0.35
    ignored = truth >= num_classes
    out[ignored] = IGNORED_RGB
    out[~ignored & (prediction != truth)] = ERROR_RGB
    return out


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each true class's row as shares of its pixels; NaN rows for classes absent from the truth."""
    matrix = np.asarray(matrix, np.float64)
    rows = matrix.sum(1, keepdims=True)
    return np.divide(matrix, rows, out=np.full_like(matrix, np.nan), where=rows > 0)


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str = "confusion matrix"):
    """A matplotlib Figure: row-normalised confusion matrix, values printed, class names on the axes."""
    from matplotlib.figure import Figure

    share = row_normalised(matrix)
    n = len(class_names)
    side = max(4.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(share), cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            value = share[i, j]
            text = "–" if np.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if not np.isnan(value) and value > 0.5 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="share of the actual class's pixels")
    return fig


def predictions_figure(samples: PredictionSamples, class_names: list[str], title: str = "predictions"):
    """A matplotlib Figure: one row per sample; input, truth, prediction, errors; a class legend."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(class_names)
    palette = class_palette(n)
    rows = len(samples.indices)
    fig = Figure(figsize=(4 * 2.0, rows * 2.0 + 1.0), layout="constrained")
    axes = fig.subplots(rows, 4, squeeze=False)
    columns = ("input", "ground truth", "prediction", "errors (red)")
    for r, index in enumerate(samples.indices):
        truth, pred = samples.truth[r], samples.prediction[r]
        valid = truth < n
        accuracy = float((pred[valid] == truth[valid]).mean()) if valid.any() else float("nan")
        panels = (samples.images[r], colourise(truth, palette), colourise(pred, palette),
                  error_overlay(samples.images[r], truth, pred, n))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(f"#{index}  acc {accuracy:.2f}", fontsize=8)
    handles = [Patch(color=palette[k], label=name) for k, name in enumerate(class_names)]
    handles += [Patch(color=ERROR_RGB, label="wrong"), Patch(color=IGNORED_RGB, label="ignored")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _csv(header: list[str], rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def confusion_table_csv(matrix: np.ndarray, class_names: list[str]) -> str:
    """Long form, one row per (actual, predicted) cell: pixel count and share of the actual class."""
    share = row_normalised(matrix)
    return _csv(["actual", "predicted", "pixels", "share"],
                ([a, p, int(matrix[i, j]), "" if np.isnan(share[i, j]) else f"{share[i, j]:.6f}"]
                 for i, a in enumerate(class_names) for j, p in enumerate(class_names)))


def confusion_plot_csv(matrix: np.ndarray, class_names: list[str], resolution: int = 1000) -> str:
    """Rows `actual,predicted` for DVC's built-in `confusion_normalized` template, which counts rows.

    One row per pixel would be the whole split; instead each actual class gets exactly
    `resolution` rows, split across predicted classes in proportion to its pixels (largest
    remainder rounding), so the template's row-normalised view shows the true shares to 1/resolution.
    """
    rows = []
    for i, actual in enumerate(class_names):
        counts = np.asarray(matrix[i], np.float64)
        if counts.sum() == 0:
            continue  # absent from the truth: no row to normalise
        exact = counts * resolution / counts.sum()
        quota = np.floor(exact).astype(int)
        order = np.argsort(-(exact - quota), kind="stable")
        quota[order[:resolution - quota.sum()]] += 1
        for j, predicted in enumerate(class_names):
            rows.extend([[actual, predicted]] * int(quota[j]))
    return _csv(["actual", "predicted"], rows)


# --- one checkpoint, end to end --------------------------------------------------------------

@dataclass(frozen=True)
class CheckpointEvaluation:
    """Everything `evaluate_checkpoint` found; figures are drawn on demand (notebook friendly)."""

    report: dict  # the eval.json content
    confusion: ConfusionMatrix
    class_names: list[str]
    split: str
    samples: PredictionSamples  # the first validation images, predicted

    def confusion_figure(self):
        return confusion_figure(self.confusion.matrix.numpy(), self.class_names,
                                f"confusion matrix ({self.split} split, row-normalised)")

    def predictions_figure(self):
        return predictions_figure(self.samples, self.class_names, "first validation images")

    def confusion_table_csv(self) -> str:
        return confusion_table_csv(self.confusion.matrix.numpy(), self.class_names)

    def confusion_plot_csv(self) -> str:
        return confusion_plot_csv(self.confusion.matrix.numpy(), self.class_names)


def evaluate_checkpoint(checkpoint_path, cache_dir, split: str = "test", batch_size: int = 32, device: str = "auto",
                        samples: int = 6, ap_bins: int = 1000) -> CheckpointEvaluation:
    """Score a checkpoint on `split` (test, falling back to val when the cache has no test split)
    and predict the first `samples` validation images."""
    from .checkpoint import load_checkpoint
    from .data.dataset import SegmentationCache, load_manifest
    from .train import resolve_device

    dev = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint_path)
    split = resolve_split(load_manifest(cache_dir), split, str(cache_dir))
    data = SegmentationCache(cache_dir, split)
    if list(ckpt["class_names"]) != list(data.class_names):
        raise DataError(f"{checkpoint_path}: trained for classes {ckpt['class_names']} but {cache_dir} has "
                        f"{data.class_names}; re-run training on this data")
    model = model.to(dev)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    evaluation = run_evaluation(model, loader, len(data.class_names), data.manifest["ignore_index"], dev, ap_bins=ap_bins)
    val = data if split == "val" else SegmentationCache(cache_dir, "val")
    return CheckpointEvaluation(report=eval_report(evaluation, data.class_names, split), confusion=evaluation.confusion,
                                class_names=list(data.class_names), split=split,
                                samples=predict_samples(model, val, samples, dev))
