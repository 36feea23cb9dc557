"""The report (plot stage) on fabricated per-seed outputs (tests/fake_run.py): the aggregate
summaries, files, significance-aware Pareto fronts, tables, axes, the page template."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_run import (
    SEEDS,
    edit_json,
    fake_aggregates,
    fake_metrics,
    fake_profiles,
    fake_run,
    fake_seed_outputs,
    fake_train_logs,
    run_cli,
    write_json,
)

from segbench import paths
from segbench.cli import main
from segbench.comparison import compare_scores
from segbench.errors import DataError
from segbench.html_template import template_stamp, write_template
from segbench.report import figures, markdown, spec, tables, view
from segbench.report.pareto import pareto_front
from segbench.report.summary import COMPUTED_BY_CALLER, SOURCES, summary_table

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = {"seeds": list(SEEDS), "models": {"big": {"arch": "unet"}, "small": {"arch": "unet", "base_channels": 4},
                                           "twin": {"arch": "prior_baseline"}, "worse": {"arch": "unet"}},
          "plot": {"dpi": 50, "bootstrap": 500}}


def declared_plot_outputs() -> list[str]:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["plot"]
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]


def plot_stage(root: Path, params: dict = PARAMS) -> None:
    run_cli(root, params, "plot")


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory) -> Path:
    """`segbench plot` (the stage's command) in a directory holding fabricated per-model outputs."""
    root = tmp_path_factory.mktemp("report")
    fake_run(root)
    plot_stage(root)
    return root


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


# --- Pareto ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("quality, cost, members", [
    ([0.6, 0.5, 0.5], [10, 1, 1], [True, True, True]),            # exact tie: both members
    ([0.5, 0.4], [10, 10], [True, False]),                        # equal cost, lower mIoU: dominated
    ([0.5, 0.5], [1, 2], [True, False]),                          # equal mIoU, higher cost: dominated
    ([0.7, 0.4, 0.3], [5, 1, 3], [True, True, False]),            # strictly dominated
    ([0.9, math.nan, 0.5], [1, 0.1, 2], [True, False, False]),    # missing quality: never a member
    ([0.2, 0.9], [1, math.nan], [True, False]),                   # missing cost neither joins nor dominates
    ([math.nan], [math.nan], [False]),
    ([], [], []),
])
def test_pareto_front(quality, cost, members):
    assert pareto_front(np.array(quality, float), np.array(cost, float)).tolist() == members


@pytest.mark.parametrize("quality, cost, better, members", [
    # 1 is cheaper, 0 better but not significantly: both stay (the data cannot rank them)
    ([0.6, 0.5], [10, 1], [[False, False], [False, False]], [True, True]),
    # 0 significantly better at no more cost: 1 is off
    ([0.6, 0.5], [1, 1], [[False, True], [False, False]], [True, False]),
    # 0 significantly better but costlier: both stay
    ([0.6, 0.5], [10, 1], [[False, True], [False, False]], [True, True]),
    # a tie in quality at a higher cost stays on (the exact rule would drop it)
    ([0.5, 0.5], [1, 2], [[False, False], [False, False]], [True, True]),
    # a significantly better model with no cost measured dominates nothing
    ([0.9, 0.5], [math.nan, 1], [[False, True], [False, False]], [False, True]),
])
def test_pareto_front_with_uncertainty(quality, cost, better, members):
    front = pareto_front(np.array(quality, float), np.array(cost, float), np.array(better, bool))
    assert front.tolist() == members


@pytest.mark.parametrize("values, log", [([1, 10], False), ([1, 10.5], True), ([0, 5, 500], False),
                                          ([2, math.nan, 300], True), ([7], False), ([-1, 100], False)])
def test_log_axis_only_beyond_a_decade_of_positive_values(values, log):
    assert figures.use_log_scale(values) is log


# --- the aggregate stage ----------------------------------------------------------------------------

