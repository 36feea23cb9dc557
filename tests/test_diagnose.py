"""Why a row sits where it does (segbench.report.diagnose) and equal training time (report/equal_time.py)."""
from __future__ import annotations

import math

import numpy as np
from fake_run import SEEDS, per_image_counts, prior_counts

from segbench.replicates import summarize
from segbench.report.diagnose import diagnose, diagnosis_text, unstable_models
from segbench.report.equal_time import best_so_far, equal_time, time_table
from segbench.report.notes import diagnosis_note, significance_note
from segbench.report.view import ModelMetrics


def row(name: str, mious, train_gap: float = 0.04, converged: bool = True, params: int = 1000,
        late_gain: float | None = None) -> ModelMetrics:
    mious = list(mious)
    evaluation = {"miou": summarize(mious), "train_miou": summarize([m + train_gap for m in mious]),
                  "generalization_gap": summarize([train_gap] * len(mious)), "seeds": list(SEEDS[:len(mious)])}
    train = {"converged": converged, "late_gain": late_gain if late_gain is not None else 0.0 if converged else 0.2}
    return ModelMetrics(name, train, evaluation, {"params": params})


def counts_of(model: str) -> np.ndarray:
    return np.stack([per_image_counts(model, s) for s in SEEDS]).astype(float)


def priors() -> np.ndarray:
    return np.stack([prior_counts()] * len(SEEDS)).astype(float)


def test_a_seed_with_the_priors_predictions_is_named_collapsed_and_good_seeds_are_not():
    good = counts_of("big")
    planted = good.copy()
    planted[0] = prior_counts()  # seed 0 never left the class prior
    metrics = [row("planted", [0.33, 0.88, 0.89]), row("good", [0.89, 0.9, 0.88])]
    found = diagnose(metrics, {"planted": {"mask_counts": planted}, "good": {"mask_counts": good}},
                     {"planted": priors(), "good": priors()}, list(SEEDS), resamples=500)
    planted_kinds = {d.kind: d for d in found["planted"]}
    assert "1 of 3 seeds collapsed" in planted_kinds["collapsed"].label
    assert "seed 0 " in planted_kinds["collapsed"].evidence and "seed 1" not in planted_kinds["collapsed"].evidence
    assert "unstable" in planted_kinds  # a collapse makes the row unstable
    assert not any(d.kind == "collapsed" for d in found["good"])
    assert "planted" in unstable_models(found)


def test_a_model_without_trainable_parameters_is_never_collapsed():
    metrics = [row("prior_baseline", [0.3] * 3, params=0)]
    found = diagnose(metrics, {"prior_baseline": {"mask_counts": priors()}}, {"prior_baseline": priors()}, list(SEEDS),
                     resamples=200)
    assert found["prior_baseline"] == []


def test_a_converged_row_with_a_large_generalisation_gap_overfits_and_a_small_gap_does_not():
    metrics = [row("overfit", [0.20, 0.19, 0.21], train_gap=0.26), row("fine", [0.60, 0.61, 0.59], train_gap=0.04),
               row("still_learning", [0.40, 0.41, 0.39], train_gap=0.26, converged=False)]
    found = diagnose(metrics, {}, {}, list(SEEDS), overfit_gap=0.10)
    assert [d.kind for d in found["overfit"]] == ["overfits"]
    assert "gap 0.260 > 0.10" in found["overfit"][0].evidence
    assert found["fine"] == []
    assert [d.kind for d in found["still_learning"]] == ["unconverged"]  # a gap before the plateau is not overfitting
    assert diagnosis_text(found["fine"]) == "" and diagnosis_text(found["overfit"]) == "overfits"
    assert "⚠ overfit" in diagnosis_note(found) and "fine" not in diagnosis_note(found)


def test_a_row_whose_validation_crawls_up_while_the_gap_is_large_overfits_and_is_not_called_unconverged():
    # the default run's MobileNetV3: train 0.47 vs test 0.19, validation +1% over its last 5 epochs (not
    # `converged` by the 1% rule); a 20% late gain is still learning
    crawling = row("crawling", [0.19, 0.17, 0.19], train_gap=0.26, converged=False, late_gain=0.012)
    learning = row("learning", [0.45, 0.43, 0.44], train_gap=0.26, converged=False, late_gain=0.20)
    found = diagnose([crawling, learning], {}, {}, list(SEEDS), overfit_gap=0.10)
    assert [d.kind for d in found["crawling"]] == ["overfits"]
    assert [d.kind for d in found["learning"]] == ["unconverged"]


def test_unstable_flags_both_rows_of_a_neighbouring_pair_the_comparison_cannot_order():
    from simulation import benchmark_trials

    from segbench.comparison import compare_scores

    per_image = next(benchmark_trials([0.05, 0.0, -1.5], 3, 1, 300, seed=4))  # m0, m1 close; m2 far below
    result = compare_scores(per_image, 300)["miou"]
    assert set(result.tied_neighbours) == {"m0", "m1"}  # the same pairwise intervals as the verdicts
    metrics = [row(m, [result.means[i]] * 3) for i, m in enumerate(result.models)]
    found = diagnose(metrics, {}, {}, list(SEEDS), tied_neighbours=result.tied_neighbours)
    assert [d.kind for d in found["m0"]] == ["unstable"] and [d.kind for d in found["m1"]] == ["unstable"]
    assert "m1" in found["m0"][0].evidence and found["m2"] == []
    assert diagnose(metrics, {}, {}, list(SEEDS))["m0"] == []  # no comparison: no statement


def test_a_significance_sentence_involving_an_unstable_row_says_so():
    from segbench.comparison import compare_scores

    comparisons = compare_scores({m: {"mask_counts": counts_of(m)} for m in ("big", "small")}, 200, 0)
    assert "Unstable" in significance_note(comparisons, {"small"}) and "small" in significance_note(comparisons, {"small"})
    assert "Unstable" not in significance_note(comparisons, set())


def curve(times, mious):
    import pandas as pd

    return best_so_far(pd.DataFrame({"elapsed_s": times, "val_miou": mious}))


def test_the_equal_time_budget_is_the_shortest_learned_models_time_and_scores_within_it():
    curves = {"fast": [curve([5, 10], [0.3, 0.4]), curve([5, 11], [0.2, 0.5])],
              "slow": [curve([8, 40, 80], [0.1, 0.6, 0.7]), curve([9, 40, 90], [0.2, 0.5, 0.8])]}
    equal = equal_time(curves)
    assert equal.budget_s == 10 and not equal.chosen  # fast's shortest seed
    assert math.isclose(equal.miou["fast"], (0.4 + 0.2) / 2)  # seed 2 had only its first epoch by 10 s
    assert math.isclose(equal.miou["slow"], 0.15) and equal.best == "fast"
    chosen = equal_time(curves, 45.0)
    assert chosen.chosen and chosen.best == "slow" and math.isclose(chosen.miou["slow"], 0.55)
    table = time_table(curves, {"fast": "a", "slow": "a"})
    slow = table[table["model"] == "slow"]
    assert slow["time_s"].min() == 9 and slow["time_s"].max() == 90  # from all seeds' first epoch to the last
    assert math.isclose(slow.loc[slow["time_s"] == 40, "val_miou"].item(), 0.55)
    assert slow.loc[slow["time_s"] == 40, "val_miou_max"].item() == 0.6


def test_best_so_far_never_falls():
    assert curve([1, 2, 3], [0.3, 0.2, 0.4])[:, 1].tolist() == [0.3, 0.3, 0.4]
