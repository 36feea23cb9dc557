"""One compared number between two revisions (a score or a cost) and its verdict.

The verdicts `segbench diff` gives, for the change from revision A to revision B:

- better / worse: the 95% interval of B - A excludes 0 (for size, FLOPs and parameters, which do
  not depend on the machine, any change);
- no detectable change: the interval includes 0 (the change is within seed, test-set or timing noise);
- not comparable: the two numbers do not measure the same thing (another test set, class list,
  task; for timings another environment, precision or a busy machine); `note` says which;
- no interval: the data hold no spread to judge the change by (one seed and no per-image files,
  a timing without its recorded spread, a single memory reading);
- identical: both revisions hold bit-identical per-seed values (the same run, or a re-run that
  reproduced it exactly): no interval is needed to say nothing changed;
- not comparable (another run): a timing from two runs. The intervals over profiling rounds or seeds
  are honest about one run; they say nothing about another machine on another day, which moves every
  timing alike (a re-run of one commit measured every latency 0.63-0.97x). The ratio B / A is shown;
  a verdict needs both timed side by side in one run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..stats import Comparison, compare

BETTER, WORSE, SAME, NOT_COMPARABLE, NO_INTERVAL = "better", "worse", "no detectable change", "not comparable", "no interval"
IDENTICAL, ANOTHER_RUN = "identical", "not comparable (another run)"
VERDICTS = (BETTER, WORSE, SAME, IDENTICAL, NOT_COMPARABLE, ANOTHER_RUN, NO_INTERVAL)


@dataclass(frozen=True)
class Row:
    """A number at A and at B; low/high: the 95% interval of B - A where there is one."""

    key: str
    label: str
    old: float | None
    new: float | None
    higher_is_better: bool
    verdict: str
    low: float | None = None
    high: float | None = None
    note: str = ""  # how it was judged, or why it could not be

    @property
    def diff(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def relative(self) -> float | None:
        """(B - A) / A, for costs; None when A is 0 or missing."""
        return None if self.diff is None or not self.old else self.diff / abs(self.old)

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "a": self.old, "b": self.new, "diff": self.diff,
                "ci95_low": self.low, "ci95_high": self.high, "relative": self.relative, "verdict": self.verdict,
                "higher_is_better": self.higher_is_better, "note": self.note}


def number(value) -> float | None:
    """A finite plain number, or a summary's mean; None for anything else."""
    if isinstance(value, dict) and "mean" in value:
        value = value["mean"]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def verdict_of(low: float, high: float, higher_is_better: bool) -> str:
    """BETTER / WORSE when the interval of B - A excludes 0, SAME otherwise."""
    if low <= 0 <= high:
        return SAME
    return BETTER if (low > 0) == higher_is_better else WORSE


def from_comparison(key: str, label: str, old: float, new: float, higher_is_better: bool, c: Comparison,
                    note: str) -> Row:
    """A row from segbench.stats.compare(B, A, ...): its interval decides the verdict."""
    return Row(key, label, old, new, higher_is_better, verdict_of(c.low, c.high, higher_is_better), c.low, c.high, note)


def welch(a_values: list[float], b_values: list[float]) -> Comparison | None:
    """B - A over per-seed values: segbench.stats.compare with no per-image part, i.e. the Welch interval
    (seed variance of each side, Welch-Satterthwaite degrees of freedom). None with fewer than 2 seeds a side."""
    if len(a_values) < 2 or len(b_values) < 2:
        return None
    return compare(b_values, a_values, [], [])


def seed_row(key: str, label: str, a_values: list[float], b_values: list[float], higher_is_better: bool,
             old: float | None = None, new: float | None = None, note: str = "Welch over seeds") -> Row | None:
    """A row judged by the Welch interval over per-seed values (old, new: the summaries' means, else the
    values'); None when neither side has the key."""
    old = old if old is not None else (sum(a_values) / len(a_values) if a_values else None)
    new = new if new is not None else (sum(b_values) / len(b_values) if b_values else None)
    if old is None and new is None:
        return None
    if old is None or new is None:
        return Row(key, label, old, new, higher_is_better, NOT_COMPARABLE, note="measured in one revision only")
    c = welch(a_values, b_values)
    if c is None:
        n = f"{len(a_values)} vs {len(b_values)} seeds"
        return Row(key, label, old, new, higher_is_better, NO_INTERVAL, note=f"{n}: a seed interval needs 2 a side")
    return from_comparison(key, label, old, new, higher_is_better, c, f"{note} ({len(a_values)} vs {len(b_values)})")


def exact_row(key: str, label: str, old: float | None, new: float | None, higher_is_better: bool = False) -> Row:
    """A number that does not depend on the machine or the seed: any change is real."""
    if old is None or new is None:
        return Row(key, label, old, new, higher_is_better, NOT_COMPARABLE, note="measured in one revision only")
    if math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-12):
        verdict = SAME
    else:
        verdict = BETTER if (new > old) == higher_is_better else WORSE
    return Row(key, label, old, new, higher_is_better, verdict, note="exact (machine-independent)")


def not_comparable(key: str, label: str, old, new, higher_is_better: bool, why: str) -> Row:
    return Row(key, label, number(old), number(new), higher_is_better, NOT_COMPARABLE, note=why)


def identical_row(key: str, label: str, a_values: list[float], b_values: list[float], higher_is_better: bool,
                  old: float | None = None, new: float | None = None) -> Row | None:
    """An IDENTICAL row when both revisions hold the same per-seed values bit for bit; None otherwise."""
    if not a_values or list(a_values) != list(b_values):
        return None
    mean = sum(a_values) / len(a_values)
    return Row(key, label, old if old is not None else mean, new if new is not None else mean, higher_is_better,
               IDENTICAL, note=f"bit-identical per-seed values ({len(a_values)} seeds)")


def another_run(key: str, label: str, old: float | None, new: float | None, higher_is_better: bool) -> Row:
    """A timing from two runs: no verdict, the ratio B / A shown (module doc)."""
    if old is None or new is None:
        return Row(key, label, old, new, higher_is_better, NOT_COMPARABLE, note="measured in one revision only")
    if old == new:
        return Row(key, label, old, new, higher_is_better, IDENTICAL, note="the same timing (the same run)")
    ratio = f"B / A = {new / old:.3g}x; " if old else ""
    return Row(key, label, old, new, higher_is_better, ANOTHER_RUN,
               note=f"{ratio}timed in two runs: only a side-by-side timing in one run can tell")
