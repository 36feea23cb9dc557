"""Uncertainty of the scores: seed replicates and the test set, and paired comparisons.

Numpy, scipy and segbench.metrics' score arithmetic (torch-free): the aggregate stage summarises
each model's seeds with it, the plot stage compares models with it. The method, in docs/statistics.md's
words too:

- **Over seeds** (`summarize`, in segbench.replicates): mean, sample standard deviation (n - 1), n and the 95% Student-t
  interval mean +- t(0.975, n - 1) * sd / sqrt(n). One seed has no interval (null).
- **Over test images** (`bootstrap_weights`, `seed_mean_scores`): evaluate keeps per-image
  sufficient statistics (per class true-positive, false-positive and false-negative pixel
  counts; depth error sums), so a resample of the test images is a weighted sum of them and
  every score is recomputed exactly as on the whole split. One seeded set of resamples is
  shared by every model: the comparison is paired (the same images for both models).
- **A difference** (`compare`): d = mean over seeds of A - mean over seeds of B. Its variance
  is the bootstrap variance of d over the shared image resamples (test-set noise, each model's
  seeds averaged) plus sd_A^2 / n_A + sd_B^2 / n_B (seed-to-seed noise). The 95% interval is
  d +- t(0.975, df) * se with Welch-Satterthwaite degrees of freedom (the bootstrap part
  counted as known, df infinite); a model with one seed contributes no seed term. The two
  models differ significantly when the interval excludes 0; otherwise they are tied.
- **Across k models** (`holm_reject`, `verdict`, `seeds_needed`, `prob_best`): the plausibly-best
  set keeps every model no better-scoring model beats after Holm's correction over every pair
  (p-value from diff / se with the Welch df; segbench.comparison); a tie is *equivalent*
  when the whole 95% interval lies inside +-margin, *inconclusive* otherwise; the seeds per model
  that would resolve an inconclusive difference at 80% power (the image variance does not shrink
  with seeds: same test set), at the level of the statement it would settle (Holm's threshold for
  that pair); the probability of being best over joint posterior draws of the same model: the
  seed mean on a shared image resample plus s / sqrt(n) x t(n - 1) (`posterior_draws`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .metrics import depth_rmse_from_sums, miou_from_counts
from .replicates import CONFIDENCE, t_quantile


def is_summary(value) -> bool:
    return isinstance(value, dict) and "mean" in value and "n" in value


def mean_of(value) -> float:
    """A plain number, or the mean of a summary; NaN for anything else (null, text, a missing key)."""
    if is_summary(value):
        value = value["mean"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


# --- scores from per-image statistics -------------------------------------------------------------
# The per-image arrays and the arithmetic that turns their sums into a score are segbench.metrics'
# (mask_counts: [..., images, classes, (tp, fp, fn)]; depth_sums: [..., images, 7]), so a resample's
# score is computed exactly as the whole split's.

@dataclass(frozen=True)
class ScoreRule:
    """A score the comparison covers: which per-image array it comes from and how."""

    name: str
    array: str
    higher_is_better: bool
    from_sums: Callable[[np.ndarray], np.ndarray]  # the array summed over images [..., ...] -> the score [...]

    def compute(self, summed: np.ndarray) -> np.ndarray:
        return self.from_sums(summed)


SCORE_RULES = {"miou": ScoreRule("miou", "mask_counts", True, miou_from_counts),
               "depth_rmse": ScoreRule("depth_rmse", "depth_sums", False, depth_rmse_from_sums)}


def bootstrap_weights(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n_images] counts: how often each test image is drawn in each resample (n draws
    with replacement). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=resamples).astype(np.float64)


def seed_scores(per_image: np.ndarray, rule: ScoreRule, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-seed scores on the whole split [seeds], per-seed scores per resample [resamples, seeds]).

    per_image: [seeds, images, ...] one seed's per-image statistics per row.
    """
    per_image = np.asarray(per_image, np.float64)
    seeds, images, rest = per_image.shape[0], per_image.shape[1], per_image.shape[2:]
    full = rule.compute(per_image.sum(axis=1))
    resampled = np.einsum("bi,sik->bsk", weights, per_image.reshape(seeds, images, -1))
    return full, rule.compute(resampled.reshape(weights.shape[0], seeds, *rest))


