"""The prose under the summary table: where quality was scored, which differences are significant,
which backends could not run, which models had not converged, where and how quietly the costs
were measured. Each note is a line (or nothing) and says what a reader must know to trust a number.
"""
from __future__ import annotations

import math

from ..comparison import NEEDS_SEEDS, ScoreComparison
from ..environment import describe_env, env_differences
from ..replicates import summarize
from ..stats import compare, format_probability, mean_of
from .spec import SCORE_LABELS
from .view import TIMED_PARTS, CostEnvironments, ModelMetrics


def split_note(metrics: list[ModelMetrics]) -> str:
    """One line saying which split the quality columns were scored on and where it came from."""
    scored: dict[str, list[str]] = {}
    for m in metrics:
        split, source = m.eval.get("split", "?"), m.eval.get("split_source", "not recorded")
        scored.setdefault(f"the {split} split ({source})", []).append(m.name)
    if len(scored) == 1:
        return f"Quality scored on {next(iter(scored))}.\n"
    return "Quality scored on " + "; ".join(f"{where} for {', '.join(names)}" for where, names in scored.items()) + ".\n"


def _names(models: list[str]) -> str:
    return ", ".join(models)


def _settle(result: ScoreComparison) -> str:
    """What more seeds would do for each inconclusive difference to the best, at the level Holm tests that
    pair at (the "could be best" statement it would settle)."""
    parts = []
    for m, n in result.seeds_needed.items():
        level = result.needed_level.get(m, 0.05)
        if n is None:
            parts.append(f"{result.best} vs {m}: more seeds cannot settle it: the test set is too small")
        elif n > result.seeds[result.models.index(m)]:
            parts.append(f"about {n} seeds would settle {result.best} vs {m} (tested at {level:.2g}, Holm's level "
                         "for that pair)")
    return (" " + "; ".join(parts) + " (80% power).") if parts else ""


def significance_sentence(result: ScoreComparison, label: str) -> str:
    """Plain sentences: the plausibly-best set (Holm), each one's probability of being best, which
    differences to the best are equivalent, inconclusive or significant, and what more seeds would do."""
    others = [m for m in result.models if m != result.best]
    by = {word: [m for m in others if result.verdicts.get(m) == word] for word in ("equivalent", "inconclusive", "worse")}
    direction = "higher" if result.rule.higher_is_better else "lower"
    best_set = [m for m in result.models if result.plausibly_best(m)] or [result.best]
    if min(result.seeds) < 2:
        return (f"{result.best} has the best mean {label}; {NEEDS_SEEDS} per model for any statement about which "
                "model is best, its probability, the verdicts or what more seeds would settle (1 seed: no seed-to-seed "
                "variance to compare against).")
    chances = ", ".join(f"{m} {format_probability(result.p_best.get(m, math.nan))}" for m in best_set)
    parts = [f"At 95% confidence (Holm's correction over all {len(result.models) * len(others) // 2} pairs): the best {label} "
             f"({direction} is better) could be {' or '.join(best_set)} (probability of being best: {chances}); "
             f"{result.best} has the best mean"]
    if by["equivalent"]:
        parts.append(f"equivalent to it (the whole interval of the difference inside ±{result.margin:g}): "
                     f"{_names(by['equivalent'])}")
    if by["inconclusive"]:
        parts.append(f"inconclusive (the interval includes 0 but is wider than ±{result.margin:g}): "
                     f"{_names(by['inconclusive'])}")
    if by["worse"]:
        parts.append(f"significantly worse: {_names(by['worse'])}")
    same = "".join(f" {a} and {b} have identical per-seed scores: they are tied, listed in params order."
                   for a, b in result.identical)
    return "; ".join(parts) + "." + _settle(result) + same


