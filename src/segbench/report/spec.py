"""What the report shows, declared once (standard library only: no pandas, no matplotlib).

A summary column is one `Column`: where its numbers come from, its Markdown header and format,
when the Markdown shows it, and the companion columns it brings into summary.csv (its 95%
interval, its difference to the best model). `SUMMARY` is their order in summary.csv and in
the Markdown table. A report figure is one `FigureSpec`: its file stem (plots/<stem>.csv and .png,
segbench.paths.REPORT_FIGURES), the function in report/tables.py that builds its data and the one
in report/figures.py that draws it. Computed values (Pareto fronts, the fastest backend, flags) are
named here and implemented in report/summary.py's SOURCES, so this module stays importable
without pandas.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..keys import parse_latency_key, size_tag

MISSING = "—"  # a value not measured, in the Markdown table


# --- when the Markdown table shows a column (given its values, None where missing) -------------------

def always(values: Sequence) -> bool:
    return True


def any_value(values: Sequence) -> bool:
    """Some model has a value: a GPU column on a CPU-only run would be dashes only."""
    return any(v is not None for v in values)


def any_text(values: Sequence) -> bool:
    return any(bool(v) for v in values)


def any_no(values: Sequence) -> bool:
    return any(v == "no" for v in values)


def never(values: Sequence) -> bool:
    """summary.csv only: the value repeats another column (params: size; converged: diagnosis)."""
    return False


def differ(values: Sequence) -> bool:
    """Worth a column only when the rows differ (seeds: always 3; the fastest backend: one everywhere)."""
    return len({v for v in values if v is not None}) > 1


def envs_differ(values: Sequence) -> bool:
    """The costs come from more than one environment ("mixed": one model's seeds did; " / ": its train and profile did)."""
    return len(set(values)) > 1 or any("mixed" in v or " / " in v for v in values)


# --- summary columns --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One summary column: everything the table, summary.csv and the Markdown need to know about it."""

    name: str                  # the column in summary.csv
    header: str                # the Markdown table's header
    part: str = ""             # the metrics file its numbers come from (train, eval, profile; mean over seeds)
    key: str = ""              # the key there; "" = `name`
    source: str = ""           # instead of part/key: a value computed by report/summary.py's SOURCES[source]
    number: str = "{:.4g}"     # how the Markdown writes a number
    integer: bool = False      # an exact integer in summary.csv (not 1.94266e+06) and in the Markdown
    empty: str = MISSING       # how the Markdown writes a missing value or an empty text
    show: Callable[[Sequence], bool] = always  # whether the Markdown shows it, given every model's value
    interval: bool = False     # with <name>_ci95_low/_high (the 95% interval over seeds); cell "mean ± half"
    compare: str = ""          # the difference to the best model of this score (segbench.comparison), with
                               # its interval and tie: present only when the score was compared
    only_with: tuple[str, str] | None = None  # (part, key): filled only for models that have it; left out of
                               # summary.csv when none has (the depth columns on a segmentation-only run)
    per_size: str = ""         # a latency: one more column per other profiled size, with this header ({size})
    brief: bool = False        # a `compare` column written as its verdict alone (the headline)
    cost_interval: bool = False  # a cost with <name>_ci95_low/_high: its 95% interval (report/pareto.py cost_interval:
                               # a latency median's over profiling rounds, training time's over seeds); cell "v [low, high]"

    @property
    def metrics_key(self) -> str:
        return self.key or self.name

    @property
    def companions(self) -> tuple[str, ...]:
        """The columns that follow it in summary.csv and that the Markdown folds into its cell."""
        if self.interval or self.cost_interval:
            return f"{self.name}_ci95_low", f"{self.name}_ci95_high"
        if self.compare:  # tied: the interval includes 0; verdict: best, equivalent, inconclusive or worse
            return f"{self.name}_low", f"{self.name}_high", f"{self.compare}_tied_with_best", f"{self.compare}_verdict"
        return ()

    def sized(self, columns: Iterable[str]) -> list[tuple[str, str]]:
        """(column, header) of each of its other-size columns among `columns`, in their order."""
        at = parse_latency_key(self.metrics_key) if self.per_size else None
        found = []
        for column in columns:
            key = parse_latency_key(column)
            if at and key and key.size and (key.device, key.tag) == (at.device, at.tag):
                found.append((column, self.per_size.format(size=size_tag(key.size))))
        return found


DEPTH = ("eval", "depth_rmse")  # task seg_depth: a model with depth metrics

SUMMARY = (
    Column("pareto", "pareto", source="pareto", empty=""),
    Column("miou", "mIoU (95% CI)", "eval", number="{:.4f}", interval=True),
    Column("seeds", "seeds", source="seeds", integer=True, number="{}", show=differ),
    Column("miou_vs_best", "mIoU vs best (CI at Holm's level)", compare="miou"),
    Column("best_set", "could be best", source="best_set", empty=""),  # Holm over the k - 1 comparisons with the best
    Column("p_best", "P(best)", source="p_best", number="{:.0%}"),  # over joint posterior draws (stats.prob_best)
    Column("mrecall", "mRecall", "eval", number="{:.4f}"),
    Column("accuracy", "accuracy", "eval", number="{:.4f}"),
    Column("mdice", "mDice", "eval", number="{:.4f}"),
    Column("train_time_s", "train time (s)", "train", cost_interval=True),
    Column("train_peak_rss_mb", "train peak memory (MB)", "train", key="peak_rss_mb", show=any_value),
    Column("best_val_miou", "best val mIoU", "train", number="{:.4f}"),
    # best val mIoU within the equal training-time budget (report/equal_time.py; docs/statistics.md)
    Column("miou_equal_time", "mIoU at equal training time", source="miou_equal_time", number="{:.4f}", show=any_value),
    Column("latency_cpu_ms", "CPU latency (ms)", "profile", per_size="CPU latency {size} (ms)", cost_interval=True),
    Column("fastest_cpu_backend", "fastest CPU backend", source="fastest_cpu_backend", show=differ),
    Column("fastest_cpu_speedup", "speed-up vs eager fp32", source="fastest_cpu_speedup", number="{:.2f}x"),
    Column("latency_cuda_ms", "GPU latency (ms)", "profile", show=any_value, cost_interval=True),
    Column("size_mb", "size (MB)", "profile"),
    Column("gflops", "GFLOPs", "profile"),
    Column("params", "params", "profile", integer=True, number="{:,}", show=never),
    Column("depth_rmse", "depth RMSE (m, 95% CI)", "eval", interval=True, only_with=DEPTH),
    Column("depth_rmse_vs_best", "depth RMSE vs best (95% CI)", compare="depth_rmse", only_with=DEPTH),
    Column("depth_abs_rel", "AbsRel", "eval", number="{:.4f}", only_with=DEPTH),
    Column("depth_delta1", "δ<1.25", "eval", number="{:.4f}", only_with=DEPTH),
    Column("depth_rmse_mean_baseline", "mean-depth RMSE (m)", "eval", only_with=DEPTH),
    Column("depth_rmse_vs_mean_baseline", "x better than mean", "eval", number="{:.2f}x", only_with=DEPTH),
    # flags, last: shown only when they say something
    Column("diagnosis", "diagnosis", source="diagnosis", empty="", show=any_text),  # report/diagnose.py
    Column("converged", "converged", source="converged", empty="", show=never),
    Column("env", "env (costs)", source="env", empty="", show=envs_differ),
    Column("contended", "contended timing", source="contended", empty="", show=any_text),
)

# the headline of plots/summary.md (with the deployment latency, report/deploy.py, after the verdict): which
# model is good enough and cheapest where it is deployed; every other column goes to the details table below it
HEADLINE = ("miou", "miou_vs_best", "deploy_latency_ms", "size_mb", "train_time_s", "pareto", "diagnosis")
BRIEF_VERDICT = Column("miou_vs_best", "vs best", compare="miou", brief=True)

# the scores segbench.comparison compares, as the notes name them
SCORE_LABELS = {"miou": "mIoU", "depth_rmse": "depth RMSE"}


# --- costs --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CostAxis:
    """One trade-off: mIoU against a cost, lower is better."""

    name: str       # files: plots/miou_vs_<name>.{csv,png}
    column: str     # the cost column in the data file (and the metrics key at the training size)
    part: str       # the metrics file it comes from
    label: str      # axis title, with unit
    title: str
    short: str      # how the summary names it in the `pareto` column
    per_setting: bool = False  # latency: one panel per profiled size (and backend / precision)
    timed: bool = False        # a timing (depends on the machine), not a count (size, FLOPs)

    @property
    def timing(self) -> str:
        """The metrics file whose timing this is; "" for a count."""
        return self.part if self.timed else ""


AXES = (
    CostAxis("train_time", "train_time_s", "train", "training time (s)", "mIoU vs training time", "train time",
             timed=True),
    CostAxis("latency_cpu", "latency_cpu_ms", "profile", "CPU latency, batch 1 (ms, median)",
             "mIoU vs CPU inference latency", "CPU latency", per_setting=True, timed=True),
    CostAxis("latency_cuda", "latency_cuda_ms", "profile", "GPU latency, batch 1 (ms, median)",
             "mIoU vs GPU inference latency", "GPU latency", per_setting=True, timed=True),
    CostAxis("size", "size_mb", "profile", "model size (MB, serialized state_dict)", "mIoU vs model size", "size"),
    CostAxis("gflops", "gflops", "profile", "GFLOPs per image (training size)", "mIoU vs compute", "GFLOPs"),
)

# depth_rmse_vs_cost's panels: (setting, metrics file, key); latency at the training size
DEPTH_COSTS = (("training time (s)", "train", "train_time_s"), ("CPU latency (ms)", "profile", "latency_cpu_ms"),
               ("size (MB)", "profile", "size_mb"), ("GFLOPs", "profile", "gflops"))


# --- figures ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FigureSpec:
    """One report figure: plots/<stem>.csv (what `dvc plots` draws) and plots/<stem>.png."""

    stem: str                    # one of segbench.paths.REPORT_FIGURES
    table: str                   # report/tables.py: (ReportInputs, axis) -> DataFrame
    draw: str                    # report/figures.py: (table, colours, axis) -> matplotlib Figure
    axis: CostAxis | None = None
    # segbench.paths.MEASURED_FIGURES: report/tables.py's test of whether this run measured it (no file when
    # not), and the score column that the folder's one dvc.yaml definition (x: cost, y: score) plots
    measured: str = ""
    score: str = "miou"


# mIoU against throughput and peak memory: (panel, metrics file, key); intervals where recorded (over seeds)
RESOURCES = (("CPU throughput (images/s, higher is better)", "profile", "throughput_cpu_ips"),
             ("peak memory while profiling (MB, RSS)", "profile", "peak_rss_mb"),
             ("peak memory while training (MB, RSS)", "train", "peak_rss_mb"))
RESOURCE_AXIS = CostAxis("resources", "cost", "profile", "value (see the panel's title)",
                         "mIoU vs throughput and peak memory", "resources")

FIGURES = (
    *(FigureSpec(f"miou_vs_{axis.name}", "miou_vs_cost", "tradeoff_figure", axis,
                 measured="gpu_measured" if axis.name == "latency_cuda" else "") for axis in AXES),
    FigureSpec("iou_per_class", "iou_per_class", "heatmap_figure"),
    FigureSpec("training_curves", "curves", "curves_figure"),
    FigureSpec("depth_rmse_vs_cost", "depth_vs_cost", "depth_tradeoff_figure", measured="depth_measured",
               score="depth_rmse"),
    FigureSpec("val_miou_vs_train_time", "val_miou_vs_time", "time_curves_figure"),
    FigureSpec("miou_vs_resources", "resources", "tradeoff_figure", RESOURCE_AXIS, measured="always"),
)
