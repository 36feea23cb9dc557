"""What the profile stage costs, and what its intervals are, against another revision's, side by side.

    python benchmarks/bench_profile_cost.py --base REV [--models unet deeplabv3_resnet18] [--repeats 1]

Needs the default run's checkpoints. Checks REV out into a temporary git worktree and runs the
profile stage command (`python stages/profile_model.py MODEL`) of each model under REV and under this
working tree in turn, alternating, so both see the same machine state; each writes its own
profile.json (the worktree's is thrown away, this tree's is restored afterwards). Prints each run's
wall time, the ratio of the two, and every latency's 95% interval half-width (relative) and rounds.
Run it on a quiet machine: it is a timing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segbench.environment import describe_env, fingerprint
from segbench.keys import latency_keys

ROOT = Path(__file__).resolve().parents[1]


def run_profile(tree: Path, model: str) -> tuple[float, dict]:
    env = os.environ | {"PYTHONPATH": str(tree / "src")}  # that tree's segbench, not the installed one
    started = time.perf_counter()
    subprocess.run([sys.executable, "stages/profile_model.py", model], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    return wall, json.loads((tree / "metrics" / model / "profile.json").read_text())


def widths(result: dict) -> dict[str, tuple[float, int]]:
    """Each CPU latency: its 95% interval's half-width relative to the median, and its rounds."""
    return {key.name: ((result[key.stat("ci95_high_ms")] - result[key.stat("ci95_low_ms")]) / 2 / result[key.name],
                       result[key.stat("rounds")]) for key in latency_keys(result, "cpu")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with (a commit, branch or tag)")
    parser.add_argument("--models", nargs="+", default=["unet", "deeplabv3_resnet18"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(describe_env(fingerprint()))
    saved = {m: (ROOT / "metrics" / m / "profile.json").read_bytes() for m in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base], cwd=ROOT, check=True)
        try:
            (base / "data").symlink_to(ROOT / "data")  # the same checkpoints
            for model in args.models:
                for repeat in range(args.repeats):
                    old_s, old = run_profile(base, model)
                    new_s, new = run_profile(ROOT, model)
                    print(f"\n{model} (repeat {repeat + 1}): {args.base} {old_s:.1f} s, this tree {new_s:.1f} s, "
                          f"ratio {new_s / old_s:.2f}")
                    old_w, new_w = widths(old), widths(new)
                    for key in old_w:
                        if key in new_w:
                            print(f"  {key:40s} +-{old_w[key][0]:6.1%} ({old_w[key][1]} rounds) -> "
                                  f"+-{new_w[key][0]:6.1%} ({new_w[key][1]} rounds)")
                    common = [k for k in old_w if k in new_w]
                    print(f"  median half-width {statistics.median(old_w[k][0] for k in common):.1%} -> "
                          f"{statistics.median(new_w[k][0] for k in common):.1%}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=True)
            shutil.rmtree(base, ignore_errors=True)
            for model, content in saved.items():
                (ROOT / "metrics" / model / "profile.json").write_bytes(content)


if __name__ == "__main__":
    main()
