"""Across models: gather every model's metrics, find the Pareto fronts, write the report.

Every figure is written twice: as a data file that DVC plots (dvc.yaml `plots:`, so
`dvc plots diff` compares revisions) and as a PNG that shows anywhere. The file names are
fixed whatever the models, profiled sizes and devices, so the plot stage's outputs are stable:
an axis without measurements (no GPU) still gets its data file and a PNG that says so.

Task seg_depth adds depth columns to the summary and `depth_rmse_vs_cost`: depth RMSE (lower
is better) against each cost, with the mean-depth predictor's RMSE as the line to beat. A
segmentation-only benchmark gets that file too, empty, and a PNG that says so.

Quality is a mean over the training seeds with its 95% interval (metrics/<model>/eval.json, from
the aggregate stage); segbench.comparison says which differences are significant. A model is off
a Pareto front only when another model is significantly better at no more cost.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .comparison import ScoreComparison, compare_scores, load_per_image, significance_sentence
from .environment import describe_env, env_differences, environment_id, is_fingerprint
from .errors import DataError
from .io import read_json, write_text
from .stats import is_summary, mean_of

MISSING = "—"
CURVE_METRICS = ("train_loss", "val_loss", "val_miou", "lr", "val_depth_rmse", "train_depth_loss", "val_depth_loss")
# profile.json latency keys: latency_<device>[_<precision or backend>][_<H>x<W>]_ms (the training size
# has no suffix; no backend: eager fp32)
LATENCY_KEY = re.compile(r"latency_(cpu|cuda)(?:_(bf16|fp16|compile|onnxruntime))?(?:_(\d+)x(\d+))?_ms")
# the argmax agreement with eager fp32 an fp32 backend must reach to count as fastest (segbench.backends.FP32_AGREEMENT)
FP32_AGREEMENT = 0.999
BACKEND_COLUMNS = ("fastest_cpu_backend", "fastest_cpu_speedup")  # summary columns
BACKEND_NAMES = {"bf16": "eager_bf16", "compile": "compile", "onnxruntime": "onnxruntime"}


@dataclass(frozen=True)
class CostAxis:
    """One trade-off: mIoU against a cost, lower is better."""

    name: str       # files: plots/miou_vs_<name>.{csv,png}
    column: str     # the cost column in the data file (and profile/train key at the training size)
    label: str      # axis title, with unit
    title: str
    short: str      # how the summary names it in the `pareto` column
    per_setting: bool = False  # latency: one panel per profiled size (and precision)
    timing: str = ""  # the metrics file whose timing this is ("train", "profile"); "" for a count (size, FLOPs)


AXES = (
    CostAxis("train_time", "train_time_s", "training time (s)", "mIoU vs training time", "train time", timing="train"),
    CostAxis("latency_cpu", "latency_cpu_ms", "CPU latency, batch 1 (ms, median)", "mIoU vs CPU inference latency",
             "CPU latency", per_setting=True, timing="profile"),
    CostAxis("latency_cuda", "latency_cuda_ms", "GPU latency, batch 1 (ms, median)", "mIoU vs GPU inference latency",
             "GPU latency", per_setting=True, timing="profile"),
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
        """A number, or the mean over seeds of a summarised one; NaN when absent."""
        return mean_of(getattr(self, part).get(key))

    def interval(self, part: str, key: str) -> tuple[float, float]:
        """The 95% interval over seeds; NaN for one seed or a number that is not summarised."""
        value = getattr(self, part).get(key)
        if not is_summary(value):
            return math.nan, math.nan
        return mean_of(value.get("ci95_low")), mean_of(value.get("ci95_high"))

    def envs(self, part: str) -> list[dict]:
        """The environment fingerprints `part`'s numbers were measured in (one per seed when they differ)."""
        env = getattr(self, part).get("env")
        if is_fingerprint(env):
            return [env]
        if isinstance(env, dict) and isinstance(env.get("per_seed"), dict):
            return [e for e in env["per_seed"].values() if is_fingerprint(e)]
        return []

    def env_id(self, part: str) -> str:
        """The short id of `part`'s environment; "mixed" when its seeds ran in different ones, "" when not recorded."""
        ids = {env.get("id") or environment_id(env) for env in self.envs(part)}
        return ids.pop() if len(ids) == 1 else ("mixed" if ids else "")

    def converged(self) -> bool | None:
        """Whether training had plateaued in every seed (train.json `converged`); None when not recorded."""
        value = self.train.get("converged")
        if isinstance(value, dict) and isinstance(value.get("per_seed"), dict):
            return all(bool(v) for v in value["per_seed"].values())
        return value if isinstance(value, bool) else None

    def contended(self, part: str) -> bool:
        contention = getattr(self, part).get("contention")
        return isinstance(contention, dict) and bool(contention.get("contended"))

    @property
    def training_size(self) -> str:
        h, w = self.profile.get("input_height"), self.profile.get("input_width")
        return f"{h}x{w}" if isinstance(h, int) and isinstance(w, int) else "training size"


