"""The report (plot stage) on fabricated metrics: files, Pareto fronts, tables, axes, the page template."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_run import fake_metrics, fake_run, write_json

from segbench import report, report_figures
from segbench.cli import main
from segbench.errors import DataError
from segbench.html_template import template_stamp, write_template

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = {"models": {"big": {"arch": "unet"}, "small": {"arch": "unet", "base_channels": 4},
                     "twin": {"arch": "prior_baseline"}}, "plot": {"dpi": 50}}


def declared_plot_outputs() -> list[str]:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["plot"]
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory) -> Path:
    """`segbench plot` (the stage's command) in a directory holding fabricated per-model outputs."""
    root = tmp_path_factory.mktemp("report")
    fake_run(root)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["plot"]) == 0
    finally:
        os.chdir(cwd)
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
    assert report.pareto_front(np.array(quality, float), np.array(cost, float)).tolist() == members


@pytest.mark.parametrize("values, log", [([1, 10], False), ([1, 10.5], True), ([0, 5, 500], False),
                                          ([2, math.nan, 300], True), ([7], False), ([-1, 100], False)])
def test_log_axis_only_beyond_a_decade_of_positive_values(values, log):
    assert report_figures.use_log_scale(values) is log


# --- the stage ------------------------------------------------------------------------------------

def test_stage_writes_every_declared_output(stage_run):
    outs = declared_plot_outputs()
    assert {"plots/miou_vs_latency_cuda.png", "plots/iou_per_class.csv", "plots/training_curves.csv",
            "plots/summary.md", "plots/report_template.html"} <= set(outs)
    for out in outs:
        path = stage_run / out
        assert path.is_file() and path.stat().st_size > 0, out
        if out.endswith(".png"):
            assert path.read_bytes()[:8] == PNG, out


def test_summary_sorted_by_miou_with_pareto_axes(stage_run):
    summary = read_csv(stage_run / "plots/summary.csv").set_index("model")
    assert list(summary.index) == ["big", "small", "twin"]  # the tie keeps params order
    assert list(summary["miou"]) == sorted(summary["miou"], reverse=True)
    assert summary.loc["big", "pareto"] == "train time, CPU latency, GPU latency, size, GFLOPs"
    assert summary.loc["small", "pareto"] == "train time, CPU latency, size"   # twin is free in GFLOPs
    assert summary.loc["twin", "pareto"] == "train time, CPU latency, GFLOPs"  # small is smaller
    assert summary.loc["big", "params"] == 10_000_000 and summary["params"].dtype.kind == "i"  # exact, not 1e+07
    assert summary.loc["big", "latency_cuda_ms"] == 1.5 and summary["latency_cuda_ms"].isna().sum() == 2
    assert summary.loc["small", "latency_cpu_48x64_ms"] == 3.0 and math.isnan(summary.loc["twin", "latency_cpu_48x64_ms"])

    md = (stage_run / "plots/summary.md").read_text().splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    assert header[:3] == ["model", "pareto", "mIoU"] and "GPU latency (ms)" in header
    assert header.index("CPU latency 48x64 (ms)") == header.index("CPU latency (ms)") + 1
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in md[2:5]}
    assert list(rows) == ["big", "small", "twin"]
    gpu = header.index("GPU latency (ms)")
    assert rows["big"][gpu] == "1.5" and rows["small"][gpu] == "—" and rows["twin"][gpu] == "—"
    assert rows["big"][header.index("params")] == "10,000,000"
    assert rows["big"][header.index("mIoU")] == "0.6000"