def test_aggregates_summarise_every_seed(stage_run):
    ev = json.loads((stage_run / "metrics/small/eval.json").read_text())
    per_seed = [json.loads((stage_run / f"metrics/small/seeds/{s}/eval.json").read_text()) for s in SEEDS]
    values = [r["miou"] for r in per_seed]
    assert ev["seeds"] == list(SEEDS) and ev["split"] == "test"  # settings kept as they are
    assert ev["miou"]["n"] == 3 and ev["miou"]["mean"] == pytest.approx(np.mean(values))
    assert ev["miou"]["std"] == pytest.approx(np.std(values, ddof=1))
    half = 4.302652729911275 * np.std(values, ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert ev["miou"]["ci95_low"] == pytest.approx(np.mean(values) - half)
    assert ev["miou"]["ci95_high"] == pytest.approx(np.mean(values) + half)
    assert ev["iou_per_class"]["disk"]["n"] == 3  # per class too
    assert ev["iou_per_class"]["pole"] == {"mean": None, "std": None, "n": 0, "ci95_low": None, "ci95_high": None}
    train = json.loads((stage_run / "metrics/small/train.json").read_text())
    assert train["train_time_s"]["n"] == 3 and train["device"] == "cpu" and train["threads"] == 2
    assert (stage_run / "plots/small/predictions.png").read_bytes()[:4] == b"\x89PNG"  # every seed's samples, drawn
    pooled = pd.read_csv(stage_run / "plots/small/confusion_matrix.csv")
    assert not pooled.empty


# --- the stage ------------------------------------------------------------------------------------

def test_stage_writes_every_declared_output(stage_run):
    outs = declared_plot_outputs()
    assert {"plots/measured", "plots/iou_per_class.csv", "plots/training_curves.csv",
            "plots/summary.md", "plots/report_template.html"} <= set(outs)
    for out in outs:
        path = stage_run / out
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in files:
            assert file.is_file() and file.stat().st_size > 0, file
            if file.suffix == ".png":
                assert file.read_bytes()[:8] == PNG, file
    # the folder holds what this run measured: a GPU (the fabricated profiles have CUDA latencies), no depth
    measured = {p.name for p in (stage_run / "plots/measured").iterdir()}
    assert measured == {f"{stem}.{ext}" for stem in ("miou_vs_resources", "miou_vs_latency_cuda") for ext in ("csv", "png")}


def test_no_figure_for_what_the_run_did_not_measure(tmp_path):
    from segbench.report.build import build_report

    fake_run(tmp_path)
    for profile in (tmp_path / "metrics").glob("*/profile.json"):
        profile.write_text(json.dumps({k: v for k, v in json.loads(profile.read_text()).items() if "cuda" not in k}))
    plots = tmp_path / "plots"
    (plots / "measured").mkdir(parents=True)
    (plots / "measured/miou_vs_latency_cuda.png").write_bytes(PNG)  # left by an earlier run
    os.chdir(tmp_path)
    build_report(tmp_path / "metrics", plots, list(PARAMS["models"]), SEEDS, dpi=50, resamples=200)
    assert {p.name for p in (plots / "measured").iterdir()} == {"miou_vs_resources.csv", "miou_vs_resources.png"}
    assert not (plots / "miou_vs_latency_cuda.png").exists() and not (plots / "depth_rmse_vs_cost.png").exists()


def test_throughput_and_peak_memory_figure(stage_run):
    from PIL import Image

    data = read_csv(stage_run / "plots/measured/miou_vs_resources.csv")
    assert list(dict.fromkeys(data["setting"])) == [setting for setting, _, _ in spec.RESOURCES]
    assert data["cost"].notna().any() and (data["score"] == data["miou"]).all()  # the folder's x and y
    with Image.open(stage_run / "plots/measured/miou_vs_resources.png") as png:
        width, height = (side * 120 / PARAMS["plot"]["dpi"] for side in png.size)  # at plot.dpi's default
    assert 1000 <= width <= 2100 and 400 <= height <= 1100, (width, height)  # 3 panels in a row at 100% zoom


def test_summary_sorted_by_miou_with_significance_and_pareto_axes(stage_run):
    summary = read_csv(stage_run / "plots/summary.csv").set_index("model")
    assert list(summary.index) == ["big", "small", "twin", "worse"]  # the tie keeps params order
    assert list(summary["miou"]) == sorted(summary["miou"], reverse=True)
    everything = "train time, CPU latency, size, GFLOPs"
    assert summary.loc["big", "pareto"] == "train time, CPU latency, GPU latency, size, GFLOPs"
    assert summary.loc["small", "pareto"] == everything
    # tied with small: a larger size does not push it off; the CPU-latency front is drawn at the deployment
    # setting (the largest profiled size, report/deploy.py), where twin has no latency
    assert summary.loc["twin", "pareto"] == "train time, size, GFLOPs"
    # small is significantly better and cheaper in everything with a basis; the fake latencies have no rounds:
    # no test can say small is not costlier there, so that front keeps worse
    assert summary.loc["worse", "pareto"] == "CPU latency"
    assert (summary["seeds"] == 3).all()
    assert (summary["miou_ci95_low"] < summary["miou"]).all() and (summary["miou"] < summary["miou_ci95_high"]).all()
    assert summary.loc["big", "miou_vs_best"] == 0 and bool(summary.loc["big", "miou_tied_with_best"])
    assert summary.loc["twin", "miou_vs_best"] == pytest.approx(summary.loc["small", "miou_vs_best"])
    for model in ("small", "twin", "worse"):
        row = summary.loc[model]
        assert row["miou_vs_best_low"] <= row["miou_vs_best"] <= row["miou_vs_best_high"] < 0
        assert not row["miou_tied_with_best"]
    assert summary.loc["big", "params"] == 10_000_000 and summary["params"].dtype.kind == "i"  # exact, not 1e+07
    assert summary.loc["big", "latency_cuda_ms"] == 1.5 and summary["latency_cuda_ms"].isna().sum() == 3
    assert summary.loc["small", "latency_cpu_48x64_ms"] == 3.0 and math.isnan(summary.loc["twin", "latency_cpu_48x64_ms"])

    text = (stage_run / "plots/summary.md").read_text()
    head, details = text.split("**Details**")
    md = head.splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    # the headline: which model is good enough and cheapest where it is deployed, at most 9 columns
    assert header == ["model", "mIoU (95% CI)", "vs best", "latency (ms, eager 48x64)", "size (MB)", "train time (s)",
                      "pareto"]  # diagnosis: shown only when a row has one
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in md[2:6]}
    assert list(rows) == ["big", "small", "twin", "worse"]
    assert [rows[m][2] for m in rows] == ["best", "worse", "worse", "worse"]
    assert rows["big"][3] == "31" and rows["twin"][3] == "—"  # the fake latencies have no interval over rounds
    half = (summary.loc["big", "miou_ci95_high"] - summary.loc["big", "miou_ci95_low"]) / 2
    assert rows["big"][1] == f"{summary.loc['big', 'miou']:.4f} ± {half:.4f}"
    # the notes: the significant sentence first, right under the headline
    assert md[7].startswith("At 95% confidence (Holm's correction over all 6 pairs): the best mIoU (higher is better) "
                            "could be big (probability of being best: big ")
    assert "significantly worse: small, twin, worse." in md[7] and "small and twin have identical per-seed scores" in md[7]
    # the details: every other column (params and converged only in summary.csv; seeds: all 3)
    dmd = details.strip().splitlines()
    dheader = [c.strip() for c in dmd[0].strip("|").split("|")]
    assert dheader[:4] == ["model", "mIoU vs best (CI at Holm's level)", "could be best", "P(best)"]
    assert "GPU latency (ms)" in dheader and not {"params", "converged", "seeds", "size (MB)"} & set(dheader)
    assert dheader.index("CPU latency 48x64 (ms)") == dheader.index("CPU latency (ms)") + 1
    drows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in dmd[2:6]}
    gpu = dheader.index("GPU latency (ms)")
    assert drows["big"][gpu] == "1.5" and drows["small"][gpu] == "—" and drows["twin"][gpu] == "—"
    assert drows["big"][1] == "best"
    assert drows["small"][1].startswith(f"{summary.loc['small', 'miou_vs_best']:+.4f} [")
    assert drows["worse"][3] == "<1%" and drows["big"][3] not in ("100%", "0%")  # never 0% / 100%
    assert summary["best_set"].fillna("").to_dict() == {"big": "yes", "small": "", "twin": "", "worse": ""}
    assert summary.loc["big", "p_best"] > 0.95 and set(summary["miou_verdict"]) == {"best", "worse"}


