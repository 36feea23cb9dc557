"""`segbench plot` (stage `plot`): the cross-model report, tables and plots."""
from __future__ import annotations

import argparse

from .. import paths
from .common import load_params

HELP = "stage: cross-model tables and plots"
SHOWN = ["pareto", "miou", "miou_vs_best", "train_time_s", "latency_cpu_ms", "size_mb"]  # the terminal's summary columns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from ..html_template import write_template
    from ..report import build_report

    params = load_params(args)
    df = build_report(paths.METRICS_DIR, paths.PLOTS_DIR, list(params.models), params.seeds, dpi=params.plot.dpi,
                      resamples=params.plot.bootstrap, bootstrap_seed=params.plot.bootstrap_seed,
                      equivalence_margin=params.plot.equivalence_margin, overfit_gap=params.plot.overfit_gap,
                      equal_time_s=params.plot.equal_time_s, deployment=params.plot.deployment)
    write_template()
    print(df[[c for c in SHOWN if c in df]].to_string(float_format=lambda v: f"{v:.4g}"))
    for line in paths.summary_md().read_text(encoding="utf-8").splitlines():
        if line.startswith("⚠"):  # mixed environments, contended timings, unconverged models
            print(line)
    print(f"wrote {paths.summary_md()} and the report's plots; `dvc plots show` renders them offline")
