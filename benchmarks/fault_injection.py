"""Fault injection: SIGKILL the download, preprocess and train stages at random moments, then
check that the next `dvc repro` completes and ends with the metrics of an uninterrupted run.

    python benchmarks/fault_injection.py [--trials 10] [--seed 0] [--epochs 5] [--keep DIR]

A tiny pipeline (synthetic data, one small U-Net, one training seed, `dvc repro evaluate@unet-0`)
in temporary copies of the repository, as tests/conftest.py's `workspace` fixture builds them:

1. reference: one uninterrupted run; records the seed's eval.json and train.json
   (metrics/unet/seeds/0/) and, per stage, when it starts writing its output, when the output
   is complete, and when the process exits;
2. each trial: a fresh copy; `dvc repro` runs until the chosen stage has started writing, then a
   random share of its writing later (drawn from --seed; for train, a random point of a random
   epoch; about one kill in ten lands after the output is complete but before the process
   exits) the stage's process is SIGKILLed (only the stage: DVC sees it die, as after the OOM
   killer), and `dvc repro` runs again;
3. compares eval.json and train.json (minus its timing keys) with the reference.

A killed train stage resumes from data/checkpoints/<model>/seed<seed>.resume.pt when segbench
writes one (column `resumed`: the epoch it resumed after); without it, it retrains from scratch,
and the metrics must still be identical. Prints a table and totals; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from scratch import scratch_repo

REPO = Path(__file__).resolve().parents[1]
MODEL = "unet"
SEED = 0
TARGET = f"evaluate@{MODEL}-{SEED}"
TIMES = ("train_time_s", "time_per_epoch_s", "images_per_s", "data_wait_fraction")
STAGES = ("download", "preprocess", "train")
# What shows that a stage has started writing its output, and that the output is complete
# (relative to the workspace). Between the two lies the kill window; after the second the process
# still has to exit, and a kill there is a kill after the output was committed.
WRITING = {"download": "data/.raw.partial", "preprocess": "data/.processed.partial",
           "train": f"plots/{MODEL}/seeds/{SEED}/train_log"}
COMMITTED = {"download": "data/raw", "preprocess": "data/processed", "train": f"data/checkpoints/{MODEL}/seed{SEED}.pt"}
RESUME = f"data/checkpoints/{MODEL}/seed{SEED}.resume.pt"
SCRIPT = {"download": "stages/download.py", "preprocess": "stages/preprocess.py", "train": "stages/train.py"}


def tiny_params(epochs: int) -> dict:
    return {
        "seed": 0,
        "seeds": [SEED],
        "task": "segmentation",  # the train stage's params name it, so params.yaml must spell it
        "data": {"dataset": "synthetic", "image_size": [32, 32], "workers": 1,
                 "synthetic": {"num_train": 96, "num_val": 8, "num_test": 8, "height": 32, "width": 32,
                               "num_classes": 6}},
        "augmentation": {"hflip": 0.5, "crop_p": 0.5, "rotate_p": 0.3, "jitter_p": 0.5},
        "train": {"epochs": epochs, "batch_size": 8, "lr": 0.01, "device": "cpu", "augment": True},
        "evaluate": {"batch_size": 8},
        "profile": {"warmup": 1, "min_runs": 3, "max_runs": 5, "time_budget_s": 0.5, "input_sizes": [],
                    "batch_size": 2},
        "plot": {"dpi": 60},
        "models": {MODEL: {"arch": "unet", "base_channels": 4}},
    }


def make_template(root: Path, epochs: int) -> Path:
    return scratch_repo(root / "template", tiny_params(epochs), "tiny benchmark")


def env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                PYTHONUNBUFFERED="1")


def dvc_repro(workspace: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dvc", "repro", TARGET], cwd=workspace, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stage_process(dvc: subprocess.Popen, stage: str) -> psutil.Process | None:
    """The stage's python process among *our* DVC's descendants (other runs may be at work)."""
    try:
        children = psutil.Process(dvc.pid).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if any(arg.endswith(SCRIPT[stage]) for arg in cmdline) and "python" in os.path.basename(cmdline[0]):
            return child
    return None


@dataclass
class StageTimes:
    started: float | None = None  # process seen
    writing: float | None = None  # output staging appeared
    committed: float | None = None  # output complete and in place
    ended: float | None = None  # process gone


def committed(workspace: Path, stage: str) -> bool:
    staging = workspace / WRITING[stage]
    return (workspace / COMMITTED[stage]).exists() and (stage == "train" or not staging.exists())


def watch_reference(workspace: Path) -> tuple[subprocess.Popen, str, dict[str, StageTimes]]:
    """One uninterrupted run, noting when each stage starts, starts writing and ends."""
    dvc = dvc_repro(workspace)
    times = {stage: StageTimes() for stage in STAGES}
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(dvc.stdout.read()), daemon=True)
    reader.start()
    procs: dict[str, psutil.Process] = {}
    while dvc.poll() is None:
        now = time.monotonic()
        for stage in STAGES:
            t = times[stage]
            if t.started is None:
                proc = stage_process(dvc, stage)
                if proc is not None:
                    procs[stage], t.started = proc, now
            elif t.ended is None:
                if t.writing is None and (workspace / WRITING[stage]).exists():
                    t.writing = now
                if t.writing is not None and t.committed is None and committed(workspace, stage):
                    t.committed = now
                if not procs[stage].is_running() or procs[stage].status() == psutil.STATUS_ZOMBIE:
                    t.ended = now
        time.sleep(0.005)
    reader.join()
    return dvc, "".join(output), times


def read_metrics(workspace: Path) -> dict:
    """The seed's own metrics (train@ and evaluate@ write them; aggregate@ is not run)."""
    train = json.loads((workspace / f"metrics/{MODEL}/seeds/{SEED}/train.json").read_text())
    return {"eval": json.loads((workspace / f"metrics/{MODEL}/seeds/{SEED}/eval.json").read_text()),
            "train": {k: v for k, v in train.items() if k not in TIMES}}


