"""Stage start-up: seconds from process start to the first useful work, per stage kind.

Each stage process first starts Python, validates params.yaml and imports what its command uses.
The script measures exactly that in fresh subprocesses (the minimum of `--repeats` runs), for this
checkout and, with `--before REV`, for another revision checked out into a temporary worktree,
alternating between the two run by run. Then it sums the start-up over the default run's stage processes.

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
    "evaluate": "from segbench.evaluate import evaluate_checkpoint; from segbench import model_figures\n"
                "try:\n    from segbench.io import save_figure\n"
                "except ImportError:  # a revision before the report package (figures saved by report_figures)\n"
                "    from segbench.report_figures import save",
    "aggregate": "from segbench.aggregate import aggregate_model",
    "profile": "from segbench.checkpoint import load_checkpoint; from segbench.profile import profile",
    "plot": "from segbench.report import build_report; from segbench.html_template import write_template",
    "check (no stage)": "",
}
FLOOR = "import torch"
PROCESSES = {"download": 1, "preprocess": 1, "train": 21, "evaluate": 21, "aggregate": 7, "profile": 7, "plot": 1}


def run_once(code: str, root: Path) -> float:
    """Seconds for one fresh interpreter in a checkout `root` (its src/ and its own params.yaml)."""
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def stage_code(imports: str) -> str:
    return f"{imports}\nfrom segbench.config import load_params\nload_params('params.yaml')"


def measure(roots: dict[str, Path], repeats: int) -> dict[str, dict[str, float]]:
    """The minimum over `repeats` per code and checkout; the checkouts alternate run by run, so a
    drift of the machine's speed hits both alike."""
    codes = {name: stage_code(imports) for name, imports in STAGES.items()}
    codes["bare python"] = "pass"
    codes["import torch (the floor of a torch stage)"] = FLOOR
    out: dict[str, dict[str, float]] = {label: {} for label in roots}
    for key, code in codes.items():
        for label in roots:
            out[label][key] = float("inf")
        for _ in range(repeats):
            for label, root in roots.items():
                out[label][key] = min(out[label][key], run_once(code, root))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision to compare with (checked out into a temporary worktree)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not args.before:
        columns = measure({"now": REPO}, args.repeats)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "before"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.before], cwd=REPO, check=True)
            try:
                columns = measure({"now": REPO, args.before: tree}, args.repeats)
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