def test_tradeoff_data_per_axis_and_profiled_size(stage_run):
    def front(name, setting=None):
        df = read_csv(stage_run / f"plots/miou_vs_{name}.csv")
        if setting is not None:
            df = df[df["setting"] == setting]
        return dict(zip(df["model"], df["pareto"]))

    on = {"big": True, "small": True, "twin": True, "worse": False}
    assert front("train_time") == on and front("size") == on and front("gflops") == on
    cpu = read_csv(stage_run / "plots/miou_vs_latency_cpu.csv")
    assert list(dict.fromkeys(cpu["setting"])) == ["32x32 (training size)", "48x64"]
    # twin: not measured there; worse: the fake latencies have no rounds, so no test pushes it off
    assert front("latency_cpu", "48x64") == {**on, "twin": False, "worse": True}
    assert {"miou_ci95_low", "miou_ci95_high"} <= set(cpu.columns)  # the error bars
    assert (cpu["miou_ci95_low"] < cpu["miou"]).all()
    cuda = read_csv(stage_run / "plots/measured/miou_vs_latency_cuda.csv")
    assert set(cuda["setting"]) == {"32x32 (training size)", "48x64", "32x32 bf16 (training size)"}
    at_training = cuda[cuda["setting"] == "32x32 (training size)"].set_index("model")
    assert at_training.loc["big", "latency_cuda_ms"] == 1.5 and at_training["latency_cuda_ms"].isna().sum() == 3
    assert at_training["pareto"].tolist() == [True, False, False, False]  # models without CUDA keys: listed, not drawn


