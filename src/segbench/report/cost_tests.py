"""Costs compared by a test, at the 95% and multiplicity policy quality uses (Holm over every pair).

- **Latency** (profile.json): the profile stage reports the geometric mean of the rounds' medians
  with a Student-t interval over rounds on the log scale (segbench.timing.combine_rounds). The
  per-round medians are not stored, but that interval determines their log mean and standard
  error exactly: se = log(high / low) / (2 t(0.975, rounds - 1)). Two models are compared by
  Welch's t on the log medians. One round: its interval is over the runs of one process, which
  says nothing about the spread between processes: no test ("needs >= 2 rounds").
- **Training time** (train.json, summarised over seeds): Welch's t on the seeds' times; one seed: no test.
- **Counts** (size, FLOPs): exact, compared as numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..keys import parse_latency_key
from ..stats import Comparison, holm_reject, is_summary, mean_of, t_quantile


@dataclass(frozen=True)
class Estimate:
    """A cost's centre with its standard error and degrees of freedom (log scale for latency)."""

    center: float
    se: float
    df: float
    n: int


def latency_estimate(center: float, low: float, high: float, rounds: float) -> Estimate | None:
    """The log-median estimate behind a latency's interval over rounds; None below 2 rounds."""
    values = (center, low, high, rounds)
    if any(not isinstance(v, (int, float)) or math.isnan(v) for v in values) or rounds < 2 or not 0 < low <= high:
        return None
    se = math.log(high / low) / (2 * t_quantile(rounds - 1))
    return Estimate(math.log(center), se, rounds - 1, int(rounds))


def seed_estimate(summary) -> Estimate | None:
    """A cost summarised over seeds ({"mean", "std", "n"}); None below 2 seeds."""
    if not is_summary(summary) or (summary.get("n") or 0) < 2 or summary.get("std") is None:
        return None
    n = int(summary["n"])
    return Estimate(float(summary["mean"]), float(summary["std"]) / math.sqrt(n), n - 1, n)


def welch(a: Estimate, b: Estimate) -> Comparison:
    """a - b with its 95% Welch interval (on each estimate's scale: log for latency, a ratio's log)."""
    var = a.se ** 2 + b.se ** 2
    denominator = sum(e.se ** 4 / e.df for e in (a, b) if e.se > 0)
    df = var ** 2 / denominator if denominator > 0 else math.inf
    diff = a.center - b.center
    half = t_quantile(df) * math.sqrt(var)
    return Comparison(diff, diff - half, diff + half, math.sqrt(var), df, (a.n, b.n))


def cost_basis(m, part: str, key: str) -> Estimate | float | None:
    """What a model's cost is compared on: an Estimate (a timing with a basis), the exact number (a
    count), or None (no value, or a timing without the rounds or seeds to test it). `m`: report.view.ModelMetrics."""
    values = getattr(m, part)
    latency = parse_latency_key(key)
    if latency is not None:
        stats = [mean_of(values.get(latency.stat(s))) for s in ("ci95_low_ms", "ci95_high_ms", "rounds")]
        return latency_estimate(mean_of(values.get(key)), *stats)
    value = values.get(key)
    if is_summary(value):
        return seed_estimate(value)
    number = mean_of(value)
    return None if math.isnan(number) else number


def not_costlier(bases: list) -> np.ndarray:
    """[j, i]: model j is known not to be significantly costlier than model i.

    Timings: Welch's test of every pair with a basis, Holm over those pairs; a pair where either has no
    basis is unknown (False: it cannot be used to push a model off a front). Counts: cost_j <= cost_i.
    """
    k = len(bases)
    out = np.zeros((k, k), bool)
    tested = [(j, i) for j in range(k) for i in range(j + 1, k)
              if isinstance(bases[j], Estimate) and isinstance(bases[i], Estimate)]
    tests = [welch(bases[j], bases[i]) for j, i in tested]
    reject = holm_reject([c.p_value for c in tests]) if tests else []
    for (j, i), c, r in zip(tested, tests, reject):
        out[j, i] = not (r and c.diff > 0)  # j costlier than i, significantly
        out[i, j] = not (r and c.diff < 0)
    for j in range(k):
        for i in range(k):
            if isinstance(bases[j], float) and isinstance(bases[i], float):
                out[j, i] = bases[j] <= bases[i]
    return out


def cost_verdicts(bases: list) -> np.ndarray:
    """[j, i]: -1 j significantly cheaper than i, +1 significantly costlier, 0 the same cost, NaN no basis."""
    ok = not_costlier(bases)
    k = len(bases)
    out = np.full((k, k), np.nan)
    for j in range(k):
        for i in range(k):
            if isinstance(bases[j], Estimate) and isinstance(bases[i], Estimate):
                out[j, i] = 0.0 if ok[j, i] and ok[i, j] else (1.0 if not ok[j, i] else -1.0)
    return out