def unstable_clause(result: ScoreComparison, unstable: set[str] | frozenset[str]) -> str:
    """The rows of this comparison diagnosed unstable (report/diagnose.py): their place may change with other seeds."""
    named = [m for m in result.models if m in unstable]
    if not named:
        return ""
    return (f" Unstable (tied with a neighbour in the ranking, or a seed collapsed; see ⚠ below): {_names(named)}: "
            "their order may change with other seeds.")


def significance_note(comparisons: dict[str, ScoreComparison], unstable: set[str] | frozenset[str] = frozenset()) -> str:
    return "".join(significance_sentence(result, SCORE_LABELS.get(score, score)) + unstable_clause(result, unstable)
                   + "\n" for score, result in comparisons.items())


KIND_REASONS = {  # what each kind of diagnosis means, said once per kind (report/diagnose.py)
    "overfits": "validation stopped improving while train mIoU is well above test: more data, augmentation or "
                "regularisation, not more epochs",
    "collapsed": "a seed not significantly better than the class prior (95% paired bootstrap over test images)",
    "unstable": "its place in the ranking may change with other seeds",
    "unconverged": "still improving when training stopped: its rank says how fast it learns in this many epochs, "
                   "not how good it can get",
}


def diagnosis_note(diagnoses: dict[str, list] | None) -> str:
    """One ⚠ line per kind of diagnosis naming its rows, each with its evidence (report/diagnose.py), or nothing."""
    by_kind: dict[str, list[str]] = {}
    for model, found in (diagnoses or {}).items():
        for d in found:
            by_kind.setdefault(d.kind, []).append(f"{model} ({d.evidence})" if d.evidence else model)
    return "".join(f"⚠ {kind} ({KIND_REASONS.get(kind, '')}; docs/statistics.md): {'; '.join(rows)}.\n"
                   for kind, rows in by_kind.items())


def equal_time_note(equal, envs: CostEnvironments) -> str:
    """One sentence: the best validation mIoU within the equal training-time budget (report/equal_time.py)."""
    if equal is None or math.isnan(equal.budget_s) or not equal.best:
        return ""
    how = "plot.equal_time_s" if equal.chosen else "the shortest training time among learned models"
    sentence = (f"At equal training time ({equal.budget_s:.3g} s, {how}): {equal.best} reached the best validation "
                f"mIoU ({equal.miou[equal.best]:.4f}{_equal_time_interval(equal)}.")
    ids = {envs.ids.get((m, "train"), "") for m in equal.miou}
    if len(ids - {""}) > 1 or "mixed" in ids:
        sentence += (f" ⚠ The training times come from {len(ids - {''})} environments ({', '.join(sorted(ids - {''}))}): "
                     "they are not comparable, so neither is this.")
    return sentence + "\n"


def _equal_time_interval(equal) -> str:
    """The best model's 95% interval over seeds and its difference to the runner-up (Welch over seeds, one test)."""
    seeds = equal.per_seed.get(equal.best, [])
    if len(seeds) < 2:
        return f"; {NEEDS_SEEDS} for an interval)"
    own = summarize(seeds)
    text = f" ± {(own['ci95_high'] - own['ci95_low']) / 2:.4f}, 95% over {own['n']} seeds"
    others = sorted((v, m) for m, v in equal.miou.items() if m != equal.best and not math.isnan(v))
    if others and len(equal.per_seed.get(others[-1][1], [])) >= 2:
        runner = others[-1][1]
        c = compare(seeds, equal.per_seed[runner], [], [])  # Welch: seeds only, no per-image part for validation
        word = "significantly better" if c.significant else "not significantly better"
        text += f"; vs {runner} {c.diff:+.4f} [{c.low:+.4f}, {c.high:+.4f}], {word}"
    return text + ")"


def backend_note(metrics: list[ModelMetrics]) -> str:
    """One line per reason a backend was not measured (profile.json backend_errors), or nothing."""
    missing: dict[tuple[str, str], list[str]] = {}
    for m in metrics:
        for backend, reason in (m.profile.get("backend_errors") or {}).items():
            missing.setdefault((backend, str(reason)), []).append(m.name)
    lines = []
    for (backend, reason), names in missing.items():
        who = "any model" if len(names) == len(metrics) else ", ".join(names)
        lines.append(f"Backend {backend} not measured for {who}: {reason}.\n")
    return "".join(lines)


