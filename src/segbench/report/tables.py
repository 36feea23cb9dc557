"""The report's data tables (pandas, no file I/O, no prose): each figure's data file and the
latency settings and fastest backend the summary reads.

Long form throughout (one row per model and setting), so `dvc plots` can draw each file as is.
The last section holds each figure's table function, named by report/spec.py's FIGURES.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..comparison import ScoreComparison
from ..keys import (
    BACKEND_TAGS,
    CURVE_METRICS,
    FP32_AGREEMENT,
    REDUCED_PRECISION_TAGS,
    LatencyKey,
    agreement_keys,
    parse_latency_key,
)
from ..stats import mean_of
from .equal_time import best_so_far, time_table
from .pareto import cost_interval, cost_tests, pareto_front
from .spec import DEPTH_COSTS, RESOURCES, CostAxis
from .view import CostEnvironments, ModelMetrics, ReportInputs, cost_environments, learned, read_train_log

EAGER_CPU = LatencyKey("cpu")  # eager fp32 on CPU at the training size: what a backend's speed-up is against


def _setting_order(key: LatencyKey) -> tuple:
    """The training size first, then by area; at one size, eager before the backends / precisions."""
    area = key.size[0] * key.size[1] if key.size else 0
    return key.size is not None, area, key.tag


def latency_settings(metrics: list[ModelMetrics], device: str) -> list[tuple[str, str]]:
    """(setting label, profile key) for every latency measured on `device`, training size first."""
    found: dict[str, tuple[tuple, str]] = {}
    for m in metrics:
        for name in m.profile:
            key = parse_latency_key(name)
            if key is not None and key.device == device:
                found.setdefault(key.setting(m.training_size), (_setting_order(key), name))
    return [(label, name) for label, (_, name) in sorted(found.items(), key=lambda item: item[1][0])]


def fastest_backend(m: ModelMetrics) -> tuple[str, float]:
    """The backend with the lowest CPU latency at the training size and its speed-up over eager fp32;
    an fp32 backend whose predictions differ from eager's (argmax agreement under FP32_AGREEMENT)
    does not count. ("", NaN) when eager was not measured."""
    eager = m.get("profile", EAGER_CPU.name)
    if math.isnan(eager):
        return "", math.nan
    best, best_ms = "eager", eager
    for backend, tag in BACKEND_TAGS.items():
        if not tag:
            continue
        key = LatencyKey("cpu", tag)
        latency = m.get("profile", key.name)
        agree = m.get("profile", agreement_keys(key)[1])
        if math.isnan(latency) or (tag not in REDUCED_PRECISION_TAGS and not agree >= FP32_AGREEMENT):
            continue
        if latency < best_ms:
            best, best_ms = backend, latency
    return best, eager / best_ms


def tradeoff_table(metrics: list[ModelMetrics], axis: CostAxis, better: np.ndarray | None = None,
                   envs: CostEnvironments | None = None) -> pd.DataFrame:
    """Long form: one row per (setting, model): model, setting, cost, its 95% interval (<cost>_ci95_low /
    _high: over profiling rounds or seeds; empty where exact), miou, its 95% interval over seeds (error bars;
    empty for one seed), pareto (within the setting; `better`: see pareto_front),
    env (the timing's environment id) and flag ("contended", "other environment": a timing not
    comparable with the rest; empty for sizes and FLOPs, which do not depend on the machine)."""
    envs = envs or cost_environments(metrics)
    settings = [("", axis.column)]
    if axis.per_setting:
        key = parse_latency_key(axis.column)
        settings = latency_settings(metrics, key.device) or [(key.setting(metrics[0].training_size), axis.column)]
    frames = []
    for label, key in settings:
        frame = pd.DataFrame({
            "model": [m.name for m in metrics],
            "setting": label,
            axis.column: [m.get(axis.part, key) for m in metrics],
            "miou": [m.get("eval", "miou") for m in metrics],
            "miou_ci95_low": [m.interval("eval", "miou")[0] for m in metrics],
            "miou_ci95_high": [m.interval("eval", "miou")[1] for m in metrics],
        })
        ends = [cost_interval(m, axis.part, key) for m in metrics]  # error bars on the cost axis too
        exact = [lo == hi for lo, hi in ends]
        frame[f"{axis.column}_ci95_low"] = [math.nan if x else lo for (lo, _), x in zip(ends, exact)]
        frame[f"{axis.column}_ci95_high"] = [math.nan if x else hi for (_, hi), x in zip(ends, exact)]
        frame["pareto"] = pareto_front(frame["miou"].to_numpy(), frame[axis.column].to_numpy(), better,
                                       cost_tests(metrics, axis.part, key))
        frame["converged"] = [m.converged() for m in metrics]
        frame["env"] = [envs.ids.get((m.name, axis.timing), "") if axis.timing else "" for m in metrics]
        frame["flag"] = [timing_flag(m, axis.timing, envs) for m in metrics]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def timing_flag(m: ModelMetrics, part: str, envs: CostEnvironments) -> str:
    """Why a timing is not comparable with the others ("" when it is, or is not a timing)."""
    if not part:
        return ""
    flags = (["contended"] if m.contended(part) else []) + (["other environment"] if envs.other(m.name, part) else [])
    return ", ".join(flags)


def depth_tradeoff_table(metrics: list[ModelMetrics], comparison: ScoreComparison | None = None) -> pd.DataFrame:
    """Long form: one row per (cost, model): model, setting (the cost), cost, depth_rmse, pareto
    (lower RMSE at lower cost; with `comparison`, off the front only when another model's RMSE is
    significantly lower at no more cost), mean_baseline. Models without depth metrics are left out; when
    none has them (task segmentation), every model is listed with an empty depth_rmse, so the
    file keeps its shape and the interactive plot draws empty panels rather than failing."""
    columns = ["model", "setting", "cost", "depth_rmse", "pareto", "mean_baseline"]
    depth_models = [m for m in metrics if m.has("eval", "depth_rmse")] or metrics
    better = None
    if comparison is not None and [m.name for m in depth_models] == comparison.models:
        better = comparison.better
    frames = []
    for setting, part, key in DEPTH_COSTS:
        frame = pd.DataFrame({"model": [m.name for m in depth_models], "setting": setting,
                              "cost": [m.get(part, key) for m in depth_models],
                              "depth_rmse": [m.get("eval", "depth_rmse") for m in depth_models]})
        frame["pareto"] = pareto_front(-frame["depth_rmse"].to_numpy(), frame["cost"].to_numpy(), better,
                                       cost_tests(depth_models, part, key))
        frame["mean_baseline"] = [m.get("eval", "depth_rmse_mean_baseline") for m in depth_models]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[columns]


def per_class_iou(metrics: list[ModelMetrics], order: list[str]) -> pd.DataFrame:
    """Long form: model, class, class_index, iou (mean over seeds; empty where undefined), models in `order`."""
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
            rows.append({"model": model, "rank": rank, "class": cls, "class_index": index, "iou": mean_of(ious.get(cls))})
    return pd.DataFrame(rows, columns=["model", "rank", "class", "class_index", "iou"])


def training_curves(log_dirs: dict[str, dict[int, Path]]) -> pd.DataFrame:
    """Long form from the DVCLive logs ({model: {seed: log dir}}): model, epoch (1-based), seeds (how
    many logged that epoch), then per metric its mean over seeds and the band <metric>_min/_max."""
    frames = []
    for model, by_seed in log_dirs.items():
        logs = []
        for seed, log_dir in by_seed.items():
            log = read_train_log(Path(log_dir))
            if log is not None:
                logs.append(log.assign(seed=seed))
        if logs:
            frames.append(_seed_band(model, pd.concat(logs, ignore_index=True)))
    bands = [f"{m}_{end}" for m in CURVE_METRICS for end in ("min", "max")]
    columns = ["model", "epoch", "seeds", *CURVE_METRICS, *bands]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    df["epoch"] = df.pop("step").astype(int) + 1
    return df.reindex(columns=columns).reset_index(drop=True)


def _seed_band(model: str, runs: pd.DataFrame) -> pd.DataFrame:
    """One model's logs over its seeds: per step, the mean of each metric and its lowest and highest seed."""
    metrics = [m for m in CURVE_METRICS if m in runs]
    grouped = runs.groupby("step", sort=True)
    frame = grouped[metrics].mean()
    for metric in metrics:
        frame[f"{metric}_min"], frame[f"{metric}_max"] = grouped[metric].min(), grouped[metric].max()
    frame.insert(0, "seeds", grouped["seed"].nunique())
    frame = frame.reset_index()
    frame.insert(0, "model", model)
    return frame


