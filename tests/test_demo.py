"""`segbench demo`: the whole DAG in a workspace of its own, cut to one seed and a few epochs; the
checkout it starts from is left exactly as it was, and it ends by saying where the report is."""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TINY_PARAMS, segbench, write_params

from segbench.commands.demo import quick_params


def status(repo: Path) -> list[str]:
    """git's view of every file that is new, changed or ignored (outputs included); bytecode aside."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    return sorted(line for line in out.splitlines() if "__pycache__" not in line)


def test_quick_params_cuts_seeds_epochs_and_profiling_and_keeps_every_model():
    params = copy.deepcopy(TINY_PARAMS)
    params.update(seeds=[3, 1, 2])
    params["models"]["deeplab"]["train"] = {"epochs": 9, "lr": 0.1}
    quick_params(params, epochs=2)
    assert params["seeds"] == [3] and params["train"]["epochs"] == 2
    assert params["models"]["deeplab"]["train"] == {"epochs": 2, "lr": 0.1} and "train" not in params["models"]["unet"]
    assert set(params["models"]) == set(TINY_PARAMS["models"])
    assert params["profile"]["backends"] == ["eager"] and params["profile"]["quiet_wait_s"] == 0


def test_demo_refuses_a_folder_with_files_in_it(workspace, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    proc = segbench(["demo", "--dir", str(taken)], workspace)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"segbench: error: --dir {taken}: exists and is not an empty folder; give a new or empty folder "
        "(the demo writes a whole workspace there)"]
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]


@pytest.mark.integration
def test_demo_runs_the_whole_pipeline_elsewhere_and_says_where_the_report_is(workspace, tmp_path):
    params = copy.deepcopy(TINY_PARAMS)
    params.update(seeds=[0, 1])
    params["train"]["epochs"] = 3
    write_params(workspace / "params.yaml", params)
    subprocess.run(["git", "-c", "user.email=t@segbench", "-c", "user.name=t", "commit", "-qam", "two seeds"],
                   cwd=workspace, check=True)
    before, dest = status(workspace), tmp_path / "demo"

    proc = segbench(["demo", "--dir", str(dest), "--epochs", "1"], workspace)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert status(workspace) == before  # no output, no lock, no params change in the checkout
    summary = dest / "plots" / "summary.md"
    assert "unet" in summary.read_text() and "deeplab" in summary.read_text()
    assert f"report: {summary}" in proc.stdout and f"cd {dest} && dvc plots show" in proc.stdout
    ran = yaml.safe_load((dest / "params.yaml").read_text())
    assert ran["seeds"] == [0] and ran["train"]["epochs"] == 1 and set(ran["models"]) == set(params["models"])
    assert (dest / "metrics/unet/seeds/0/eval.json").is_file() and not (dest / "metrics/unet/seeds/1").exists()
