"""The report's PNGs (matplotlib, no pyplot state): trade-off scatters, per-class IoU heatmap, curves.

The same data files feed DVC's interactive plots; these are the versions that show anywhere
(a README, a pull request, an image viewer). Each draw function named by spec.FIGURES takes
(its table, the model colours, the figure's cost axis or None) and returns a Figure;
segbench.io.save_figure writes it.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..keys import parse_latency_key

if TYPE_CHECKING:
    import pandas as pd

    from .spec import CostAxis

LOG_RANGE = 10.0  # a log axis when the positive values span more than this factor
GRID_COLUMNS = 3  # trade-off panels per row: readable at 100% zoom


def model_colours(models: list[str]) -> dict[str, tuple]:
    """One colour per model, the same in every figure (params order)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(models)}


def use_log_scale(values) -> bool:
    """True when every value is positive and the largest is more than LOG_RANGE times the smallest."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    return len(v) > 1 and bool((v > 0).all()) and bool(v.max() / v.min() > LOG_RANGE)


def _message_axes(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="dimgrey", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def tradeoff_figure(table: pd.DataFrame, colours: dict[str, tuple], axis: CostAxis):
    """One panel per setting (profiled size / precision): dots labelled by model with their 95% interval over
    seeds, Pareto staircase, members ringed."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    settings = list(dict.fromkeys(table["setting"]))
    valid = table.dropna(subset=[axis.column, "miou"])
    # a grid, at most GRID_COLUMNS panels a row: six panels side by side made a 4824 x 576 strip
    columns = min(GRID_COLUMNS, len(settings))
    rows = math.ceil(len(settings) / columns)
    fig = Figure(figsize=(5.0 * columns + 2.0, 4.0 * rows + 0.6), layout="constrained")
    grid = fig.subplots(rows, columns, squeeze=False).ravel()
    for spare in grid[len(settings):]:
        spare.set_visible(False)
    axes = grid[:len(settings)]
    flagged = sorted({f for flags in (valid["flag"].fillna("") if "flag" in valid else ()) for f in flags.split(", ") if f})
    fig.suptitle(axis.title + (f"\n⚠ crossed timings are not comparable ({' / '.join(flagged)}: see the summary)"
                               if flagged else ""))
    if valid.empty:
        latency = parse_latency_key(axis.column)
        what = "GPU" if latency and latency.device == "cuda" else axis.label.split(" (")[0]
        for ax in axes:
            _message_axes(ax, f"no {what} measurements\n({axis.column} is absent from every model's metrics)")
        return fig
    for ax, setting in zip(axes, settings):
        _tradeoff_panel(ax, valid[valid["setting"] == setting], axis, colours)
        if setting:
            ax.set_title(setting, fontsize=10)
    handles = [Line2D([], [], ls="", marker="o", color=colours.get(m, "grey"), label=m) for m in dict.fromkeys(table["model"])]
    if valid["pareto"].astype(bool).any():  # none for throughput and memory (report/tables.py resources)
        handles += [Line2D([], [], ls="--", color="dimgrey", label="Pareto front"),
                    Line2D([], [], ls="", marker="o", ms=11, mfc="none", mec="black", label="on the front")]
    handles.append(Line2D([], [], ls="-", marker="_", ms=8, color="dimgrey", label="95% CI (mIoU: seeds; cost: rounds or seeds)"))
    if flagged:
        handles.append(Line2D([], [], ls="", marker="x", ms=10, mew=2, color="red", label=" / ".join(flagged)))
    if "converged" in valid and valid["converged"].eq(False).any():
        handles.append(Line2D([], [], ls="", marker="$*$", ms=8, color="black", label="* not converged"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return fig


def _tradeoff_panel(ax, data: pd.DataFrame, axis: CostAxis, colours: dict[str, tuple]) -> None:
    if data.empty:
        _message_axes(ax, "no measurements at this setting")
        return
    x, y = data[axis.column].to_numpy(float), data["miou"].to_numpy(float)
    ax.scatter(x, y, s=40, color=[colours.get(m, "grey") for m in data["model"]], zorder=3)
    ends = [f"{axis.column}_ci95_low", f"{axis.column}_ci95_high"]
    if set(ends) <= set(data.columns):  # the cost's 95% interval (over profiling rounds or seeds)
        for xi, yi, lo, hi, model in zip(x, y, data[ends[0]].to_numpy(float), data[ends[1]].to_numpy(float), data["model"]):
            if not (math.isnan(lo) or math.isnan(hi)):
                ax.errorbar([xi], [yi], xerr=[[xi - lo], [hi - xi]], fmt="none", ecolor=colours.get(model, "grey"),
                            elinewidth=1.2, capsize=3, zorder=2)
    if {"miou_ci95_low", "miou_ci95_high"} <= set(data.columns):  # the 95% interval over seeds
        low, high = data["miou_ci95_low"].to_numpy(float), data["miou_ci95_high"].to_numpy(float)
        for xi, lo, hi, model in zip(x, low, high, data["model"]):
            if not (math.isnan(lo) or math.isnan(hi)):
                ax.errorbar([xi], [(lo + hi) / 2], yerr=[[(hi - lo) / 2], [(hi - lo) / 2]], fmt="none",
                            ecolor=colours.get(model, "grey"), elinewidth=1.2, capsize=3, zorder=2)
    if "flag" in data:  # a contended timing, or one from another environment, is crossed out
        crossed = data[data["flag"].fillna("").astype(bool)]
        ax.scatter(crossed[axis.column], crossed["miou"], s=120, marker="x", color="red", linewidths=2, zorder=5)
    front = data[data["pareto"].astype(bool)].sort_values([axis.column, "miou"])
    ax.scatter(front[axis.column], front["miou"], s=170, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
    if len(front) > 1:  # a staircase: the best mIoU any budget buys
        ax.step(front[axis.column], front["miou"], where="post", ls="--", color="dimgrey", lw=1, zorder=2)
    if use_log_scale(x):
        ax.set_xscale("log")
        ax.set_xlabel(f"{axis.label}, log scale")
    else:
        ax.set_xlabel(axis.label)
    ax.set_ylabel("mIoU (evaluation split)")
    ax.grid(True, alpha=0.3, which="both")
    ax.margins(x=0.15, y=0.12)
    unconverged = data["converged"].eq(False).to_numpy() if "converged" in data else np.zeros(len(data), bool)
    label_points(ax, x, y, [f"{m} *" if late else m for m, late in zip(data["model"], unconverged)])


def label_points(ax, x: np.ndarray, y: np.ndarray, names: list[str], fontsize: float = 8) -> None:
    """Name each dot; a label that would overlap one already placed moves down a line (with a leader)."""
    ax.autoscale_view()
    scale = ax.figure.dpi / 72  # pixels per point
    pixels = ax.transData.transform(np.column_stack([x, y]))
    height = fontsize * 1.25 * scale
    placed: list[tuple[float, float, float]] = []
    for i in np.lexsort((pixels[:, 0], -pixels[:, 1])):  # top to bottom, then left to right
        width = 0.62 * fontsize * scale * len(names[i])
        left, bottom = pixels[i, 0] + 6 * scale, pixels[i, 1] + 4 * scale
        while any(left < x0 + w and x0 < left + width and bottom < y0 + height and y0 < bottom + height
                  for x0, y0, w in placed):
            bottom -= height
        placed.append((left, bottom, width))
        offset = ((left - pixels[i, 0]) / scale, (bottom - pixels[i, 1]) / scale)
        leader = {"arrowstyle": "-", "color": "grey", "lw": 0.5} if offset[1] < -4 else None
        ax.annotate(names[i], (x[i], y[i]), textcoords="offset points", xytext=offset, fontsize=fontsize,
                    arrowprops=leader)


def heatmap_figure(ious: pd.DataFrame, colours: dict[str, tuple] | None = None, axis: CostAxis | None = None):
    """Models (rows, best mIoU first) x classes, IoU printed in each cell; undefined cells grey."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(ious["model"]))
    classes = list(dict.fromkeys(ious["class"]))
    fig = Figure(figsize=(min(24.0, max(5.0, 1.0 + 0.9 * len(classes) + 0.09 * max(map(len, models), default=0))),
                          min(24.0, max(2.5, 1.4 + 0.42 * len(models)))), layout="constrained")
    ax = fig.subplots()
    ax.set_title("IoU per class (rows: models, best mIoU first)")
    if not classes:
        _message_axes(ax, "no per-class IoU in any eval.json")
        return fig
    grid = ious.pivot(index="model", columns="class", values="iou").reindex(index=models, columns=classes).to_numpy(float)
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        text = "—" if math.isnan(value) else f"{value:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8 if len(classes) <= 16 else 6,
                color="white" if not value >= 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), models)
    fig.colorbar(image, ax=ax, label="IoU")
    return fig


def curves_figure(curves: pd.DataFrame, colours: dict[str, tuple], axis: CostAxis | None = None):
    """Train loss, val loss and val mIoU (and depth RMSE, task seg_depth) per epoch, every model overlaid."""
    from matplotlib.figure import Figure

    panels = (("train_loss", "training loss"), ("val_loss", "validation loss"), ("val_miou", "validation mIoU"))
    if "val_depth_rmse" in curves and curves["val_depth_rmse"].notna().any():  # task seg_depth
        panels += (("val_depth_rmse", "validation depth RMSE (m)"),)
    fig = Figure(figsize=(5 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels))
    seeds = int(curves["seeds"].max()) if "seeds" in curves and curves["seeds"].notna().any() else 1
    fig.suptitle("Training curves (DVCLive logs)" + (": mean over seeds, band from the lowest to the highest seed"
                                                     if seeds > 1 else ""))
    for ax, (column, label) in zip(axes, panels):
        data = curves.dropna(subset=[column])
        if data.empty:
            _message_axes(ax, f"no {label} logged")
            continue
        for model, rows in data.groupby("model", sort=False):
            colour = colours.get(model, "grey")
            ax.plot(rows["epoch"], rows[column], marker="o", ms=3, color=colour, label=model)
            if f"{column}_min" in rows and (rows["seeds"] > 1).any():  # the band: lowest to highest seed
                ax.fill_between(rows["epoch"], rows[f"{column}_min"], rows[f"{column}_max"], color=colour, alpha=0.18,
                                lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        if column.endswith("loss") and use_log_scale(data[column]):
            ax.set_yscale("log")
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    return fig


def depth_tradeoff_figure(table: pd.DataFrame, colours: dict[str, tuple], axis: CostAxis | None = None):
    """Depth RMSE against each cost, one panel per cost: lower-left is better; the dotted line is
    the RMSE of predicting the training split's mean depth, the score any depth model must beat."""
    from matplotlib.figure import Figure

    settings = list(dict.fromkeys(table["setting"])) or ["depth"]
    fig = Figure(figsize=(4.6 * len(settings) + 1.8, 4.4), layout="constrained")
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    fig.suptitle("Depth RMSE vs cost (lower is better; ringed: Pareto front)")
    valid = table.dropna(subset=["cost", "depth_rmse"])
    if valid.empty:
        _message_axes(axes[0], "no depth metrics\n(task: seg_depth writes depth_rmse to eval.json)")
        return fig
    for ax, setting in zip(axes, settings):
        data = valid[valid["setting"] == setting]
        if data.empty:
            _message_axes(ax, f"no {setting} measurements")
            continue
        x, y = data["cost"].to_numpy(float), data["depth_rmse"].to_numpy(float)
        ax.scatter(x, y, s=55, color=[colours.get(m, "grey") for m in data["model"]], zorder=3)
        front = data[data["pareto"].astype(bool)]
        ax.scatter(front["cost"], front["depth_rmse"], s=170, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
        baseline = data["mean_baseline"].dropna()
        if not baseline.empty:
            ax.axhline(float(baseline.iloc[0]), ls=":", color="dimgrey", lw=1.2, label="mean-depth predictor")
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=7, frameon=False)  # above the panel
        if use_log_scale(x):
            ax.set_xscale("log")
        ax.set_xlabel(setting + (", log scale" if use_log_scale(x) else ""))
        ax.set_ylabel("depth RMSE (m, evaluation split)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3, which="both")
        ax.margins(x=0.15)
        label_points(ax, x, y, list(data["model"]))
    return fig


def time_curves_figure(table: pd.DataFrame, colours: dict[str, tuple], axis: CostAxis | None = None):
    """Best validation mIoU so far against training seconds, every learned model on one axis: the mean
    over seeds and a band from the lowest to the highest seed; the title flags timings from several
    environments (they are not comparable on one axis)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.4, 4.6), layout="constrained")
    ax = fig.subplots()
    envs = sorted({e for e in table.get("env", []) if isinstance(e, str) and e})
    title = "Validation mIoU at equal training time (best so far; band: lowest to highest seed)"
    if len(envs) > 1 or "mixed" in envs:
        title += f"\n⚠ training timed in {len(envs)} environments ({', '.join(envs)}): not comparable on one axis"
    fig.suptitle(title, fontsize=10)
    if table.empty:
        _message_axes(ax, "no training times logged (elapsed_s)")
        return fig
    for model, rows in table.groupby("model", sort=False):
        colour = colours.get(model, "grey")
        ax.step(rows["time_s"], rows["val_miou"], where="post", color=colour, label=model)
        if (rows["seeds"] > 1).any():
            ax.fill_between(rows["time_s"], rows["val_miou_min"], rows["val_miou_max"], step="post", color=colour,
                            alpha=0.18, lw=0)
    if use_log_scale(table["time_s"]):
        ax.set_xscale("log")
    ax.set_xlabel("training time (s, cumulative, DVCLive elapsed_s)")
    ax.set_ylabel("best validation mIoU so far")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)  # off the data: inside, it covered the slower curves
    return fig
