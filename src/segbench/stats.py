"""Uncertainty of the scores: seed replicates and the test set, and paired comparisons.

Numpy, scipy and segbench.metrics' score arithmetic (torch-free): the aggregate stage summarises
each model's seeds with it, the plot stage compares models with it. The method, in the README's
words too:

- **Over seeds** (`summarize`): mean, sample standard deviation (n - 1), n and the 95% Student-t
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
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .metrics import depth_rmse_from_sums, miou_from_counts

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


def seed_mean_scores(per_image: np.ndarray, rule: ScoreRule, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-seed scores on the whole split [seeds], seed-averaged scores per resample [resamples]).

    per_image: [seeds, images, ...] one seed's per-image statistics per row.
    """
    per_image = np.asarray(per_image, np.float64)
    seeds, images, rest = per_image.shape[0], per_image.shape[1], per_image.shape[2:]
    full = rule.compute(per_image.sum(axis=1))
    resampled = np.einsum("bi,sik->bsk", weights, per_image.reshape(seeds, images, -1))
    scores = rule.compute(resampled.reshape(weights.shape[0], seeds, *rest))
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

    @property
    def significant(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

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
    return Comparison(diff, diff - half, diff + half, se, df, (len(a_seeds), len(b_seeds)))
