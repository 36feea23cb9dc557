"""The whole DAG through real `dvc repro` on tiny synthetic data, then what a user sees when
comparing two commits: `dvc metrics diff` and `dvc plots diff` show the edited model's change
and nothing for the other model (its stages did not re-run, so even its timings are equal)."""
import io
import json

import pandas as pd
import pytest
import yaml
from conftest import TINY_PARAMS, dvc, ran_stages, run, stale_stages, write_params

from segbench import paths

pytestmark = pytest.mark.integration

MODELS = ("unet", "deeplab")
SEED = 0  # one training seed: stages train@<model>-0 and evaluate@<model>-0
# the summary's columns that compare each model with the others (they move when another model changes): the
# difference to the best and its verdict, the plausibly-best set, P(best), Pareto membership, the equal-time
# budget (the shortest learned model's training time) and the diagnoses that weigh a row against its neighbours
VS_BEST = ["pareto", "miou_vs_best", "miou_vs_best_low", "miou_vs_best_high", "miou_tied_with_best", "miou_verdict",
           "best_set", "p_best", "miou_equal_time", "diagnosis"]


GIT = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]


def commit(repo, message):
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", message], repo)


def at(repo, rev: str, path: str) -> str:
    return run(["git", "show", f"{rev}:{path}"], repo).stdout


def model_stages(model: str) -> set[str]:
    return {f"train@{model}-{SEED}", f"evaluate@{model}-{SEED}", f"aggregate@{model}", f"profile@{model}"}


