"""The prose under the summary table: where quality was scored, which differences are significant,
which backends could not run, which models had not converged, where and how quietly the costs
were measured. Each note is a line (or nothing) and says what a reader must know to trust a number.
"""
from __future__ import annotations

import math

from ..comparison import ScoreComparison
from ..environment import describe_env, env_differences
from ..stats import mean_of
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


def significance_sentence(result: ScoreComparison, label: str) -> str:
    """One plain sentence: which models are tied with the best at 95%, and how many seeds carry it."""
    tied = [m for m in result.models if m != result.best and result.tied_with_best(m)]
    worse = [m for m in result.models if m not in tied and m != result.best]
    direction = "higher" if result.rule.higher_is_better else "lower"
    parts = [f"At 95% confidence: {result.best} has the best {label} ({direction} is better)"]
    if tied:
        parts.append(f"{', '.join(tied)} {'is' if len(tied) == 1 else 'are'} statistically tied with it "
                     "(the interval of the difference includes 0)")
    if worse:
        parts.append(f"{', '.join(worse)} {'is' if len(worse) == 1 else 'are'} significantly worse")
    sentence = "; ".join(parts) + "."
    single = [m for m, n in zip(result.models, result.seeds) if n < 2]
    if single:
        who = "every model" if len(single) == len(result.models) else ", ".join(single)
        sentence += (f" 1 seed: no interval over seeds ({who}); the intervals of differences then cover test-set noise "
                     "only, not seed-to-seed noise.")
    return sentence


def significance_note(comparisons: dict[str, ScoreComparison]) -> str:
    return "".join(significance_sentence(result, SCORE_LABELS.get(score, score)) + "\n"
                   for score, result in comparisons.items())


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


def convergence_note(metrics: list[ModelMetrics]) -> str:
    """One line naming the models whose training had not plateaued, or nothing."""
    late = []
    for m in metrics:
        if m.converged() is False:
            gain = mean_of(m.train.get("late_gain"))
            window = m.train.get("late_epochs")
            late.append(f"{m.name} (+{gain:.0%} in its last {window} epochs)" if not math.isnan(gain) and
                        isinstance(window, int) else m.name)
    if not late:
        return ""
    return (f"⚠ Not converged (the best validation score still rose by 1% or more over the last quarter of the "
            f"epochs; README \"Converged or not\"): {', '.join(late)}. Their rank says how fast they learn in "
            "this many epochs, not how good they can get; marked * on the plots.\n")


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
    return (f"⚠ Contended timings (other processes took more than the threshold of the CPU while they ran; README "
            f"\"Honest timings\"): {', '.join(busy)}. Those costs are not comparable with quiet ones; quality is unaffected.\n")


def notes(metrics: list[ModelMetrics], comparisons: dict[str, ScoreComparison], envs: CostEnvironments) -> str:
    """Every note, in the order the summary prints them."""
    return (split_note(metrics) + significance_note(comparisons) + backend_note(metrics) + convergence_note(metrics)
            + environment_note(envs) + contention_note(metrics))