# --- each figure's data: (ReportInputs, axis) -> DataFrame, named by spec.FIGURES ------------------------

def miou_vs_cost(inputs: ReportInputs, axis: CostAxis | None) -> pd.DataFrame:
    return tradeoff_table(inputs.metrics, axis, inputs.better("miou"), inputs.envs)


def iou_per_class(inputs: ReportInputs, axis: CostAxis | None = None) -> pd.DataFrame:
    return per_class_iou(inputs.metrics, inputs.order)


def curves(inputs: ReportInputs, axis: CostAxis | None = None) -> pd.DataFrame:
    return training_curves(inputs.log_dirs)


def depth_vs_cost(inputs: ReportInputs, axis: CostAxis | None = None) -> pd.DataFrame:
    return depth_tradeoff_table(inputs.metrics, inputs.comparisons.get("depth_rmse"))


def time_curves(log_dirs: dict[str, dict[int, Path]], models: list[str]) -> dict[str, list[np.ndarray]]:
    """Per model, each seed's (training seconds, best val mIoU so far) per epoch (report/equal_time.py)."""
    return {m: [best_so_far(read_train_log(Path(d))) for d in log_dirs.get(m, {}).values()] for m in models}


def val_miou_vs_time(inputs: ReportInputs, axis: CostAxis | None = None) -> pd.DataFrame:
    """Best val mIoU so far against training seconds, every learned model on one time grid."""
    models = [m.name for m in learned(inputs.metrics)]
    return time_table(time_curves(inputs.log_dirs, models), {m: inputs.envs.ids.get((m, "train"), "") for m in models})