def load_metrics(metrics_dir: Path, models: list[str], seeds: list[int] | None = None) -> list[ModelMetrics]:
    """Each model's summarised train/eval metrics and its profile; with `seeds`, the summaries must
    cover exactly those seeds (otherwise the aggregate stage is out of date)."""
    if not models:
        raise DataError("params.yaml: models: is empty; list at least one model to report on")
    loaded = []
    for name in models:
        parts = {}
        for part in paths.METRIC_PARTS:
            path = paths.metrics_path(name, part, metrics_dir)
            stage = "aggregate" if part in paths.SEED_PARTS else part
            if not path.is_file():
                raise DataError(f"{path}: file not found; run `dvc repro` (the {stage} stage of model {name!r}) first")
            parts[part] = read_json(path)
            if not isinstance(parts[part], dict):
                raise DataError(f"{path}: expected a JSON object of metrics")
            if seeds is not None and part in paths.SEED_PARTS and parts[part].get("seeds") != list(seeds):
                raise DataError(f"{path}: summarises seeds {parts[part].get('seeds')} but params.yaml lists seeds: "
                                f"{list(seeds)}; run `dvc repro` (aggregate@{name})")
        loaded.append(ModelMetrics(name, parts["train"], parts["eval"], parts["profile"]))
    return loaded


# --- environments and contention ---------------------------------------------------------------

TIMED_PARTS = ("train", "profile")  # the metrics files that hold timings


@dataclass(frozen=True)
class CostEnvironments:
    """Which environment each model's timings were measured in: (model, part) -> env id."""

    ids: dict[tuple[str, str], str]
    fingerprints: dict[str, dict]  # env id -> its fingerprint

    @property
    def distinct(self) -> list[str]:
        """Every environment id, the most used first ("mixed" and unrecorded ones left out)."""
        counts: dict[str, int] = {}
        for env_id in self.ids.values():
            if env_id in self.fingerprints:
                counts[env_id] = counts.get(env_id, 0) + 1
        return sorted(counts, key=lambda k: -counts[k])

    @property
    def mixed(self) -> bool:
        return len(self.distinct) > 1 or "mixed" in self.ids.values()

    def model_env(self, model: str) -> str:
        ids = [self.ids.get((model, part), "") for part in TIMED_PARTS]
        return ids[0] if ids[0] == ids[1] else " / ".join(f"{part} {i or '?'}" for part, i in zip(TIMED_PARTS, ids))

    def other(self, model: str, part: str) -> bool:
        """True when the timings are mixed and this one is not from the most used environment."""
        return self.mixed and self.ids.get((model, part)) != self.distinct[0]


def cost_environments(metrics: list[ModelMetrics]) -> CostEnvironments:
    ids, fingerprints = {}, {}
    for m in metrics:
        for part in TIMED_PARTS:
            ids[(m.name, part)] = m.env_id(part)
            for env in m.envs(part):
                fingerprints.setdefault(env.get("id") or environment_id(env), env)
    return CostEnvironments(ids, fingerprints)


