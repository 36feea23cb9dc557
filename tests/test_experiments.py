"""DVC around the pipeline: a parallel experiment queue, and sharing results through a remote."""
from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_PARAMS, copy_pipeline, dvc, ran_stages, run, segbench, write_params

from segbench import paths

pytestmark = pytest.mark.integration

GIT_ID = ["-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]


def git(args: list[str], cwd: Path, check: bool = True):
    return run(["git", *GIT_ID, *args], cwd, check=check)


def tiny_benchmark() -> dict:
    raw = copy.deepcopy(TINY_PARAMS)
    raw["seeds"] = [0]  # one training seed (dvc.yaml's matrix reads it from params.yaml)
    raw["data"]["synthetic"].update(num_train=8, num_val=4, num_test=4)
    raw["data"]["workers"] = 1
    raw["train"].update(device="cpu", threads=1)
    raw["profile"]["input_sizes"] = []
    raw["models"] = {"unet": {"arch": "unet", "base_channels": 4}}
    return raw


@pytest.fixture(scope="module")
def benchmark_repo(tmp_path_factory) -> Path:
    """A git + DVC repo of the pipeline with one tiny model, reproduced and committed (the baseline)."""
    dest = tmp_path_factory.mktemp("exp") / "repo"
    copy_pipeline(dest)
    write_params(dest / "params.yaml", tiny_benchmark())
    git(["init", "-q"], dest)
    git(["add", "-A"], dest)
    git(["commit", "-qm", "tiny benchmark"], dest)  # DVCLive needs a commit to log against
    dvc(["repro"], dest)
    git(["add", "-A"], dest)
    git(["commit", "-qm", "tiny benchmark, reproduced"], dest)
    return dest


def wait_for_queue(repo: Path, timeout: float = 240) -> str:
    """Poll `dvc queue status` until nothing is queued or running and the workers have exited."""
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(["queue", "status"], repo).stdout
        busy = re.search(r"\b(Queued|Running)\b", status) or not re.search(r"Worker status: 0 active", status)
        if not busy:
            return status
        if time.monotonic() > deadline:
            dvc(["queue", "stop", "--kill"], repo, check=False)
            pytest.fail(f"the experiment queue did not finish in {timeout} s:\n{status}")
        time.sleep(2)


def test_queued_loss_sweep_runs_in_two_workers_and_is_tabulated(benchmark_repo):
    repo = benchmark_repo
    # ++ sets the key whether or not models.unet already has a train: section; the target
    # aggregate@unet stops each experiment once the model's mIoU exists (profile and plot are not needed here).
    for beta in ("0.0", "1.0"):
        out = dvc(["exp", "run", "--queue", "-S", f"++models.unet.train.beta={beta}",
                   "-S", "++models.unet.train.loss=ce_dice", "aggregate@unet"], repo).stdout
        assert "Queued experiment" in out
    dvc(["queue", "start", "-j", "2"], repo)
    try:
        status = wait_for_queue(repo)
    finally:
        dvc(["queue", "stop"], repo, check=False)
    assert status.count("Success") == 2, status + "\n" + dvc(["queue", "logs", "-h"], repo, check=False).stdout

    table = list(csv.DictReader(io.StringIO(dvc(["exp", "show", "--csv"], repo).stdout)))
    baseline = next(row for row in table if row["typ"] == "baseline" and row["rev"] != "workspace")
    experiments = {row["models.unet.train.beta"]: row for row in table if row["typ"].startswith("branch")}
    assert set(experiments) == {"0.0", "1.0"}, table
    for row in experiments.values():
        assert row["State"] == "Success" and row["models.unet.train.loss"] == "ce_dice"
        assert 0.0 <= float(row["miou.mean"]) <= 1.0 and float(row["train_time_s.mean"]) > 0
    # beta 1 is pure cross-entropy, the baseline's loss: the same training to the bit; beta 0 is Dice alone.
    assert experiments["1.0"]["final_train_loss.mean"] == baseline["final_train_loss.mean"]
    assert experiments["0.0"]["final_train_loss.mean"] != baseline["final_train_loss.mean"]


def test_results_travel_through_a_remote_to_a_fresh_clone(benchmark_repo, tmp_path):
    repo, remote, clone = benchmark_repo, tmp_path / "remote", tmp_path / "clone"
    main = git(["branch", "--show-current"], repo).stdout.strip()
    dvc(["remote", "add", "-d", "shared", str(remote)], repo)
    git(["commit", "-qam", "shared DVC remote"], repo)
    assert "pushed" in dvc(["push"], repo).stdout

    git(["checkout", "-qb", "higher-lr"], repo)  # a second branch with other results
    try:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["models"]["unet"]["train"] = {"lr": 0.05}
        write_params(repo / "params.yaml", params)
        dvc(["repro", "aggregate@unet"], repo)
        git(["add", "-A"], repo)
        git(["commit", "-qm", "unet at lr 0.05"], repo)
        dvc(["push"], repo)
    finally:
        git(["checkout", "-q", main], repo)
        dvc(["checkout"], repo)

    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    checkpoint = clone / paths.checkpoint_path("unet", 0)
    assert not checkpoint.exists()
    dvc(["pull"], clone)
    assert checkpoint.is_file() and (clone / "data/processed/manifest.json").is_file()
    again = dvc(["repro"], clone)
    assert ran_stages(again.stdout) == set(), again.stdout

    diff = json.loads(dvc(["metrics", "diff", main, "origin/higher-lr", "--json"], clone).stdout)
    assert "miou.mean" in diff["metrics/unet/eval.json"] and "final_train_loss.mean" in diff["metrics/unet/train.json"]
    assert diff["metrics/unet/train.json"]["final_train_loss.mean"]["diff"] != 0


def test_set_param_rewrite_of_the_default_params_still_loads(tmp_path):
    from dvc.utils.hydra import apply_overrides

    from segbench.config import load_params

    params = tmp_path / "params.yaml"
    shutil.copy2(REPO / "params.yaml", params)
    apply_overrides(str(params), ["++models.unet.train.beta=0.0"])  # what `dvc exp run -S` does to the file
    assert load_params(params).train.amp == "auto"
    apply_overrides(str(params), ["++train.amp=off"])  # YAML 1.1 reads a bare off as false
    assert load_params(params).train.amp == "off"


def test_documented_per_model_experiment_reruns_only_that_model(benchmark_repo, tmp_path):
    """The docs' one more experiment: `dvc exp run -S '++models.unet.train.lr=0.01'`. `++` because
    DVC's -S (Hydra overrides) refuses a plain key the params file lacks, and a model entry holds
    only what it changes (models.unet has no train: section); `++` adds it, or sets it where it is."""
    repo = tmp_path / "repo"
    shutil.copytree(benchmark_repo, repo, symlinks=True)  # dvc exp run applies its result to the workspace
    plain = dvc(["exp", "run", "-S", "models.unet.train.lr=0.01"], repo, check=False)
    assert plain.returncode != 0 and "Invalid `--set-param` value" in plain.stderr + plain.stdout

    out = dvc(["exp", "run", "-S", "++models.unet.train.lr=0.01"], repo).stdout
    assert {"train@unet-0", "evaluate@unet-0", "aggregate@unet", "plot"} <= ran_stages(out), out
    assert not {"download", "preprocess"} & ran_stages(out), out
    assert yaml.safe_load((repo / "params.yaml").read_text())["models"]["unet"]["train"] == {"lr": 0.01}
    table = list(csv.DictReader(io.StringIO(dvc(["exp", "show", "--csv"], repo).stdout)))
    assert [row["models.unet.train.lr"] for row in table if row["typ"].startswith("branch")] == ["0.01"], table
    # the rest of the docs' block (docs/experiments.md names this test as the one that runs it)
    assert dvc(["exp", "show", "--no-pager"], repo).stdout.strip()  # a table as wide as the terminal: it runs
    exps = segbench(["diff", "--exps"], repo)
    assert exps.returncode == 0 and "experiment(s) against HEAD" in exps.stdout, exps.stdout + exps.stderr
    # this one among them (the module's queued sweep, when it ran first, left its two in the copied repo)
    assert "models.unet.train.lr (absent) -> 0.01" in exps.stdout, exps.stdout
