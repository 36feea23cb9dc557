"""`segbench diff`: two real revisions of a fabricated benchmark in a temporary git + DVC repository.

One repository, built once: revision `a` (four models, per-image files as DVC outputs in dvc.lock);
branch `changed` (a planted better and a planted worse model, an unchanged one with other seeds,
one trained and timed in another environment, a model added, a param changed); branch `newdata`
(every model scored on another test set, one removed); a DVC experiment `lr-up` made with
`dvc exp save`; and revisions that cannot be compared. A copy without the DVC cache checks the
fallback to per-seed values. No training: tests/fake_run.py's per-image statistics.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import fake_run
import numpy as np
import pytest
import yaml
from conftest import REPO
from fake_run import ENV, QUIET, eval_report, per_image_counts, write_json

from segbench import stats
from segbench.aggregate import aggregate_reports
from segbench.cli import main
from segbench.keys import LatencyKey, throughput_key
from segbench.revisions import rows as diff_rows
from segbench.revisions.costs import cost_rows
from segbench.revisions.quality import Evidence, quality_rows
from segbench.revisions.read import ModelMetrics, RevisionError

SEEDS = [0, 1, 2]
BASE = {"big": (0.95, 0.85), "small": (0.85, 0.65), "twin": (0.85, 0.65), "worse": (0.7, 0.4)}
OTHER_ENV = ENV | {"cpu": "Other CPU 7", "cpu_features": ["avx2", "fma", "avx512f", "avx512_bf16"], "torch": "2.15.0",
                   "id": "7a7b7c7d"}
DVC_YAML = """stages:
  evaluate:
    matrix:
      model: ${models}
      seed: ${seeds}
    cmd: "true"
    deps:
      - data/processed
    params:
      - models.${item.model}
    outs:
      - metrics/${item.model}/seeds/${item.seed}/per_image.npz