def environment_note(envs: CostEnvironments) -> str:
    """One line: the environment every cost was measured in, or a warning naming the environments and how they differ."""
    distinct = envs.distinct
    if not distinct:
        return "Costs: the environment they were measured in is not recorded (metrics from an older segbench).\n"
    if not envs.mixed:
        return f"Costs measured in one environment ({distinct[0]}): {describe_env(envs.fingerprints[distinct[0]])}.\n"
    parts = []
    for env_id in distinct:
        users = sorted({f"{m} ({p})" for (m, p), i in envs.ids.items() if i == env_id})
        parts.append(f"{env_id} = {describe_env(envs.fingerprints[env_id])}, for {', '.join(users)}")
    split = sorted(f"{m} ({p})" for (m, p), i in envs.ids.items() if i == "mixed")
    if split:
        parts.append(f"seeds from different environments for {', '.join(split)}")
    first = envs.fingerprints[distinct[0]]
    differ = sorted({d.split(":")[0] for env_id in distinct[1:] for d in env_differences(first, envs.fingerprints[env_id])})
    return (f"⚠ Costs come from {len(distinct)} environments (they differ in {', '.join(differ) or 'seeds'}); compare timings "
            f"only within one, marked `env` in the table and on the plots: " + "; ".join(parts) + ".\n")


def backend_note(metrics: list[ModelMetrics]) -> str:
    """One line per reason a backend was not measured (profile.json backend_errors), or nothing."""
    missing: dict[tuple[str, str], list[str]] = {}
    for m in metrics:
        for backend, reason in (m.profile.get("backend_errors") or {}).items():
            missing.setdefault((backend, str(reason)), []).append(m.name)
    lines = []
    for (backend, reason), names in missing.items():
        who = "any model" if len(names) == len(metrics) else ", ".join(names)
        lines.append(f"Backend {backend} not measured for {who}: {reason}.\n")
    return "".join(lines)


def convergence_note(metrics: list[ModelMetrics]) -> str:
    """One line naming the models whose training had not plateaued, or nothing."""
    late = []
    for m in metrics:
        if m.converged() is False:
            gain = mean_of(m.train.get("late_gain"))
            window = m.train.get("late_epochs")
            late.append(f"{m.name} (+{gain:.0%} in its last {window} epochs)" if not math.isnan(gain) and
                        isinstance(window, int) else m.name)
    if not late:
        return ""
    return (f"⚠ Not converged (the best validation score still rose by 1% or more over the last quarter of the "
            f"epochs; README \"Converged or not\"): {', '.join(late)}. Their rank says how fast they learn in "
            "this many epochs, not how good they can get; marked * on the plots.\n")


def contention_note(metrics: list[ModelMetrics]) -> str:
    """One line naming the timings measured while other processes were busy, or nothing."""
    busy = []
    for m in metrics:
        for part in TIMED_PARTS:
            if m.contended(part):
                share = getattr(m, part)["contention"].get("other_cpu", math.nan)
                busy.append(f"{m.name} {'training' if part == 'train' else 'profiling'} ({share:.0%} of the CPU)")
    if not busy:
        return ""
    return (f"⚠ Contended timings (other processes took more than the threshold of the CPU while they ran; README "
            f"\"Honest timings\"): {', '.join(busy)}. Those costs are not comparable with quiet ones; quality is unaffected.\n")


# --- Pareto ------------------------------------------------------------------------------------

