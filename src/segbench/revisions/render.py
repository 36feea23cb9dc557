"""`segbench diff` as text: a terminal table, Markdown for a pull request, JSON for programs.

Reads a segbench.revisions.quality.RevisionDiff (or the experiments' summaries) and formats; decides nothing.
"""
from __future__ import annotations

import json
import math

from .costs import HEADLINE_COSTS
from .quality import HEADLINE, PAIRED, SCORES, WELCH, ExperimentSummary, ModelDiff, RevisionDiff
from .rows import ANOTHER_RUN, BETTER, IDENTICAL, NO_INTERVAL, NOT_COMPARABLE, SAME, VERDICTS, WORSE, Row

NONE = "—"
METHODS = {PAIRED: "paired bootstrap over the common test images + seed variance (mIoU, depth RMSE; other scores: Welch "
                   "over seeds)",
           WELCH: "Welch interval over the per-seed values in git (no per-image files)"}


# --- numbers ------------------------------------------------------------------------------------

def value_text(row: Row, value: float | None) -> str:
    if value is None:
        return NONE
    if row.key == "params":
        return f"{int(round(value)):,}"
    return f"{value:.4f}" if row.key in SCORES else f"{value:.4g}"


def change_text(row: Row) -> str:
    """Scores: B - A [95% CI]; costs: the relative change [its interval]."""
    if row.diff is None:
        return NONE
    interval = row.low is not None and row.high is not None
    if row.key in SCORES:
        return f"{row.diff:+.4f}" + (f" [{row.low:+.4f}, {row.high:+.4f}]" if interval else "")
    if row.relative is None:
        return f"{row.diff:+.4g}"
    scale = abs(row.old)
    return f"{row.relative:+.1%}" + (f" [{row.low / scale:+.1%}, {row.high / scale:+.1%}]" if interval else "")


def short_label(row: Row) -> str:
    return row.label.rsplit(" (", 1)[0]


def cost_summary(model: ModelDiff) -> str:
    """The costs in a few words: which changed, and whether the timings could be compared at all."""
    parts = []
    if model.timings_differ:
        fields = sorted({d.split(":")[0] for d in model.timings_differ})
        parts.append(f"timings not comparable ({', '.join(fields)})")
    changed = [r for r in model.costs if r.verdict in (BETTER, WORSE)]
    changed.sort(key=lambda r: r.key not in HEADLINE_COSTS)
    parts += [f"{short_label(r)} {change_text(r).split(' [')[0]} {r.verdict}" for r in changed[:3]]
    if len(changed) > 3:
        parts.append(f"+{len(changed) - 3} more")
    other = [r for r in model.costs if r.verdict == ANOTHER_RUN and r.old and r.new]
    if other:  # no verdict, the spread of the ratios: a shared drift moves them all alike
        ratios = sorted(r.new / r.old for r in other)
        parts.append(f"{len(other)} timings from another run (B / A {ratios[0]:.2f}-{ratios[-1]:.2f}x; not compared)")
    if not parts and model.costs and all(r.verdict == IDENTICAL for r in model.costs if r.verdict != SAME):
        return "identical"
    return "; ".join(parts) or "no detectable change"


def method_text(model: ModelDiff) -> str:
    return model.method or NONE


def _table(header: list[str], rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]


def _headline_keys(diff: RevisionDiff) -> list[str]:
    return [k for k in HEADLINE if any(r.key == k for m in diff.models for r in m.quality)]


def _row_for(model: ModelDiff, key: str) -> Row | None:
    return next((r for r in model.quality if r.key == key), None)


# --- terminal -----------------------------------------------------------------------------------

def text(diff: RevisionDiff, every: bool = False) -> str:
    lines = [f"segbench diff: A = {diff.a.label}, B = {diff.b.label}", *input_lines(diff), ""]
    header, rows = ["model"], []
    for key in _headline_keys(diff):
        header += [f"{SCORES[key][0]} A -> B", "B - A [95% CI]"]
    header += ["verdict", "method", "costs"]
    for m in diff.models:
        cells = [m.model]
        for key in _headline_keys(diff):
            r = _row_for(m, key)
            cells += [f"{value_text(r, r.old)} -> {value_text(r, r.new)}", change_text(r)] if r else [NONE, NONE]
        rows.append([*cells, m.verdict, method_text(m), cost_summary(m)])
    lines += _table(header, rows)
    foot = footer_lines(diff)
    lines += ["", foot[0], *(f"  {line}" for line in foot[1:])]
    if every:
        for m in diff.models:
            lines += ["", *model_block(m)]
    else:
        lines.append("segbench diff --all: every score and cost with its interval; --md, --json")
    return "\n".join(lines)


def input_lines(diff: RevisionDiff) -> list[str]:
    lines = []
    common = diff.common_params()
    if common:
        lines.append("params, every model: " + "; ".join(c.text() for c in common))
    for m in diff.models:
        own = [c for c in m.params if c not in common]
        if own:
            lines.append(f"params, {m.model}: " + "; ".join(c.text() for c in own))
    if not lines:
        lines.append("params: no model's settings differ")
    if diff.added or diff.removed:
        lines.append(f"models added in B: {', '.join(diff.added) or NONE}; removed: {', '.join(diff.removed) or NONE}")
    for label, models in diff.not_run.items():
        lines.append(f"not run at {label} (listed in params, no metrics): {', '.join(models)}")
    return lines


