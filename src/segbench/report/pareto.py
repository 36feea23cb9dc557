"""Pareto fronts: the models no other model beats at no more cost."""
from __future__ import annotations

import numpy as np


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
