"""Across models: gather every model's metrics, find the Pareto fronts, write the report.

Every figure is written twice: as a data file that DVC plots (dvc.yaml `plots:`, so
`dvc plots diff` compares revisions) and as a PNG that shows anywhere. The file names are
fixed whatever the models, profiled sizes and devices, so the plot stage's outputs are stable:
an axis without measurements (no GPU) still gets its data file and a PNG that says so.

Task seg_depth adds depth columns to the summary and `depth_rmse_vs_cost`: depth RMSE (lower
is better) against each cost, with the mean-depth predictor's RMSE as the line to beat. A
segmentation-only benchmark gets that file too, empty, and a PNG that says so.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .errors import DataError
from .io import read_json, write_text

MISSING = "—"
CURVE_METRICS = ("train_loss", "val_loss", "val_miou", "lr", "val_depth_rmse", "train_depth_loss", "val_depth_loss")
# profile.json latency keys: latency_<device>[_<amp>][_<H>x<W>]_ms (the training size has no suffix)
LATENCY_KEY = re.compile(r"latency_(cpu|cuda)(?:_(bf16|fp16))?(?:_(\d+)x(\d+))?_ms")


@dataclass(frozen=True)
class CostAxis:
    """One trade-off: mIoU against a cost, lower is better."""

    name: str       # files: plots/miou_vs_<name>.{csv,png}
    column: str     # the cost column in the data file (and profile/train key at the training size)
    label: str      # axis title, with unit
    title: str
    short: str      # how the summary names it in the `pareto` column
    per_setting: bool = False  # latency: one panel per profiled size (and precision)


AXES = (
    CostAxis("train_time", "train_time_s", "training time (s)", "mIoU vs training time", "train time"),
    CostAxis("latency_cpu", "latency_cpu_ms", "CPU latency, batch 1 (ms, median)", "mIoU vs CPU inference latency",
             "CPU latency", per_setting=True),
    CostAxis("latency_cuda", "latency_cuda_ms", "GPU latency, batch 1 (ms, median)", "mIoU vs GPU inference latency",
             "GPU latency", per_setting=True),
    CostAxis("size", "size_mb", "model size (MB, serialized state_dict)", "mIoU vs model size", "size"),
    CostAxis("gflops", "gflops", "GFLOPs per image (training size)", "mIoU vs compute", "GFLOPs"),
)

# summary columns: (column, metrics file, key, Markdown header)
SUMMARY = (
    ("miou", "eval", "miou", "mIoU"), ("mrecall", "eval", "mrecall", "mRecall"), ("accuracy", "eval", "accuracy", "accuracy"),
    ("mdice", "eval", "mdice", "mDice"), ("train_time_s", "train", "train_time_s", "train time (s)"),
    ("best_val_miou", "train", "best_val_miou", "best val mIoU"),
    ("latency_cpu_ms", "profile", "latency_cpu_ms", "CPU latency (ms)"),
    ("latency_cuda_ms", "profile", "latency_cuda_ms", "GPU latency (ms)"),
    ("size_mb", "profile", "size_mb", "size (MB)"), ("gflops", "profile", "gflops", "GFLOPs"),
    ("params", "profile", "params", "params"),
)
# seg_depth: summary columns shown when some model has them
DEPTH_SUMMARY = (
    ("depth_rmse", "eval", "depth_rmse", "depth RMSE (m)"), ("depth_abs_rel", "eval", "depth_abs_rel", "AbsRel"),
    ("depth_delta1", "eval", "depth_delta1", "δ<1.25"),
    ("depth_rmse_mean_baseline", "eval", "depth_rmse_mean_baseline", "mean-depth RMSE (m)"),
    ("depth_rmse_vs_mean_baseline", "eval", "depth_rmse_vs_mean_baseline", "x better than mean"),
)
# depth_rmse_vs_cost panels: (setting, metrics file, key); latency at the training size
DEPTH_COSTS = (("training time (s)", "train", "train_time_s"), ("CPU latency (ms)", "profile", "latency_cpu_ms"),
               ("size (MB)", "profile", "size_mb"), ("GFLOPs", "profile", "gflops"))


@dataclass(frozen=True)
class ModelMetrics:
    name: str
    train: dict
    eval: dict
    profile: dict

    def get(self, part: str, key: str) -> float:
        value = getattr(self, part).get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan

    @property
    def training_size(self) -> str:
        h, w = self.profile.get("input_height"), self.profile.get("input_width")
        return f"{h}x{w}" if isinstance(h, int) and isinstance(w, int) else "training size"


def load_metrics(metrics_dir: Path, models: list[str]) -> list[ModelMetrics]:
    if not models:
        raise DataError("params.yaml: models: is empty; list at least one model to report on")
    loaded = []
    for name in models:
        parts = {}
        for part in paths.METRIC_PARTS:
            path = paths.metrics_path(name, part, metrics_dir)
            if not path.is_file():
                raise DataError(f"{path}: file not found; run `dvc repro` (the {part} stage of model {name!r}) first")
            parts[part] = read_json(path)
            if not isinstance(parts[part], dict):
                raise DataError(f"{path}: expected a JSON object of metrics")
        loaded.append(ModelMetrics(name, parts["train"], parts["eval"], parts["profile"]))
    return loaded


# --- Pareto ------------------------------------------------------------------------------------

def pareto_front(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Members: no other point has quality >= and cost <= with one of them strict.

    Exact ties (same cost, same quality) are all members; a point with missing quality or
    cost is never a member and never dominates another.
    """
    quality, cost = np.asarray(quality, float), np.asarray(cost, float)
    valid = ~np.isnan(quality) & ~np.isnan(cost)
    q, c = quality[:, None], cost[:, None]  # row i, column j: does j dominate i?
    dominates = (quality[None] >= q) & (cost[None] <= c) & ((quality[None] > q) | (cost[None] < c)) & valid[None]
    return valid & ~dominates.any(axis=1)