def test_heatmap_and_curve_data(stage_run):
    ious = read_csv(stage_run / "plots/iou_per_class.csv")
    assert list(ious.columns) == ["model", "rank", "class", "class_index", "iou"]
    assert list(dict.fromkeys(ious["model"])) == ["big", "small", "twin", "worse"]
    assert list(dict.fromkeys(ious["class"])) == ["background", "disk", "pole"]
    pole = ious[ious["class"] == "pole"].set_index("model")["iou"]
    assert pole.isna().all()  # undefined IoU stays empty, not 0
    disk = ious[ious["class"] == "disk"].set_index("model")["iou"]
    seeds = [json.loads((stage_run / f"metrics/big/seeds/{s}/eval.json").read_text()) for s in SEEDS]
    assert disk["big"] == pytest.approx(np.mean([r["iou_per_class"]["disk"] for r in seeds]), rel=1e-5)  # the mean

    curves = read_csv(stage_run / "plots/training_curves.csv")
    assert list(curves.columns[:10]) == ["model", "epoch", "seeds", "train_loss", "val_loss", "val_miou", "lr",
                                         "val_depth_rmse", "train_depth_loss", "val_depth_loss"]
    assert curves[["val_depth_rmse", "train_depth_loss", "val_depth_loss"]].isna().all().all()
    assert set(curves["model"]) == {"big", "small"}  # twin has no DVCLive log: left out, not an error
    big = curves[curves["model"] == "big"]
    assert big["epoch"].tolist() == [1, 2, 3] and (big["seeds"] == 3).all()
    # the band: lowest to highest seed around the mean (fake logs: +0.001 per seed)
    assert np.allclose(big["val_miou_max"] - big["val_miou_min"], 0.002)
    assert np.allclose(big["val_miou"], (big["val_miou_min"] + big["val_miou_max"]) / 2)


def test_one_seed_writes_valid_metrics_and_says_there_is_no_interval(tmp_path):
    fake_run(tmp_path, seeds=(0,))
    plot_stage(tmp_path, {**PARAMS, "seeds": [0]})
    ev = json.loads((tmp_path / "metrics/big/eval.json").read_text())
    assert ev["seeds"] == [0] and ev["miou"]["n"] == 1
    assert ev["miou"]["std"] is None and ev["miou"]["ci95_low"] is None and ev["miou"]["ci95_high"] is None
    summary = read_csv(tmp_path / "plots/summary.csv").set_index("model")
    assert summary["miou_ci95_low"].isna().all() and (summary["seeds"] == 1).all()
    text = (tmp_path / "plots/summary.md").read_text()
    # every derived statement says what it needs instead of a number without its basis
    assert f"| big | {summary.loc['big', 'miou']:.4f} | best | 31 | 40 | 120 | needs >= 2 seeds |" in text
    assert f"| worse | {summary.loc['worse', 'miou']:.4f} | needs >= 2 seeds |" in text
    assert "needs >= 2 seeds per model for any statement about which model is best" in text
    rows = text.split("**Details**")[1].split("Quality:")[0].strip().splitlines()[2:]
    assert len(rows) == 4 and not any("%" in row for row in rows)  # no P(best) number
    # summary.csv keeps what the test-image bootstrap alone says
    assert not summary.loc["worse", "miou_tied_with_best"] and summary.loc["twin", "miou_vs_best_low"] < 0


def test_axes_and_gpu_placeholder(tmp_path):
    fake_metrics(tmp_path)
    names = ["big", "small", "twin", "worse"]
    metrics = view.load_metrics(tmp_path / "metrics", names)
    colours = figures.model_colours(names)
    axes = {a.name: a for a in spec.AXES}

    def xscales(name, data=metrics):
        fig = figures.tradeoff_figure(tables.tradeoff_table(data, axes[name]), colours, axes[name])
        return [ax.get_xscale() for ax in fig.axes]

    assert xscales("train_time") == ["log"]            # 10 .. 120 s
    assert xscales("size") == ["log"]                  # 1 .. 40 MB
    assert xscales("latency_cpu") == ["linear", "log"]  # 2 .. 20 ms is exactly 10x; 3 .. 31 ms is more
    assert xscales("gflops") == ["linear"]             # a zero: no log axis

    no_gpu = [view.ModelMetrics(m.name, m.train, m.eval, {k: v for k, v in m.profile.items() if "cuda" not in k})
              for m in metrics]
    table = tables.tradeoff_table(no_gpu, axes["latency_cuda"])
    assert len(table) == 4 and table["latency_cuda_ms"].isna().all()  # the data file keeps its shape
    fig = figures.tradeoff_figure(table, colours, axes["latency_cuda"])
    assert any("no GPU measurements" in t.get_text() for ax in fig.axes for t in ax.texts)
    summary = summary_table(no_gpu)
    assert "GPU latency" not in markdown.markdown_table(summary).splitlines()[0]