"""


# --- fabricating a run ----------------------------------------------------------------------------

def model_spec(quality, *, noise=None, images=20, env=ENV, amp="off", latency=2.0, size=1.0, time_s=10.0) -> dict:
    return {"quality": quality, "noise": noise, "images": images, "env": env, "amp": amp, "latency": latency,
            "size": size, "time_s": time_s}


def counts_for(name: str, spec: dict, seed: int) -> np.ndarray:
    """fake_run's per-image counts for `spec`'s quality; `noise` names another draw of the same configuration."""
    source = spec["noise"] or name
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(fake_run.QUALITY, source, spec["quality"])
        mp.setattr(fake_run, "PREDICTIONS", {})
        mp.setattr(fake_run, "IMAGES", spec["images"])
        return per_image_counts(source, seed)


def write_model(root: Path, name: str, spec: dict) -> None:
    reports = {"eval": [], "train": []}
    for seed in SEEDS:
        base = root / "metrics" / name / "seeds" / str(seed)
        counts = counts_for(name, spec, seed)
        reports["eval"].append(eval_report(counts) | {"env": spec["env"]})
        reports["train"].append({"train_time_s": spec["time_s"] * (1 + 0.01 * seed), "epochs": 3, "peak_rss_mb": 500.0 + seed,
                                 "device": "cpu", "threads": 2, "amp": spec["amp"], "contention": QUIET, "env": spec["env"]})
        for part in ("eval", "train"):
            write_json(base / f"{part}.json", reports[part][-1])
        base.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(base / "per_image.npz", mask_counts=counts)
    for part in ("eval", "train"):
        write_json(root / "metrics" / name / f"{part}.json", {"seeds": SEEDS, **aggregate_reports(reports[part], SEEDS)})
    write_json(root / "metrics" / name / "profile.json", profile(spec))


def profile(spec: dict) -> dict:
    out = {"params": int(spec["size"] * 250_000), "size_mb": spec["size"], "gflops": 0.1, "input_height": 32,
           "input_width": 32, "threads": 2, "peak_rss_mb": 300.0, "contention": QUIET, "env": spec["env"]}
    for key, latency in ((LatencyKey(), spec["latency"]), (LatencyKey(size=(48, 64)), spec["latency"] * 1.5)):
        out |= {key.name: latency, key.stat("median_rel_ci"): 0.02, key.stat("runs"): 40}
    out[throughput_key("cpu")] = 8 / (spec["latency"] * 4 / 1000)
    return out


def write_run(root: Path, specs: dict[str, dict], params: dict) -> None:
    shutil.rmtree(root / "metrics", ignore_errors=True)
    for name, spec in specs.items():
        write_model(root, name, spec)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def params_for(models, lr_small=0.003) -> dict:
    entries = {m: {"arch": "unet", "base_channels": 8} for m in models}
    if "small" in entries:
        entries["small"]["train"] = {"lr": lr_small}
    return {"seed": 0, "seeds": SEEDS, "task": "segmentation", "data": {"subset": None},
            "train": {"epochs": 3, "lr": 0.003}, "plot": {"bootstrap": 500, "bootstrap_seed": 0}, "models": entries}


def git(root: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.email=t@segbench", "-c", "user.name=segbench-test", *args]
    return subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout


def commit(root: Path, message: str) -> None:
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:
        repo.commit(force=True)  # dvc.lock and the cache: the per-image files become DVC outputs
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diff") / "repo"
    (root / "data" / "processed").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "data" / "processed" / "manifest.json").write_text('{"test": 20}')
    base = {m: model_spec(q) for m, q in BASE.items()}
    write_run(root, base, params_for(BASE))
    commit(root, "a")
    git(root, "tag", "a")

    git(root, "checkout", "-q", "-b", "changed")
    changed = base | {"small": model_spec((0.93, 0.8), size=0.8), "worse": model_spec((0.62, 0.3), latency=2.6),
                      "big": model_spec(BASE["big"], noise="big-again"),
                      "twin": model_spec(BASE["twin"], env=OTHER_ENV, amp="bf16", latency=1.0, time_s=6.0),
                      "extra": model_spec((0.8, 0.6))}
    write_run(root, changed, params_for([*BASE, "extra"], lr_small=0.01))
    commit(root, "changed")

    git(root, "checkout", "-q", "main", "-b", "newdata")
    (root / "data" / "processed" / "manifest.json").write_text('{"test": 15}')
    write_run(root, {m: model_spec(q, images=15) for m, q in BASE.items() if m != "worse"},
              params_for([m for m in BASE if m != "worse"]))
    commit(root, "newdata")

    git(root, "checkout", "-q", "main")
    (root / "data" / "processed" / "manifest.json").write_text('{"test": 20}')
    write_run(root, base | {"small": model_spec((0.93, 0.8))}, params_for(BASE, lr_small=0.01))
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as dvc_repo:
        dvc_repo.experiments.save(name="lr-up", force=True)  # a real DVC experiment: refs/exps/.../lr-up
    git(root, "checkout", "-q", "-f", "main")
    write_run(root, base, params_for(BASE))  # the workspace as `a` left it

    git(root, "checkout", "-q", "--orphan", "bare")
    git(root, "rm", "-rqf", "--cached", ".")
    (root / "README").write_text("no benchmark here\n")
    git(root, "add", "README")
    git(root, "commit", "-qm", "no metrics")
    git(root, "checkout", "-q", "-f", "main")
    write_run(root, base, params_for(BASE))
    return root


def diff(root: Path, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(root)
    try:
        code = main(["diff", *args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def as_json(root, monkeypatch, capsys, *args) -> dict:
    code, out, err = diff(root, monkeypatch, capsys, *args, "--json")
    assert code == 0, err
    result = json.loads(out)
    result["by_model"] = {m["model"]: m for m in result["models"]}
    return result


def row(model: dict, key: str) -> dict:
    return next(r for r in model["quality"] + model["costs"] if r["key"] == key)


# --- the paired bootstrap on two real revisions -------------------------------------------------------

def test_planted_changes_are_found_with_the_paired_bootstrap(repo, monkeypatch, capsys):
    result = as_json(repo, monkeypatch, capsys, "a", "changed")
    models = result["by_model"]
    assert {m: models[m]["verdict"] for m in models} == {
        "big": "no detectable change", "small": "better", "twin": "no detectable change", "worse": "worse"}
    assert all(m["method"] == "paired bootstrap" for m in models.values())
    miou = row(models["small"], "miou")
    assert miou["ci95_low"] > 0 and miou["ci95_low"] < miou["diff"] < miou["ci95_high"]
    assert row(models["worse"], "miou")["ci95_high"] < 0
    big = row(models["big"], "miou")  # the same configuration, another draw of the seeds: a non-zero difference, tied
    assert big["diff"] != 0 and big["ci95_low"] < 0 < big["ci95_high"]
    # the other scores have no per-image resampling in segbench.stats: Welch over the seeds
    assert row(models["small"], "mdice")["note"].startswith("Welch over seeds")
    assert result["added"] == ["extra"] and result["removed"] == [] and result["worse"] == ["worse"]
    assert {c["key"]: (c["a"], c["b"]) for c in models["small"]["params"]} == {"models.small.train.lr": (0.003, 0.01)}
    assert models["big"]["params"] == []


def test_costs_size_is_exact_timings_from_two_runs_get_no_verdict(repo, monkeypatch, capsys):
    models = as_json(repo, monkeypatch, capsys, "a", "changed")["by_model"]
    assert row(models["small"], "size_mb")["verdict"] == "better"  # 1.0 -> 0.8 MB: machine-independent, real
    assert row(models["big"], "size_mb")["verdict"] == "no detectable change"
    # +30% against a 2% spread within each run: but two runs on shared machines drift alike; the ratio is shown
    for key in ("latency_cpu_ms", "latency_cpu_48x64_ms", throughput_key("cpu")):
        latency = row(models["worse"], key)
        assert latency["verdict"] == "not comparable (another run)" and "timed in two runs" in latency["note"], key
    assert "B / A = 1.3x" in row(models["worse"], "latency_cpu_ms")["note"]
    # big's costs were not re-measured: the same timings, bit for bit
    assert row(models["big"], "latency_cpu_ms")["verdict"] == "identical"
    assert row(models["big"], "train_time_s")["verdict"] == "identical"
    code, out, _ = diff(repo, monkeypatch, capsys, "a", "changed")
    line = next(x for x in out.splitlines() if x.startswith("worse "))
    assert "3 timings from another run (B / A 0.77-1.30x; not compared)" in line


def test_bit_identical_revisions_are_identical_and_rows_follow_the_summary(repo, monkeypatch, capsys):
    result = as_json(repo, monkeypatch, capsys, "a", "changed~0")
    same = as_json(repo, monkeypatch, capsys, "a", "a")["by_model"]
    assert {m["verdict"] for m in same.values()} == {"identical"}  # not "no detectable change +- 0.086"
    assert {r["verdict"] for m in same.values() for r in m["quality"] + m["costs"]} <= {"identical", "no detectable change"}
    code, out, _ = diff(repo, monkeypatch, capsys, "a", "changed")
    order = [line.split()[0] for line in out.splitlines()[3:] if line.split() and line.split()[0] in result["by_model"]]
    mious = {m: row(result["by_model"][m], "miou")["b"] for m in result["by_model"]}
    assert order == sorted(mious, key=lambda m: -mious[m])  # the summary's order: B's mIoU, best first


def test_timings_from_another_environment_are_not_comparable_and_say_why(repo, monkeypatch, capsys):
    twin = as_json(repo, monkeypatch, capsys, "a", "changed")["by_model"]["twin"]
    for key in ("train_time_s", "latency_cpu_ms", "latency_cpu_48x64_ms", "peak_rss_mb"):
        assert row(twin, key)["verdict"] == "not comparable", key
    why = " ".join(twin["timings_not_comparable"])
    for field in ("cpu: Test CPU 9000 vs Other CPU 7", "cpu_features", "torch: 2.14.1 vs 2.15.0", "amp: off vs bf16"):
        assert field in why
    assert row(twin, "size_mb")["verdict"] == "no detectable change"  # size does not depend on the machine
    assert twin["verdict"] == "no detectable change"                 # nor does quality

    code, out, _ = diff(repo, monkeypatch, capsys, "a", "changed")
    line = next(x for x in out.splitlines() if x.startswith("twin "))
    assert "timings not comparable (amp, cpu, cpu_features, torch)" in line


def test_another_test_set_is_not_comparable_with_or_without_per_image_files(repo, no_cache, monkeypatch, capsys):
    result = as_json(repo, monkeypatch, capsys, "a", "newdata")
    assert result["removed"] == ["worse"]
    for model in result["by_model"].values():
        assert model["verdict"] == "not comparable"
        assert "another test set (20 vs 15 test images)" in row(model, "miou")["note"]
    # without per-image files, the data the evaluate stages read (dvc.lock) differ: the test images cannot be matched
    fallback = as_json(no_cache, monkeypatch, capsys, "a", "newdata")
    for model in fallback["by_model"].values():
        assert model["verdict"] == "not comparable" and "evaluated data changed" in row(model, "miou")["note"]


# --- the fallback: per-seed values in git ------------------------------------------------------------

@pytest.fixture(scope="module")
def no_cache(repo, tmp_path_factory) -> Path:
    """The repository without its DVC cache nor per-image files in the workspace: only git's metrics."""
    copy = tmp_path_factory.mktemp("nocache") / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    shutil.rmtree(copy / ".dvc" / "cache")
    for npz in copy.glob("metrics/*/seeds/*/per_image.npz"):
        npz.unlink()
    return copy