def seed_mean_scores(per_image: np.ndarray, rule: ScoreRule, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-seed scores on the whole split [seeds], seed-averaged scores per resample [resamples])."""
    full, scores = seed_scores(per_image, rule, weights)
    with warnings.catch_warnings():  # a resample where a score is undefined for every seed stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return full, np.nanmean(scores, axis=1)


@dataclass(frozen=True)
class Comparison:
    """A - B for one score, with its 95% interval (see the module doc)."""

    diff: float
    low: float
    high: float
    se: float
    df: float
    seeds: tuple[int, int]
    seed_var: tuple[float, float] = (0.0, 0.0)  # each side's variance over its seeds (sd^2; 0 for one seed)
    boot_var: float = 0.0  # the bootstrap (test-image) variance of the difference

    @property
    def significant(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    @property
    def p_value(self) -> float:
        """Two-sided p-value of diff / se against Student t with the Welch df (normal when df is infinite)."""
        from scipy import stats

        if not self.se > 0:
            return 1.0 if self.diff == 0 or math.isnan(self.diff) else 0.0
        z = abs(self.diff) / self.se
        return float(2 * (stats.norm.sf(z) if math.isinf(self.df) else stats.t.sf(z, self.df)))

    def at_level(self, level: float) -> Comparison:
        """The same difference with its interval at two-sided level `level` (1 - confidence)."""
        if not self.se > 0 or math.isnan(self.diff):
            return self
        half = t_quantile(self.df, 1 - level) * self.se
        return replace(self, low=self.diff - half, high=self.diff + half)

    def as_dict(self) -> dict:
        return {"diff": self.diff, "ci95_low": self.low, "ci95_high": self.high, "se": self.se,
                "df": None if math.isinf(self.df) else self.df, "significant": self.significant}


def compare(a_seeds: np.ndarray, b_seeds: np.ndarray, a_boot: np.ndarray, b_boot: np.ndarray) -> Comparison:
    """A against B: per-seed scores on the whole split and seed-averaged scores per shared resample."""
    a_seeds, b_seeds = np.asarray(a_seeds, float), np.asarray(b_seeds, float)
    diff = float(np.mean(a_seeds) - np.mean(b_seeds))
    boot = np.asarray(a_boot, float) - np.asarray(b_boot, float)
    boot = boot[~np.isnan(boot)]
    v_boot = float(np.var(boot, ddof=1)) if len(boot) > 1 else 0.0
    seed_terms = [float(np.var(s, ddof=1)) / len(s) for s in (a_seeds, b_seeds) if len(s) > 1]
    dfs = [len(s) - 1 for s in (a_seeds, b_seeds) if len(s) > 1]
    v_seed = sum(seed_terms)
    total = v_boot + v_seed
    denominator = sum(term ** 2 / df for term, df in zip(seed_terms, dfs))
    df = total ** 2 / denominator if denominator > 0 else math.inf
    se = math.sqrt(total)
    half = t_quantile(df) * se
    seed_var = tuple(float(np.var(s, ddof=1)) if len(s) > 1 else 0.0 for s in (a_seeds, b_seeds))
    return Comparison(diff, diff - half, diff + half, se, df, (len(a_seeds), len(b_seeds)), seed_var, v_boot)


# --- across k models: multiplicity, equivalence, power, probability of being best --------------------

EQUIVALENT, INCONCLUSIVE, SIGNIFICANT = "equivalent", "inconclusive", "significant"
POWER = 0.8
MAX_SEEDS = 1000  # beyond this a seed count is not advice


def holm_reject(p_values, alpha: float = 1 - CONFIDENCE) -> np.ndarray:
    """Holm's step-down procedure: which hypotheses are rejected with family-wise error <= alpha."""
    p = np.asarray(p_values, float)
    return p <= holm_levels(p, alpha)


def holm_steps(p_values, alpha: float = 1 - CONFIDENCE) -> np.ndarray:
    """Per hypothesis, its own Holm step alpha / (m - rank), rank 0 for the smallest p-value."""
    p = np.asarray(p_values, float)
    steps = np.empty(len(p))
    steps[np.argsort(p, kind="stable")] = alpha / (len(p) - np.arange(len(p)))
    return steps