def test_missing_metrics_is_one_line_error(tmp_path, monkeypatch, capsys):
    fake_metrics(tmp_path, models=("big", "small"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "models": {**PARAMS["models"]}}))
    monkeypatch.chdir(tmp_path)
    assert main(["plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "metrics/twin/train.json" in err and "dvc repro" in err
    write_json(tmp_path / "metrics/twin/train.json", [1, 2])
    with pytest.raises(DataError, match="expected a JSON object"):
        view.load_metrics(tmp_path / "metrics", ["twin"])


# --- the specs ---------------------------------------------------------------------------------------

def test_every_figure_spec_is_a_declared_figure_with_its_functions():
    assert [f.stem for f in spec.FIGURES] == list(paths.REPORT_FIGURES)  # one spec per declared file, in order
    for figure in spec.FIGURES:
        assert callable(getattr(tables, figure.table, None)), figure
        assert callable(getattr(figures, figure.draw, None)), figure
    assert {c.source for c in spec.SUMMARY if c.source} <= set(SOURCES) | set(COMPUTED_BY_CALLER)


def test_every_summary_column_is_in_summary_csv_in_spec_order(stage_run):
    header = (stage_run / "plots/summary.csv").read_text().splitlines()[0].split(",")
    expected = [name for c in spec.SUMMARY if not c.only_with for name in (c.name, *c.companions)]
    assert [h for h in header if h in expected] == expected
    assert header[0] == "model" and header[-3:] == ["converged", "env", "contended"]


def depth_metrics(name: str, depth: bool) -> view.ModelMetrics:
    rmse = {"mean": 1.0, "std": 0.1, "n": 2, "ci95_low": 0.1, "ci95_high": 1.9}  # a summary over seeds
    ev = {"miou": 0.5, "depth_rmse": rmse, "depth_abs_rel": 0.1, "depth_delta1": 0.9, "depth_rmse_mean_baseline": 3.0,
          "depth_rmse_vs_mean_baseline": 3.0} if depth else {"miou": 0.4}
    return view.ModelMetrics(name, {"train_time_s": 1.0}, ev, {"latency_cpu_ms": 1.0, "size_mb": 1.0, "params": 10})


def test_depth_columns_only_with_depth_metrics_and_compared_only_when_compared():
    rng = np.random.default_rng(0)
    per_image = {m: {"mask_counts": rng.integers(1, 50, (2, 6, 2, 3)), "depth_sums": rng.random((2, 6, 7)) + 1}
                 for m in ("a", "b", "seg")}
    metrics = [depth_metrics("a", True), depth_metrics("b", True), depth_metrics("seg", False)]
    table = summary_table(metrics, compare_scores(per_image, resamples=50))
    expected = [name for c in spec.SUMMARY for name in (c.name, *c.companions)]
    assert [c for c in table.columns if c in expected] == expected  # every column, in spec order
    depth = [name for c in spec.SUMMARY if c.only_with for name in (c.name, *c.companions)]
    assert table.loc[["a", "b"], depth].notna().all().all()
    assert table.loc["seg", depth].isna().all()  # compared (it has per-image depth) but no depth metrics: empty
    without = summary_table(metrics)
    assert "depth_rmse" in without and "depth_rmse_vs_best" not in without and "miou_vs_best" not in without
    assert not set(depth) & set(summary_table([depth_metrics("seg", False)]).columns)


def test_one_column_entry_adds_a_summary_and_markdown_column():
    extra = spec.Column("profile_peak_rss_mb", "profile peak memory (MB)", "profile", key="peak_rss_mb", number="{:.1f}")
    metrics = [depth_metrics("a", False), depth_metrics("b", False)]
    metrics[0].profile["peak_rss_mb"] = 123.45
    columns = (*spec.SUMMARY, extra)
    table = summary_table(metrics, columns=columns)
    assert table.loc["a", "profile_peak_rss_mb"] == 123.45 and math.isnan(table.loc["b", "profile_peak_rss_mb"])
    md = markdown.markdown_table(table, columns=columns).splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    at = header.index("profile peak memory (MB)")
    assert [c.strip() for c in md[2].strip("|").split("|")][at] == "123.5"
    assert [c.strip() for c in md[3].strip("|").split("|")][at] == "—"


def test_train_peak_memory_is_summarised_and_shown_when_recorded(tmp_path, stage_run):
    fake_seed_outputs(tmp_path)
    peaks = {"big": 900.0, "small": 300.0, "twin": 310.0, "worse": 500.0}
    for model, peak in peaks.items():
        for seed in SEEDS:
            edit_json(tmp_path / f"metrics/{model}/seeds/{seed}/train.json", {"peak_rss_mb": peak + 10 * seed})
    fake_profiles(tmp_path)
    fake_aggregates(tmp_path)
    fake_train_logs(tmp_path)
    plot_stage(tmp_path)
    table = read_csv(tmp_path / "plots/summary.csv").set_index("model")
    assert table.loc["big", "train_peak_rss_mb"] == pytest.approx(910.0)  # the mean over seeds
    md = (tmp_path / "plots/summary.md").read_text().split("**Details**")[1].strip().splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    at = header.index("train peak memory (MB)")  # in the details table
    assert header[at - 1 : at + 2] == ["mDice", "train peak memory (MB)", "best val mIoU"]
    assert [c.strip() for c in md[2].strip("|").split("|")][at] == "910"
    # metrics without it (an older segbench): the column is empty in summary.csv and left out of the Markdown
    assert read_csv(stage_run / "plots/summary.csv")["train_peak_rss_mb"].isna().all()
    assert "train peak memory" not in (stage_run / "plots/summary.md").read_text()


def test_report_package_imports_without_pandas_or_matplotlib():
    code = ("import sys\nfrom segbench.report import spec\nimport segbench.report as r\n"
            "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules), callable(r.build_report))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True"]


# --- the page template -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(stage_run) -> str:
    return (stage_run / "plots/report_template.html").read_text()


def test_page_template_is_offline_and_fits_dvc(page):
    assert page.count("{plot_divs}") == 1
    assert "{scripts}" not in page  # DVC's CDN <script src=...> tags go there
    assert "<script src" not in page and "cdn.jsdelivr" not in page
    assert "window.vegaEmbed=" in page.replace(" ", "") and template_stamp() in page[:200]


def test_write_template_keeps_a_current_file(tmp_path, page, monkeypatch):
    path = tmp_path / "t.html"
    path.write_text(page)
    os.utime(path, (1, 1))
    monkeypatch.setattr("segbench.html_template.render_template", lambda: pytest.fail("regenerated a current template"))
    write_template(path)
    assert path.stat().st_mtime == 1
    path.write_text("<!DOCTYPE html>\n<!-- an older template -->\n{plot_divs}")
    monkeypatch.setattr("segbench.html_template.render_template", lambda: page)
    write_template(path)
    assert path.read_text() == page


def test_html_template_command(tmp_path, page, monkeypatch, capsys):
    monkeypatch.setattr("segbench.html_template.render_template", lambda: page)
    out = tmp_path / "sub" / "page.html"
    assert main(["html-template", str(out)]) == 0
    assert out.read_text() == page and str(out) in capsys.readouterr().out


# --- cost intervals, the uncertainty-aware Pareto rule, verdicts in the notes --------------------------

def test_pareto_uses_the_cost_tests():
    quality, cost = np.array([0.8, 0.6]), np.array([10.5, 10.0])  # model 0 significantly better, slower-looking
    better = np.array([[False, True], [False, False]])
    assert pareto_front(quality, cost, better).tolist() == [True, True]  # exact costs: 10.0 < 10.5 keeps model 1
    same = np.ones((2, 2), bool)  # neither significantly costlier
    assert pareto_front(quality, cost, better, same).tolist() == [True, False]  # the better model dominates
    cheaper = np.array([[True, False], [True, True]])  # [j, i]: model 0 is significantly costlier than model 1
    assert pareto_front(quality, cost, better, cheaper).tolist() == [True, True]


def test_latency_is_compared_by_welch_on_log_medians_with_holm_and_no_basis_decides_nothing():
    from segbench.keys import LatencyKey
    from segbench.report.cost_tests import cost_basis, cost_verdicts

    key = LatencyKey("cpu")

    def model(name, center, low, high, rounds):
        return view.ModelMetrics(name, {"train_time_s": {"mean": center, "std": 0.1, "n": 3}}, {},
                                 {key.name: center, key.stat("ci95_low_ms"): low, key.stat("ci95_high_ms"): high,
                                  key.stat("rounds"): rounds, "size_mb": center})
    # the case: 7.09 [6.31, 7.97] and 9.36 [7.69, 11.38] ms over 3 rounds overlap, yet differ (p = 0.014)
    fast, slow, once = model("fast", 7.09, 6.31, 7.97, 3), model("slow", 9.36, 7.69, 11.38, 3), model("once", 1, 0.9, 1.1, 1)
    bases = [cost_basis(m, "profile", key.name) for m in (fast, slow, once)]
    verdicts = cost_verdicts(bases)
    assert verdicts[0, 1] == -1 and verdicts[1, 0] == 1  # fast is significantly cheaper
    assert np.isnan(verdicts[2]).all() and bases[2] is None  # one round: no basis
    assert cost_verdicts([cost_basis(m, "train", "train_time_s") for m in (fast, slow)])[0, 1] == -1  # over seeds
    assert cost_basis(fast, "profile", "size_mb") == 7.09  # a count: exact


def test_cost_interval_reads_latency_rounds_and_training_seeds_and_falls_back_to_the_value():
    from segbench.keys import LatencyKey
    from segbench.report.pareto import cost_interval

    key = LatencyKey("cpu")
    m = view.ModelMetrics("m", {"train_time_s": {"mean": 10.0, "n": 3, "ci95_low": 9.0, "ci95_high": 11.5}}, {},
                          {key.name: 5.0, key.stat("ci95_low_ms"): 4.5, key.stat("ci95_high_ms"): 6.0, "size_mb": 2.0})
    assert cost_interval(m, "profile", key.name) == (4.5, 6.0)
    assert cost_interval(m, "train", "train_time_s") == (9.0, 11.5)
    assert cost_interval(m, "profile", "size_mb") == (2.0, 2.0)  # exact
    old = view.ModelMetrics("old", {"train_time_s": 10.0}, {}, {key.name: 5.0})  # metrics from before the intervals
    assert cost_interval(old, "profile", key.name) == (5.0, 5.0) and cost_interval(old, "train", "train_time_s") == (10, 10)


def test_latency_with_its_interval_in_the_summary_and_the_pareto_column(tmp_path):
    from segbench.keys import LatencyKey

    fake_metrics(tmp_path)
    key = LatencyKey("cpu")
    for name, (low, high) in {"big": (1.0, 400.0), "small": (1.8, 2.4)}.items():
        edit_json(tmp_path / "metrics" / name / "profile.json", {key.stat("ci95_low_ms"): low, key.stat("ci95_high_ms"): high,
                                                                 key.stat("rounds"): 3})
    names = ["big", "small", "twin", "worse"]
    metrics = view.load_metrics(tmp_path / "metrics", names)
    comparisons = compare_scores({m: {"mask_counts": np.stack([np.load(tmp_path / f"metrics/{m}/seeds/{s}/per_image.npz")
                                                               ["mask_counts"] for s in SEEDS]).astype(float)}
                                  for m in names}, 300)
    summary = summary_table(metrics, comparisons)
    assert summary.loc["small", "latency_cpu_ms_ci95_low"] == 1.8 and math.isnan(summary.loc["worse", "latency_cpu_ms_ci95_low"])
    table = markdown.markdown_table(summary, {"miou": "big"})
    assert "| 2 [1.8, 2.4] |" in table
    assert "| 20 [1, 400] |" in table
    # another profiled size shows its own interval over the rounds
    large = LatencyKey("cpu", "", (48, 64))
    edit_json(tmp_path / "metrics" / "small" / "profile.json", {large.name: 250.0, large.stat("ci95_low_ms"): 230.0,
                                                                 large.stat("ci95_high_ms"): 280.0})
    sized = summary_table(view.load_metrics(tmp_path / "metrics", names), comparisons)
    assert sized.loc["small", f"{large.name}_ci95_high"] == 280.0
    assert "| 250 [230, 280] |" in markdown.markdown_table(sized, {"miou": "big"})
    # big (significantly better) is not significantly slower than small (Welch on the rounds' log medians, p > 0.05):
    # small leaves the CPU latency front
    assert "CPU latency" in summary.loc["big", "pareto"] and "CPU latency" not in summary.loc["small", "pareto"]


def test_significance_sentence_names_the_set_the_verdicts_and_the_seeds_needed():
    from segbench.comparison import ScoreComparison
    from segbench.report.notes import significance_sentence
    from segbench.stats import SCORE_RULES, Comparison

    vs_best = {"unet": Comparison(0.0, 0.0, 0.0, 0.0, math.inf, (3, 3)),
               "unet_aug": Comparison(-0.045, -0.148, 0.057, 0.05, 4.0, (3, 3)),
               "twin": Comparison(-0.002, -0.006, 0.002, 0.002, 20.0, (3, 3)),
               "tiny": Comparison(-0.02, -0.06, 0.02, 0.02, 9.0, (3, 3))}
    result = ScoreComparison(SCORE_RULES["miou"], list(vs_best), np.zeros(4), [3] * 4, "unet", vs_best,
                             np.zeros((4, 4), bool), 0.01, frozenset({"unet", "unet_aug", "twin", "tiny"}),
                             {"unet": "best", "unet_aug": "inconclusive", "twin": "equivalent", "tiny": "inconclusive"},
                             {"unet_aug": 12, "tiny": None}, {"unet": 0.6, "unet_aug": 0.3, "twin": 0.1, "tiny": 0.0})
    text = significance_sentence(result, "mIoU")
    assert "could be unet or unet_aug or twin or tiny (probability of being best: unet 60%, unet_aug 30%" in text
    assert "equivalent to it (the whole interval of the difference inside ±0.01): twin" in text
    assert "inconclusive (the interval includes 0 but is wider than ±0.01): unet_aug, tiny" in text
    assert "about 12 seeds would settle unet vs unet_aug" in text
    assert "unet vs tiny: more seeds cannot settle it: the test set is too small" in text
    assert "tied" not in text


def test_the_report_diagnoses_a_collapsed_seed_and_compares_at_equal_training_time(tmp_path):
    fake_run(tmp_path)
    per_image = tmp_path / "metrics/worse/seeds/0/per_image.npz"
    arrays = dict(np.load(per_image))
    arrays["mask_counts"] = arrays["prior_mask_counts"]  # seed 0 of `worse` predicts the class prior
    np.savez_compressed(per_image, **arrays)
    plot_stage(tmp_path)
    summary = pd.read_csv(tmp_path / "plots/summary.csv", index_col="model")
    assert "1 of 3 seeds collapsed" in summary.loc["worse", "diagnosis"]
    assert "collapsed" not in str(summary.loc["big", "diagnosis"])
    # the budget: small's shortest seed (10 s); by then seed 0 has 3 epochs, seeds 1 and 2 (1% slower) 2
    assert math.isclose(summary.loc["small", "miou_equal_time"], (0.41 + 0.311 + 0.312) / 3, abs_tol=1e-6)
    md = (tmp_path / "plots/summary.md").read_text()
    # one line per kind of finding, naming its rows
    assert len([line for line in md.splitlines() if line.startswith("⚠ collapsed")]) == 1
    assert "worse (seed 0 " in md and "worse (a seed collapsed" in md
    assert "At equal training time (10 s, the shortest training time among learned models): small" in md
    assert "small reached the best validation mIoU (0.3443 ± " in md and "95% over 3 seeds" in md  # with its interval
    curves = pd.read_csv(tmp_path / "plots/val_miou_vs_train_time.csv")
    assert set(curves["model"]) == {"big", "small"} and (tmp_path / "plots/val_miou_vs_train_time.png").is_file()


def test_cli_help_and_a_mistyped_model(capsys, tmp_path, monkeypatch):
    for command in ("aggregate", "generate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "%%" not in out
    assert "images in the test split" in out and "image height and width" in out  # generate's options say what they do
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "models": {"unet_aug": {"arch": "unet"}}}))
    monkeypatch.chdir(tmp_path)
    assert main(["aggregate", "unet_agg"]) == 2
    assert "no model named 'unet_agg' (did you mean 'unet_aug'?)" in capsys.readouterr().err


