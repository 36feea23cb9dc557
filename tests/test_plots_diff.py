"""Two commits of a real tiny benchmark: `dvc metrics diff` and `dvc plots diff` show one model's change only.

test_pipeline checks which stages re-run after a one-model edit; this checks what a user then
sees when comparing the two commits: the edited model's metrics and plot data change, the other
model's are byte-for-byte the same (its stages did not re-run, so even its timings are equal),
and `dvc plots diff` carries both revisions for every report plot.
"""
from __future__ import annotations

import io
import json
import sys

import pandas as pd
import pytest

from conftest import TINY_PARAMS, run, write_params

pytestmark = pytest.mark.integration

GIT = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
# The cheapest pair: the class prior (no network) and a narrow U-Net.
MODELS = {"prior": {"arch": "prior_baseline"}, "unet": {"arch": "unet", "base_channels": 4}}


def dvc(args, cwd):
    return run([sys.executable, "-m", "dvc", *args], cwd)


def commit(repo, message):
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", message], repo)


def at(repo, rev: str, path: str) -> str:
    return run(["git", "show", f"{rev}:{path}"], repo).stdout


def test_one_model_edit_diffs_only_that_model(workspace):
    params = dict(TINY_PARAMS, models=MODELS)
    write_params(workspace / "params.yaml", params)
    dvc(["repro"], workspace)
    commit(workspace, "baseline")

    params["models"]["unet"] = {"arch": "unet", "base_channels": 6}
    write_params(workspace / "params.yaml", params)
    dvc(["repro"], workspace)
    commit(workspace, "wider unet")

    changed = run(["git", "diff", "--name-only", "HEAD~1", "HEAD"], workspace).stdout.split()
    assert "metrics/unet/profile.json" in changed and "plots/summary.csv" in changed
    assert not [p for p in changed if p.startswith(("metrics/prior/", "plots/prior/"))], changed

    metrics = json.loads(dvc(["metrics", "diff", "HEAD~1", "HEAD", "--json"], workspace).stdout)
    assert metrics and all(path.startswith("metrics/unet/") for path in metrics), list(metrics)
    params_diff = metrics["metrics/unet/profile.json"]["params"]
    assert params_diff["new"] > params_diff["old"] > 0  # 6 channels instead of 4

    # the report's tables: the prior's row is unchanged, apart from whether the new unet dominates it
    old, new = (pd.read_csv(io.StringIO(at(workspace, rev, "plots/summary.csv"))).set_index("model")
                for rev in ("HEAD~1", "HEAD"))
    assert old.loc["prior"].drop("pareto").equals(new.loc["prior"].drop("pareto"))
    assert old.loc["unet", "params"] < new.loc["unet", "params"]

    plots = json.loads(dvc(["plots", "diff", "HEAD~1", "HEAD", "--json"], workspace).stdout)
    assert not plots.get("errors"), plots["errors"]
    data = plots["data"]
    for name in ("plots/miou_vs_size.csv", "plots/miou_vs_latency_cpu.csv", "plots/iou_per_class.csv",
                 "Validation mIoU per epoch", "plots/miou_vs_size.png"):
        revisions = {rev for entry in data[name] for rev in entry["revisions"]}  # an image: one entry per revision
        assert {"HEAD~1", "HEAD"} <= revisions, name
    rows = data["plots/miou_vs_size.csv"][0]["content"]["data"]["values"]
    by_rev = {(r["rev"], r["model"]): (r["size_mb"], r["miou"]) for r in rows}
    assert by_rev[("HEAD~1", "prior")] == by_rev[("HEAD", "prior")]
    assert float(by_rev[("HEAD~1", "unet")][0]) < float(by_rev[("HEAD", "unet")][0])
    heatmap = data["plots/iou_per_class.csv"][0]["content"]["data"]["values"]
    assert {r["rev"] for r in heatmap if r["model"] == "prior"} == {"HEAD~1", "HEAD"}
