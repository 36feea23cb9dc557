"""Across models: gather every model's metrics into one table and draw the trade-off plots."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .io import atomic_path, read_json, write_text

# (column, file, key) for the summary table
COLUMNS = [
    ("miou", "eval", "miou"), ("mrecall", "eval", "mrecall"), ("accuracy", "eval", "accuracy"), ("mdice", "eval", "mdice"),
    ("train_time_s", "train", "train_time_s"), ("best_val_miou", "train", "best_val_miou"),
    ("latency_cpu_ms", "profile", "latency_cpu_ms"), ("latency_cuda_ms", "profile", "latency_cuda_ms"),
    ("size_mb", "profile", "size_mb"), ("gflops", "profile", "gflops"), ("params", "profile", "params"),
]


@dataclass(frozen=True)
class Tradeoff:
    filename: str
    x: str
    xlabel: str
    title: str


TRADEOFFS = [
    Tradeoff("miou_vs_train_time.png", "train_time_s", "training time (s)", "mIoU vs training time"),
    Tradeoff("miou_vs_latency_cpu.png", "latency_cpu_ms", "CPU latency, batch 1 (ms, median)", "mIoU vs CPU inference latency"),
    Tradeoff("miou_vs_size.png", "size_mb", "model size (MB, serialized state_dict)", "mIoU vs model size"),
]


def collect(metrics_dir: Path, models: list[str]) -> pd.DataFrame:
    rows = []
    for name in models:
        loaded = {}
        for part in ("train", "eval", "profile"):
            path = metrics_dir / name / f"{part}.json"
            loaded[part] = read_json(path)
            if not isinstance(loaded[part], dict):
                raise DataError(f"{path}: expected a JSON object of metrics")
        row = {"model": name}
        for column, part, key in COLUMNS:
            value = loaded[part].get(key)
            row[column] = float(value) if isinstance(value, (int, float)) else np.nan
        rows.append(row)
    df = pd.DataFrame(rows).set_index("model")
    df["pareto"] = pareto_members(df, ["train_time_s", "latency_cpu_ms", "size_mb"])
    return df.sort_values("miou", ascending=False)


def pareto_front(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Members: no other point has quality >= and cost <= with one strict."""
    keep = np.ones(len(quality), bool)
    for i in range(len(quality)):
        better = (quality >= quality[i]) & (cost <= cost[i]) & ((quality > quality[i]) | (cost < cost[i]))
        keep[i] = not better.any()
    return keep & ~np.isnan(quality) & ~np.isnan(cost)


def pareto_members(df: pd.DataFrame, costs: list[str]) -> pd.Series:
    """True for a model on the mIoU Pareto front of at least one cost axis."""
    on_any = np.zeros(len(df), bool)
    for cost in costs:
        on_any |= pareto_front(df["miou"].to_numpy(), df[cost].to_numpy())
    return pd.Series(on_any, index=df.index)


def scatter(df: pd.DataFrame, spec: Tradeoff, out: Path, dpi: int = 120) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = df[[spec.x, "miou"]].dropna()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    colours = plt.get_cmap("tab10")
    for i, (name, row) in enumerate(data.iterrows()):
        ax.scatter(row[spec.x], row["miou"], s=60, color=colours(i % 10), label=name, zorder=3)
        ax.annotate(name, (row[spec.x], row["miou"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = data[pareto_front(data["miou"].to_numpy(), data[spec.x].to_numpy())].sort_values(spec.x)
    if len(front) > 1:
        ax.plot(front[spec.x], front["miou"], "--", color="grey", lw=1, zorder=2, label="Pareto front")
    x = data[spec.x]
    if len(x) and x.min() > 0 and x.max() / x.min() > 10:
        ax.set_xscale("log")
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel("mIoU (test split)")
    ax.set_title(spec.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def markdown_table(df: pd.DataFrame) -> str:
    shown = df.drop(columns=["pareto"]).copy()
    shown.insert(0, "pareto", np.where(df["pareto"], "*", ""))
    header = "| model | " + " | ".join(shown.columns) + " |"
    lines = [header, "|" + "---|" * (len(shown.columns) + 1)]
    for name, row in shown.iterrows():
        cells = [_fmt(v) for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n`*`: on the mIoU Pareto front against training time, CPU latency or size.\n"


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def build_report(metrics_dir: Path, plots_dir: Path, models: list[str], dpi: int = 120) -> pd.DataFrame:
    df = collect(metrics_dir, models)
    plots_dir.mkdir(parents=True, exist_ok=True)
    for spec in TRADEOFFS:
        scatter(df, spec, plots_dir / spec.filename, dpi)
    write_text(plots_dir / "summary.csv", df.to_csv(float_format="%.6g"))
    write_text(plots_dir / "summary.md", markdown_table(df))
    return df