def test_latency_panels_in_a_grid_with_cost_error_bars(tmp_path):
    from segbench.keys import LatencyKey

    fake_metrics(tmp_path)
    key = LatencyKey("cpu")
    edit_json(tmp_path / "metrics/small/profile.json", {key.stat("ci95_low_ms"): 1.5, key.stat("ci95_high_ms"): 2.6,
                                                       key.stat("rounds"): 3})
    names = ["big", "small", "twin", "worse"]
    axis = {a.name: a for a in spec.AXES}["latency_cpu"]
    table = tables.tradeoff_table(view.load_metrics(tmp_path / "metrics", names), axis)
    small = table[(table["model"] == "small") & table["setting"].str.contains("training")].iloc[0]
    assert (small["latency_cpu_ms_ci95_low"], small["latency_cpu_ms_ci95_high"]) == (1.5, 2.6)  # the x error bar
    six = pd.concat([table.assign(setting=f"setting {i}") for i in range(6)], ignore_index=True)
    fig = figures.tradeoff_figure(six, figures.model_colours(names), axis)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 6 and len({round(ax.get_position().y0, 2) for ax in panels}) == 2  # 2 rows of 3
    width, height = fig.get_size_inches() * 120  # plot.dpi's default
    assert width <= 2100 and height <= 1100, (width, height)  # was 4824 x 576 for six panels
    assert any(len(c.get_segments()) and c.get_segments()[0][0][1] == c.get_segments()[0][1][1]  # a horizontal bar
               for ax in panels for c in ax.collections if hasattr(c, "get_segments"))