def pareto_front(quality: np.ndarray, cost: np.ndarray, better: np.ndarray | None = None) -> np.ndarray:
    """Members of the front. Without `better` (exact values): no other point has quality >= and
    cost <= with one of them strict; exact ties (same cost, same quality) are all members.

    With `better` (better[j, i]: j is significantly better than i, segbench.comparison): a point
    is off the front only when another is significantly better at no more cost; a model tied
    with a cheaper one stays on (the data cannot say it is worse). A point with missing quality
    or cost is never a member and never dominates another.
    """
    quality, cost = np.asarray(quality, float), np.asarray(cost, float)
    valid = ~np.isnan(quality) & ~np.isnan(cost)
    q, c = quality[:, None], cost[:, None]  # row i, column j: does j dominate i?
    if better is None:
        dominates = (quality[None] >= q) & (cost[None] <= c) & ((quality[None] > q) | (cost[None] < c)) & valid[None]
    else:
        dominates = np.asarray(better, bool).T & (cost[None] <= c) & valid[None]
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


def fastest_backend(m: ModelMetrics) -> tuple[str, float]:
    """The backend with the lowest CPU latency at the training size and its speed-up over eager fp32;
    an fp32 backend whose predictions differ from eager's (argmax agreement under FP32_AGREEMENT)
    does not count. ("", NaN) when eager was not measured."""
    eager = m.get("profile", "latency_cpu_ms")
    if math.isnan(eager):
        return "", math.nan
    best, best_ms = "eager", eager
    for tag, name in BACKEND_NAMES.items():
        latency = m.get("profile", f"latency_cpu_{tag}_ms")
        agree = m.get("profile", f"argmax_agreement_cpu_{tag}")
        if math.isnan(latency) or (tag != "bf16" and not agree >= FP32_AGREEMENT):
            continue
        if latency < best_ms:
            best, best_ms = name, latency
    return best, eager / best_ms


def tradeoff_table(metrics: list[ModelMetrics], axis: CostAxis, better: np.ndarray | None = None,
                   envs: CostEnvironments | None = None) -> pd.DataFrame:
    """Long form: one row per (setting, model): model, setting, cost, miou, its 95% interval over
    seeds (error bars; empty for one seed), pareto (within the setting; `better`: see pareto_front),
    env (the timing's environment id) and flag ("contended", "other environment": a timing not
    comparable with the rest; empty for sizes and FLOPs, which do not depend on the machine)."""
    envs = envs or cost_environments(metrics)
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
            "miou_ci95_low": [m.interval("eval", "miou")[0] for m in metrics],
            "miou_ci95_high": [m.interval("eval", "miou")[1] for m in metrics],
        })
        frame["pareto"] = pareto_front(frame["miou"].to_numpy(), frame[axis.column].to_numpy(), better)
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


def _with_comparison(row: dict, score: str, comparison: ScoreComparison | None) -> None:
    """<score>_vs_best (model - best, mean over seeds), its 95% interval and whether it is tied with the best."""
    if comparison is None:
        return
    c = comparison.vs_best[row["model"]]
    row[f"{score}_vs_best"] = c.diff
    row[f"{score}_vs_best_low"], row[f"{score}_vs_best_high"] = c.low, c.high
    row[f"{score}_tied_with_best"] = comparison.tied_with_best(row["model"])