def test_without_per_image_files_the_welch_interval_over_seeds(no_cache, monkeypatch, capsys):
    models = as_json(no_cache, monkeypatch, capsys, "a", "changed")["by_model"]
    assert {m: models[m]["verdict"] for m in models} == {
        "big": "no detectable change", "small": "better", "twin": "no detectable change", "worse": "worse"}
    for model in models.values():
        assert model["method"] == "Welch over seeds"
        # no DVC remote configured in this repository: no `dvc pull` advice, what works on this clone instead
        assert "no DVC remote is configured" in model["method_note"] and "dvc pull" not in model["method_note"]
        assert "runs from now on keep the per-image files in git" in model["method_note"]
    code, out, _ = diff(no_cache, monkeypatch, capsys, "a", "changed")
    assert "Welch over seeds" in out and "paired bootstrap" not in out


def test_both_methods_see_the_same_difference(repo, no_cache, monkeypatch, capsys):
    # the same change through both methods: the same difference, each says how it was judged
    paired = row(as_json(repo, monkeypatch, capsys, "a", "changed")["by_model"]["small"], "miou")
    welch = row(as_json(no_cache, monkeypatch, capsys, "a", "changed")["by_model"]["small"], "miou")
    assert paired["diff"] == pytest.approx(welch["diff"])
    assert paired["note"] == "paired bootstrap" and welch["note"].startswith("Welch")


