"""Summary of a score over seed replicates: mean, spread and the Student-t 95% interval.

A leaf (numpy and scipy only) so that the stages which summarise or time something
(aggregate, profile) depend on this arithmetic alone, not on the comparison statistics
of segbench.stats that only the plot stage and `segbench diff` run.
"""
from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value; the normal one when df is infinite."""
    from scipy import stats

    q = 0.5 + confidence / 2
    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def summarize(values) -> dict:
    """{"mean", "std", "n", "ci95_low", "ci95_high"} over the non-null values (NaN counts as null).

    n = 1 gives std and the interval as None; n = 0 gives every value as None.
    """
    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(clean)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci95_low": None, "ci95_high": None}
    mean = float(np.mean(clean))
    if n == 1:
        return {"mean": mean, "std": None, "n": 1, "ci95_low": None, "ci95_high": None}
    std = float(np.std(clean, ddof=1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95_low": mean - half, "ci95_high": mean + half}