def summary_table(metrics: list[ModelMetrics], comparisons: dict[str, ScoreComparison] | None = None) -> pd.DataFrame:
    """One row per model, sorted by mIoU (best first, missing last); `pareto` names the fronts it is
    on (significance-aware when `comparisons` has mIoU); `seeds`: how many seeds the means cover."""
    comparisons = comparisons or {}
    envs = cost_environments(metrics)
    rows = []
    for m in metrics:
        row = {"model": m.name}
        for column, part, key, _ in SUMMARY:
            row[column] = m.get(part, key)
            if column == "miou":
                row["miou_ci95_low"], row["miou_ci95_high"] = m.interval("eval", "miou")
                row["seeds"] = len(m.eval.get("seeds") or [None])
                _with_comparison(row, "miou", comparisons.get("miou"))
        for _, key in latency_settings([m], "cpu"):
            match = LATENCY_KEY.fullmatch(key)
            if key != "latency_cpu_ms" and match[2] is None:  # eager fp32 at the other sizes
                row[key] = m.get("profile", key)
        row["fastest_cpu_backend"], row["fastest_cpu_speedup"] = fastest_backend(m)
        if not math.isnan(m.get("eval", "depth_rmse")):
            for column, part, key, _ in DEPTH_SUMMARY:
                row[column] = m.get(part, key)
                if column == "depth_rmse":
                    row["depth_rmse_ci95_low"], row["depth_rmse_ci95_high"] = m.interval("eval", "depth_rmse")
                    _with_comparison(row, "depth_rmse", comparisons.get("depth_rmse"))
        converged = m.converged()
        row["converged"] = "" if converged is None else ("yes" if converged else "no")
        row["env"] = envs.model_env(m.name)
        row["contended"] = ", ".join(part for part in TIMED_PARTS if m.contended(part))
        rows.append(row)
    df = pd.DataFrame(rows)
    known = {"model", *(column for column, *_ in SUMMARY + DEPTH_SUMMARY)}
    extra = [c for c in df.columns if c.startswith("latency_cpu_") and c not in known] + list(BACKEND_COLUMNS)
    at = list(df.columns).index("latency_cpu_ms") + 1  # the other profiled sizes next to the training size
    df = df[[c for c in df.columns[:at] if c not in extra] + extra + [c for c in df.columns[at:] if c not in extra]]
    df = df[[c for c in df.columns if c not in FLAG_COLUMNS] + list(FLAG_COLUMNS)]
    df["params"] = df["params"].round().astype("Int64")  # exact in the CSV, not 1.94266e+06
    df["seeds"] = df["seeds"].astype("Int64")
    better = comparisons["miou"].better if "miou" in comparisons else None
    fronts = {axis.short: pareto_front(df["miou"].to_numpy(), df[axis.column].to_numpy(), better) for axis in AXES}
    df.insert(1, "pareto", [", ".join(s for s, on in fronts.items() if on[i]) for i in range(len(df))])
    return df.sort_values("miou", ascending=False, na_position="last", kind="stable").set_index("model")


def depth_tradeoff_table(metrics: list[ModelMetrics], comparison: ScoreComparison | None = None) -> pd.DataFrame:
    """Long form: one row per (cost, model): model, setting (the cost), cost, depth_rmse, pareto
    (lower RMSE at lower cost; with `comparison`, off the front only when another model's RMSE is
    significantly lower at no more cost), mean_baseline. Models without depth metrics are left out; when
    none has them (task segmentation), every model is listed with an empty depth_rmse, so the
    file keeps its shape and the interactive plot draws empty panels rather than failing."""
    columns = ["model", "setting", "cost", "depth_rmse", "pareto", "mean_baseline"]
    depth_models = [m for m in metrics if not math.isnan(m.get("eval", "depth_rmse"))] or metrics
    frames = []
    for setting, part, key in DEPTH_COSTS:
        frame = pd.DataFrame({"model": [m.name for m in depth_models], "setting": setting,
                              "cost": [m.get(part, key) for m in depth_models],
                              "depth_rmse": [m.get("eval", "depth_rmse") for m in depth_models]})
        better = None
        if comparison is not None and [m.name for m in depth_models] == comparison.models:
            better = comparison.better
        frame["pareto"] = pareto_front(-frame["depth_rmse"].to_numpy(), frame["cost"].to_numpy(), better)
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


def read_train_log(log_dir: Path) -> pd.DataFrame | None:
    """One DVCLive log: step plus one column per logged CURVE_METRICS; None when nothing is logged."""
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
    return merged


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
        if not logs:
            continue
        runs = pd.concat(logs, ignore_index=True)
        metrics = [m for m in CURVE_METRICS if m in runs]
        grouped = runs.groupby("step", sort=True)
        frame = grouped[metrics].mean()
        for metric in metrics:
            frame[f"{metric}_min"], frame[f"{metric}_max"] = grouped[metric].min(), grouped[metric].max()
        frame.insert(0, "seeds", grouped["seed"].nunique())
        frame = frame.reset_index()
        frame.insert(0, "model", model)
        frames.append(frame)
    bands = [f"{m}_{end}" for m in CURVE_METRICS for end in ("min", "max")]
    columns = ["model", "epoch", "seeds", *CURVE_METRICS, *bands]
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
    if column in ("depth_rmse_vs_mean_baseline", "fastest_cpu_speedup"):
        return f"{value:.2f}x"
    return f"{value:.4g}"


