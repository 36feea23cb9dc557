"""Pareto fronts: the models no other model beats at no more cost, and the cost intervals they use."""
from __future__ import annotations

import math

import numpy as np

from ..keys import parse_latency_key
from ..stats import mean_of


def cost_interval(m, part: str, key: str) -> tuple[float, float]:
    """A cost's 95% interval: a latency median's over the profiling rounds (profile.json
    `<prefix>_ci95_low_ms` / `_ci95_high_ms`), a summarised cost's over seeds (train_time_s'
    ci95_low / ci95_high); the exact value at both ends when none is recorded (size, FLOPs, older
    metrics). `m`: a report.view.ModelMetrics."""
    value = m.get(part, key)
    latency = parse_latency_key(key)
    if latency is not None:
        values = getattr(m, part)
        low, high = (mean_of(values.get(latency.stat(stat))) for stat in ("ci95_low_ms", "ci95_high_ms"))
    else:
        low, high = m.interval(part, key)
    if math.isnan(low) or math.isnan(high):
        return value, value
    return low, high


def cost_intervals(metrics: list, part: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(low ends, high ends) of every model's cost interval, see cost_interval."""
    ends = [cost_interval(m, part, key) for m in metrics]
    return np.array([e[0] for e in ends], float), np.array([e[1] for e in ends], float)


def pareto_front(quality: np.ndarray, cost: np.ndarray, better: np.ndarray | None = None,
                 cost_low: np.ndarray | None = None, cost_high: np.ndarray | None = None) -> np.ndarray:
    """Members of the front. Without `better` (exact values): no other point has quality >= and
    cost <= with one of them strict; exact ties (same cost, same quality) are all members.

    With `better` (better[j, i]: j is significantly better than i, segbench.comparison): a point i
    is off the front only when another j is significantly better AND not significantly costlier:
    j's cost interval does not lie entirely above i's (low_j <= high_i). Two models whose cost
    intervals overlap have the same cost; without intervals (`cost_low` / `cost_high` None) the
    interval is the exact cost, and the rule reads cost_j <= cost_i. A model tied in quality with
    a cheaper one stays on (the data cannot say it is worse). A point with missing quality or cost
    is never a member and never dominates another.
    """
    quality, cost = np.asarray(quality, float), np.asarray(cost, float)
    valid = ~np.isnan(quality) & ~np.isnan(cost)
    q, c = quality[:, None], cost[:, None]  # row i, column j: does j dominate i?
    if better is None:
        dominates = (quality[None] >= q) & (cost[None] <= c) & ((quality[None] > q) | (cost[None] < c)) & valid[None]
    else:
        low = cost if cost_low is None else np.where(np.isnan(cost_low), cost, np.asarray(cost_low, float))
        high = cost if cost_high is None else np.where(np.isnan(cost_high), cost, np.asarray(cost_high, float))
        dominates = np.asarray(better, bool).T & ~(low[None] > high[:, None]) & valid[None]
    return valid & ~dominates.any(axis=1)