# --- tables -----------------------------------------------------------------------------------

def latency_settings(metrics: list[ModelMetrics], device: str) -> list[tuple[str, str]]:
    """(setting label, profile key) for every latency measured on `device`, training size first."""
    found: dict[str, tuple[tuple, str]] = {}
    for m in metrics:
        for key in m.profile:
            match = LATENCY_KEY.fullmatch(key)
            if not match or match[1] != device:
                continue
            amp, h, w = match[2], match[3], match[4]
            size = f"{h}x{w}" if h else m.training_size
            label = size + (f" {amp}" if amp else "") + ("" if h else " (training size)")
            order = (bool(h), int(h or 0) * int(w or 0), amp or "")
            found.setdefault(label, (order, key))
    return [(label, key) for label, (_, key) in sorted(found.items(), key=lambda item: item[1][0])]


def tradeoff_table(metrics: list[ModelMetrics], axis: CostAxis) -> pd.DataFrame:
    """Long form: one row per (setting, model): model, setting, cost, miou, pareto (within the setting)."""
    if axis.per_setting:
        device = axis.column.split("_")[1]
        settings = latency_settings(metrics, device) or [(f"{metrics[0].training_size} (training size)", axis.column)]
        part = "profile"
    else:
        settings = [("", axis.column)]
        part = "train" if axis.column.startswith("train") else "profile"
    frames = []
    for label, key in settings:
        frame = pd.DataFrame({
            "model": [m.name for m in metrics],
            "setting": label,
            axis.column: [m.get(part, key) for m in metrics],
            "miou": [m.get("eval", "miou") for m in metrics],
        })
        frame["pareto"] = pareto_front(frame["miou"].to_numpy(), frame[axis.column].to_numpy())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def summary_table(metrics: list[ModelMetrics]) -> pd.DataFrame:
    """One row per model, sorted by mIoU (best first, missing last); `pareto` names the fronts it is on."""
    rows = []
    for m in metrics:
        row = {"model": m.name}
        for column, part, key, _ in SUMMARY:
            row[column] = m.get(part, key)
        for label, key in latency_settings([m], "cpu"):
            if key != "latency_cpu_ms":
                row[f"latency_cpu_{label.split()[0]}_ms"] = m.get("profile", key)
        if not math.isnan(m.get("eval", "depth_rmse")):
            row.update({column: m.get(part, key) for column, part, key, _ in DEPTH_SUMMARY})
        rows.append(row)
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in {"model", *(column for column, *_ in SUMMARY + DEPTH_SUMMARY)}]
    at = list(df.columns).index("latency_cpu_ms") + 1  # the other profiled sizes next to the training size
    df = df[[c for c in df.columns[:at] if c not in extra] + extra + [c for c in df.columns[at:] if c not in extra]]
    df["params"] = df["params"].round().astype("Int64")  # exact in the CSV, not 1.94266e+06
    fronts = {axis.short: pareto_front(df["miou"].to_numpy(), df[axis.column].to_numpy()) for axis in AXES}
    df.insert(1, "pareto", [", ".join(s for s, on in fronts.items() if on[i]) for i in range(len(df))])
    return df.sort_values("miou", ascending=False, na_position="last", kind="stable").set_index("model")


