"""Simulated per-image counts for the statistics' tests and benchmarks/bench_stats.py (one generator for both)."""
from __future__ import annotations

import numpy as np

from segbench import stats


def simulated_config(rng, truth, image_effect, margin, seeds, seed_sd=0.15, noise_sd=0.3):
    """Per-image counts [seeds, images, classes, 3] of one configuration on a fixed test set: each
    seed shifts every class's hit rate (seed-to-seed noise), images differ in difficulty."""
    out = []
    for _ in range(seeds):
        shift = rng.normal(0, seed_sd, (1, truth.shape[1]))
        rate = 1 / (1 + np.exp(-(0.5 + margin + image_effect + shift + rng.normal(0, noise_sd, truth.shape))))
        tp = np.round(rate * truth)
        fn = truth - tp
        out.append(np.stack([tp, np.roll(fn, 1, axis=1), fn], -1))
    return np.array(out)


def calibration_trials(margin: float, seeds: int, repeats: int, resamples: int):
    """Per independent repeat (new seeds, new test set): a configuration with `margin` and a baseline's
    mIoU per seed and per bootstrap resample, (a_full, b_full, a_boot, b_boot), for stats.compare."""
    rng = np.random.default_rng(2024)
    rule = stats.SCORE_RULES["miou"]
    for r in range(repeats):
        truth = rng.integers(50, 800, (80, 6)) * (rng.random((80, 6)) < 0.7)
        effect = rng.normal(0, 0.8, (80, 1))
        a = simulated_config(rng, truth, effect, margin, seeds)
        b = simulated_config(rng, truth, effect, 0.0, seeds)
        w = stats.bootstrap_weights(80, resamples, seed=r)
        (a_full, a_boot), (b_full, b_boot) = stats.seed_mean_scores(a, rule, w), stats.seed_mean_scores(b, rule, w)
        yield a_full, b_full, a_boot, b_boot


def benchmark_trials(margins, seeds: int, repeats: int, resamples: int, seed: int = 7):
    """Per independent repeat: {"m<i>": {"mask_counts": [seeds, images, classes, 3]}} for one configuration
    per margin on one shared test set, for segbench.comparison.compare_scores (the true best: the largest margin)."""
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        truth = rng.integers(50, 800, (80, 6)) * (rng.random((80, 6)) < 0.7)
        effect = rng.normal(0, 0.8, (80, 1))
        yield {f"m{i}": {"mask_counts": simulated_config(rng, truth, effect, m, seeds)} for i, m in enumerate(margins)}


def round_medians(true_ms: float, rounds: int, rng, spread: float = 0.08) -> list:
    """One model's profiling rounds as segbench.timing.Timing objects: each round (a fresh process) shifts
    every run by a log-normal factor (the between-process spread the interval over rounds covers)."""
    from segbench.timing import Timing

    return [Timing(true_ms * np.exp(rng.normal(0, spread)) * np.exp(rng.normal(0, 0.02, 15)), "stable")
            for _ in range(rounds)]
