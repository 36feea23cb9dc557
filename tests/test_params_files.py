"""Every params file the repository ships (params.yaml, params/*.yaml) is a working benchmark:
DVC's own index expands dvc.yaml over it, `segbench check` passes it as a file `dvc repro` can run,
and (integration) `dvc repro` runs it end to end in a scratch copy at a reduced size
(tests/reduced.py: one seed, one epoch, four 32x32 images per split). Every model of every file
passes `segbench check`; the code every model runs (its task, architecture, backbone and encoder)
runs once across the files (reduced.first_runs), so a model shared by two files trains once."""
from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import REPO, dvc, ran_stages
from reduced import first_runs, keep_models, shrink_params
from test_preprocess import CAMVID, needs_camvid

from segbench import paths
from segbench.config import load_params

SHIPPED = [REPO / "params.yaml", *sorted((REPO / "params").glob("*.yaml"))]
IDS = [p.relative_to(REPO).as_posix() for p in SHIPPED]
# the default first, the real dataset last: it runs the models the others left it (or its first learned one)
RUNS = first_runs(sorted(SHIPPED, key=lambda p: (p.name != "params.yaml", "camvid" in p.name, p.name)))


def test_every_shipped_file_is_listed():
    assert set(IDS) >= {"params.yaml", "params/camvid.yaml", "params/full.yaml", "params/mask_depth.yaml"}


def test_the_reduced_runs_run_the_code_of_every_model_of_every_file():
    import yaml
    from reduced import model_code_key

    raw = {f: yaml.safe_load(f.read_text()) for f in SHIPPED}
    run = {model_code_key(raw[f], raw[f]["models"][m]) for f, models in RUNS.items() for m in models}
    every = {model_code_key(params, entry) for params in raw.values() for entry in params["models"].values()}
    assert every == run and all(RUNS[f] for f in SHIPPED), RUNS


@pytest.mark.parametrize("params_file", SHIPPED, ids=IDS)
def test_segbench_check_passes_it_and_dvc_expands_the_pipeline_over_it(params_file, workspace, monkeypatch, capsys):
    """In a copy of the pipeline (beside dvc.yaml: checked as a file `dvc repro` runs), `segbench check`
    passes the file and DVC's own index parses dvc.yaml with it: a train and evaluate stage per model and seed."""
    from dvc.repo import Repo

    from segbench.cli import main

    shutil.copy2(params_file, workspace / "params.yaml")
    monkeypatch.chdir(workspace)
    assert main(["check"]) == 0, capsys.readouterr().err
    assert "every key dvc.yaml reads is set" in capsys.readouterr().out.splitlines()[0]
    params = load_params("params.yaml")
    with Repo(str(workspace)) as repo:
        names = {stage.name for stage in repo.index.stages}
    expected = {f"{kind}@{model}-{seed}" for kind in ("train", "evaluate") for model in params.models for seed in params.seeds}
    assert expected <= names and {f"profile@{m}" for m in params.models} <= names and "plot" in names


def reproduce(params_file: Path, workspace: Path) -> float:
    """`dvc repro` of the shipped file, shrunk, in the scratch workspace; its wall time (s)."""
    shutil.copy2(params_file, workspace / "params.yaml")
    shrink_params(workspace / "params.yaml", data_path=CAMVID)
    keep_models(workspace / "params.yaml", RUNS[params_file])
    started = time.perf_counter()
    dvc(["repro"], workspace)
    seconds = time.perf_counter() - started
    print(f"{params_file.relative_to(REPO)}: dvc repro (reduced) {seconds:.0f} s")
    return seconds


def assert_every_model_reported(workspace: Path) -> None:
    params = load_params(workspace / "params.yaml")
    for model in params.models:
        report = json.loads((workspace / paths.metrics_path(model, "eval")).read_text())
        assert report["seeds"] == [params.seeds[0]] and 0.0 <= report["miou"]["mean"] <= 1.0, model
        assert (workspace / paths.metrics_path(model, "profile")).is_file(), model
    summary = (workspace / paths.summary_md(workspace / paths.PLOTS_DIR)).read_text()
    assert all(re.search(rf"\b{re.escape(model)}\b", summary) for model in params.models), summary