def holm_levels(p_values, alpha: float = 1 - CONFIDENCE) -> np.ndarray:
    """Per hypothesis, the level whose interval agrees with Holm's procedure: its own step (holm_steps,
    the level seeds_needed uses), except for one that passes its own step but is not rejected because
    the procedure stopped earlier: that one gets the stopping step. p <= level exactly when Holm
    rejects (holm_reject is that), so an interval at this level and its verdict never disagree."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    thresholds = holm_steps(p, alpha)[order]
    failed = np.flatnonzero(p[order] > thresholds)
    if not failed.size:
        return holm_steps(p, alpha)
    after_stop = np.arange(len(p)) > failed[0]
    levels = np.empty(len(p))
    levels[order] = np.where(after_stop & (p[order] <= thresholds), thresholds[failed[0]], thresholds)
    return levels


def verdict(c: Comparison, margin: float) -> str:
    """EQUIVALENT: the whole 95% interval inside +-margin; INCONCLUSIVE: it includes 0 but is not
    inside the margin; SIGNIFICANT: it excludes 0."""
    if c.significant:
        return SIGNIFICANT
    return EQUIVALENT if -margin < c.low and c.high < margin else INCONCLUSIVE


def seeds_needed(c: Comparison, power: float = POWER, confidence: float = CONFIDENCE) -> int | None:
    """Seeds per model at which a true difference of c.diff is significant with probability `power`.

    se(n)^2 = boot_var + (var_A + var_B) / n: the image part stays (same test set). Solves
    |diff| = (t(confidence) + t(power)) * se(n) with the Welch df at n seeds each; None when no n
    does (the test set alone cannot resolve the difference, or it is 0, or beyond MAX_SEEDS).
    `confidence`: 1 - the level the settled statement is tested at (Holm's level for its pair).
    The sample variances as they are: scaling them up to median-unbiased ones (x1.44 at 3 seeds)
    asked for 10 seeds where the simulation needed 6 (tests/test_stats.py checks within 1.5x).
    """
    from scipy import stats

    seed_var = list(c.seed_var)
    var_sum = sum(seed_var)
    if c.diff == 0 or math.isnan(c.diff) or var_sum <= 0:
        return None
    n = np.arange(2, MAX_SEEDS + 1, dtype=float)
    seed_part = var_sum / n
    denominator = sum((v / n) ** 2 / (n - 1) for v in seed_var if v > 0)  # > 0: var_sum > 0
    df = (c.boot_var + seed_part) ** 2 / denominator
    q = 0.5 + confidence / 2
    critical = stats.t.ppf(q, df) + stats.t.ppf(power, df)
    ok = abs(c.diff) >= critical * np.sqrt(c.boot_var + seed_part)
    return int(n[np.argmax(ok)]) if ok.any() else None


def posterior_draws(full: np.ndarray, boot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[resamples] draws of one model's true seed-mean score, from the model the intervals use.

    Each draw is the seed mean on one shared image resample (test-set noise, paired across models)
    plus s / sqrt(n) x t(n - 1) (seed-to-seed noise: the Student-t of the interval over seeds, not a
    redraw of the n seeds, whose mean never leaves the observed range). All NaN below 2 seeds: no
    basis for the seed part.
    """
    full = np.asarray(full, float)
    full = full[~np.isnan(full)]
    boot = np.asarray(boot, float)
    if len(full) < 2:
        return np.full(len(boot), np.nan)
    scale = float(np.std(full, ddof=1)) / math.sqrt(len(full))
    return boot + scale * rng.standard_t(len(full) - 1, len(boot))


def prob_best(full: list[np.ndarray], boot: list[np.ndarray], higher_is_better: bool, seed: int = 0) -> np.ndarray:
    """Per model, the share of joint posterior draws (posterior_draws) in which it scores best.

    full: per model its per-seed scores on the whole split; boot: per model its seed-mean score per
    shared image resample. All NaN when some model has fewer than 2 seeds ("needs >= 2 seeds").
    """
    rng = np.random.default_rng(seed)
    draws = np.array([posterior_draws(f, b, rng) for f, b in zip(full, boot)]) * (1.0 if higher_is_better else -1.0)
    if np.isnan(draws).all(axis=1).any():
        return np.full(len(full), np.nan)
    winners = np.argmax(np.where(np.isnan(draws), -np.inf, draws), axis=0)
    return np.bincount(winners, minlength=len(full)) / draws.shape[1]


def format_probability(p: float) -> str:
    """A probability as the summary prints it: never 0% or 100% (a resampling estimate cannot say that)."""
    if p is None or math.isnan(p):
        return "needs >= 2 seeds"
    if p < 0.01:
        return "<1%"
    return ">99%" if p > 0.99 else f"{p:.0%}"
