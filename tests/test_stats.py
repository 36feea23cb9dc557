"""Uncertainty (segbench.stats, segbench.comparison): the Student-t interval against closed form,
per-image statistics that sum to the split's scores, a deterministic bootstrap, and calibration:
identical configurations come out tied in >= 95% of repeats, a planted margin comes out better."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segbench import stats
from segbench.comparison import compare_scores
from segbench.metrics import ConfusionMatrix, DepthErrors, PerImageCounts, scores_from_confusion

# --- over seeds -------------------------------------------------------------------------------------

def test_t_interval_closed_form():
    # n = 2: t(0.975, 1) = tan(pi * 0.475) (the Cauchy quantile); values 1 and 3: mean 2, sd sqrt(2)
    s = stats.summarize([1.0, 3.0])
    half = math.tan(math.pi * 0.475) * math.sqrt(2) / math.sqrt(2)
    assert s["mean"] == 2 and s["std"] == pytest.approx(math.sqrt(2)) and s["n"] == 2
    assert s["ci95_low"] == pytest.approx(2 - half) and s["ci95_high"] == pytest.approx(2 + half)
    # n = 3: t(0.975, 2) = sqrt(2 / (p (2 - p)) - 2) with p = 0.05 (Student t, 2 degrees of freedom) = 4.3027
    p = 0.05
    t2 = math.sqrt(2 / (p * (2 - p)) - 2)
    s = stats.summarize([0.5, 0.6, 0.7])
    assert s["ci95_high"] - s["mean"] == pytest.approx(t2 * 0.1 / math.sqrt(3))


def test_one_seed_and_nulls():
    assert stats.summarize([0.4]) == {"mean": 0.4, "std": None, "n": 1, "ci95_low": None, "ci95_high": None}
    assert stats.summarize([None, float("nan")])["n"] == 0
    assert stats.summarize([0.2, None, 0.4])["n"] == 2  # an undefined value (a class absent in one seed) is left out
    assert stats.mean_of({"mean": 0.3, "n": 1}) == 0.3 and stats.mean_of(0.5) == 0.5 and math.isnan(stats.mean_of(None))


# --- per-image statistics ------------------------------------------------------------------------------

def test_per_image_counts_sum_to_the_confusion_matrix_scores():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (5, 16, 16), generator=g)
    target = torch.randint(0, 4, (5, 16, 16), generator=g)
    target[0, :4] = 255  # ignored
    target[1] = 2  # one image with a single class
    whole, per_image = ConfusionMatrix(5, 255), PerImageCounts(5, 255)
    for sl in (slice(0, 2), slice(2, 5)):  # batches
        whole.update(pred[sl], target[sl])
        per_image.update(pred[sl], target[sl])
    counts = per_image.counts()
    assert counts.shape == (5, 5, 3)
    expected = scores_from_confusion(whole.matrix.numpy())
    assert stats.SCORE_RULES["miou"].compute(counts.sum(0)) == pytest.approx(expected.miou)  # class 4: absent, left out
    assert counts[..., 0].sum() + counts[..., 2].sum() == whole.matrix.sum()  # tp + fn: every non-ignored truth pixel


def test_per_image_depth_sums_give_the_split_rmse():
    g = torch.Generator().manual_seed(1)
    truth = torch.rand(6, 8, 8, generator=g) * 10
    truth[0, :2] = 0  # unknown depth
    pred = truth + torch.randn(6, 8, 8, generator=g)
    errors = DepthErrors(per_image=True)
    errors.update(pred[:3].unsqueeze(1), truth[:3])
    errors.update(pred[3:].unsqueeze(1), truth[3:])
    sums = errors.per_image_sums()
    assert sums.shape == (6, 7) and sums[:, 6].sum() == errors.scores().pixels
    assert stats.SCORE_RULES["depth_rmse"].compute(sums.sum(0)) == pytest.approx(errors.scores().rmse)


# --- the bootstrap ----------------------------------------------------------------------------------------

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


def test_same_seed_same_bootstrap_and_the_other_way_round():
    w = stats.bootstrap_weights(30, 200, seed=7)
    assert w.shape == (200, 30) and (w.sum(1) == 30).all()
    assert np.array_equal(w, stats.bootstrap_weights(30, 200, seed=7))
    assert not np.array_equal(w, stats.bootstrap_weights(30, 200, seed=8))
    rng = np.random.default_rng(0)
    truth = rng.integers(50, 800, (30, 5)).astype(float)
    per_image = {m: {"mask_counts": simulated_config(rng, truth, rng.normal(0, 0.8, (30, 1)), margin, 3)}
                 for m, margin in (("a", 0.0), ("b", 0.1))}
    first, again = compare_scores(per_image, 300, seed=3), compare_scores(per_image, 300, seed=3)
    assert first["miou"].vs_best["b"].as_dict() == again["miou"].vs_best["b"].as_dict()


def calibration(margin: float, seeds: int = 3, repeats: int = 150, resamples: int = 400) -> tuple[float, float]:
    """(share tied, share found better) of a configuration with `margin` against a baseline, over
    independent repeats (new seeds, new test set each time)."""
    rng = np.random.default_rng(2024)
    rule = stats.SCORE_RULES["miou"]
    tied = better = 0
    for r in range(repeats):
        truth = rng.integers(50, 800, (80, 6)) * (rng.random((80, 6)) < 0.7)
        effect = rng.normal(0, 0.8, (80, 1))
        a = simulated_config(rng, truth, effect, margin, seeds)
        b = simulated_config(rng, truth, effect, 0.0, seeds)
        w = stats.bootstrap_weights(80, resamples, seed=r)
        (a_full, a_boot), (b_full, b_boot) = stats.seed_mean_scores(a, rule, w), stats.seed_mean_scores(b, rule, w)
        c = stats.compare(a_full, b_full, a_boot, b_boot)
        tied += not c.significant
        better += c.low > 0
    return tied / repeats, better / repeats


def test_identical_configurations_are_tied_in_95_percent_of_repeats():
    tied, _ = calibration(margin=0.0)
    assert tied >= 0.95, tied


def test_a_planted_margin_is_found_better():
    _, better = calibration(margin=0.3, repeats=60)
    assert better >= 0.9, better


def test_ignoring_seed_noise_would_be_overconfident():
    """The seed term is what makes the test above pass: the image bootstrap alone calls identical
    configurations different far more often than 5% of the time when seeds vary."""
    rng = np.random.default_rng(5)
    rule = stats.SCORE_RULES["miou"]
    false_alarms = 0
    for r in range(60):
        truth = rng.integers(50, 800, (80, 6)).astype(float)
        effect = rng.normal(0, 0.8, (80, 1))
        a, b = (simulated_config(rng, truth, effect, 0.0, 3) for _ in range(2))
        w = stats.bootstrap_weights(80, 300, seed=r)
        (a_full, a_boot), (b_full, b_boot) = stats.seed_mean_scores(a, rule, w), stats.seed_mean_scores(b, rule, w)
        image_only = stats.compare(a_full.mean(keepdims=True), b_full.mean(keepdims=True), a_boot, b_boot)
        false_alarms += image_only.significant
    assert false_alarms / 60 > 0.1


def test_depth_scores_are_compared_lower_is_better():
    """Task seg_depth: depth RMSE gets the same treatment, the lowest RMSE being the best."""
    rng = np.random.default_rng(3)
    pixels = np.full((3, 40, 1), 1000.0)

    def sums(error_sd):  # [seeds, images, 7]: squared error sum ..., valid pixels last
        squared = (error_sd * rng.uniform(0.8, 1.2, (3, 40, 1))) ** 2 * pixels
        return np.concatenate([squared, np.zeros((3, 40, 5)), pixels], axis=-1)

    per_image = {"sharp": {"depth_sums": sums(0.5)}, "blurry": {"depth_sums": sums(1.0)},
                 "blurry_too": {"depth_sums": sums(1.0)}}
    depth = compare_scores(per_image, 400, seed=0)["depth_rmse"]
    assert depth.best == "sharp" and not depth.rule.higher_is_better
    assert depth.vs_best["blurry"].diff > 0 and depth.vs_best["blurry"].significant  # a higher RMSE: worse
    assert not depth.better[1, 2] and not depth.better[2, 1]  # the two blurry ones: neither is better
    assert depth.better[0, 1] and depth.better[0, 2]
    assert "miou" not in compare_scores(per_image, 100)  # no mask counts, no mIoU comparison
