"""Environment fingerprints, contention and convergence: what the metrics files record about where
and how quietly a timing was made and whether training had plateaued, the report's flags, and
`segbench check`'s one line."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_run import ENV, QUIET, edit_json, fake_run, run_cli

from segbench import contention
from segbench import environment as envmod
from segbench.aggregate import aggregate_reports

FIELDS = {"cpu": str, "cpu_features": list, "logical_cores": int, "usable_cores": int, "python": str, "torch": str,
          "torchvision": str, "numpy": str, "os": str, "id": str}


def test_fingerprint_keys_are_present_and_typed():
    env = envmod.fingerprint()
    for key, kind in FIELDS.items():
        assert isinstance(env[key], kind), (key, env[key])
    assert set(env["cpu_features"]) <= set(envmod.SPEED_FEATURES)
    assert env["physical_cores"] is None or isinstance(env["physical_cores"], int)
    assert env["cuda"] is None or isinstance(env["cuda"], str)
    assert env["gpu"] is None or isinstance(env["gpu"], str)
    assert len(env["id"]) == 8 and env["id"] == envmod.environment_id(env)
    json.dumps(env)  # it goes into a metrics file as it is


def test_fingerprint_reads_versions_without_importing_torch():
    """`segbench check` and the plot stage must not pay torch's import; the version matches the real one."""
    code = ("import sys, json; from segbench.environment import fingerprint; env = fingerprint(); "
            "print(json.dumps([env['torch'], env['torchvision'], env['cuda'], 'torch' in sys.modules, "
            "'torchvision' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    torch_version, vision_version, cuda, torch_loaded, vision_loaded = json.loads(out)
    assert not torch_loaded and not vision_loaded
    import torch
    import torchvision

    assert (torch_version, vision_version, cuda) == (torch.__version__, torchvision.__version__, torch.version.cuda)


def test_id_and_differences_cover_the_fields_that_change_a_timing():
    other = ENV | {"cpu": "Another CPU", "cpu_features": ["avx2", "fma", "avx512_bf16", "amx_bf16"]}
    assert envmod.environment_id(other) != envmod.environment_id(ENV)
    assert envmod.environment_id(ENV | {"os": "Linux 7"}) == envmod.environment_id(ENV)  # the kernel is not a timing field
    diffs = envmod.env_differences(ENV, other)
    assert [d.split(":")[0] for d in diffs] == ["cpu", "cpu_features"]
    assert "avx2+fma vs avx2+fma+avx512_bf16+amx_bf16" in diffs[1]
    old = {"cpu": ENV["cpu"], "logical_cores": 2, "torch": "2.15.0", "torchvision": ENV["torchvision"]}  # older segbench
    assert envmod.env_differences(old, ENV) == ["torch: 2.15.0 vs 2.14.1"]


# --- contention ------------------------------------------------------------------------------------

def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _outside_burner() -> int:
    """A process that spins one core and is not our descendant (started through a shell that exits)."""
    out = subprocess.run(["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


@pytest.mark.serial  # measures the machine's other load: alone, after the parallel part
def test_contention_counts_other_processes_and_not_the_measured_one():
    cores = len(contention.usable_cpus())
    # The measured process itself spinning a core (as training does) is not contention.
    worker = threading.Thread(target=_burn, args=(2.0,))
    with contention.ContentionMonitor(interval_s=0.25) as own:
        worker.start()
        worker.join()
    # A process outside the measured tree spinning a core is.
    burner = _outside_burner()
    try:
        time.sleep(0.3)
        with contention.ContentionMonitor(interval_s=0.25) as other:
            _burn(2.0)
    finally:
        os.kill(burner, signal.SIGKILL)
    busy = 1.0 / cores  # one core's share
    assert own.result.samples >= 2 and other.result.samples >= 2
    assert own.result.other_cpu < busy / 2, own.result
    assert other.result.other_cpu > busy * 0.7, other.result
    assert other.result.contended and not own.result.contended
    record = other.result.as_dict()
    assert record["contended"] is True and record["threshold"] == contention.CONTENTION_THRESHOLD
    line = contention.contention_warning(record, "profiling unet")
    assert "\n" not in line and "profiling unet" in line and "quality metrics are unaffected" in line


@pytest.mark.serial  # measures the machine's other load: alone, after the parallel part
def test_children_of_the_measured_process_are_its_own():
    """DataLoader workers and torchrun ranks are the run itself."""
    code = "import time\nend = time.perf_counter() + 1.5\nwhile time.perf_counter() < end: pass"
    with contention.ContentionMonitor(interval_s=0.25) as monitor:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert monitor.result.other_cpu < 0.5 / len(contention.usable_cpus()), monitor.result


def test_shares_are_weighted_by_the_time_they_cover():
    c = contention.summarize_shares([(0.5, 0.0, 1.0), (0.0, 0.1, 3.0)], seconds=4.0)
    assert c.other_cpu == pytest.approx(0.125) and c.steal == pytest.approx(0.075) and c.other_cpu_max == 0.5
    assert not c.contended and contention.summarize_shares([(0.0, 0.3, 1.0)], 1.0).contended  # steal counts too
    assert contention.summarize_shares([], 0.0).samples == 0


def test_wait_for_quiet_is_bounded():
    burner = _outside_burner()
    try:
        started = time.perf_counter()
        waited = contention.wait_for_quiet(max_wait_s=1.0, window_s=0.25)
    finally:
        os.kill(burner, signal.SIGKILL)
    assert waited["quiet"] is False and 1.0 <= waited["waited_s"] < 3.0
    assert time.perf_counter() - started < 3.0


# --- aggregation over seeds ------------------------------------------------------------------------

def test_seeds_keep_one_environment_and_the_worst_contention():
    busy = QUIET | {"other_cpu": 0.4, "other_cpu_max": 0.6, "contended": True}
    merged = aggregate_reports([{"train_time_s": 1.0, "env": ENV, "contention": QUIET},
                                {"train_time_s": 2.0, "env": ENV, "contention": busy}], [0, 1])
    assert merged["env"] == ENV  # a setting, not averaged
    assert merged["contention"]["contended"] is True and merged["contention"]["contended_seeds"] == [1]
    assert merged["contention"]["other_cpu"] == 0.4
    other = ENV | {"cpu": "Another CPU"}
    split = aggregate_reports([{"env": ENV}, {"env": other}], [0, 1])
    assert split["env"] == {"per_seed": {"0": ENV, "1": other}}


# --- the report's flags ----------------------------------------------------------------------------

PARAMS = {"seeds": [0, 1, 2], "models": {m: {"arch": "unet"} for m in ("big", "small", "twin", "worse")},
          "plot": {"dpi": 50, "bootstrap": 200}}


def _plot(root: Path) -> str:
    run_cli(root, PARAMS, "plot")
    return (root / "plots" / "summary.md").read_text()


def _edit(path: Path, **changes) -> None:
    edit_json(path, changes)


@pytest.fixture(scope="module")
def flagged_run(tmp_path_factory):
    """Two runs of the plot stage: one environment and quiet; then `worse` profiled elsewhere and
    `small` trained on a busy machine."""
    same = tmp_path_factory.mktemp("same_env")
    fake_run(same)
    quiet_md = _plot(same)
    mixed = tmp_path_factory.mktemp("mixed_env")
    fake_run(mixed)
    _edit(mixed / "metrics" / "worse" / "profile.json",
          env=ENV | {"cpu": "Other CPU", "cpu_features": ["avx2", "fma", "amx_bf16"], "id": "99999999"})
    _edit(mixed / "metrics" / "small" / "train.json",
          contention=QUIET | {"other_cpu": 0.45, "contended": True, "contended_seeds": [1]})
    _edit(mixed / "metrics" / "twin" / "train.json", converged={"per_seed": {"0": True, "1": False, "2": True}},
          late_gain={"mean": 0.05, "std": 0.01, "n": 3, "ci95_low": 0.03, "ci95_high": 0.07})
    return same, quiet_md, mixed, _plot(mixed)


def test_one_environment_and_quiet_timings_are_not_flagged(flagged_run):
    same, md, _, _ = flagged_run
    summary = pd.read_csv(same / "plots" / "summary.csv", keep_default_na=False)
    assert set(summary["env"]) == {ENV["id"]} and set(summary["contended"]) == {""}
    assert "Costs measured in one environment (0e1e2e3e): Test CPU 9000 (avx2+fma)" in md
    flags = [line for line in md.splitlines() if line.startswith("⚠") and ("environment" in line or "Contended" in line)]
    assert not flags and "| env (costs) |" not in md and "contended timing" not in md and "| converged |" not in md
    assert set(summary["converged"]) == {"yes"}
    for axis in ("train_time", "latency_cpu", "size"):
        table = pd.read_csv(same / "plots" / f"miou_vs_{axis}.csv", keep_default_na=False)
        assert set(table["flag"]) == {""}


def test_mixed_environments_and_contention_are_flagged(flagged_run):
    _, _, mixed, md = flagged_run
    summary = pd.read_csv(mixed / "plots" / "summary.csv", keep_default_na=False).set_index("model")
    assert summary.loc["worse", "env"] == f"train {ENV['id']} / profile 99999999"
    assert summary.loc["big", "env"] == ENV["id"]
    assert summary.loc["small", "contended"] == "train" and summary.loc["big", "contended"] == ""
    assert "⚠ Costs come from 2 environments (they differ in cpu, cpu_features)" in md
    assert "99999999 = Other CPU (avx2+fma+amx_bf16)" in md and "for worse (profile)" in md
    assert "⚠ Contended timings" in md and "small training (45% of the CPU)" in md and "quality is unaffected" in md
    assert "| env (costs) |" in md and "contended timing" in md
    latency = pd.read_csv(mixed / "plots" / "miou_vs_latency_cpu.csv", keep_default_na=False)
    flags = dict(zip(latency["model"], latency["flag"]))
    assert flags["worse"] == "other environment" and flags["small"] == flags["big"] == ""
    train = pd.read_csv(mixed / "plots" / "miou_vs_train_time.csv", keep_default_na=False)
    assert dict(zip(train["model"], train["flag"]))["small"] == "contended"
    size = pd.read_csv(mixed / "plots" / "miou_vs_size.csv", keep_default_na=False)
    assert set(size["flag"]) == {""}  # a size does not depend on the machine


def test_unconverged_models_are_marked(flagged_run):
    _, _, mixed, md = flagged_run
    summary = pd.read_csv(mixed / "plots" / "summary.csv", keep_default_na=False).set_index("model")
    assert summary.loc["twin", "converged"] == "no" and summary.loc["big", "converged"] == "yes"
    # the table says it in the diagnosis column (no `converged` column beside it); one note line names the rows
    assert "| converged |" not in md and "| diagnosis |" in md
    assert md.count("⚠ unconverged") == 1 and "twin (best validation score +5% in its last epochs)" in md
    table = pd.read_csv(mixed / "plots" / "miou_vs_size.csv")
    assert dict(zip(table["model"], table["converged"])) == {"big": True, "small": True, "twin": False, "worse": True}


# --- segbench check ----------------------------------------------------------------------------------

def _check(root: Path, capsys) -> str:
    run_cli(root, PARAMS, "check")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("environment: ")
    return lines[1]


def test_check_says_when_this_machine_differs_from_the_committed_metrics(tmp_path, capsys):
    assert "no metrics in metrics to compare with" in _check(tmp_path, capsys)
    here = envmod.fingerprint()
    fake_run(tmp_path)
    for path in (tmp_path / "metrics").rglob("*.json"):
        _edit(path, env=here)
    assert f"environment: {here['id']}, the same as the one that made metrics/" in _check(tmp_path, capsys)
    elsewhere = copy.deepcopy(here) | {"cpu": "Some Other CPU", "torch": "0.0.1"}
    elsewhere["id"] = envmod.environment_id(elsewhere)  # another machine's fingerprint carries its own id
    _edit(tmp_path / "metrics" / "big" / "profile.json", env=elsewhere)
    line = _check(tmp_path, capsys)
    assert line.startswith("environment: this machine differs from the one that made metrics/big/profile.json")
    assert "cpu: Some Other CPU there, " in line and "torch: 0.0.1 there" in line and "will not reproduce" in line


def test_the_recorded_fingerprint_holds_the_timing_fields_only(monkeypatch):
    """Stage `environment` writes it and the profiles depend on it: a kernel update must not re-profile,
    another CPU, core count or library version must."""
    env = envmod.timing_fingerprint()
    assert set(env) == set(envmod.TIMING_FIELDS) | {"id"} and "onnxruntime" in env
    assert env["id"] == envmod.fingerprint()["id"]
    monkeypatch.setattr(envmod.platform, "release", lambda: "99.0-another-kernel")
    assert envmod.timing_fingerprint() == env
    monkeypatch.setattr(envmod.os, "cpu_count", lambda: 512)
    assert envmod.timing_fingerprint()["id"] != env["id"]