def test_a_class_every_model_misses_is_named():
    from segbench.report.notes import missed_classes_note

    def m(name, pole):
        return view.ModelMetrics(name, {}, {"iou_per_class": {"road": {"mean": 0.9, "n": 3}, "pole": {"mean": pole, "n": 3},
                                                              "sky": None}}, {})
    note = missed_classes_note([m("a", 0.01), m("b", 0.03)])
    assert "Every model misses pole (best IoU 0.030)" in note and "road" not in note and "sky" not in note
    assert missed_classes_note([m("a", 0.01), m("b", 0.2)]) == ""


def test_deployment_latency_named_in_params_and_an_unprofiled_one_is_one_line(tmp_path):
    from segbench.config import params_from_dict
    from segbench.errors import ConfigError
    from segbench.keys import LatencyKey
    from segbench.report.deploy import deployment_column, deployment_key

    fake_metrics(tmp_path)
    metrics = view.load_metrics(tmp_path / "metrics", ["big", "small", "twin", "worse"])
    assert deployment_key(metrics, "eager 48x64") == LatencyKey("cpu", "", (48, 64))
    assert deployment_key(metrics, "eager 32x32") == LatencyKey("cpu")  # the training size: the plain key
    assert deployment_column(deployment_key(metrics, "eager 32x32"), metrics).header == "latency (ms, eager 32x32)"
    assert deployment_key(metrics) == deployment_key(metrics, "auto") == LatencyKey("cpu", "", (48, 64))  # the largest

    raw = {**yaml.safe_load((REPO / "params.yaml").read_text())}
    raw["plot"] = {**raw["plot"], "deployment": "onnxruntime 750x1000"}
    assert params_from_dict(raw).plot.deployment == "onnxruntime 750x1000"
    raw["plot"]["deployment"] = "onnxruntime 480x640"
    with pytest.raises(ConfigError) as error:
        params_from_dict(raw)
    message = str(error.value)
    assert "\n" not in message and message.startswith("params.yaml: plot.deployment: 'onnxruntime 480x640' was not profiled")
    assert "onnxruntime 750x1000" in message  # what is valid
