"""The plot stage's one writer: every figure's data file and PNG, summary.csv and summary.md.

Every figure is written twice: as a data file that DVC plots (dvc.yaml `plots:`, so
`dvc plots diff` compares revisions) and as a PNG that shows anywhere. The file names are
fixed whatever the models and profiled sizes; what a run may not measure (GPU latency, depth)
is drawn only when measured, in the folder out plots/measured/ (segbench.paths.MEASURED_FIGURES),
which always holds mIoU against throughput and peak memory.

Quality is a mean over the training seeds with its 95% interval (metrics/<model>/eval.json, from
the aggregate stage); segbench.comparison says which differences are significant. A model is off
a Pareto front only when another model is significantly better at no more cost.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from .. import paths
from ..comparison import compare_scores, load_per_image
from ..io import save_figure, write_text
from . import figures, tables
from .deploy import deployment_column, deployment_key
from .diagnose import OVERFIT_GAP, diagnose, diagnosis_text
from .equal_time import equal_time
from .markdown import summary_markdown
from .notes import notes
from .spec import FIGURES, SUMMARY, FigureSpec
from .summary import summary_table
from .view import ReportInputs, cost_environments, learned, load_metrics, load_prior_counts


def to_csv(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_csv(index=index, float_format="%.6g", lineterminator="\n")


def write_figure(figure: FigureSpec, inputs: ReportInputs, plots_dir: Path, colours: dict[str, tuple], dpi: int) -> None:
    """One figure: its table -> plots/<stem>.csv -> plots/<stem>.png; a figure of what this run did not
    measure (spec.FigureSpec.measured: GPU latency, depth) gets no file."""
    csv, png = paths.report_figure(figure.stem, plots_dir)
    if figure.measured and not getattr(tables, figure.measured)(inputs):
        return
    table = getattr(tables, figure.table)(inputs, figure.axis)
    if figure.measured:  # the folder's one dvc.yaml definition plots x: cost, y: score for every file in it
        table = table.assign(cost=table[figure.axis.column if figure.axis else "cost"], score=table[figure.score])
    write_text(csv, to_csv(table))
    save_figure(getattr(figures, figure.draw)(table, colours, figure.axis), png, dpi)


def build_report(metrics_dir: Path, plots_dir: Path, models: list[str], seeds: list[int] | tuple[int, ...] = (0,),
                 dpi: int = 120, resamples: int = 2000, bootstrap_seed: int = 0,
                 equivalence_margin: float = 0.01, overfit_gap: float = OVERFIT_GAP,
                 equal_time_s: float | None = None, deployment: str = "auto") -> pd.DataFrame:
    """Write every table, data file and PNG of the report; return the summary table. `overfit_gap`,
    `equal_time_s`, `deployment`: params.yaml plot's (report/diagnose.py, equal_time.py, deploy.py)."""
    seeds = list(seeds)
    metrics = load_metrics(metrics_dir, models, seeds)
    per_image = load_per_image(metrics_dir, models, seeds)
    comparisons = compare_scores(per_image, resamples, bootstrap_seed, equivalence_margin)
    diagnoses = diagnose(metrics, per_image, load_prior_counts(metrics_dir, models, seeds), seeds, overfit_gap,
                         resamples, bootstrap_seed, comparisons["miou"].tied_neighbours if "miou" in comparisons else None)
    log_dirs = {m: {seed: paths.train_log_dir(m, seed, plots_dir) for seed in seeds} for m in models}
    equal = equal_time(tables.time_curves(log_dirs, [m.name for m in learned(metrics)]), equal_time_s)
    computed = {"diagnosis": [diagnosis_text(diagnoses[m.name]) for m in metrics],
                "miou_equal_time": [equal.miou.get(m.name, float("nan")) for m in metrics]}
    deploy = deployment_column(deployment_key(metrics, deployment), metrics)
    columns = [c for column in SUMMARY for c in ((column, deploy) if deploy and column.name == "latency_cpu_ms" else (column,))]
    summary = summary_table(metrics, comparisons, columns, computed, deploy.metrics_key if deploy else "")
    plots_dir.mkdir(parents=True, exist_ok=True)
    inputs = ReportInputs(metrics, comparisons, cost_environments(metrics), list(summary.index), log_dirs)
    colours = figures.model_colours(models)
    shutil.rmtree(paths.measured_dir(plots_dir), ignore_errors=True)  # no figure left from an earlier run
    for figure in FIGURES:
        write_figure(figure, inputs, plots_dir, colours, dpi)
    write_text(paths.summary_csv(plots_dir), to_csv(summary, index=True))
    best = {score: result.best for score, result in comparisons.items()}
    write_text(paths.summary_md(plots_dir), summary_markdown(summary, best, columns, equivalence_margin,
                                                             notes(metrics, comparisons, inputs.envs, diagnoses, equal)))
    return summary
