"""Evaluation: run a model over a split, accumulate one confusion matrix (plus softmax-score
histograms for average precision), derive the scores, and draw the confusion matrix and a grid
of predictions.

Task seg_depth: the model returns (logits, depth) and the data (image, mask, depth); depth errors
(RMSE, MAE, AbsRel, delta thresholds; segbench.metrics.DepthErrors) go into the same report,
beside the error of the simplest depth predictor, the training split's mean depth, and the
prediction grid gains depth columns.

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
from .metrics import ConfusionMatrix, DepthErrors, DepthScores, ScoreHistogram, Scores

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
    depth: DepthErrors | None = None  # task seg_depth
    mask_loss: float = float("nan")  # task seg_depth: the two terms of `loss`, mean per batch
    depth_loss: float = float("nan")

    @property
    def scores(self) -> Scores:
        return self.confusion.scores()

    @property
    def depth_scores(self) -> DepthScores | None:
        return None if self.depth is None else self.depth.scores()


def split_output(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, depth or None): a segmentation model returns logits, a seg_depth one (logits, depth)."""
    if isinstance(output, (tuple, list)):
        return output[0], output[1]
    return output, None


@torch.inference_mode()
def run_evaluation(model: nn.Module, loader: DataLoader, num_classes: int, ignore_index: int,
                   device: torch.device, loss_fn: nn.Module | None = None, ap_bins: int | None = None) -> Evaluation:
    """One pass over `loader`. `ap_bins` also collects the score histograms for average precision
    (off by default: the per-epoch validation during training does not need it)."""
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    histogram = ScoreHistogram(num_classes, ignore_index, ap_bins) if ap_bins else None
    depth = None
    sums, batches = np.zeros(3), 0  # total, mask and depth loss
    for images, masks, *depth_truth in loader:
        images, masks = images.to(device), masks.to(device)
        output = model(images)
        logits, pred_depth = split_output(output)
        if depth_truth:
            if pred_depth is None:
                raise DataError("the data has depth maps (task seg_depth) but the model returns no depth; "
                                "build it with task='seg_depth'")
            truth = depth_truth[0].to(device)
            depth = depth or DepthErrors()
            depth.update(pred_depth.float(), truth)
        if loss_fn is not None:
            if depth_truth:
                sums += [float(v) for v in loss_fn.parts(output, masks, truth)]
            else:
                sums[0] += float(loss_fn(logits, masks))
            batches += 1
        confusion.update(logits.argmax(1), masks)
        if histogram is not None:
            histogram.update(logits.float().softmax(1), masks)
    model.train(was_training)
    mean = sums / batches if batches else np.full(3, np.nan)
    if depth is None:
        mean[1:] = np.nan
    return Evaluation(confusion, float(mean[0]), histogram, depth, float(mean[1]), float(mean[2]))


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
    if evaluation.depth is not None:
        report.update(evaluation.depth_scores.as_dict())
    return report


def mean_depth_baseline(depths: np.ndarray, mean: float) -> DepthScores:
    """The errors of predicting `mean` (the training split's mean depth) at every pixel of `depths`."""
    errors = DepthErrors()
    for i in range(0, len(depths), 64):
        block = torch.from_numpy(np.asarray(depths[i:i + 64], np.float32))
        errors.update(torch.full_like(block, mean), block)
    return errors.scores()


def depth_baseline_report(model_scores: DepthScores, baseline: DepthScores) -> dict:
    """eval.json keys comparing a model's depth RMSE with the mean-depth predictor's."""
    ratio = baseline.rmse / model_scores.rmse if model_scores.rmse > 0 else float("nan")
    return {"depth_rmse_mean_baseline": baseline.rmse, "depth_abs_rel_mean_baseline": baseline.abs_rel,
            "depth_rmse_vs_mean_baseline": ratio}


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
    depth_truth: np.ndarray | None = None  # task seg_depth: N x H x W metres (0: unknown)
    depth_prediction: np.ndarray | None = None