SYNTHETIC = [p for p in SHIPPED if "camvid" not in p.name and "mask_depth" not in p.name]


@pytest.mark.integration
@pytest.mark.parametrize("params_file", SYNTHETIC, ids=[p.relative_to(REPO).as_posix() for p in SYNTHETIC])
def test_reduced_repro_of_a_synthetic_file(params_file, workspace):
    reproduce(params_file, workspace)
    assert_every_model_reported(workspace)


@pytest.mark.integration
@needs_camvid
def test_reduced_repro_of_camvid_reads_it_in_place(workspace):
    reproduce(REPO / "params" / "camvid.yaml", workspace)
    assert_every_model_reported(workspace)
    source = json.loads((workspace / "data/raw/source.json").read_text())
    assert source["path"] == str(CAMVID.resolve()) and source["files"] >= 1402  # 701 images + 701 masks
    manifest = json.loads((workspace / "data/processed/manifest.json").read_text())
    assert manifest["splits"] == {"train": 4, "val": 4, "test": 4} and manifest["num_classes"] == 11
    report = json.loads((workspace / paths.metrics_path("unet", "eval")).read_text())
    assert report["split"] == "test" and list(report["iou_per_class"]) == manifest["class_names"]
    # nothing from the dataset is copied into the workspace, and a second run has nothing to do
    assert not list((workspace / "data/raw").glob("*.png")) and not (workspace / "data/raw/train").exists()
    assert ran_stages(dvc(["repro"], workspace, timeout=3600).stdout) == set()


@pytest.mark.integration
def test_reduced_repro_of_mask_depth_writes_every_depth_key(workspace):
    """The seg_depth task through the whole DAG: every depth metric, logged curve, plot and summary line."""
    import pandas as pd
    from test_seg_depth import DEPTH_KEYS

    reproduce(REPO / "params" / "mask_depth.yaml", workspace)
    assert_every_model_reported(workspace)
    params = load_params(workspace / "params.yaml")
    for model in params.models:
        ev = json.loads((workspace / paths.metrics_path(model, "eval")).read_text())  # summaries over the seeds
        assert DEPTH_KEYS <= ev.keys() and {"miou", "iou_per_class"} <= ev.keys()
        mean = {k: ev[k]["mean"] for k in DEPTH_KEYS}
        assert all(math.isfinite(mean[k]) for k in DEPTH_KEYS)
        assert mean["depth_rmse"] > 0 and 0 <= mean["depth_delta1"] <= mean["depth_delta2"] <= mean["depth_delta3"] <= 1
        train = json.loads((workspace / paths.metrics_path(model, "train")).read_text())
        assert {"best_val_depth_rmse", "final_train_mask_loss", "final_train_depth_loss"} <= train.keys()
        logged = workspace / paths.train_log_dir(model, params.seeds[0]) / "plots/metrics"
        for metric in ("train_mask_loss", "train_depth_loss", "val_mask_loss", "val_depth_loss", "val_depth_rmse"):
            assert len(pd.read_csv(logged / f"{metric}.tsv", sep="\t")) == 1, metric  # one per epoch
        assert (workspace / f"plots/{model}/predictions.png").read_bytes()[:4] == b"\x89PNG"
        prof = json.loads((workspace / paths.metrics_path(model, "profile")).read_text())
        assert prof["params"] > 0 and prof["latency_cpu_ms"] > 0
    table = pd.read_csv(workspace / "plots/measured/depth_rmse_vs_cost.csv")
    assert set(table["model"]) == set(params.models) and table["depth_rmse"].notna().all()
    summary = (workspace / "plots/summary.md").read_text()
    assert "depth RMSE (m)" in summary and "mean-depth RMSE (m)" in summary
    curves = pd.read_csv(workspace / "plots/training_curves.csv")
    assert curves["val_depth_rmse"].notna().sum() == len(params.models)  # one epoch per model
