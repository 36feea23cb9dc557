"""Uncertainty (segbench.stats, segbench.comparison): the Student-t interval against closed form,
per-image statistics that sum to the split's scores, a deterministic bootstrap, P(best) and seeds
needed, and the calibration of every statement on simulated benchmarks (tests/simulation.py; fixed seeds,
repeat counts chosen so each takes a few seconds; benchmarks/bench_stats.py prints the same figures)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from simulation import benchmark_trials, calibration_trials, round_medians, simulated_config

from segbench import replicates, stats
from segbench.comparison import compare_scores
from segbench.keys import LatencyKey
from segbench.metrics import ConfusionMatrix, DepthErrors, PerImageCounts, scores_from_confusion
from segbench.report.cost_tests import latency_estimate, welch
from segbench.timing import combined_summary

# --- over seeds -------------------------------------------------------------------------------------

def test_t_interval_closed_form():
    # n = 2: t(0.975, 1) = tan(pi * 0.475) (the Cauchy quantile); values 1 and 3: mean 2, sd sqrt(2)
    s = replicates.summarize([1.0, 3.0])
    half = math.tan(math.pi * 0.475) * math.sqrt(2) / math.sqrt(2)
    assert s["mean"] == 2 and s["std"] == pytest.approx(math.sqrt(2)) and s["n"] == 2
    assert s["ci95_low"] == pytest.approx(2 - half) and s["ci95_high"] == pytest.approx(2 + half)
    # n = 3: t(0.975, 2) = sqrt(2 / (p (2 - p)) - 2) with p = 0.05 (Student t, 2 degrees of freedom) = 4.3027
    p = 0.05
    t2 = math.sqrt(2 / (p * (2 - p)) - 2)
    s = replicates.summarize([0.5, 0.6, 0.7])
    assert s["ci95_high"] - s["mean"] == pytest.approx(t2 * 0.1 / math.sqrt(3))


def test_one_seed_and_nulls():
    assert replicates.summarize([0.4]) == {"mean": 0.4, "std": None, "n": 1, "ci95_low": None, "ci95_high": None}
    assert replicates.summarize([None, float("nan")])["n"] == 0
    assert replicates.summarize([0.2, None, 0.4])["n"] == 2  # an undefined value (a class absent in one seed) is left out
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
    tied = better = 0
    for a_full, b_full, a_boot, b_boot in calibration_trials(margin, seeds, repeats, resamples):
        c = stats.compare(a_full, b_full, a_boot, b_boot)
        tied += not c.significant
        better += c.low > 0
    return tied / repeats, better / repeats


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


# --- across k models: Holm, equivalence, seeds needed, probability of best --------------------------

def test_holm_keeps_what_separate_tests_would_reject():
    p = [0.03, 0.04, 0.20]  # each below 0.05 alone; Holm's first threshold is 0.05 / 3
    assert [x < 0.05 for x in p] == [True, True, False]
    assert stats.holm_reject(p).tolist() == [False, False, False]
    # step-down: 0.001 <= 0.05/3, 0.02 <= 0.05/2, 0.5 > 0.05; order of the input does not matter
    assert stats.holm_reject([0.5, 0.001, 0.02]).tolist() == [False, True, True]
    assert stats.holm_reject([0.001, 0.04, 0.01]).tolist() == [True, True, True]  # 0.04 <= 0.05 / 1 last


def test_p_value_agrees_with_the_interval():
    for diff in (-0.05, -0.02, 0.0, 0.03):
        c = stats.Comparison(diff, diff - 2.2 * 0.012, diff + 2.2 * 0.012, 0.012, 12.0, (3, 3))
        lo, hi = diff - stats.t_quantile(12.0) * 0.012, diff + stats.t_quantile(12.0) * 0.012
        assert (c.p_value < 0.05) == (lo > 0 or hi < 0)
    assert stats.Comparison(0.0, 0.0, 0.0, 0.0, math.inf, (3, 3)).p_value == 1.0


def test_equivalent_inconclusive_and_significant():
    narrow = stats.Comparison(-0.002, -0.006, 0.002, 0.002, 20.0, (5, 5))
    wide = stats.Comparison(-0.045, -0.148, 0.057, 0.05, 4.0, (3, 3))  # unet_aug vs unet
    apart = stats.Comparison(-0.1, -0.15, -0.05, 0.02, 4.0, (3, 3))
    assert stats.verdict(narrow, 0.01) == stats.EQUIVALENT
    assert stats.verdict(wide, 0.01) == stats.INCONCLUSIVE
    assert stats.verdict(apart, 0.01) == stats.SIGNIFICANT
    assert stats.verdict(narrow, 0.005) == stats.INCONCLUSIVE  # the margin, not only the 0, decides


def test_seeds_needed_solves_the_power_equation_and_knows_when_the_test_set_is_too_small():
    from scipy import stats as st

    c = stats.Comparison(-0.045, -0.148, 0.057, 0.05, 4.0, (3, 3), seed_var=(0.003, 0.002), boot_var=0.0001)
    n = stats.seeds_needed(c)
    total = sum(c.seed_var)

    def reaches(k, level=0.05):
        df = (c.boot_var + total / k) ** 2 / sum((v / k) ** 2 / (k - 1) for v in c.seed_var)
        return 0.045 >= (st.t.ppf(1 - level / 2, df) + st.t.ppf(0.8, df)) * math.sqrt(c.boot_var + total / k)
    assert n is not None and reaches(n) and not reaches(n - 1)
    # the normal approximation: n ~ var / ((d / 2.8)^2 - boot_var)
    assert n == pytest.approx(total / ((0.045 / 2.8) ** 2 - 0.0001), rel=0.25)
    # at Holm's level for a pair (0.05 / 7): more seeds
    strict = stats.seeds_needed(c, confidence=1 - 0.05 / 7)
    assert strict > n and reaches(strict, 0.05 / 7) and not reaches(strict - 1, 0.05 / 7)
    # image variance alone bigger than the difference can carry: no number of seeds helps
    small_test_set = stats.Comparison(-0.045, -0.148, 0.057, 0.05, 4.0, (3, 3), seed_var=(0.003, 0.002),
                                      boot_var=0.0004)
    assert stats.seeds_needed(small_test_set) is None


def test_probability_of_best_from_posterior_draws():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.01, 2000)  # the shared image resamples move both models alike
    clear = [np.array([0.55, 0.56, 0.54]), np.array([0.50, 0.51, 0.49])]
    p = stats.prob_best(clear, [base + 0.05, base], True)
    assert p.sum() == pytest.approx(1.0) and p[0] > 0.95
    assert stats.prob_best(clear, [base + 0.05, base], False)[1] > 0.95  # lower is better
    # the seed term is Student t over the seeds' spread: a seed mean can leave the observed range
    # (3 seeds resampled with replacement never could: P(best) 0 for the second model here)
    spread = [np.array([0.60, 0.60, 0.40]), np.array([0.55, 0.55, 0.55])]
    p = stats.prob_best(spread, [np.full(2000, 0.5333), np.full(2000, 0.55)], True)
    assert 0.2 < p[0] < 0.5
    # one seed: no basis for the seed term
    assert np.isnan(stats.prob_best([np.array([0.6]), np.array([0.5, 0.4])], [base, base], True)).all()


def test_probabilities_are_printed_never_as_0_or_100_percent():
    assert [stats.format_probability(p) for p in (0.0, 0.004, 0.5, 0.996, 1.0)] == ["<1%", "<1%", "50%", ">99%", ">99%"]
    assert stats.format_probability(math.nan) == "needs >= 2 seeds"


def test_compare_scores_names_the_plausibly_best_set_and_verdicts():
    rng = np.random.default_rng(5)
    truth = rng.integers(50, 800, (80, 6)).astype(float)
    effect = rng.normal(0, 0.8, (80, 1))
    per_image = {"top": {"mask_counts": simulated_config(rng, truth, effect, 0.4, 3)},
                 "close": {"mask_counts": simulated_config(rng, truth, effect, 0.35, 3)},
                 "low": {"mask_counts": simulated_config(rng, truth, effect, -0.6, 3)}}
    result = compare_scores(per_image, 500, seed=0, margin=0.01)["miou"]
    best = result.best
    assert result.verdicts[best] == "best" and result.verdicts["low"] == "worse"
    assert best in result.best_set and "low" not in result.best_set
    assert sum(result.p_best.values()) == pytest.approx(1.0) and result.p_best["low"] < 0.01
    for m, word in result.verdicts.items():
        if word == "inconclusive":
            assert m in result.seeds_needed


# --- calibration of every statement (the figures docs/statistics.md quotes) ---------------------------

def test_interval_coverage_at_3_seeds():
    tied, _ = calibration(margin=0.0, repeats=200)
    assert tied >= 0.93, tied  # the true difference is 0: covered when tied


def test_two_identical_models_rarely_get_a_lower_p_best_under_2_5_percent():
    low = [stats.prob_best([a, b], [ab, bb], True).min() <= 0.025 for a, b, ab, bb in calibration_trials(0.0, 3, 300, 400)]
    assert np.mean(low) <= 0.06, np.mean(low)  # 9.3% with the seed-redrawing bootstrap


def test_identical_models_are_called_worse_with_family_wise_rate_under_5_percent():
    any_worse = [any(v == "worse" for v in compare_scores(per, 300)["miou"].verdicts.values())
                 for per in benchmark_trials([0.0] * 5, 3, 100, 300)]
    assert np.mean(any_worse) <= 0.05, np.mean(any_worse)


def test_the_true_best_is_in_the_plausibly_best_set():
    inside = [("m0" in compare_scores(per, 300)["miou"].best_set)
              for per in benchmark_trials([0.3, 0.25, 0.1, 0.0], 3, 80, 300, seed=11)]
    assert np.mean(inside) >= 0.95, np.mean(inside)


def test_a_model_tied_with_the_best_has_p_best_of_at_least_1_percent():
    """Two models: P(best) is P(beats the other), the statement the interval makes. (With 3 or more, a
    model barely tied with the best that must also beat the others can fall under 1%: docs/statistics.md.)"""
    tied, low = 0, 0
    for per in benchmark_trials([0.3, 0.2], 3, 80, 500, seed=11):
        result = compare_scores(per, 500)["miou"]
        for m in result.best_set - {result.best}:
            tied += result.tied_with_best(m)
            low += result.tied_with_best(m) and result.p_best[m] < 0.01
    assert tied >= 20 and low == 0, (tied, low)


def test_seeds_needed_is_within_1_5x_of_what_the_simulation_needs():
    """3-seed pilots predict (median) the seeds per model at which a 0.12-logit margin is found at 80%
    power; the simulation, at a third fewer seeds, finds it less often than that, and at half more, at least."""
    predicted = np.median([stats.seeds_needed(stats.compare(*t)) or stats.MAX_SEEDS
                           for t in calibration_trials(0.12, 3, 60, 300)])

    def power(seeds: int) -> float:
        return float(np.mean([stats.compare(*t).low > 0 for t in calibration_trials(0.12, seeds, 120, 200)]))
    assert power(math.ceil(predicted / 1.5) - 1) < 0.8 <= power(math.floor(predicted * 1.5)), predicted


def _latency(true_ms: float, rounds: int, rng):
    s = combined_summary(LatencyKey("cpu"), round_medians(true_ms, rounds, rng))
    return latency_estimate(s["latency_cpu_ms"], s["latency_cpu_ci95_low_ms"], s["latency_cpu_ci95_high_ms"], rounds)


def test_latency_test_calls_identical_distributions_the_same_and_finds_20_percent_over_6_rounds():
    rng = np.random.default_rng(3)
    same = [not welch(_latency(10.0, 6, rng), _latency(10.0, 6, rng)).significant for _ in range(300)]
    found = [welch(_latency(12.0, 6, rng), _latency(10.0, 6, rng)).low > 0 for _ in range(300)]
    assert np.mean(same) >= 0.95 and np.mean(found) >= 0.8, (np.mean(same), np.mean(found))
    assert _latency(10.0, 1, rng) is None  # one round: no spread between processes, no test


def test_a_test_split_of_one_image_is_not_enough_data():
    from segbench.errors import DataError

    rng = np.random.default_rng(1)
    truth = rng.integers(50, 800, (1, 6)).astype(float)
    per_image = {m: {"mask_counts": simulated_config(rng, truth, np.zeros((1, 1)), 0.0, 3)} for m in "ab"}
    with pytest.raises(DataError, match="has 1 image; comparing models needs at least 2 test images.*not enough data"):
        compare_scores(per_image, 100)


def test_identical_per_seed_scores_are_tied_and_named_not_unstable():
    rng = np.random.default_rng(2)
    truth = rng.integers(50, 800, (40, 6)).astype(float)
    counts = simulated_config(rng, truth, rng.normal(0, 0.8, (40, 1)), 0.0, 3)
    result = compare_scores({"a": {"mask_counts": counts}, "b": {"mask_counts": counts.copy()}}, 200)["miou"]
    assert result.verdicts["b"] in ("equivalent", "inconclusive") and result.identical == [("a", "b")]
    assert result.tied_neighbours == {} and result.p_best["a"] == pytest.approx(0.5, abs=0.1)


def test_holm_levels_give_intervals_that_agree_with_holm():
    """An interval at its pair's Holm level excludes 0 (p <= level) exactly when Holm rejects the pair,
    also where a pair passes its own step after the procedure has stopped (the case a plain 95%
    interval or the pair's own step gets wrong)."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        p = rng.uniform(0, 0.1, rng.integers(1, 10)) ** rng.uniform(0.5, 3)
        assert np.array_equal(p <= stats.holm_levels(p), stats.holm_reject(p)), p
    p = np.array([0.045, 0.03])  # 0.03 fails its step 0.025, so 0.045 is not rejected though 0.045 <= 0.05
    assert not stats.holm_reject(p).any() and np.allclose(stats.holm_levels(p), [0.025, 0.025])
