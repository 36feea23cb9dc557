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

from ..comparison import NEEDS_SEEDS, ScoreComparison
from ..keys import parse_latency_key
from .pareto import cost_interval, cost_tests, pareto_front
from .spec import AXES, SUMMARY, Column
from .tables import fastest_backend, latency_settings
from .view import TIMED_PARTS, CostEnvironments, ModelMetrics, cost_environments


@dataclass(frozen=True)
class SummaryContext:
    metrics: list[ModelMetrics]  # params order
    comparisons: dict[str, ScoreComparison]
    envs: CostEnvironments
    computed: dict[str, list] | None = None  # source -> one value per model, computed by the caller (diagnosis)
    deploy_key: str = ""  # the headline's CPU latency (report/deploy.py): the CPU-latency front is drawn there


def _pareto(ctx: SummaryContext) -> list[str]:
    """The costs on whose mIoU front each model lies (significance-aware when mIoU was compared: off
    only when another is significantly better and its cost interval does not lie above this one's)."""
    miou = np.array([m.get("eval", "miou") for m in ctx.metrics])
    result = ctx.comparisons.get("miou")
    if result is not None and min(result.seeds) < 2:
        return [NEEDS_SEEDS] * len(ctx.metrics)
    better = result.better if result is not None else None
    fronts = {}
    for axis in AXES:
        key = ctx.deploy_key if axis.name == "latency_cpu" and ctx.deploy_key else axis.column
        fronts[axis.short] = pareto_front(miou, np.array([m.get(axis.part, key) for m in ctx.metrics]), better,
                                          cost_tests(ctx.metrics, axis.part, key))
    return [", ".join(short for short, on in fronts.items() if on[i]) for i in range(len(ctx.metrics))]


def _converged(m: ModelMetrics) -> str:
    converged = m.converged()
    return "" if converged is None else ("yes" if converged else "no")


def _best_set(ctx: SummaryContext) -> list[str]:
    """"yes" for the models not significantly worse than the best mIoU after Holm's correction."""
    result = ctx.comparisons.get("miou")
    return ["yes" if result and result.plausibly_best(m.name) else "" for m in ctx.metrics]


def _p_best(ctx: SummaryContext) -> list[float]:
    result = ctx.comparisons.get("miou")
    return [result.p_best.get(m.name, math.nan) if result else math.nan for m in ctx.metrics]


# sources that need more than the metrics files (per-image counts, training logs): build_report passes them
# as summary_table(computed=...); the value without them
COMPUTED_BY_CALLER = {"diagnosis": "", "miou_equal_time": math.nan}

SOURCES: dict[str, Callable[[SummaryContext], list]] = {
    "pareto": _pareto,
    "best_set": _best_set,
    "p_best": _p_best,
    "seeds": lambda ctx: [len(m.eval.get("seeds") or [None]) for m in ctx.metrics],  # how many seeds the means cover
    "fastest_cpu_backend": lambda ctx: [fastest_backend(m)[0] for m in ctx.metrics],
    "fastest_cpu_speedup": lambda ctx: [fastest_backend(m)[1] for m in ctx.metrics],
    "converged": lambda ctx: [_converged(m) for m in ctx.metrics],
    "env": lambda ctx: [ctx.envs.model_env(m.name) for m in ctx.metrics],
    "contended": lambda ctx: [", ".join(part for part in TIMED_PARTS if m.contended(part)) for m in ctx.metrics],
}


def summary_table(metrics: list[ModelMetrics], comparisons: dict[str, ScoreComparison] | None = None,
                  columns: Sequence[Column] = SUMMARY, computed: dict[str, list] | None = None,
                  deploy_key: str = "") -> pd.DataFrame:
    """One row per model, sorted by mIoU (best first, missing last), one column (and its companions)
    per entry of `columns` that applies; `pareto` names the fronts it is on (significance-aware when
    `comparisons` has mIoU); `seeds`: how many seeds the means cover."""
    ctx = SummaryContext(metrics, comparisons or {}, cost_environments(metrics), computed or {}, deploy_key)
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
    elif column.source in (ctx.computed or {}):
        values = {column.name: list(ctx.computed[column.source])}
    elif column.source in COMPUTED_BY_CALLER:  # not given (a notebook's summary_table): empty
        values = {column.name: [COMPUTED_BY_CALLER[column.source]] * len(metrics)}
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
    if column.cost_interval:  # empty where only the exact value is recorded
        ends = [cost_interval(m, part, key) for m in metrics]
        exact = [e[0] == e[1] == v for e, v in zip(ends, values[column.name])]
        for k, name in enumerate(column.companions):
            values[name] = [math.nan if x else e[k] for e, x in zip(ends, exact)]
    if column.per_size:
        at = parse_latency_key(key)
        for m in metrics:  # each model's other sizes, smallest first; a size first seen later goes after
            for _, name in latency_settings([m], at.device):
                other = parse_latency_key(name)
                if other.size and other.tag == at.tag and name not in values:
                    values[name] = [n.get(part, name) for n in metrics]
                    if column.cost_interval:  # its 95% interval over the profiling rounds, where recorded
                        ends = [cost_interval(n, part, name) for n in metrics]
                        exact = [e[0] == e[1] == v for e, v in zip(ends, values[name])]
                        values[f"{name}_ci95_low"] = [math.nan if x else e[0] for e, x in zip(ends, exact)]
                        values[f"{name}_ci95_high"] = [math.nan if x else e[1] for e, x in zip(ends, exact)]
    return values


def _vs_best(column: Column, comparison: ScoreComparison, metrics: list[ModelMetrics]) -> dict[str, list]:
    """<score>_vs_best (model - best, mean over seeds), its 95% interval, whether it includes 0 and the
    verdict (best, equivalent, inconclusive, worse: segbench.comparison)."""
    low, high, tied, verdict = column.companions
    # the interval at the level Holm tests the pair at (where there is one), so that it agrees with the verdict
    diffs = [comparison.vs_best_holm.get(m.name, comparison.vs_best[m.name]) for m in metrics]
    return {column.name: [c.diff for c in diffs], low: [c.low for c in diffs], high: [c.high for c in diffs],
            tied: [m.name == comparison.best or not c.significant for m, c in zip(metrics, diffs)],
            verdict: [comparison.verdicts.get(m.name, "") for m in metrics]}