# --- revisions: defaults, experiments, workspace ------------------------------------------------------

def test_defaults_are_head_against_the_workspace(repo, monkeypatch, capsys):
    code, out, err = diff(repo, monkeypatch, capsys)
    assert code == 0, err
    assert "A = main (" in out.splitlines()[0] or "A = HEAD (" in out.splitlines()[0]
    assert "B = workspace" in out.splitlines()[0]
    assert "4 identical" in out and "params: no model's settings differ" in out  # the workspace is HEAD, bit for bit


def test_an_experiment_name_is_a_revision(repo, monkeypatch, capsys):
    result = as_json(repo, monkeypatch, capsys, "a", "lr-up")
    assert result["b"]["name"] == "lr-up" and result["by_model"]["small"]["verdict"] == "better"
    # the experiment's own ref (refs/exps/<baseline>/lr-up), not the first under refs/exps: DVC also keeps
    # refs/exps/exec/EXEC_HEAD, which sorts first when the baseline's sha starts with f
    refs = dict(line.split()[::-1] for line in git(repo, "for-each-ref", "--format=%(objectname) %(refname)",
                                                   "refs/exps").splitlines())
    (ref,) = [name for name in refs if name.endswith("/lr-up")]
    assert result["b"]["rev"] == refs[ref]


def test_exps_lists_every_experiment_with_its_params_and_verdicts(repo, monkeypatch, capsys):
    code, out, err = diff(repo, monkeypatch, capsys, "--exps", "a", "--json")
    assert code == 0, err
    (exp,) = json.loads(out)["experiments"]
    assert exp["name"] == "lr-up" and exp["better"] == ["small"] and exp["worse"] == []
    assert exp["params"] == [{"key": "models.small.train.lr", "a": 0.003, "b": 0.01}]
    code, out, _ = diff(repo, monkeypatch, capsys, "--exps")
    assert "lr-up" in out and "models.small.train.lr 0.003 -> 0.01" in out


# --- output formats and exit codes ---------------------------------------------------------------

