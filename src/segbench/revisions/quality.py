"""Two revisions of one benchmark compared: per model, which scores and costs changed beyond noise.

Pure logic on loaded data (segbench.revisions.read reads it; segbench.revisions.render prints it). Per model
present in both revisions:

- **Scores** (mIoU, mRecall, accuracy, mDice, fwIoU, mAP; depth ones with task seg_depth): B - A
  with its 95% interval. When both revisions' per-image files are at hand and hold the same test
  images, the scores segbench.stats can resample (mIoU; depth RMSE) get the same method as between
  models of one run: a paired bootstrap over the common test images plus each side's seed variance
  (segbench.stats.bootstrap_weights, seed_mean_scores, compare). Every other score, and every score
  without per-image files, gets the Welch interval over the per-seed values in git.
- **Not comparable** scores: another task, another class list, another test set (the true pixels
  per image and class differ; without per-image files, the data the evaluate stages read differ).
- **Costs**: segbench.revisions.costs. **Inputs**: segbench.revisions.params.

A model's verdict is its headline scores' (mIoU; and depth RMSE with seg_depth): worse when one is
significantly worse, better when one is significantly better and none worse.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..stats import SCORE_RULES, bootstrap_weights, compare, seed_mean_scores
from .costs import cost_rows, timing_differences
from .params import ParamChange, model_changes
from .read import ModelMetrics, Revision, RevisionData
from .rows import (
    BETTER,
    IDENTICAL,
    NO_INTERVAL,
    NOT_COMPARABLE,
    SAME,
    WORSE,
    Row,
    from_comparison,
    identical_row,
    not_comparable,
    number,
    seed_row,
)

# score -> (label, higher is better)
SCORES = {"miou": ("mIoU", True), "mrecall": ("mRecall", True), "accuracy": ("accuracy", True), "mdice": ("mDice", True),
          "fwiou": ("fwIoU", True), "map": ("mAP", True), "depth_rmse": ("depth RMSE (m)", False),
          "depth_mae": ("depth MAE (m)", False), "depth_abs_rel": ("depth AbsRel", False),
          "depth_delta1": ("depth δ<1.25", True), "depth_delta2": ("depth δ<1.25²", True),
          "depth_delta3": ("depth δ<1.25³", True)}
HEADLINE = ("miou", "depth_rmse")
PAIRED, WELCH = "paired bootstrap", "Welch over seeds"


@dataclass(frozen=True)
class Evidence:
    """What a model's comparison may use beyond its metrics in git."""

    arrays_a: dict[str, np.ndarray] | None = None  # per-image statistics [seeds, images, ...] (revisions.arrays)
    arrays_b: dict[str, np.ndarray] | None = None
    missing: str = ""                               # why they are not both there
    data_a: set[str] | None = None                  # the evaluated data's hash (dvc.lock), for the fallback
    data_b: set[str] | None = None


@dataclass
class ModelDiff:
    model: str
    quality: list[Row]
    costs: list[Row]
    method: str                  # PAIRED or WELCH ("" when the scores are not comparable)
    method_note: str             # the details: images, resamples, seeds, or why there are no per-image files
    params: list[ParamChange] = field(default_factory=list)
    timings_differ: list[str] = field(default_factory=list)  # why its timings are not comparable (fields that differ)

    @property
    def headline(self) -> list[Row]:
        return [r for r in self.quality if r.key in HEADLINE]

    @property
    def verdict(self) -> str:
        verdicts = {r.verdict for r in self.headline} or {NO_INTERVAL}
        for verdict in (NOT_COMPARABLE, WORSE, BETTER, NO_INTERVAL):
            if verdict in verdicts:
                return verdict
        return IDENTICAL if verdicts == {IDENTICAL} else SAME


