"""What the report reads: every model's metrics, the environments its timings were measured in,
and the DVCLive training logs. Read-only; the tables and notes work from these objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..comparison import ScoreComparison
from ..environment import fingerprint_id, recorded_fingerprints
from ..errors import DataError
from ..io import load_npz, read_json
from ..keys import CURVE_METRICS
from ..stats import is_summary, mean_of

TIMED_PARTS = ("train", "profile")  # the metrics files that hold timings


@dataclass(frozen=True)
class ModelMetrics:
    name: str
    train: dict
    eval: dict
    profile: dict

    def get(self, part: str, key: str) -> float:
        """A number, or the mean over seeds of a summarised one; NaN when absent."""
        return mean_of(getattr(self, part).get(key))

    def has(self, part: str, key: str) -> bool:
        return not math.isnan(self.get(part, key))

    def interval(self, part: str, key: str) -> tuple[float, float]:
        """The 95% interval over seeds; NaN for one seed or a number that is not summarised."""
        value = getattr(self, part).get(key)
        if not is_summary(value):
            return math.nan, math.nan
        return mean_of(value.get("ci95_low")), mean_of(value.get("ci95_high"))

    def envs(self, part: str) -> list[dict]:
        """The environment fingerprints `part`'s numbers were measured in (one per seed when they differ)."""
        return recorded_fingerprints(getattr(self, part).get("env"))

    def env_id(self, part: str) -> str:
        """The short id of `part`'s environment; "mixed" when its seeds ran in different ones, "" when not recorded."""
        ids = {fingerprint_id(env) for env in self.envs(part)}
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
                fingerprints.setdefault(fingerprint_id(env), env)
    return CostEnvironments(ids, fingerprints)


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


def load_prior_counts(metrics_dir: Path, models: list[str], seeds: list[int]) -> dict[str, np.ndarray | None]:
    """Per model, the class prior's per-image counts on its seeds' test images ([seeds, images, classes, 3],
    evaluate's `prior_mask_counts`); None when a seed's file does not have them (an older evaluate)."""
    found: dict[str, np.ndarray | None] = {}
    for model in models:
        arrays = [load_npz(paths.per_image_path(model, seed, metrics_dir)) for seed in seeds]
        has = all("prior_mask_counts" in a for a in arrays)
        found[model] = np.stack([a["prior_mask_counts"] for a in arrays]).astype(np.float64) if has else None
    return found


def learned(metrics: list[ModelMetrics]) -> list[ModelMetrics]:
    """The models with trainable parameters (profile.json params > 0; the class prior has none)."""
    return [m for m in metrics if m.get("profile", "params") != 0]


@dataclass(frozen=True)
class ReportInputs:
    """Everything one report is made from; each figure's table function reads what it needs."""

    metrics: list[ModelMetrics]  # params order
    comparisons: dict[str, ScoreComparison]  # score -> the comparison across models (segbench.comparison)
    envs: CostEnvironments
    order: list[str]  # the summary's rows: best mIoU first
    log_dirs: dict[str, dict[int, Path]]  # model -> seed -> its DVCLive log

    def better(self, score: str) -> np.ndarray | None:
        """better[j, i]: model j is significantly better than model i at `score`; None when not compared."""
        comparison = self.comparisons.get(score)
        return comparison.better if comparison else None
