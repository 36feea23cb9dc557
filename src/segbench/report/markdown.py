"""The summary as a Markdown table (plots/summary.md), every column rendered as spec.SUMMARY says."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..comparison import NEEDS_SEEDS
from ..stats import format_probability
from .spec import AXES, BRIEF_VERDICT, HEADLINE, MISSING, SUMMARY, Column


def _missing(value) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def fmt(value, column: Column) -> str:
    """One value as the column writes it: text as is, numbers in its format, missing as its `empty`."""
    if isinstance(value, str):
        return value or column.empty
    if _missing(value):
        return column.empty
    return column.number.format(int(value) if column.integer else value)


def _interval_cell(row: pd.Series, column: Column) -> str:
    """mean +- half the 95% interval over seeds (symmetric: Student t), or the mean alone for one seed."""
    low, high = (row.get(name) for name in column.companions)
    mean = row[column.name]
    if _missing(mean):
        return MISSING
    if _missing(low) or _missing(high):
        return fmt(mean, column)
    return f"{fmt(mean, column)} ± {(high - low) / 2:.4f}"


def _cost_cell(row: pd.Series, column: Column, name: str) -> str:
    """A cost with its 95% interval "v [low, high]" (asymmetric: a latency median's), or the value alone."""
    low, high = (row.get(c) for c in column.companions) if name == column.name else (
        row.get(f"{name}_ci95_low"), row.get(f"{name}_ci95_high"))  # another profiled size's own interval
    if _missing(row[name]) or _missing(low) or _missing(high):
        return fmt(row[name], column)
    return f"{fmt(row[name], column)} [{fmt(low, column)}, {fmt(high, column)}]"


def _vs_best_cell(row: pd.Series, column: Column, is_best: bool) -> str:
    """The difference to the best model with its 95% interval and its verdict (equivalent,
    inconclusive; nothing when significantly worse)."""
    low, high, _, verdict = column.companions
    diff = row.get(column.name)
    if _missing(diff):
        return MISSING
    if is_best:
        return "best"
    word = row.get(verdict)
    if word == NEEDS_SEEDS:  # one seed: the interval would cover test-image noise only
        return word if column.brief else f"{diff:+.4f} ({word})"
    if column.brief:
        return word if isinstance(word, str) and word else MISSING
    word = f" {word}" if isinstance(word, str) and word in ("equivalent", "inconclusive") else ""
    return f"{diff:+.4f} [{row[low]:+.4f}, {row[high]:+.4f}]{word}"


def shown_columns(df: pd.DataFrame, columns: Sequence[Column] = SUMMARY) -> list[tuple[Column, str, str]]:
    """(spec, summary column, header) of each column the Markdown shows, in spec order."""
    shown = []
    for column in columns:
        if column.name not in df:
            continue
        for name, header in [(column.name, column.header), *column.sized(df.columns)]:
            if column.show([None if _missing(v) else v for v in df[name]]):
                shown.append((column, name, header))
    return shown


def headline_and_details(columns: Sequence[Column]) -> tuple[list[Column], list[Column]]:
    """(the headline's columns in HEADLINE order, every other column in spec order) of `columns`."""
    by_name = {c.name: c for c in columns}
    head = [BRIEF_VERDICT if name == "miou_vs_best" else by_name[name] for name in HEADLINE if name in by_name]
    return head, [c for c in columns if c.name not in HEADLINE or c.name == "miou_vs_best"]


def summary_markdown(df: pd.DataFrame, best: dict[str, str], columns: Sequence[Column], margin: float,
                     notes: str = "") -> str:
    """plots/summary.md: the headline (at most 9 columns), the notes (what is significant first), then
    the details table with the legend of both."""
    head, details = headline_and_details(columns)
    return (markdown_table(df, best, head, margin, legend=False) + "\n" + notes + "\n**Details**\n\n"
            + markdown_table(df, best, details, margin))


def markdown_table(df: pd.DataFrame, best: dict[str, str] | None = None, columns: Sequence[Column] = SUMMARY,
                   margin: float = 0.01, legend: bool = True) -> str:
    """The summary table: mean +- 95% CI over seeds, the difference to the best with its interval
    and verdict, GPU columns only when some model has them, missing as a dash.
    `best`: score -> the best model (segbench.comparison)."""
    best = best or {}
    shown = shown_columns(df, columns)
    names = ["model", *(header for _, _, header in shown)]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for model, row in df.iterrows():
        cells = []
        for column, name, _ in shown:
            if column.interval:
                cells.append(_interval_cell(row, column))
            elif column.compare:
                cells.append(_vs_best_cell(row, column, best.get(column.compare) == model))
            elif column.source == "p_best":
                cells.append(format_probability(row[name]))
            elif column.cost_interval:
                cells.append(_cost_cell(row, column, name))
            else:
                cells.append(fmt(row[name], column))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if not legend:
        return "\n".join(lines) + "\n"
    axes = ", ".join(axis.short for axis in AXES if df[axis.column].notna().any())
    note = (f"\nQuality: the mean over the training seeds ± half its 95% interval (Student t; one seed: no interval). "
            f"`vs best`: the difference to the best model with its interval over seeds and test images (seeds and "
            f"paired image bootstrap, docs/statistics.md) at the level Holm's correction over every pair tests it at "
            f"(95% family-wise), so it excludes 0 exactly when the row is `worse`: `equivalent` when the whole "
            f"interval lies inside ±{margin:g}, `inconclusive` when it includes 0 but is wider. "
            f"`could be best`: no better-scoring model "
            f"is significantly better after Holm's correction over every pair; `P(best)`: the share of joint posterior draws "
            f"(image resample + seed term) in which the model has the best mIoU. "
            f"Costs: median or mean [95% interval] where measured. "
            f"`pareto`: the costs ({axes}) on whose mIoU Pareto front the model lies: no other model is significantly "
            f"better and not significantly costlier (Welch's test on the costs, Holm over the pairs). "
            f"Sorted by mIoU; {MISSING}: not measured.\n")
    return "\n".join(lines) + "\n" + note