@dataclass
class RevisionDiff:
    a: Revision
    b: Revision
    models: list[ModelDiff]
    added: list[str]     # models with metrics in B only
    removed: list[str]   # in A only
    not_run: dict[str, list[str]]  # revision label -> models its params list without metrics

    def worse(self) -> list[str]:
        return [m.model for m in self.models if m.verdict == WORSE]

    def common_params(self) -> list[ParamChange]:
        """Changes every compared model shares (a shared section): shown once, not per model."""
        if not self.models:
            return []
        first = self.models[0].params
        return [c for c in first if all(c in m.params for m in self.models[1:])]


def diff_revisions(a: RevisionData, b: RevisionData, models: list[str], evidence: dict[str, Evidence],
                   resamples: int = 2000, seed: int = 0) -> RevisionDiff:
    """Every model of `models` (present in both) compared; the others listed as added or removed."""
    weights: dict[int, np.ndarray] = {}
    compared = []
    for model in models:
        ma, mb = a.models[model], b.models[model]
        ev = evidence.get(model, Evidence(missing="per-image files not read"))
        quality, method, note = quality_rows(ma, mb, _task(a, ma), _task(b, mb), ev,
                                             lambda n: weights.setdefault(n, bootstrap_weights(n, resamples, seed)))
        if method == PAIRED:
            note += f", {resamples} resamples"
        compared.append(ModelDiff(model, quality, cost_rows(ma, mb), method, note, model_changes(a.params, b.params, model),
                                  timing_differences(ma, mb)))
    compared.sort(key=lambda m: _summary_rank(b.models[m.model]))  # the summary's order: B's mIoU, best first
    return RevisionDiff(a.revision, b.revision, compared, [m for m in b.models if m not in a.models],
                        [m for m in a.models if m not in b.models],
                        {d.revision.label: d.not_run for d in (a, b) if d.not_run})


def _summary_rank(model: ModelMetrics) -> tuple[bool, float]:
    miou = number(model.eval.get("miou"))
    return miou is None, -(miou or 0.0)


def _task(data: RevisionData, model: ModelMetrics) -> str:
    task = (data.params or {}).get("task")
    if isinstance(task, str):
        return task
    return "seg_depth" if "depth_rmse" in model.eval else "segmentation"


def score_names(a: ModelMetrics, b: ModelMetrics) -> list[str]:
    return [s for s in SCORES if s in a.eval or s in b.eval]


def quality_rows(a: ModelMetrics, b: ModelMetrics, task_a: str, task_b: str, ev: Evidence,
                 weights_for) -> tuple[list[Row], str, str]:
    """(one row per score, the method, its details); weights_for(n_images) gives the shared resamples."""
    names = score_names(a, b)
    paired = ev.arrays_a is not None and ev.arrays_b is not None
    why = quality_mismatch(a, b, task_a, task_b, ev)
    if why:
        return [not_comparable(s, SCORES[s][0], a.eval.get(s), b.eval.get(s), SCORES[s][1], why) for s in names], "", why
    rows = []
    for s in names:
        label, higher = SCORES[s]
        rule = SCORE_RULES.get(s)
        same = identical_row(s, label, a.seed_values("eval", s), b.seed_values("eval", s), higher,
                             number(a.eval.get(s)), number(b.eval.get(s))) if a.seeds == b.seeds else None
        if same is not None:
            rows.append(same)
        elif paired and rule is not None and rule.array in ev.arrays_a and rule.array in ev.arrays_b:
            rows.append(paired_row(s, label, rule, ev.arrays_a[rule.array], ev.arrays_b[rule.array], weights_for))
        else:
            rows.append(seed_row(s, label, a.seed_values("eval", s), b.seed_values("eval", s), higher,
                                 number(a.eval.get(s)), number(b.eval.get(s))))
    seeds = f"{len(a.seeds)} vs {len(b.seeds)} seeds"
    if paired:
        images = next(iter(ev.arrays_b.values())).shape[1]
        return [r for r in rows if r], PAIRED, f"{images} common test images, {seeds}"
    return [r for r in rows if r], WELCH, f"{seeds}; {ev.missing}"


