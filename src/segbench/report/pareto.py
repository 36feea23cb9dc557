"""Pareto fronts: the models no other model beats at no more cost (costs compared by a test), and
the cost intervals the tables show."""
from __future__ import annotations

import math

import numpy as np

from ..keys import parse_latency_key
from ..stats import mean_of
from .cost_tests import cost_basis, not_costlier


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


def cost_tests(metrics: list, part: str, key: str) -> np.ndarray:
    """[j, i]: model j is not significantly costlier than model i (report/cost_tests.py)."""
    return not_costlier([cost_basis(m, part, key) for m in metrics])


def pareto_front(quality: np.ndarray, cost: np.ndarray, better: np.ndarray | None = None,
                 cheap_enough: np.ndarray | None = None) -> np.ndarray:
    """Members of the front. Without `better` (exact values): no other point has quality >= and
    cost <= with one of them strict; exact ties (same cost, same quality) are all members.

    With `better` (better[j, i]: j is significantly better than i, segbench.comparison): a point i
    is off the front only when another j is significantly better AND not significantly costlier
    (`cheap_enough[j, i]`, cost_tests: Welch's test of the timings with Holm over the pairs, the
    exact comparison of counts; cost_j <= cost_i when not given). A model tied in quality with a
    cheaper one stays on (the data cannot say it is worse); a pair whose costs have no basis for a
    test (one round, one seed) decides nothing. A point with missing quality or cost is never a
    member and never dominates another.
    """
    quality, cost = np.asarray(quality, float), np.asarray(cost, float)
    valid = ~np.isnan(quality) & ~np.isnan(cost)
    q, c = quality[:, None], cost[:, None]  # row i, column j: does j dominate i?
    if better is None:
        dominates = (quality[None] >= q) & (cost[None] <= c) & ((quality[None] > q) | (cost[None] < c)) & valid[None]
    else:
        ok = (cost[:, None] <= cost[None]) if cheap_enough is None else np.asarray(cheap_enough, bool)  # [j, i]
        dominates = np.asarray(better, bool).T & ok.T & valid[None]
    return valid & ~dominates.any(axis=1)
