"""Which models differ: every model against the best, and every pair, with 95% intervals.

Loads each model's per-image statistics for every listed seed (metrics/<model>/seeds/<seed>/
per_image.npz, from the evaluate stage), draws one seeded set of test-image resamples shared by
all models, and compares them with segbench.stats (the method is that module's doc). The plot
stage turns the result into the summary's "vs best" columns, the verdicts (equivalent /
inconclusive / worse), the plausibly-best set (Holm over the k - 1 comparisons with the best),
the seeds that would settle an inconclusive difference, each model's probability of being best,
and the uncertainty-aware Pareto fronts.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import paths
from .errors import DataError
from .io import load_npz
from .stats import (
    EQUIVALENT,
    INCONCLUSIVE,
    SCORE_RULES,
    Comparison,
    ScoreRule,
    bootstrap_weights,
    compare,
    holm_levels,
    holm_steps,
    prob_best,
    seed_scores,
    seeds_needed,
)

EQUIVALENCE_MARGIN = 0.01  # plot.equivalence_margin's default (mIoU)
NEEDS_SEEDS = "needs >= 2 seeds"  # what every derived statement says when a model has one seed


@dataclass(frozen=True)
class ScoreComparison:
    """One score (mIoU, depth RMSE) across models."""

    rule: ScoreRule
    models: list[str]
    means: np.ndarray  # per model: the mean over seeds on the whole split
    seeds: list[int]  # per model: how many seeds
    best: str
    vs_best: dict[str, Comparison]  # model - best
    better: np.ndarray  # better[j, i]: model j is significantly better than model i
    margin: float = 0.0  # the equivalence margin of this score (0: never equivalent)
    best_set: frozenset = frozenset()  # not significantly worse than the best after Holm over the k - 1 tests
    verdicts: dict[str, str] = field(default_factory=dict)  # model -> "best", "equivalent", "inconclusive", "worse"
    seeds_needed: dict[str, int | None] = field(default_factory=dict)  # inconclusive models: seeds per model; None:
                                                                       # the test set alone cannot settle it
    p_best: dict[str, float] = field(default_factory=dict)  # share of joint posterior draws it is best in (NaN: < 2 seeds)
    needed_level: dict[str, float] = field(default_factory=dict)  # the two-sided level seeds_needed is computed at
    tied_neighbours: dict[str, tuple] = field(default_factory=dict)  # model -> its neighbours in the ranking by mean
                                                                     # whose difference's interval includes 0
    identical: list = field(default_factory=list)  # pairs with bit-identical per-seed scores
    vs_best_holm: dict[str, Comparison] = field(default_factory=dict)  # model - best, its interval at Holm's level

    def tied_with_best(self, model: str) -> bool:
        """The 95% interval of model - best includes 0 (one test, no multiplicity correction)."""
        return model == self.best or not self.vs_best[model].significant

    def plausibly_best(self, model: str) -> bool:
        return model in self.best_set


def load_per_image(metrics_dir, models: list[str], seeds: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """{model: {array name: [seeds, images, ...]}} for the arrays every model and seed has."""
    loaded: dict[str, dict[str, np.ndarray]] = {}
    for model in models:
        per_seed = []
        for seed in seeds:
            path = paths.per_image_path(model, seed, metrics_dir)
            if not path.is_file():
                raise DataError(f"{path}: file not found; run `dvc repro` (evaluate@{model}-{seed} writes it)")
            per_seed.append(load_npz(path))
        names = [name for name in ("mask_counts", "depth_sums") if all(name in data for data in per_seed)]
        for name in names:
            shapes = {data[name].shape for data in per_seed}
            if len(shapes) > 1:
                raise DataError(f"{paths.seeds_dir(model, metrics_dir)}: {name} has shapes {sorted(shapes)} across seeds; "
                                "the seeds were evaluated on different data: re-run `dvc repro`")
        loaded[model] = {name: np.stack([data[name] for data in per_seed]).astype(np.float64) for name in names}
    _check_paired(loaded, metrics_dir)
    return loaded


def _check_paired(loaded: dict[str, dict[str, np.ndarray]], metrics_dir) -> None:
    """A paired comparison needs the same test images in the same order for every model: their
    true pixels per class (tp + fn) must agree image by image."""
    reference = None
    for model, arrays in loaded.items():
        counts = arrays.get("mask_counts")
        if counts is None:
            continue
        truth = counts[0, ..., 0] + counts[0, ..., 2]
        if reference is None:
            reference = (model, truth)
        elif truth.shape != reference[1].shape or not np.array_equal(truth, reference[1]):
            raise DataError(f"{paths.seeds_dir(model, metrics_dir)}: scored on other test images than {reference[0]} "
                            f"({truth.shape[0]} against {reference[1].shape[0]} images, or other masks); models are "
                            "compared image by image: re-run `dvc repro` so every model is evaluated on the same split")


def _against_best(models: list[str], best: str, vs_best: dict[str, Comparison], margin: float,
                  pairs: dict, means: np.ndarray, full: list[np.ndarray]) -> dict:
    """The plausibly-best set, each model's verdict, `better` and, where inconclusive, the seeds needed.

    Every statement uses one family: Holm over every pair (k (k - 1) / 2 tests). A model is "worse"
    (and out of the set) when its pair with the best is rejected; better[j, i] when pair (j, i) is
    rejected and j has the better mean (the Pareto fronts use it). Holm over only the k - 1 comparisons
    with the observed best does not hold the family-wise rate: the best is picked as the maximum, so
    its comparison with the minimum is the largest of all pairwise statistics (bench_stats: 14% for 7
    equal models). A tie is "equivalent" when the whole interval lies inside +-margin.
    """
    others = [m for m in models if m != best]
    unordered = [(j, i) for j in range(len(models)) for i in range(j + 1, len(models))]
    p_values = np.array([pairs[p].p_value for p in unordered])
    levels = holm_levels(p_values)  # Holm's procedure over every pair: rejected where p <= level
    reject = p_values <= levels
    better = np.zeros((len(models), len(models)), bool)
    for (j, i), r in zip(unordered, reject):
        if r:
            better[(j, i) if means[j] > means[i] else (i, j)] = True
    b = models.index(best)
    # each model - best with its interval at the level Holm tests that pair at: the interval shown beside a
    # verdict excludes 0 exactly when the verdict is "worse" (a plain 95% one could exclude 0 beside "inconclusive")
    pair_of = {m: unordered.index(tuple(sorted((models.index(m), b)))) for m in others}  # its index in unordered
    vs_best_holm = {m: vs_best[m].at_level(levels[pair_of[m]]) for m in others}
    verdicts = {best: "best"}
    for m in others:
        c = vs_best_holm[m]
        inside = -margin < c.low and c.high < margin
        verdicts[m] = "worse" if better[b, models.index(m)] else (EQUIVALENT if inside else INCONCLUSIVE)
    # the seeds that would settle model vs best, at the level Holm tests that pair at now (its rank among the
    # pairs' p-values): the level of the statement ("could be best") it would settle
    steps = holm_steps(p_values)
    level = {m: float(steps[pair_of[m]]) for m in others}
    needed = {m: (seeds_needed(vs_best[m], confidence=1 - level[m]), level[m])
              for m in others if verdicts[m] == "inconclusive"}
    def identical(x: int, y: int) -> bool:  # the same per-seed scores: their order is params order, not noise
        return bool(np.array_equal(full[x], full[y]))

    close: dict[str, tuple] = {}  # "unstable": both rows of a neighbouring pair whose 95% interval includes 0
    for x, y in unordered:
        if not pairs[x, y].significant and _neighbours(means, x, y) and not identical(x, y):
            close[models[x]] = (*close.get(models[x], ()), models[y])
            close[models[y]] = (*close.get(models[y], ()), models[x])
    return {"best_set": frozenset(m for m in models if not better[b, models.index(m)]), "verdicts": verdicts,
            "vs_best_holm": vs_best_holm,
            "better": better,
            "seeds_needed": {m: n for m, (n, _) in needed.items()},
            "needed_level": {m: lvl for m, (_, lvl) in needed.items()}, "tied_neighbours": close,
            "identical": [(models[x], models[y]) for x, y in unordered if identical(x, y)]}


def _neighbours(means: np.ndarray, x: int, y: int) -> bool:
    """x and y are next to each other in the ranking by mean (no model's mean lies strictly between)."""
    low, high = sorted((means[x], means[y]))
    return not bool(np.any((means > low) & (means < high)))


def compare_scores(per_image: dict[str, dict[str, np.ndarray]], resamples: int = 2000,
                   seed: int = 0, margin: float = EQUIVALENCE_MARGIN) -> dict[str, ScoreComparison]:
    """{score name: ScoreComparison} for each score every model has (mIoU; depth RMSE for seg_depth).
    `margin`: mIoU's equivalence margin (depth RMSE has none: its ties are never called equivalent)."""
    models = list(per_image)
    results = {}
    for rule in SCORE_RULES.values():
        if not models or not all(rule.array in per_image[m] for m in models):
            continue
        n_images = per_image[models[0]][rule.array].shape[1]
        if n_images < 2:
            raise DataError(f"metrics/*/seeds/*/per_image.npz: the evaluated split has {n_images} image; comparing "
                            "models needs at least 2 test images (their resamples are the test-set noise): not enough "
                            "data: evaluate on a larger test split")
        weights = bootstrap_weights(n_images, resamples, seed)
        full, resampled = zip(*(seed_scores(per_image[m][rule.array], rule, weights) for m in models))
        with warnings.catch_warnings():  # a resample where a score is undefined for every seed stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            boot = [np.nanmean(r, axis=1) for r in resampled]
        means = np.array([np.nanmean(f) if np.any(~np.isnan(f)) else np.nan for f in full])
        sign = 1.0 if rule.higher_is_better else -1.0
        best = models[int(np.nanargmax(sign * means))] if np.any(~np.isnan(means)) else models[0]
        b = models.index(best)
        pairs = {(j, i): compare(full[j], full[i], boot[j], boot[i])  # model j - model i, every ordered pair
                 for j in range(len(models)) for i in range(len(models)) if i != j}
        vs_best = {m: pairs[i, b] if i != b else Comparison(0.0, 0.0, 0.0, 0.0, math.inf, (len(full[b]),) * 2)
                   for i, m in enumerate(models)}
        score_margin = margin if rule.name == "miou" else 0.0
        chance = dict(zip(models, prob_best(list(full), boot, rule.higher_is_better, seed).tolist()))
        if min(len(f) for f in full) < 2:  # no seed-to-seed variance: no statement has a basis
            derived = {"verdicts": {m: "best" if m == best else NEEDS_SEEDS for m in models},
                       "better": np.zeros((len(models), len(models)), bool), "best_set": frozenset(),
                       "seeds_needed": {}, "needed_level": {}, "tied_neighbours": {}, "identical": []}
        else:
            derived = _against_best(models, best, vs_best, score_margin, pairs, sign * means, list(full))
        results[rule.name] = ScoreComparison(rule, models, means, [len(f) for f in full], best, vs_best,
                                             margin=score_margin, p_best=chance, **derived)
    return results

