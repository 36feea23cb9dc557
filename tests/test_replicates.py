"""Seed replicates through real `dvc repro`: adding a seed runs only that seed's stages, the
aggregates and the report; the aggregates and `dvc metrics diff` carry mean, sd, n and the interval."""
import copy
import json

import pytest
from conftest import TINY_PARAMS, dvc, ran_stages, run, stale_stages, write_params

pytestmark = pytest.mark.integration


def test_adding_a_seed_runs_only_that_seed(workspace):
    params = copy.deepcopy(TINY_PARAMS)
    params["models"] = {"unet": params["models"]["unet"]}
    params["seeds"] = [0]
    write_params(workspace / "params.yaml", params)
    dvc(["repro"], workspace)
    one = json.loads((workspace / "metrics/unet/eval.json").read_text())
    assert one["seeds"] == [0] and one["miou"]["n"] == 1 and one["miou"]["ci95_low"] is None
    assert "needs >= 2 seeds" in (workspace / "plots/summary.md").read_text()
    git = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
    run([*git, "add", "-A"], workspace)
    run([*git, "commit", "-qm", "one seed"], workspace)

    params["seeds"] = [0, 1]
    write_params(workspace / "params.yaml", params)
    expected = {"train@unet-1", "evaluate@unet-1", "aggregate@unet", "plot"}
    assert stale_stages(workspace) == expected  # stage environment (always changed) aside
    assert ran_stages(dvc(["repro"], workspace).stdout) == expected  # seed 0's training and evaluation and the profile are kept

    two = json.loads((workspace / "metrics/unet/eval.json").read_text())
    per_seed = [json.loads((workspace / f"metrics/unet/seeds/{s}/eval.json").read_text())["miou"] for s in (0, 1)]
    assert two["seeds"] == [0, 1] and two["miou"]["n"] == 2
    assert two["miou"]["mean"] == pytest.approx(sum(per_seed) / 2) and per_seed[0] == one["miou"]["mean"]
    assert two["miou"]["ci95_low"] <= two["miou"]["mean"] <= two["miou"]["ci95_high"]
    diff = dvc(["metrics", "diff", "--json"], workspace).stdout
    changed = json.loads(diff)["metrics/unet/eval.json"]
    assert {"miou.mean", "miou.n", "miou.ci95_low"} <= changed.keys()
    assert changed["miou.n"] == {"old": 1, "new": 2, "diff": 1}