def resources(inputs: ReportInputs, axis: CostAxis | None = None) -> pd.DataFrame:
    """Long form, one row per (resource, model): model, setting (the resource), cost (its value), its 95%
    interval over seeds where recorded (training's peak memory), miou with its interval, pareto (False:
    throughput is not a cost, and memory is not tested), converged."""
    frames = []
    for setting, part, key in RESOURCES:
        metrics = inputs.metrics
        frame = pd.DataFrame({"model": [m.name for m in metrics], "setting": setting,
                              "cost": [m.get(part, key) for m in metrics],
                              "cost_ci95_low": [m.interval(part, key)[0] for m in metrics],
                              "cost_ci95_high": [m.interval(part, key)[1] for m in metrics],
                              "miou": [m.get("eval", "miou") for m in metrics],
                              "miou_ci95_low": [m.interval("eval", "miou")[0] for m in metrics],
                              "miou_ci95_high": [m.interval("eval", "miou")[1] for m in metrics],
                              "pareto": False, "converged": [m.converged() for m in metrics]})
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --- whether this run measured a figure's axis (spec.FigureSpec.measured; no file when it did not) ---------

def always(inputs: ReportInputs) -> bool:
    return True


def gpu_measured(inputs: ReportInputs) -> bool:
    return bool(latency_settings(inputs.metrics, "cuda"))


def depth_measured(inputs: ReportInputs) -> bool:
    return any(m.has("eval", "depth_rmse") for m in inputs.metrics)