def _interval_cell(row, score: str) -> str:
    """mean +- half the 95% interval over seeds (symmetric: Student t), or the mean alone for one seed."""
    mean, low, high = row[score], row.get(f"{score}_ci95_low"), row.get(f"{score}_ci95_high")
    if mean is None or pd.isna(mean):
        return MISSING
    if low is None or pd.isna(low) or high is None or pd.isna(high):
        return fmt(mean, score)
    return f"{fmt(mean, score)} ± {(high - low) / 2:.4f}"


def _vs_best_cell(row, score: str) -> str:
    diff = row.get(f"{score}_vs_best")
    if diff is None or pd.isna(diff):
        return MISSING
    if row.get("_best"):
        return "best"
    text = f"{diff:+.4f} [{row[f'{score}_vs_best_low']:+.4f}, {row[f'{score}_vs_best_high']:+.4f}]"
    return text + (" tied" if row[f"{score}_tied_with_best"] else "")


COMPOSITE = {"miou": "mIoU (95% CI)", "depth_rmse": "depth RMSE (m, 95% CI)"}
TIMING_COLUMNS = ("env", "contended")  # shown in the Markdown table only when some timing is mixed or contended
FLAG_COLUMNS = ("converged", *TIMING_COLUMNS)  # the summary's last columns
HIDDEN_SUFFIXES = ("_ci95_low", "_ci95_high", "_vs_best_low", "_vs_best_high", "_tied_with_best")


def markdown_table(df: pd.DataFrame, best: dict[str, str] | None = None) -> str:
    """The README's table: mean +- 95% CI over seeds, the difference to the best with its interval
    (`tied`: the interval includes 0), GPU columns only when some model has them, missing as a dash."""
    best = best or {}
    headers = {column: header for column, _, _, header in SUMMARY + DEPTH_SUMMARY}
    headers.update(COMPOSITE, fastest_cpu_backend="fastest CPU backend", fastest_cpu_speedup="speed-up vs eager fp32",
                   seeds="seeds", env="env (costs)", contended="contended timing", converged="converged",
                   miou_vs_best="mIoU vs best (95% CI)", depth_rmse_vs_best="depth RMSE vs best (95% CI)")
    mixed = "env" in df and (df["env"].nunique() > 1 or df["env"].str.contains("mixed| / ").any())
    shown = [c for c in df.columns if not (c.startswith("latency_cuda") and df[c].isna().all())
             and not c.endswith(HIDDEN_SUFFIXES) and not (c == "env" and not mixed)
             and not (c == "contended" and not df[c].astype(bool).any())
             and not (c == "converged" and not (df[c] == "no").any())]
    names = ["model", *(headers.get(c) or _latency_header(c) for c in shown)]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for model, row in df.iterrows():
        cells = []
        for c in shown:
            if c in COMPOSITE:
                cells.append(_interval_cell(row, c))
            elif c.endswith("_vs_best"):
                score = c[: -len("_vs_best")]
                cells.append(_vs_best_cell(row.to_dict() | {"_best": best.get(score) == model}, score))
            elif c in ("pareto", *FLAG_COLUMNS):
                cells.append(row[c] or "")
            elif c == "seeds":
                cells.append(MISSING if pd.isna(row[c]) else str(int(row[c])))
            else:
                cells.append(fmt(row[c], c))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    axes = ", ".join(axis.short for axis in AXES if df[axis.column].notna().any())
    note = (f"\nQuality: the mean over the training seeds ± half its 95% interval (Student t; one seed: no interval). "
            f"`vs best`: the difference to the best model with its 95% interval over seeds and test images (paired "
            f"bootstrap, README \"How sure is a difference\"); `tied`: the interval includes 0. "
            f"`pareto`: the costs ({axes}) on whose mIoU Pareto front the model lies: no other model is significantly "
            f"better at no more cost. Sorted by mIoU; {MISSING}: not measured.\n")
    return "\n".join(lines) + "\n" + note


