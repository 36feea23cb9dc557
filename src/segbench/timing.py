"""Timing one call adaptively, and combining timings taken in separate rounds (processes).

`measure` times a call until the median is stable (the 95% interval of the median within
`target_rel_ci` of it), `max_runs`, or the time budget. One process's timings understate the real
spread: quiet profile runs of one model differ by up to +-30% between processes on these VMs. So
the profile stage times every model in several rounds, each a fresh process, and `combine_rounds`
reports the geometric mean of the rounds' medians with a 95% Student-t interval over them (on the
log scale: latencies spread multiplicatively), which covers the between-process spread. One round
falls back to the distribution-free interval of its median.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .keys import LatencyKey, parse_latency_key
from .replicates import t_quantile

Clock = Callable[[Callable[[], None]], float]


@dataclass(frozen=True)
class Timing:
    times_ms: np.ndarray
    stop_reason: str  # "stable", "time_budget" or "max_runs"

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times_ms))


def median_rel_ci(times: np.ndarray, z: float = 1.96) -> float:
    """Half-width of the distribution-free 95% CI of the median, relative to the median."""
    n = len(times)
    if n < 3:
        return float("inf")
    s = np.sort(times)
    half = z * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - half))), min(n - 1, int(math.ceil(n / 2 + half)))
    return float((s[hi] - s[lo]) / 2 / np.median(s))


def measure(run: Callable[[], None], *, warmup: int = 5, min_runs: int = 20, max_runs: int = 500,
            time_budget_s: float = 8.0, target_rel_ci: float = 0.02, floor_runs: int = 3, clock: Optional[Clock] = None,
            now: Callable[[], float] = time.perf_counter) -> Timing:
    """Time `run` adaptively; `clock(run)` returns the seconds one call took (wall clock by default).

    Warm-up stops early once it has used half the budget (a 750x1000 frame can take seconds);
    timing stops when the median is stable, at `max_runs`, or, after at least `floor_runs` runs
    (3: enough for the interval of one median; 2 when several rounds give the interval), when the
    budget (warm-up included) is spent.
    """
    clock = clock or _wall_clock
    started = now()
    # Warm up for `warmup` runs and at least a quarter of the budget (at most 0.5 s): the first
    # calls in a process (thread-pool spin-up, allocator growth, CPU clock ramp) run slow for
    # longer than a handful of fast calls, which showed as a high first median across repeats.
    warm_s = min(0.5, time_budget_s / 4) if warmup else 0.0
    runs = 0
    while warmup and (runs < warmup or now() - started < warm_s):
        run()
        runs += 1
        if now() - started > time_budget_s / 2:
            break
    times: list[float] = []
    while True:
        times.append(clock(run) * 1e3)
        n = len(times)
        if n >= min_runs and median_rel_ci(np.asarray(times)) <= target_rel_ci:
            reason = "stable"
            break
        if n >= max_runs:
            reason = "max_runs"
            break
        if n >= floor_runs and now() - started > time_budget_s:
            reason = "time_budget"
            break
    return Timing(np.asarray(times), reason)


def _wall_clock(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def combine_rounds(rounds: list[dict[LatencyKey, Timing]]) -> dict:
    """profile.json's latency keys from the same keys timed in each round: the median (the geometric
    mean of the rounds' medians), its 95% interval over rounds, the p90 combined the same way (each
    round counts once, as for the median, so it is never below it), and min/std/runs over every run."""
    out: dict = {}
    keys = list(dict.fromkeys(key for r in rounds for key in r))
    for key in keys:
        timings = [r[key] for r in rounds if key in r]
        out.update(combined_summary(key, timings))
    return out


def combined_summary(key: LatencyKey, timings: list[Timing]) -> dict:
    pooled = np.concatenate([t.times_ms for t in timings])
    logs = np.log([float(np.median(t.times_ms)) for t in timings])
    # pooled over runs, a round of many fast runs outweighs one of a few slow runs that the median
    # (one per round) weighs equally: the p90 could fall below the median beside it
    p90 = float(np.exp(np.mean(np.log([np.percentile(t.times_ms, 90) for t in timings]))))
    center = float(np.exp(logs.mean()))
    if len(timings) > 1:
        half = t_quantile(len(logs) - 1) * float(logs.std(ddof=1)) / math.sqrt(len(logs))
        low, high = center * math.exp(-half), center * math.exp(half)
    else:
        rel = median_rel_ci(timings[0].times_ms)
        low, high = (center * (1 - rel), center * (1 + rel)) if math.isfinite(rel) else (math.nan, math.nan)
    reasons = {t.stop_reason for t in timings}
    return {
        key.name: center,
        key.stat("ci95_low_ms"): low,
        key.stat("ci95_high_ms"): high,
        key.stat("rounds"): len(timings),
        key.stat("p90_ms"): p90,
        key.stat("min_ms"): float(pooled.min()),
        key.stat("std_ms"): float(pooled.std(ddof=1)) if len(pooled) > 1 else 0.0,
        key.stat("runs"): int(len(pooled)),
        key.stat("median_rel_ci"): (high - low) / 2 / center if math.isfinite(low) else math.inf,
        key.stat("stop_reason"): reasons.pop() if len(reasons) == 1 else "mixed",
    }


def widest_interval(summary: dict) -> float:
    """The largest relative half-width among the latency medians of a combined summary."""
    widths = [summary[k.stat("median_rel_ci")] for k in map(parse_latency_key, summary) if k is not None]
    return max(widths, default=0.0)


def precise_keys(summary: dict, target_rel_ci: float) -> frozenset[str]:
    """The latency keys of a combined summary whose 95% interval is within +-`target_rel_ci` of the median."""
    return frozenset(k.name for k in map(parse_latency_key, summary)
                     if k is not None and summary[k.stat("median_rel_ci")] <= target_rel_ci)
