"""Why a row sits where it does: each model's diagnoses, each with its evidence (docs/statistics.md).

Pure: numbers in (metrics, per-image counts), diagnoses out; no files, no drawing.

- overfits: validation has stopped improving (its best score rose by less than PLATEAU_GAIN over the
  last quarter of the epochs, train.json `late_gain` averaged over seeds) and the mean train - test
  mIoU over seeds (eval.json `generalization_gap`) is above `plot.overfit_gap`. Looser than
  `converged` (1%): a row whose validation crawls up by 1-2% while the gap is 0.25 overfits;
  such a row is not also called unconverged;
- collapsed: a seed whose test predictions are not significantly better than the class prior's
  (95% paired bootstrap over the test images, segbench.stats, on that seed's counts against the
  prior's); a model with no trainable parameters (the prior itself) never collapses;
- unstable: a collapsed seed, or a neighbour in the ranking by mean mIoU whose difference's 95%
  interval includes 0 (segbench.comparison's `tied_neighbours`: the same paired model as every other
  statement, so both rows of such a pair are flagged, and a row's n, the other row's spread and the
  test-image noise all count);
- unconverged: train.json `converged` false (docs/measurement.md "Converged or not").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..stats import SCORE_RULES, bootstrap_weights, compare, seed_mean_scores
from .view import ModelMetrics

OVERFIT_GAP = 0.10  # plot.overfit_gap's default: train - test mIoU of a converged row that is overfitting
PLATEAU_GAIN = 0.05  # validation's best score rose by less than this over the last quarter: it has stopped improving


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # overfits, collapsed, unstable, unconverged
    label: str  # what the summary's `diagnosis` column says
    evidence: str  # the numbers behind it, for the ⚠ note


def collapsed_seeds(counts: np.ndarray, prior: np.ndarray, seeds: list[int], weights: np.ndarray) -> list[tuple]:
    """(seed, its test mIoU, the prior's, the 95% interval's lower end of seed - prior) for every seed
    not significantly better than the prior. counts, prior: [seeds, images, classes, 3]."""
    rule = SCORE_RULES["miou"]
    found = []
    for k, seed in enumerate(seeds):
        own_full, own_boot = seed_mean_scores(counts[k:k + 1], rule, weights)
        prior_full, prior_boot = seed_mean_scores(prior[k:k + 1], rule, weights)
        difference = compare(own_full, prior_full, own_boot, prior_boot)
        if not difference.low > 0:
            found.append((seed, float(own_full[0]), float(prior_full[0]), difference.low))
    return found


def _overfits(m: ModelMetrics, gap_threshold: float) -> Diagnosis | None:
    gap, gain = m.get("eval", "generalization_gap"), m.get("train", "late_gain")
    plateau = gain < PLATEAU_GAIN if not math.isnan(gain) else m.converged() is True
    if not plateau or math.isnan(gap) or gap <= gap_threshold:
        return None
    return Diagnosis("overfits", "overfits", f"train mIoU {m.get('eval', 'train_miou'):.3f} vs test "
                     f"{m.get('eval', 'miou'):.3f} (gap {gap:.3f} > {gap_threshold:.2f}) while validation has stopped "
                     "improving: more data, augmentation or regularisation, not more epochs")


def _collapsed(collapsed: list[tuple], n_seeds: int) -> Diagnosis | None:
    if not collapsed:
        return None
    named = ", ".join(f"seed {s} {score:.3f}" for s, score, _, _ in collapsed)
    label = f"{len(collapsed)} of {n_seeds} seeds collapsed"
    return Diagnosis("collapsed", label, f"{named} against the class prior's {collapsed[0][2]:.3f}; "
                     "the mean keeps every seed")


def _unstable(neighbours: tuple, collapsed: list[tuple]) -> Diagnosis | None:
    if collapsed:
        return Diagnosis("unstable", "unstable", "a seed collapsed: another seed could move the row")
    if neighbours:
        return Diagnosis("unstable", "unstable", f"its order with {', '.join(neighbours)} (next in the ranking) is not "
                         "settled: the 95% interval of the difference includes 0")
    return None


def _unconverged(m: ModelMetrics) -> Diagnosis | None:
    if m.converged() is not False:
        return None
    gain = m.get("train", "late_gain")
    detail = f"best validation score +{gain:.0%} in its last epochs" if not math.isnan(gain) else ""
    return Diagnosis("unconverged", "unconverged", detail)


def diagnose(metrics: list[ModelMetrics], per_image: dict[str, dict[str, np.ndarray]],
             prior: dict[str, np.ndarray | None], seeds: list[int], overfit_gap: float = OVERFIT_GAP,
             resamples: int = 2000, bootstrap_seed: int = 0,
             tied_neighbours: dict[str, tuple] | None = None) -> dict[str, list[Diagnosis]]:
    """{model: its diagnoses, in the order overfits, collapsed, unstable, unconverged} ([] for none).
    per_image: segbench.comparison.load_per_image's; prior: per model the seeds' class-prior counts
    [seeds, images, classes, 3] (evaluate's `prior_mask_counts`; None when not recorded); tied_neighbours:
    the mIoU comparison's (segbench.comparison), none when not given."""
    found = {}
    for m in metrics:
        counts, prior_counts = per_image.get(m.name, {}).get("mask_counts"), prior.get(m.name)
        collapsed: list[tuple] = []
        if counts is not None and prior_counts is not None and m.get("profile", "params") != 0:
            weights = bootstrap_weights(counts.shape[1], resamples, bootstrap_seed)
            collapsed = collapsed_seeds(counts, prior_counts, seeds, weights)
        overfits = _overfits(m, overfit_gap)
        candidates = (overfits, _collapsed(collapsed, len(seeds)), _unstable((tied_neighbours or {}).get(m.name, ()), collapsed),
                      None if overfits else _unconverged(m))
        found[m.name] = [d for d in candidates if d is not None]
    return found


def diagnosis_text(diagnoses: list[Diagnosis]) -> str:
    """The summary's `diagnosis` cell: the labels, "" for none."""
    return "; ".join(d.label for d in diagnoses)


def unstable_models(diagnoses: dict[str, list[Diagnosis]]) -> set[str]:
    return {model for model, found in diagnoses.items() if any(d.kind == "unstable" for d in found)}