def _latency_header(column: str) -> str:
    match = re.fullmatch(r"latency_cpu_(\d+x\d+)_ms", column)
    return f"CPU latency {match[1]} (ms)" if match else column


def _csv(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_csv(index=index, float_format="%.6g", lineterminator="\n")


# --- the stage -----------------------------------------------------------------------------------

def build_report(metrics_dir: Path, plots_dir: Path, models: list[str], seeds: list[int] | tuple[int, ...] = (0,),
                 dpi: int = 120, resamples: int = 2000, bootstrap_seed: int = 0) -> pd.DataFrame:
    """Write every table, data file and PNG of the report; return the summary table."""
    from . import report_figures as figures

    seeds = list(seeds)
    metrics = load_metrics(metrics_dir, models, seeds)
    comparisons = compare_scores(load_per_image(metrics_dir, models, seeds), resamples, bootstrap_seed)
    summary = summary_table(metrics, comparisons)
    plots_dir.mkdir(parents=True, exist_ok=True)
    colours = figures.model_colours(models)
    miou = comparisons.get("miou")
    envs = cost_environments(metrics)

    for axis in AXES:
        table = tradeoff_table(metrics, axis, miou.better if miou else None, envs)
        csv, png = paths.report_figure(f"miou_vs_{axis.name}", plots_dir)
        write_text(csv, _csv(table))
        figures.save(figures.tradeoff_figure(table, axis, colours), png, dpi)

    ious = per_class_iou(metrics, list(summary.index))
    csv, png = paths.report_figure("iou_per_class", plots_dir)
    write_text(csv, _csv(ious))
    figures.save(figures.heatmap_figure(ious), png, dpi)

    curves = training_curves({m: {seed: paths.train_log_dir(m, seed, plots_dir) for seed in seeds} for m in models})
    csv, png = paths.report_figure("training_curves", plots_dir)
    write_text(csv, _csv(curves))
    figures.save(figures.curves_figure(curves, colours), png, dpi)

    depth = depth_tradeoff_table(metrics, comparisons.get("depth_rmse"))
    csv, png = paths.report_figure("depth_rmse_vs_cost", plots_dir)
    write_text(csv, _csv(depth))
    figures.save(figures.depth_tradeoff_figure(depth, colours), png, dpi)

    write_text(paths.summary_csv(plots_dir), _csv(summary, index=True))
    best = {score: result.best for score, result in comparisons.items()}
    write_text(paths.summary_md(plots_dir), markdown_table(summary, best) + split_note(metrics)
               + significance_note(comparisons) + backend_note(metrics) + convergence_note(metrics) + environment_note(envs)
               + contention_note(metrics))
    return summary


def significance_note(comparisons: dict[str, ScoreComparison]) -> str:
    labels = {"miou": "mIoU", "depth_rmse": "depth RMSE"}
    return "".join(significance_sentence(result, labels.get(score, score)) + "\n" for score, result in comparisons.items())


def split_note(metrics: list[ModelMetrics]) -> str:
    """One line saying which split the quality columns were scored on and where it came from."""
    scored: dict[str, list[str]] = {}
    for m in metrics:
        split, source = m.eval.get("split", "?"), m.eval.get("split_source", "not recorded")
        scored.setdefault(f"the {split} split ({source})", []).append(m.name)
    if len(scored) == 1:
        return f"Quality scored on {next(iter(scored))}.\n"
    return "Quality scored on " + "; ".join(f"{where} for {', '.join(names)}" for where, names in scored.items()) + ".\n"