def test_terminal_all_and_markdown(repo, monkeypatch, capsys):
    _, short, _ = diff(repo, monkeypatch, capsys, "a", "changed")
    lines = {line.split()[0]: line for line in short.splitlines() if line.split()}
    assert "better" in lines["small"] and "worse" in lines["worse"] and "size -20.0% better" in lines["small"]
    assert "params, small: models.small.train.lr 0.003 -> 0.01" in short and "models added in B: extra" in short
    assert "mDice" not in short
    _, every, _ = diff(repo, monkeypatch, capsys, "a", "changed", "--all")
    assert "mDice" in every and "CPU latency 48x64 (ms)" in every
    _, md, _ = diff(repo, monkeypatch, capsys, "a", "changed", "--md")
    assert md.startswith("### segbench diff: `a") and "| `small` |" in md and "**better**" in md and "<details>" in md


def test_fail_on_worse_exits_1_only_when_a_model_is_worse(repo, monkeypatch, capsys):
    assert diff(repo, monkeypatch, capsys, "a", "changed", "--fail-on", "worse")[0] == 1
    assert diff(repo, monkeypatch, capsys, "a", "changed")[0] == 0
    assert diff(repo, monkeypatch, capsys, "a", "lr-up", "--fail-on", "worse")[0] == 0
    # and as a process, as CI runs it (the console script's exit status), which never imports torch
    script = ("import sys\nfrom segbench.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
              "finally:\n    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script, "diff", "a", "changed", "--fail-on", "worse"], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "worse" in proc.stdout
    assert "torch imported: False" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["no-such-branch"], "unknown revision 'no-such-branch'"),
    (["bare", "a"], "bare ("),
    (["a", "solo"], "share no model"),
])
def test_bad_revisions_are_one_line_and_exit_2(repo, solo, monkeypatch, capsys, args, message):
    code, out, err = diff(repo, monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("segbench: error: ") and message in err and len(err.strip().splitlines()) == 1
    if args[0] == "bare":
        assert "no segbench metrics" in err


@pytest.fixture(scope="module")
def solo(repo) -> str:
    git(repo, "checkout", "-q", "-b", "solo")
    write_run(repo, {"lonely": model_spec((0.8, 0.6))}, params_for(["lonely"]))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "another benchmark")
    git(repo, "checkout", "-q", "-f", "main")
    write_run(repo, {m: model_spec(q) for m, q in BASE.items()}, params_for(BASE))
    return "solo"


def test_half_present_model_names_the_missing_file(no_cache, monkeypatch, capsys):
    profile_json = no_cache / "metrics" / "small" / "profile.json"
    saved = profile_json.read_bytes()
    profile_json.unlink()
    try:
        code, out, err = diff(no_cache, monkeypatch, capsys, "a")
    finally:
        profile_json.write_bytes(saved)
    assert code == 2
    assert "workspace: small's metrics are half present: metrics/small/profile.json is missing" in err


# --- pure logic: class lists and tasks ------------------------------------------------------------

def _metrics(name: str, classes=("background", "disk", "pole"), depth: bool = False) -> ModelMetrics:
    seeds = {s: {"eval": {"miou": 0.5 + 0.01 * s, "iou_per_class": dict.fromkeys(classes, 0.5)}
                 | ({"depth_rmse": 1.0} if depth else {}), "train": {}} for s in SEEDS}
    evaluated = aggregate_reports([seeds[s]["eval"] for s in SEEDS], SEEDS)
    return ModelMetrics(name, {}, evaluated, {}, seeds)


def test_another_class_list_or_task_is_not_comparable():
    rows, method, why = quality_rows(_metrics("m"), _metrics("m", ("background", "car")), "segmentation", "segmentation",
                                     Evidence(missing="none"), None)
    assert method == "" and "another class list (background, disk, pole vs background, car)" in why
    assert {r.verdict for r in rows} == {diff_rows.NOT_COMPARABLE}
    _, _, why = quality_rows(_metrics("m"), _metrics("m", depth=True), "segmentation", "seg_depth", Evidence(), None)
    assert why == "another task (segmentation vs seg_depth)"


def test_one_seed_without_per_image_files_has_no_interval():
    row_ = diff_rows.seed_row("miou", "mIoU", [0.5], [0.6, 0.61, 0.62], True)
    assert row_.verdict == diff_rows.NO_INTERVAL and row_.low is None