def paired_row(key: str, label: str, rule, arrays_a: np.ndarray, arrays_b: np.ndarray, weights_for) -> Row:
    """B - A over the same bootstrap resamples of the common test images, plus both sides' seed variance."""
    weights = weights_for(arrays_a.shape[1])
    a_full, a_boot = seed_mean_scores(arrays_a, rule, weights)
    b_full, b_boot = seed_mean_scores(arrays_b, rule, weights)
    a_full, b_full = a_full[~np.isnan(a_full)], b_full[~np.isnan(b_full)]
    if not len(a_full) or not len(b_full):
        return Row(key, label, None, None, rule.higher_is_better, NO_INTERVAL, note="undefined on this test set")
    c = compare(b_full, a_full, b_boot, a_boot)
    return from_comparison(key, label, float(np.mean(a_full)), float(np.mean(b_full)), rule.higher_is_better, c, PAIRED)


def quality_mismatch(a: ModelMetrics, b: ModelMetrics, task_a: str, task_b: str, ev: Evidence) -> str:
    """Why the two revisions' scores of a model do not measure the same thing ("" when they do)."""
    if task_a != task_b:
        return f"another task ({task_a} vs {task_b})"
    classes_a, classes_b = list(a.eval.get("iou_per_class") or {}), list(b.eval.get("iou_per_class") or {})
    if classes_a and classes_b and classes_a != classes_b:
        return f"another class list ({', '.join(classes_a)} vs {', '.join(classes_b)})"
    split_a, split_b = (a.eval.get("split"), a.eval.get("split_source")), (b.eval.get("split"), b.eval.get("split_source"))
    if split_a != split_b:
        return f"another test split ({' / '.join(map(str, split_a))} vs {' / '.join(map(str, split_b))})"
    if ev.arrays_a is not None and ev.arrays_b is not None:
        return test_images_mismatch(ev.arrays_a, ev.arrays_b)
    if ev.data_a and ev.data_b and ev.data_a != ev.data_b:
        return (f"another test set: the evaluated data changed (data/processed {_hashes(ev.data_a)} vs "
                f"{_hashes(ev.data_b)}), and without per-image files the test images cannot be matched")
    return ""


def _hashes(found: set[str]) -> str:
    return "/".join(sorted(h[:8] for h in found))


def test_images_mismatch(arrays_a: dict[str, np.ndarray], arrays_b: dict[str, np.ndarray]) -> str:
    """The same test images in the same order: true pixels per image and class (depth: valid pixels) agree."""
    for name, truth in (("mask_counts", lambda c: c[0, ..., 0] + c[0, ..., 2]), ("depth_sums", lambda s: s[0, :, -1])):
        if name not in arrays_a or name not in arrays_b:
            continue
        ta, tb = truth(arrays_a[name]), truth(arrays_b[name])
        if ta.shape[0] != tb.shape[0]:
            return f"another test set ({ta.shape[0]} vs {tb.shape[0]} test images)"
        if ta.shape != tb.shape or not np.array_equal(ta, tb):
            return f"another test set (the same number of images, {ta.shape[0]}, with other true pixels)"
    return ""


@dataclass
class ExperimentSummary:
    """One DVC experiment against the baseline: the params it set and what it did to each model."""

    name: str
    revision: Revision
    params: list[ParamChange]
    verdicts: dict[str, str] = field(default_factory=dict)  # model -> its verdict
    error: str = ""                                          # why it could not be compared

    def models(self, verdict: str) -> list[str]:
        return [m for m, v in self.verdicts.items() if v == verdict]

    def as_dict(self) -> dict:
        return {"name": self.name, "rev": self.revision.sha, "params": [c.as_dict() for c in self.params],
                "better": self.models(BETTER), "worse": self.models(WORSE), "not_comparable": self.models(NOT_COMPARABLE),
                "no_detectable_change": self.models(SAME), "error": self.error or None}


def summarize_experiment(name: str, revision: Revision, params: list[ParamChange], diff: RevisionDiff | None,
                         error: str = "") -> ExperimentSummary:
    verdicts = {m.model: m.verdict for m in diff.models} if diff is not None else {}
    return ExperimentSummary(name, revision, params, verdicts, error)