MISSED_IOU = 0.05  # a class every model scores below this IoU on: no model has learnt it


def missed_classes_note(metrics: list[ModelMetrics]) -> str:
    """One line naming the classes every model misses (plots/iou_per_class), or nothing: a blind spot of the
    data or the setup, not of one model."""
    scored = [m.eval.get("iou_per_class") or {} for m in metrics]
    classes = list(dict.fromkeys(c for ious in scored for c in ious))
    missed = [c for c in classes if all(mean_of(ious.get(c)) < MISSED_IOU for ious in scored if c in ious)
              and any(c in ious for ious in scored)]
    if not missed:
        return ""
    best = {c: max(mean_of(ious.get(c)) for ious in scored if c in ious) for c in missed}
    return (f"⚠ Every model misses {', '.join(f'{c} (best IoU {best[c]:.3f})' for c in missed)} (IoU < {MISSED_IOU:g}): "
            "a class too rare or too small at this resolution for this training; see plots/iou_per_class.\n")


def environment_note(envs: CostEnvironments) -> str:
    """One line: the environment every cost was measured in, or a warning naming the environments and how they differ."""
    distinct = envs.distinct
    if not distinct:
        return "Costs: the environment they were measured in is not recorded (metrics from an older segbench).\n"
    if not envs.mixed:
        return f"Costs measured in one environment ({distinct[0]}): {describe_env(envs.fingerprints[distinct[0]])}.\n"
    parts = []
    for env_id in distinct:
        users = sorted({f"{m} ({p})" for (m, p), i in envs.ids.items() if i == env_id})
        parts.append(f"{env_id} = {describe_env(envs.fingerprints[env_id])}, for {', '.join(users)}")
    split = sorted(f"{m} ({p})" for (m, p), i in envs.ids.items() if i == "mixed")
    if split:
        parts.append(f"seeds from different environments for {', '.join(split)}")
    first = envs.fingerprints[distinct[0]]
    differ = sorted({d.split(":")[0] for env_id in distinct[1:] for d in env_differences(first, envs.fingerprints[env_id])})
    return (f"⚠ Costs come from {len(distinct)} environments (they differ in {', '.join(differ) or 'seeds'}); compare timings "
            f"only within one, marked `env` in the table and on the plots: " + "; ".join(parts) + ".\n")


def contention_note(metrics: list[ModelMetrics]) -> str:
    """One line naming the timings measured while other processes were busy, or nothing."""
    busy = []
    for m in metrics:
        for part in TIMED_PARTS:
            if m.contended(part):
                share = getattr(m, part)["contention"].get("other_cpu", math.nan)
                busy.append(f"{m.name} {'training' if part == 'train' else 'profiling'} ({share:.0%} of the CPU)")
    if not busy:
        return ""
    return (f"⚠ Contended timings (other processes took more than the threshold of the CPU while they ran; docs/measurement.md "
            f"\"Honest timings\"): {', '.join(busy)}. Those costs are not comparable with quiet ones; quality is unaffected.\n")


def notes(metrics: list[ModelMetrics], comparisons: dict[str, ScoreComparison], envs: CostEnvironments,
          diagnoses: dict[str, list] | None = None, equal=None) -> str:
    """Every note, in the order the summary prints them; `diagnoses`: report/diagnose.py's, `equal`:
    report/equal_time.py's EqualTime."""
    unstable = {m for m, found in (diagnoses or {}).items() if any(d.kind == "unstable" for d in found)}
    return (significance_note(comparisons, unstable) + split_note(metrics) + equal_time_note(equal, envs)
            + backend_note(metrics) + missed_classes_note(metrics) + diagnosis_note(diagnoses)
            + environment_note(envs) + contention_note(metrics))