def depth_tradeoff_table(metrics: list[ModelMetrics]) -> pd.DataFrame:
    """Long form: one row per (cost, model): model, setting (the cost), cost, depth_rmse, pareto
    (lower RMSE at lower cost), mean_baseline. Models without depth metrics are left out; when
    none has them (task segmentation), every model is listed with an empty depth_rmse, so the
    file keeps its shape and the interactive plot draws empty panels rather than failing."""
    columns = ["model", "setting", "cost", "depth_rmse", "pareto", "mean_baseline"]
    depth_models = [m for m in metrics if not math.isnan(m.get("eval", "depth_rmse"))] or metrics
    frames = []
    for setting, part, key in DEPTH_COSTS:
        frame = pd.DataFrame({"model": [m.name for m in depth_models], "setting": setting,
                              "cost": [m.get(part, key) for m in depth_models],
                              "depth_rmse": [m.get("eval", "depth_rmse") for m in depth_models]})
        frame["pareto"] = pareto_front(-frame["depth_rmse"].to_numpy(), frame["cost"].to_numpy())
        frame["mean_baseline"] = [m.get("eval", "depth_rmse_mean_baseline") for m in depth_models]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[columns]


def per_class_iou(metrics: list[ModelMetrics], order: list[str]) -> pd.DataFrame:
    """Long form: model, class, class_index, iou (empty where undefined), models in `order`."""
    classes: list[str] = []
    for m in metrics:
        for name in (m.eval.get("iou_per_class") or {}):
            if name not in classes:
                classes.append(name)
    by_name = {m.name: m for m in metrics}
    rows = []
    for rank, model in enumerate(order):
        ious = by_name[model].eval.get("iou_per_class") or {}
        for index, cls in enumerate(classes):
            value = ious.get(cls)
            rows.append({"model": model, "rank": rank, "class": cls, "class_index": index,
                         "iou": float(value) if isinstance(value, (int, float)) else math.nan})
    return pd.DataFrame(rows, columns=["model", "rank", "class", "class_index", "iou"])


def training_curves(log_dirs: dict[str, Path]) -> pd.DataFrame:
    """Long form from the DVCLive logs: model, epoch (1-based), train_loss, val_loss, val_miou, lr."""
    frames = []
    for model, log_dir in log_dirs.items():
        merged = None
        for metric in CURVE_METRICS:
            path = log_dir / "plots" / "metrics" / f"{metric}.tsv"
            if not path.is_file():
                continue
            try:
                series = pd.read_csv(path, sep="\t", usecols=["step", metric])
            except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise DataError(f"{path}: not a DVCLive metric log with columns step and {metric} ({exc})") from None
            merged = series if merged is None else merged.merge(series, on="step", how="outer")
        if merged is not None:
            merged = merged.sort_values("step")
            merged.insert(0, "model", model)
            frames.append(merged)
    columns = ["model", "epoch", *CURVE_METRICS]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    df["epoch"] = df.pop("step").astype(int) + 1
    return df.reindex(columns=columns).reset_index(drop=True)


# --- text output -------------------------------------------------------------------------------

