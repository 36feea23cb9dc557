"""Per-model figures and plot data, drawn from what `evaluate` found: the row-normalised confusion
matrix and the grid of predictions (PNG), and the confusion matrix as CSV (exact counts, and the
rows DVC's `confusion_normalized` template counts). Report side: nothing here runs a model.

    result = evaluate_checkpoint(...)
    confusion_figure(result.confusion.matrix.numpy(), result.class_names)
    predictions_figure(result.samples, result.class_names)
"""
from __future__ import annotations

import csv
import io
from typing import Mapping

import numpy as np

from .samples import PredictionSamples

# Colours for class indices 0..19 (then tab20b); fixed so every model's figures agree.
# No pure red or mid grey: those mark wrong and ignored pixels.
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#bcbd22", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#aec7e8", "#98df8a",
            "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#7b4173"]
IGNORED_RGB = (0.6, 0.6, 0.6)
ERROR_RGB = (1.0, 0.0, 0.0)


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


def predictions_figure(samples: PredictionSamples | Mapping[str, PredictionSamples], class_names: list[str],
                       title: str = "predictions"):
    """A matplotlib Figure, one row per image: input, truth, then each prediction and its errors (red);
    with depth, the depth truth, then each depth prediction and its |error|; a class legend.
    `samples`: one PredictionSamples, or {label: PredictionSamples} of the same images (every seed's)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    runs = dict(samples) if isinstance(samples, Mapping) else {"": samples}
    first = next(iter(runs.values()))
    n = len(class_names)
    palette = class_palette(n)
    rows = len(first.indices)
    columns = ["input", "ground truth"] + [_titled(label, name) for label in runs for name in ("prediction", "errors (red)")]
    with_depth = first.depth_truth is not None
    if with_depth:
        columns += ["depth truth"] + [_titled(label, name) for label in runs for name in ("depth prediction", "depth |error|")]
    fig = Figure(figsize=(len(columns) * 1.8, rows * 1.8 + 1.0), layout="constrained")
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for r, index in enumerate(first.indices):
        truth = first.truth[r]
        valid = truth < n
        panels = [first.images[r], colourise(truth, palette)]
        accuracies = []
        for run in runs.values():
            pred = run.prediction[r]
            accuracies.append(f"{float((pred[valid] == truth[valid]).mean()):.2f}" if valid.any() else "nan")
            panels += [colourise(pred, palette), error_overlay(first.images[r], truth, pred, n)]
        for c, panel in enumerate(panels):
            _image(axes[r, c], panel, columns[c] if r == 0 else None)
        axes[r, 0].set_ylabel(f"#{index}  acc {'/'.join(accuracies)}", fontsize=8)
    if with_depth:
        _depth_columns(fig, axes[:, 2 + 2 * len(runs):], first.depth_truth, [run.depth_prediction for run in runs.values()],
                       columns[2 + 2 * len(runs):])
    handles = [Patch(color=palette[k], label=name) for k, name in enumerate(class_names)]
    handles += [Patch(color=ERROR_RGB, label="wrong"), Patch(color=IGNORED_RGB, label="ignored")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _titled(label: str, name: str) -> str:
    return f"{label}: {name}" if label else name


def _image(ax, panel: np.ndarray, title: str | None, **style):
    shown = ax.imshow(panel, interpolation="nearest", **style)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return shown


def _depth_columns(fig, axes: np.ndarray, truth: np.ndarray, predictions: list[np.ndarray], titles: list[str]) -> None:
    """Truth and every prediction on one depth colour scale (near = bright), unknown depth grey, and every
    prediction's absolute error on a second scale shared by the errors; a colour bar under each column."""
    from matplotlib import colormaps

    known = truth > 0
    lo, hi = (float(truth[known].min()), float(truth[known].max())) if known.any() else (0.0, 1.0)
    errors = [np.where(known, np.abs(pred - truth), np.nan) for pred in predictions]
    top = max(float(np.nanmax(error)) for error in errors) if known.any() else 1.0
    depth = {"cmap": colormaps["magma_r"].with_extremes(bad=IGNORED_RGB), "vmin": lo, "vmax": hi}
    error_style = {"cmap": colormaps["inferno"].with_extremes(bad=IGNORED_RGB), "vmin": 0.0, "vmax": top}
    for r in range(len(truth)):
        panels = [(np.where(known[r], truth[r], np.nan), depth)]
        for pred, error in zip(predictions, errors):
            panels += [(pred[r], depth), (error[r], error_style)]
        for c, (panel, style) in enumerate(panels):
            shown = _image(axes[r, c], panel, titles[c] if r == 0 else None, **style)
            if r == len(truth) - 1:
                fig.colorbar(shown, ax=axes[r, c], orientation="horizontal", fraction=0.08, label="m")
            if style is error_style:
                rmse = float(np.sqrt(np.nanmean(panel ** 2))) if known[r].any() else float("nan")
                axes[r, c].set_xlabel(f"rmse {rmse:.2f} m", fontsize=7)


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