def test_costs_of_a_model_in_a_busy_machine_are_not_comparable():
    a, b = _metrics("m"), _metrics("m")
    busy = QUIET | {"contended": True}
    a_profile = profile(model_spec(BASE["big"]))
    b_profile = profile(model_spec(BASE["big"], latency=3.0)) | {"contention": busy}
    rows = cost_rows(ModelMetrics("m", {}, a.eval, a_profile, a.seeds), ModelMetrics("m", {}, b.eval, b_profile, b.seeds))
    latency = next(r for r in rows if r.key == "latency_cpu_ms")
    assert latency.verdict == diff_rows.NOT_COMPARABLE and "contended timing at B" in latency.note


def test_depth_rmse_is_a_headline_score_with_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    pixels = np.full((3, 20, 1), 100.0)

    def arrays(error):  # [seeds, images, 7]: squared error sum, |error|, |error| / truth, delta1..3, pixels
        sq = rng.uniform(0.5, 1.5, (3, 20, 1)) * error ** 2 * pixels
        return {"depth_sums": np.concatenate([sq, np.sqrt(sq * pixels), sq / 10, pixels, pixels, pixels, pixels], -1)}

    def metrics(error):
        seeds = {s: {"eval": {"depth_rmse": error + 0.01 * s}, "train": {}} for s in SEEDS}
        return ModelMetrics("m", {}, aggregate_reports([seeds[s]["eval"] for s in SEEDS], SEEDS), {}, seeds)

    weights = {}
    rows, method, _ = quality_rows(metrics(1.0), metrics(2.0), "seg_depth", "seg_depth", Evidence(arrays(1.0), arrays(2.0)),
                                   lambda n: weights.setdefault(n, stats.bootstrap_weights(n, 300, 0)))
    (rmse,) = rows
    assert method == "paired bootstrap" and rmse.note == "paired bootstrap" and rmse.verdict == diff_rows.WORSE


# --- segbench diff --retime: both revisions' models timed side by side, interleaved, on this machine now --------

@pytest.fixture(scope="module")
def two_widths(tmp_path_factory) -> Path:
    """A scratch git repo holding segbench's code and a tiny params file: HEAD~1 with a UNet of base_channels 8,
    HEAD with the same model four times as wide (about 16x the FLOPs, so the gap stands well clear of a round's
    noise)."""
    import shutil

    root = tmp_path_factory.mktemp("retime")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["image_size"] = [32, 32]
    params["profile"].update({"input_sizes": [], "backends": ["eager"], "warmup": 1, "min_runs": 5, "max_runs": 20,
                              "time_budget_s": 0.05, "threads": 1})
    git = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for width in (8, 32):
        params["models"] = {"unet": {"arch": "unet", "base_channels": width}}
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        subprocess.run([*git, "add", "-A"], cwd=root, check=True)
        subprocess.run([*git, "commit", "-qm", f"base_channels {width}"], cwd=root, check=True)
    return root


@pytest.mark.serial  # times latencies: alone, after the parallel part (another worker's load skews one round)
def test_retime_of_a_revision_against_itself_is_the_same(two_widths):
    from segbench.revisions.retime import retime

    rows = retime("HEAD", "HEAD", two_widths, rounds=3)
    assert [(r.model, r.key) for r in rows] == [("unet", "latency_cpu_ms")]
    assert [r.verdict for r in rows] == ["same"], rows
    assert not subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=two_widths, capture_output=True,
                              text=True).stdout.count("\nworktree ")  # the temporary checkouts are gone


@pytest.mark.serial  # times latencies: alone, after the parallel part (another worker's load skews one round)
def test_retime_finds_the_wider_model_slower(two_widths):
    from segbench.revisions.retime import render, retime

    rows = retime("HEAD~1", "HEAD", two_widths, rounds=3)
    assert [r.verdict for r in rows] == ["worse"] and rows[0].ratio > 1.2 and rows[0].low > 1, rows
    assert "worse (" in render(rows, "HEAD~1", "HEAD", 3)
    with pytest.raises(RevisionError, match="nosuchrev"):
        retime("nosuchrev", "HEAD", two_widths, rounds=3)