def footer_lines(diff: RevisionDiff) -> list[str]:
    """The verdict counts, the method behind each model's scores, and why timings could not be compared."""
    counts = {v: sum(m.verdict == v for m in diff.models) for v in VERDICTS}
    lines = ["verdicts (95%, headline scores): " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)]
    by_method: dict[str, list[ModelDiff]] = {}
    for m in diff.models:
        by_method.setdefault(m.method, []).append(m)
    for method, models in by_method.items():
        if not method:
            lines += [f"{m.model}: scores not comparable: {m.method_note}" for m in models]
            continue
        notes = list(dict.fromkeys(m.method_note for m in models))
        more = f"; {len(notes) - 1} more like it" if len(notes) > 1 else ""
        lines.append(f"{METHODS[method]}: {', '.join(m.model for m in models)} ({notes[0]}{more})")
    lines += [f"{m.model}: timings not comparable: {'; '.join(m.timings_differ)}" for m in diff.models if m.timings_differ]
    return lines


def model_block(m: ModelDiff) -> list[str]:
    lines = [f"{m.model}: {m.verdict}" + (f" ({m.method}: {m.method_note})" if m.method else "")]
    if m.params:
        lines.append("  params: " + "; ".join(c.text() for c in m.params))
    rows = [[r.label, value_text(r, r.old), value_text(r, r.new), change_text(r), r.verdict, r.note]
            for r in m.quality + m.costs]
    return lines + _table(["", "A", "B", "B - A [95% CI]", "verdict", "how"], rows, indent="  ")


# --- Markdown -----------------------------------------------------------------------------------

def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown(diff: RevisionDiff) -> str:
    lines = [f"### segbench diff: `{diff.a.label}` → `{diff.b.label}`", ""]
    lines += [f"- {line}" for line in input_lines(diff)] + [""]
    keys = _headline_keys(diff)
    header = ["model", *(f"{SCORES[k][0]} A → B" for k in keys), *("B − A (95% CI)" for _ in keys), "verdict", "costs"]
    lines += [_md_row(header), _md_row(["---"] * len(header))]
    for m in diff.models:
        rows = [_row_for(m, k) for k in keys]
        values = [f"{value_text(r, r.old)} → {value_text(r, r.new)}" if r else NONE for r in rows]
        changes = [change_text(r) if r else NONE for r in rows]
        verdict = f"**{m.verdict}**" if m.verdict in (BETTER, WORSE) else m.verdict
        lines.append(_md_row([f"`{m.model}`", *values, *changes, verdict, cost_summary(m)]))
    lines += ["", *(f"- {line}" for line in footer_lines(diff)), "", "<details><summary>every score and cost</summary>", ""]
    for m in diff.models:
        lines += [f"**{m.model}**: {m.verdict}" + (f" ({m.method}: {m.method_note})" if m.method else ""), "",
                  _md_row(["", "A", "B", "B − A (95% CI)", "verdict", "how"]), _md_row(["---"] * 6)]
        lines += [_md_row([r.label, value_text(r, r.old), value_text(r, r.new), change_text(r), r.verdict, r.note])
                  for r in m.quality + m.costs] + [""]
    lines.append("</details>")
    return "\n".join(lines)


# --- JSON ---------------------------------------------------------------------------------------

def as_json(diff: RevisionDiff) -> str:
    models = [{"model": m.model, "verdict": m.verdict, "method": m.method or None, "method_note": m.method_note,
               "params": [c.as_dict() for c in m.params], "timings_not_comparable": m.timings_differ,
               "quality": [r.as_dict() for r in m.quality], "costs": [r.as_dict() for r in m.costs]}
              for m in diff.models]
    out = {"a": {"name": diff.a.name, "rev": diff.a.sha}, "b": {"name": diff.b.name, "rev": diff.b.sha},
           "models": models, "added": diff.added, "removed": diff.removed, "not_run": diff.not_run,
           "common_params": [c.as_dict() for c in diff.common_params()], "worse": diff.worse(),
           "methods": {"paired": PAIRED, "confidence": 0.95}}
    return json.dumps(_finite(out), indent=2, allow_nan=False, default=str)


def _finite(value):
    """NaN and infinities are not JSON: an undefined number is null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- experiments --------------------------------------------------------------------------------

def experiments_text(baseline: str, summaries: list[ExperimentSummary], md: bool = False) -> str:
    header = ["experiment", "rev", "params changed", "better", "worse", "not comparable", "no interval"]
    rows = []
    for s in summaries:
        params = "; ".join(c.text() for c in s.params) or NONE
        if s.error:
            rows.append([s.name, (s.revision.sha or "")[:7], params, f"error: {s.error}", "", "", ""])
            continue
        rows.append([s.name, (s.revision.sha or "")[:7], params,
                     *(", ".join(s.models(v)) or NONE for v in (BETTER, WORSE, NOT_COMPARABLE, NO_INTERVAL))])
    title = f"{len(summaries)} experiment(s) against {baseline}; a model not named: {SAME}"
    if not summaries:
        return f"no DVC experiments in this repository (dvc exp run makes one); baseline {baseline}"
    if md:
        return "\n".join([f"### {title}", "", _md_row(header), _md_row(["---"] * len(header)), *map(_md_row, rows)])
    return "\n".join([title, *_table(header, rows)])


def experiments_json(baseline: str, summaries: list[ExperimentSummary]) -> str:
    out = {"baseline": baseline, "experiments": [s.as_dict() for s in summaries]}
    return json.dumps(_finite(out), indent=2, allow_nan=False, default=str)