def fmt(value, column: str = "") -> str:
    if isinstance(value, str):
        return value or MISSING
    if value is None or pd.isna(value):
        return MISSING
    if column == "params":
        return f"{int(value):,}"
    if column in {"miou", "mrecall", "accuracy", "mdice", "best_val_miou", "depth_abs_rel", "depth_delta1"}:
        return f"{value:.4f}"
    if column == "depth_rmse_vs_mean_baseline":
        return f"{value:.2f}x"
    return f"{value:.4g}"


def markdown_table(df: pd.DataFrame) -> str:
    """The README's table: GPU columns only when some model has them, missing values as a dash."""
    headers = {column: header for column, _, _, header in SUMMARY + DEPTH_SUMMARY}
    shown = [c for c in df.columns if not (c.startswith("latency_cuda") and df[c].isna().all())]
    names = ["model", *(headers.get(c) or _latency_header(c) for c in shown)]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for model, row in df.iterrows():
        cells = [fmt(row[c], c) if c != "pareto" else (row[c] or "") for c in shown]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    axes = ", ".join(axis.short for axis in AXES if df[axis.column].notna().any())
    note = (f"\n`pareto`: the costs ({axes}) on whose mIoU Pareto front the model lies: no other model has at least "
            f"its mIoU at no more cost, better in one of the two. Sorted by mIoU; {MISSING}: not measured.\n")
    return "\n".join(lines) + "\n" + note


def _latency_header(column: str) -> str:
    match = re.fullmatch(r"latency_cpu_(\d+x\d+)_ms", column)
    return f"CPU latency {match[1]} (ms)" if match else column


def _csv(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_csv(index=index, float_format="%.6g", lineterminator="\n")


# --- the stage -----------------------------------------------------------------------------------

def build_report(metrics_dir: Path, plots_dir: Path, models: list[str], dpi: int = 120,
                 log_dirs: dict[str, Path] | None = None) -> pd.DataFrame:
    """Write every table, data file and PNG of the report; return the summary table."""
    from . import report_figures as figures

    metrics = load_metrics(metrics_dir, models)
    summary = summary_table(metrics)
    plots_dir.mkdir(parents=True, exist_ok=True)
    colours = figures.model_colours(models)

    for axis in AXES:
        table = tradeoff_table(metrics, axis)
        csv, png = paths.report_figure(f"miou_vs_{axis.name}", plots_dir)
        write_text(csv, _csv(table))
        figures.save(figures.tradeoff_figure(table, axis, colours), png, dpi)

    ious = per_class_iou(metrics, list(summary.index))
    csv, png = paths.report_figure("iou_per_class", plots_dir)
    write_text(csv, _csv(ious))
    figures.save(figures.heatmap_figure(ious), png, dpi)

    log_dirs = log_dirs if log_dirs is not None else {m: paths.train_log_dir(m, plots_dir) for m in models}
    curves = training_curves(log_dirs)
    csv, png = paths.report_figure("training_curves", plots_dir)
    write_text(csv, _csv(curves))
    figures.save(figures.curves_figure(curves, colours), png, dpi)

    depth = depth_tradeoff_table(metrics)
    csv, png = paths.report_figure("depth_rmse_vs_cost", plots_dir)
    write_text(csv, _csv(depth))
    figures.save(figures.depth_tradeoff_figure(depth, colours), png, dpi)

    write_text(paths.summary_csv(plots_dir), _csv(summary, index=True))
    write_text(paths.summary_md(plots_dir), markdown_table(summary) + split_note(metrics))
    return summary


def split_note(metrics: list[ModelMetrics]) -> str:
    """One line saying which split the quality columns were scored on and where it came from."""
    scored: dict[str, list[str]] = {}
    for m in metrics:
        split, source = m.eval.get("split", "?"), m.eval.get("split_source", "not recorded")
        scored.setdefault(f"the {split} split ({source})", []).append(m.name)
    if len(scored) == 1:
        return f"Quality scored on {next(iter(scored))}.\n"
    return "Quality scored on " + "; ".join(f"{where} for {', '.join(names)}" for where, names in scored.items()) + ".\n"