@torch.inference_mode()
def predict_samples(model: nn.Module, data, count: int, device: torch.device) -> PredictionSamples:
    """Predict the first `count` items of a SegmentationCache (deterministic: no shuffling)."""
    indices = list(range(min(count, len(data))))
    if not indices:
        raise DataError("no samples to draw: the split is empty")
    items = [data[i] for i in indices]
    images = torch.stack([item[0] for item in items])
    truth = torch.stack([item[1] for item in items])
    was_training = model.training
    model.eval()
    logits, depth = split_output(model(images.to(device)))
    model.train(was_training)
    rgb = images.permute(0, 2, 3, 1).numpy() * data.std + data.mean
    depths = {}
    if depth is not None and len(items[0]) > 2:
        depths = {"depth_truth": torch.stack([item[2] for item in items]).numpy(),
                  "depth_prediction": depth.float().cpu()[:, 0].numpy()}
    return PredictionSamples(np.clip(rgb, 0, 255).round().astype(np.uint8), truth.numpy(), logits.argmax(1).cpu().numpy(),
                             indices, **depths)


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
    with_depth = samples.depth_truth is not None
    columns = ("input", "ground truth", "prediction", "errors (red)")
    if with_depth:
        columns += ("depth truth", "depth prediction", "depth |error|")
    fig = Figure(figsize=(len(columns) * 2.0, rows * 2.0 + 1.0), layout="constrained")
    axes = fig.subplots(rows, len(columns), squeeze=False)
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
    if with_depth:
        _depth_columns(fig, axes[:, 4:], samples)
    handles = [Patch(color=palette[k], label=name) for k, name in enumerate(class_names)]
    handles += [Patch(color=ERROR_RGB, label="wrong"), Patch(color=IGNORED_RGB, label="ignored")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _depth_columns(fig, axes: np.ndarray, samples: PredictionSamples) -> None:
    """Truth and prediction on one depth colour scale (near = bright), unknown depth grey, then the
    absolute error on its own scale; a colour bar for each."""
    from matplotlib import colormaps

    truth, pred = samples.depth_truth, samples.depth_prediction
    known = truth > 0
    lo, hi = (float(truth[known].min()), float(truth[known].max())) if known.any() else (0.0, 1.0)
    error = np.where(known, np.abs(pred - truth), np.nan)
    top = float(np.nanmax(error)) if known.any() else 1.0
    depth_cmap = colormaps["magma_r"].with_extremes(bad=IGNORED_RGB)
    error_cmap = colormaps["inferno"].with_extremes(bad=IGNORED_RGB)
    for r in range(len(truth)):
        shown = None
        for c, (panel, cmap, vmax, vmin) in enumerate(((np.where(known[r], truth[r], np.nan), depth_cmap, hi, lo),
                                                         (pred[r], depth_cmap, hi, lo), (error[r], error_cmap, top, 0.0))):
            ax = axes[r, c]
            shown = ax.imshow(panel, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(("depth truth", "depth prediction", "depth |error|")[c], fontsize=9)
            if r == len(truth) - 1:
                fig.colorbar(shown, ax=ax, orientation="horizontal", fraction=0.08, label="m")
        rmse = float(np.sqrt(np.nanmean(error[r] ** 2))) if known[r].any() else float("nan")
        axes[r, -1].set_ylabel(f"rmse {rmse:.2f} m", fontsize=8)
        axes[r, -1].yaxis.set_label_position("right")


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
    with_depth = ckpt.get("task", "segmentation") == "seg_depth"
    data = SegmentationCache(cache_dir, split, depth=with_depth)
    if list(ckpt["class_names"]) != list(data.class_names):
        raise DataError(f"{checkpoint_path}: trained for classes {ckpt['class_names']} but {cache_dir} has "
                        f"{data.class_names}; re-run training on this data")
    model = model.to(dev)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    evaluation = run_evaluation(model, loader, len(data.class_names), data.manifest["ignore_index"], dev, ap_bins=ap_bins)
    report = eval_report(evaluation, data.class_names, split)
    if with_depth:
        baseline = mean_depth_baseline(data.depths, data.manifest["depth"]["mean"])
        report.update(depth_baseline_report(evaluation.depth_scores, baseline))
    val = data if split == "val" else SegmentationCache(cache_dir, "val", depth=with_depth)
    return CheckpointEvaluation(report=report, confusion=evaluation.confusion,
                                class_names=list(data.class_names), split=split,
                                samples=predict_samples(model, val, samples, dev))
