"""Stage start-up: seconds from process start to the first useful work, per stage kind.

Each stage process first starts Python, validates params.yaml and imports what its command uses.
The script measures exactly that in fresh subprocesses (the minimum of `--repeats` runs), for this
checkout and, with `--before REV`, for another revision checked out into a temporary worktree. Both
run side by side in one run. Then it sums the start-up over the default run's stage processes.

    python benchmarks/bench_startup.py [--before a9ccd68] [--repeats 5]

Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What each stage's command imports and does before its work (segbench.cli's cmd_* functions).
STAGES = {
    "download": "from segbench.data.download import download",
    "preprocess": "from segbench.data.preprocess import preprocess",
    "train": "from segbench.engine import train_and_save",
    "evaluate": "from segbench.evaluate import evaluate_checkpoint; from segbench import model_figures; "
                "from segbench.report_figures import save",
    "aggregate": "from segbench.aggregate import aggregate_model",
    "profile": "from segbench.checkpoint import load_checkpoint; from segbench.profile import profile",
    "plot": "from segbench.report import build_report; from segbench.html_template import write_template",
    "check (no stage)": "",
}
FLOOR = "import torch"
PROCESSES = {"download": 1, "preprocess": 1, "train": 21, "evaluate": 21, "aggregate": 7, "profile": 7, "plot": 1}


def time_code(code: str, root: Path, repeats: int) -> float:
    """In a checkout `root`: its src/ and its own params.yaml."""
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    best = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, capture_output=True)
        best.append(time.perf_counter() - started)
    return min(best)


def stage_code(imports: str) -> str:
    return f"{imports}\nfrom segbench.config import load_params\nload_params('params.yaml')"


def measure(root: Path, repeats: int) -> dict[str, float]:
    out = {name: time_code(stage_code(imports), root, repeats) for name, imports in STAGES.items()}
    out["bare python"] = time_code("pass", root, repeats)
    out["import torch (the floor of a torch stage)"] = time_code(FLOOR, root, repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision to compare with (checked out into a temporary worktree)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    columns = {"now": measure(REPO, args.repeats)}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "before"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.before], cwd=REPO, check=True)
            try:
                columns[args.before] = measure(tree, args.repeats)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=True)
    names = list(columns)
    print(f"{'start-up (s, min of ' + str(args.repeats) + ')':<44}" + "".join(f"{n:>12}" for n in names))
    for key in columns["now"]:
        print(f"{key:<44}" + "".join(f"{columns[n][key]:>12.2f}" for n in names))
    for n in names:
        total = sum(columns[n][stage] * count for stage, count in PROCESSES.items())
        print(f"default run ({sum(PROCESSES.values())} stage processes), summed start-up, {n}: {total:.0f} s")


if __name__ == "__main__":
    main()