def differences(a: dict, b: dict) -> list[str]:
    out = []
    for part in ("eval", "train"):
        keys = sorted(set(a[part]) | set(b[part]))
        out += [f"{part}.{k}" for k in keys if a[part].get(k) != b[part].get(k)]
    return out


@dataclass
class Trial:
    number: int
    stage: str
    share: float  # where the kill was aimed: a share of the stage's writing (> 1: after its output is complete)
    killed_at_s: float | None = None  # seconds after the stage process started
    phase: str = "-"  # what the stage was doing: "writing" its output ("epoch N" for train), or "committed"
    #                   (output complete and in place, the process not yet exited)
    leftovers: list[str] = field(default_factory=list)  # partial outputs the kill left
    recovered: bool = False
    resumed: str = "-"
    identical: bool | None = None
    note: str = ""

    @property
    def killed(self) -> bool:
        return self.killed_at_s is not None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def kill_during(trial: Trial, workspace: Path, dvc: subprocess.Popen, ref: StageTimes, epochs: int,
                resume_support: bool) -> None:
    """SIGKILL the trial's stage at the moment `share` aims at, or as soon as its output is complete
    if that comes first (then `phase` says "committed").

    The machine's load changes between runs, so moments are placed by what this run shows:
    download and preprocess: `share` of the reference run's writing window after the stage starts
    writing, scaled by how fast this run got there compared with the reference run; train:
    `share * epochs` epochs in, counting epoch ends by the resume checkpoint being rewritten (the
    fraction of an epoch timed by this run's previous epoch); without resume checkpoints, by time.
    """
    stage, resume_file = trial.stage, workspace / RESUME
    victim, started, writing_since = None, 0.0, None
    window = ref.committed - ref.writing
    deadline = epoch_time = mark = 0.0
    target_epochs, fraction = divmod(trial.share * epochs, 1.0)
    seen, last = 0, None
    while dvc.poll() is None:
        now = time.monotonic()
        if victim is None:
            victim, started = stage_process(dvc, stage), now
        elif writing_since is None:
            if (workspace / WRITING[stage]).exists():
                writing_since = mark = now
                speed = (now - started) / max(1e-3, ref.writing - ref.started)  # > 1: slower than the reference
                deadline = now + trial.share * window * speed
                epoch_time = window / epochs * speed
        else:
            done = committed(workspace, stage)
            if stage == "train" and resume_support:
                signature = _signature(resume_file)
                if signature is not None and signature != last:  # an epoch ended
                    seen, last, epoch_time, mark = seen + 1, signature, now - mark, now
                due = seen > target_epochs or (seen == target_epochs and now - mark >= fraction * epoch_time)
            else:
                due = now >= deadline
            if done or due:
                try:
                    victim.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    trial.note = f"{stage} exited before the kill"
                    return
                trial.killed_at_s = now - started
                trial.phase = "committed" if done else (f"epoch {seen + 1}" if stage == "train" and resume_support
                                                         else "writing")
                return
        time.sleep(0.002)
    trial.note = f"{stage} never started writing"