def test_tradeoff_data_per_axis_and_profiled_size(stage_run):
    def front(name, setting=None):
        df = read_csv(stage_run / f"plots/miou_vs_{name}.csv")
        if setting is not None:
            df = df[df["setting"] == setting]
        return dict(zip(df["model"], df["pareto"]))

    assert front("train_time") == {"big": True, "small": True, "twin": True}
    assert front("size") == {"big": True, "small": True, "twin": False}
    assert front("gflops") == {"big": True, "small": False, "twin": True}
    cpu = read_csv(stage_run / "plots/miou_vs_latency_cpu.csv")
    assert list(dict.fromkeys(cpu["setting"])) == ["32x32 (training size)", "48x64"]
    assert front("latency_cpu", "48x64") == {"big": True, "small": True, "twin": False}  # twin: not measured there
    cuda = read_csv(stage_run / "plots/miou_vs_latency_cuda.csv")
    assert set(cuda["setting"]) == {"32x32 (training size)", "48x64", "32x32 bf16 (training size)"}
    at_training = cuda[cuda["setting"] == "32x32 (training size)"].set_index("model")
    assert at_training.loc["big", "latency_cuda_ms"] == 1.5 and at_training["latency_cuda_ms"].isna().sum() == 2
    assert at_training["pareto"].tolist() == [True, False, False]  # models without CUDA keys: listed, not drawn


def test_heatmap_and_curve_data(stage_run):
    ious = read_csv(stage_run / "plots/iou_per_class.csv")
    assert list(ious.columns) == ["model", "rank", "class", "class_index", "iou"]
    assert list(dict.fromkeys(ious["model"])) == ["big", "small", "twin"]
    assert list(dict.fromkeys(ious["class"])) == ["background", "disk", "pole"]
    pole = ious[ious["class"] == "pole"].set_index("model")["iou"]
    assert pole["big"] == 0.1 and math.isnan(pole["small"])  # undefined IoU stays empty, not 0

    curves = read_csv(stage_run / "plots/training_curves.csv")
    assert list(curves.columns) == ["model", "epoch", "train_loss", "val_loss", "val_miou", "lr", "val_depth_rmse",
                                    "train_depth_loss", "val_depth_loss"]  # depth: empty without task seg_depth
    assert curves[["val_depth_rmse", "train_depth_loss", "val_depth_loss"]].isna().all().all()
    assert set(curves["model"]) == {"big", "small"}  # twin has no DVCLive log: left out, not an error
    assert curves[curves["model"] == "big"]["epoch"].tolist() == [1, 2, 3]
    assert curves["val_miou"].notna().all()


def test_axes_and_gpu_placeholder(tmp_path):
    fake_metrics(tmp_path)
    metrics = report.load_metrics(tmp_path / "metrics", ["big", "small", "twin"])
    colours = report_figures.model_colours(["big", "small", "twin"])
    axes = {a.name: a for a in report.AXES}

    def xscales(name, data=metrics):
        fig = report_figures.tradeoff_figure(report.tradeoff_table(data, axes[name]), axes[name], colours)
        return [ax.get_xscale() for ax in fig.axes]

    assert xscales("train_time") == ["log"]            # 10 .. 120 s
    assert xscales("size") == ["log"]                  # 1 .. 40 MB
    assert xscales("latency_cpu") == ["linear", "log"]  # 2 .. 20 ms is exactly 10x; 3 .. 31 ms is more
    assert xscales("gflops") == ["linear"]             # a zero: no log axis

    no_gpu = [report.ModelMetrics(m.name, m.train, m.eval, {k: v for k, v in m.profile.items() if "cuda" not in k})
              for m in metrics]
    table = report.tradeoff_table(no_gpu, axes["latency_cuda"])
    assert len(table) == 3 and table["latency_cuda_ms"].isna().all()  # the data file keeps its shape
    fig = report_figures.tradeoff_figure(table, axes["latency_cuda"], colours)
    assert any("no GPU measurements" in t.get_text() for ax in fig.axes for t in ax.texts)
    summary = report.summary_table(no_gpu)
    assert "GPU latency" not in report.markdown_table(summary).splitlines()[0]


def test_missing_metrics_is_one_line_error(tmp_path, monkeypatch, capsys):
    fake_metrics(tmp_path, models=("big", "small"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    monkeypatch.chdir(tmp_path)
    assert main(["plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "metrics/twin/train.json" in err and "dvc repro" in err
    write_json(tmp_path / "metrics/twin/train.json", [1, 2])
    with pytest.raises(DataError, match="expected a JSON object"):
        report.load_metrics(tmp_path / "metrics", ["twin"])


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