def test_repro_end_to_end_then_noop_then_one_model_edit(workspace):
    # dvc.yaml's matrix reads `seeds` from params.yaml (DVC has no default for a missing variable)
    write_params(workspace / "params.yaml", {**TINY_PARAMS, "seeds": [SEED]})
    first = dvc(["repro"], workspace)
    expected = {"download", "preprocess", "plot"} | {stage for m in MODELS for stage in model_stages(m)}
    assert ran_stages(first.stdout) == expected

    for model in MODELS:
        # the aggregate stage's summaries over the seeds: {"mean", "std", "n", "ci95_low", "ci95_high"} per number
        train = json.loads((workspace / paths.metrics_path(model, "train")).read_text())
        assert {"train_time_s", "epochs", "best_epoch", "best_val_miou", "images_per_s"} <= train.keys()
        assert train["seeds"] == [SEED] and train["epochs"]["n"] == 1
        assert train["epochs"]["mean"] == 1 and train["train_time_s"]["mean"] > 0
        ev = json.loads((workspace / paths.metrics_path(model, "eval")).read_text())
        assert {"miou", "mrecall", "accuracy", "mdice", "iou_per_class"} <= ev.keys()
        assert list(ev["iou_per_class"]) == ["background", "disk", "box", "triangle", "ring", "pole"]
        assert 0 <= ev["miou"]["mean"] <= 1 and 0 <= ev["accuracy"]["mean"] <= 1
        seed_ev = json.loads((workspace / paths.seed_metrics_path(model, SEED, "eval")).read_text())
        assert seed_ev["miou"] == ev["miou"]["mean"]  # one seed: the summary's mean is that seed's score
        prof = json.loads((workspace / f"metrics/{model}/profile.json").read_text())
        assert {"params", "size_mb", "latency_cpu_ms", "latency_cpu_p90_ms"} <= prof.keys()
        assert prof["params"] > 0 and prof["latency_cpu_ms"] > 0 and prof["latency_cpu_p90_ms"] >= prof["latency_cpu_ms"]
        assert "latency_cuda_ms" not in prof  # absent, not zero, without a GPU
        assert (workspace / paths.checkpoint_path(model, SEED)).is_file()
    for png in ("miou_vs_train_time.png", "miou_vs_latency_cpu.png", "miou_vs_size.png"):
        assert (workspace / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (workspace / "plots/summary.md").read_text()
    assert all(f"| {m} |" in summary for m in MODELS)

    metrics = json.loads(dvc(["metrics", "show", "--json"], workspace).stdout)
    shown = json.dumps(metrics)
    assert all(f"metrics/{m}/{p}.json" in shown for m in MODELS for p in ("train", "eval", "profile"))
    plots = dvc(["plots", "show", "--json"], workspace).stdout
    assert all(png in plots for png in ("miou_vs_train_time.png", "miou_vs_latency_cpu.png", "miou_vs_size.png"))

    second = dvc(["repro"], workspace)
    assert ran_stages(second.stdout) == set(), second.stdout

    commit(workspace, "baseline")

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["models"]["unet"]["base_channels"] = 6
    params["models"]["unet"]["train"] = {"lr": 0.005}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = dvc(["repro"], workspace)
    assert ran_stages(third.stdout) == model_stages("unet") | {"plot"}
    commit(workspace, "wider unet")

    changed = run(["git", "diff", "--name-only", "HEAD~1", "HEAD"], workspace).stdout.split()
    assert "metrics/unet/profile.json" in changed and "plots/summary.csv" in changed
    assert not [p for p in changed if p.startswith(("metrics/deeplab/", "plots/deeplab/"))], changed

    metrics = json.loads(dvc(["metrics", "diff", "HEAD~1", "HEAD", "--json"], workspace).stdout)
    assert metrics and all(path.startswith("metrics/unet/") for path in metrics), list(metrics)
    params_diff = metrics["metrics/unet/profile.json"]["params"]
    assert params_diff["new"] > params_diff["old"] > 0  # 6 channels instead of 4

    # the report's tables: the untouched model's row is unchanged, apart from Pareto membership
    # and its difference to the best model
    old, new = (pd.read_csv(io.StringIO(at(workspace, rev, "plots/summary.csv"))).set_index("model")
                for rev in ("HEAD~1", "HEAD"))
    assert old.loc["deeplab"].drop(VS_BEST).equals(new.loc["deeplab"].drop(VS_BEST))
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
    assert by_rev[("HEAD~1", "deeplab")] == by_rev[("HEAD", "deeplab")]
    assert float(by_rev[("HEAD~1", "unet")][0]) < float(by_rev[("HEAD", "unet")][0])

    # Code deps are complete: an edit to how validation scores are computed (metrics.py, which
    # picks the kept epoch) makes every train stage stale, not only evaluate.
    metrics_py = workspace / "src/segbench/metrics.py"
    metrics_py.write_text(metrics_py.read_text() + "\n# an edit\n")
    stale = dvc(["status", "--json"], workspace).stdout
    assert {f"{s}@{m}-{SEED}" for s in ("train", "evaluate") for m in MODELS} <= set(json.loads(stale)), stale
    run(["git", "checkout", "--", "src/segbench/metrics.py"], workspace)
    code_deps_are_exact(workspace)


def edit(path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def code_deps_are_exact(workspace) -> None:
    """Editing the report or the plot command makes only `plot` stale; editing the training loop makes
    every train stage stale, and a repro then re-runs each train stage and what its outputs change."""
    for module in ("src/segbench/report/markdown.py", "src/segbench/commands/plot.py"):
        edit(workspace / module)
        stale = stale_stages(workspace)
        assert stale == {"plot"}, (module, stale)
        run(["git", "checkout", "--", module], workspace)

    edit(workspace / "src/segbench/engine.py")
    stale = stale_stages(workspace)
    assert stale == {f"train@{m}-{SEED}" for m in MODELS}, stale
    # training is deterministic: the same checkpoints, so evaluate and profile stay; the new timings
    # (train.json) re-run the aggregates and the report
    again = ran_stages(dvc(["repro"], workspace).stdout)
    assert again == {"plot"} | {f"{s}@{m}-{SEED}" for m in MODELS for s in ("train",)} | {f"aggregate@{m}" for m in MODELS}