def run_trial(trial: Trial, template: Path, root: Path, ref: StageTimes, reference: dict, epochs: int,
              resume_support: bool) -> Trial:
    workspace = root / f"trial{trial.number:02d}"
    shutil.copytree(template, workspace, symlinks=True)
    dvc = dvc_repro(workspace)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(dvc.stdout.read()), daemon=True)
    reader.start()
    kill_during(trial, workspace, dvc, ref, epochs, resume_support)
    dvc.wait(timeout=900)
    reader.join()
    trial.leftovers = sorted(p.relative_to(workspace).as_posix() for p in (workspace / "data").rglob(".*")
                             if p.name.endswith((".partial", ".old", ".tmp")))
    if trial.stage == "train" and (workspace / RESUME).exists():
        trial.resumed = "file"
    recovery = subprocess.run([sys.executable, "-m", "dvc", "repro", TARGET], cwd=workspace, env=env(),
                              capture_output=True, text=True, timeout=900)
    trial.recovered = recovery.returncode == 0
    if not trial.recovered:
        tail = (recovery.stdout + recovery.stderr).strip().splitlines()[-3:]
        trial.note = " | ".join(tail)
        return trial
    if trial.stage == "train":
        match = re.search(r"resuming from \S+ after epoch (\d+)", recovery.stdout)
        trial.resumed = f"epoch {match.group(1)}" if match else ("ignored" if trial.resumed == "file" else "no")
    diff = differences(read_metrics(workspace), reference)
    trial.identical = not diff
    if diff:
        trial.note = "differs: " + ", ".join(diff[:4])
    still = [p for p in trial.leftovers if (workspace / p).exists()]
    if still:
        trial.note += f" still there after recovery: {', '.join(still)}"
    if "Traceback" in "".join(output) + recovery.stdout + recovery.stderr:
        trial.note += " (a traceback was printed)"
    shutil.rmtree(workspace, ignore_errors=True)
    return trial


def yes(value) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (several: kills land between them)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="segbench-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    template = make_template(root, args.epochs)
    resume_support = "resume_path_for" in (REPO / "src/segbench/engine.py").read_text()
    print(f"workspace copies under {root}; train resume support in src/segbench/engine.py: "
          f"{'yes' if resume_support else 'no'}", flush=True)

    ref_dir = root / "reference"
    shutil.copytree(template, ref_dir, symlinks=True)
    start = time.monotonic()
    dvc, output, times = watch_reference(ref_dir)
    if dvc.returncode != 0:
        sys.exit(f"reference run failed:\n{output}")
    reference = read_metrics(ref_dir)
    print(f"reference run: {time.monotonic() - start:.1f} s, {TARGET} mIoU {reference['eval']['miou']:.4f}", flush=True)
    for stage, t in times.items():
        if None in (t.started, t.writing, t.committed, t.ended):
            sys.exit(f"could not time stage {stage} in the reference run: {t}")
        print(f"  {stage:<10} starts writing {t.writing - t.started:5.2f} s after its process starts, writes for "
              f"{t.committed - t.writing:5.2f} s (the kill window), exits {t.ended - t.committed:5.2f} s later",
              flush=True)

    rng = random.Random(args.seed)
    stages = [STAGES[i % len(STAGES)] for i in range(args.trials)]
    rng.shuffle(stages)
    trials = []
    for number, stage in enumerate(stages, 1):
        # Mostly while the output is being written; about one in ten after it is complete.
        trial = run_trial(Trial(number, stage, share=rng.uniform(0.0, 1.1)), template, root, times[stage], reference,
                          args.epochs, resume_support)
        trials.append(trial)
        print(f"  trial {number:2d}: {stage:<10} killed {yes(trial.killed):<3} at {trial.killed_at_s or 0:5.2f} s "
              f"({trial.phase}), recovered {yes(trial.recovered)}, identical {yes(trial.identical)} {trial.note}",
              flush=True)

    print()
    print("| trial | stage killed | kill time (s after stage start) | while | partial outputs left "
          "| recovered | train resumed after | metrics identical | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in trials:
        at = f"{t.killed_at_s:.2f}" if t.killed_at_s is not None else "-"
        print(f"| {t.number} | {t.stage} | {at} | {t.phase} | {', '.join(t.leftovers) or '-'} | {yes(t.recovered)} "
              f"| {t.resumed} | {yes(t.identical)} | {t.note or ''} |")
    killed = [t for t in trials if t.killed]
    print()
    print(f"totals: {len(trials)} trials, {len(killed)} kills landed "
          f"({', '.join(f'{s} {sum(t.stage == s for t in killed)}' for s in STAGES)}), "
          f"{sum(t.recovered for t in killed)}/{len(killed)} recovered with `dvc repro`, "
          f"{sum(bool(t.identical) for t in killed)}/{len(killed)} with metrics identical to the uninterrupted run, "
          f"{sum(t.resumed.startswith('epoch') for t in killed)} train kills resumed from a resume checkpoint; "
          f"{time.monotonic() - start:.0f} s in all")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
