"""The summary table: one row per model, best mIoU first, its columns declared by spec.SUMMARY.

A column reads its numbers from a metrics file (spec `part` / `key`) or from one of SOURCES
below (values that need more than one key: Pareto fronts, the fastest backend, the flags).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..comparison import ScoreComparison
from ..keys import parse_latency_key
from .pareto import pareto_front
from .spec import AXES, SUMMARY, Column
from .tables import fastest_backend, latency_settings
from .view import TIMED_PARTS, CostEnvironments, ModelMetrics, cost_environments


@dataclass(frozen=True)
class SummaryContext:
    metrics: list[ModelMetrics]  # params order
    comparisons: dict[str, ScoreComparison]
    envs: CostEnvironments


def _pareto(ctx: SummaryContext) -> list[str]:
    """The costs on whose mIoU front each model lies (significance-aware when mIoU was compared)."""
    miou = np.array([m.get("eval", "miou") for m in ctx.metrics])
    better = ctx.comparisons["miou"].better if "miou" in ctx.comparisons else None
    fronts = {axis.short: pareto_front(miou, np.array([m.get(axis.part, axis.column) for m in ctx.metrics]), better)
              for axis in AXES}
    return [", ".join(short for short, on in fronts.items() if on[i]) for i in range(len(ctx.metrics))]


def _converged(m: ModelMetrics) -> str:
    converged = m.converged()
    return "" if converged is None else ("yes" if converged else "no")


SOURCES: dict[str, Callable[[SummaryContext], list]] = {
    "pareto": _pareto,
    "seeds": lambda ctx: [len(m.eval.get("seeds") or [None]) for m in ctx.metrics],  # how many seeds the means cover
    "fastest_cpu_backend": lambda ctx: [fastest_backend(m)[0] for m in ctx.metrics],
    "fastest_cpu_speedup": lambda ctx: [fastest_backend(m)[1] for m in ctx.metrics],
    "converged": lambda ctx: [_converged(m) for m in ctx.metrics],
    "env": lambda ctx: [ctx.envs.model_env(m.name) for m in ctx.metrics],
    "contended": lambda ctx: [", ".join(part for part in TIMED_PARTS if m.contended(part)) for m in ctx.metrics],
}


def summary_table(metrics: list[ModelMetrics], comparisons: dict[str, ScoreComparison] | None = None,
                  columns: Sequence[Column] = SUMMARY) -> pd.DataFrame:
    """One row per model, sorted by mIoU (best first, missing last), one column (and its companions)
    per entry of `columns` that applies; `pareto` names the fronts it is on (significance-aware when
    `comparisons` has mIoU); `seeds`: how many seeds the means cover."""
    ctx = SummaryContext(metrics, comparisons or {}, cost_environments(metrics))
    data: dict[str, list] = {"model": [m.name for m in metrics]}
    for column in columns:
        data.update(column_values(column, ctx))
    df = pd.DataFrame(data)
    for column in columns:
        if column.integer and column.name in df:
            df[column.name] = df[column.name].round().astype("Int64")
    return df.sort_values("miou", ascending=False, na_position="last", kind="stable").set_index("model")


def column_values(column: Column, ctx: SummaryContext) -> dict[str, list]:
    """{summary.csv column: one value per model} for `column` and its companions; {} when it is left out."""
    metrics = ctx.metrics
    if column.only_with and not any(m.has(*column.only_with) for m in metrics):
        return {}
    if column.compare:
        if column.compare not in ctx.comparisons:
            return {}
        values = _vs_best(column, ctx.comparisons[column.compare], metrics)
    elif column.source:
        values = {column.name: SOURCES[column.source](ctx)}
    else:
        values = _from_metrics(column, metrics)
    if column.only_with:
        keep = [m.has(*column.only_with) for m in metrics]
        values = {name: [v if k else math.nan for v, k in zip(vs, keep)] for name, vs in values.items()}
    return values


def _from_metrics(column: Column, metrics: list[ModelMetrics]) -> dict[str, list]:
    part, key = column.part, column.metrics_key
    values = {column.name: [m.get(part, key) for m in metrics]}
    if column.interval:
        low, high = column.companions
        values[low] = [m.interval(part, key)[0] for m in metrics]
        values[high] = [m.interval(part, key)[1] for m in metrics]
    if column.per_size:
        at = parse_latency_key(key)
        for m in metrics:  # each model's other sizes, smallest first; a size first seen later goes after
            for _, name in latency_settings([m], at.device):
                other = parse_latency_key(name)
                if other.size and other.tag == at.tag and name not in values:
                    values[name] = [n.get(part, name) for n in metrics]
    return values


def _vs_best(column: Column, comparison: ScoreComparison, metrics: list[ModelMetrics]) -> dict[str, list]:
    """<score>_vs_best (model - best, mean over seeds), its 95% interval and whether it is tied with the best."""
    low, high, tied = column.companions
    diffs = [comparison.vs_best[m.name] for m in metrics]
    return {column.name: [c.diff for c in diffs], low: [c.low for c in diffs], high: [c.high for c in diffs],
            tied: [comparison.tied_with_best(m.name) for m in metrics]}
