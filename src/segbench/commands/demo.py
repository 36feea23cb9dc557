"""`segbench demo [--dir PATH] [--epochs N]`: the first look. The whole DAG (`dvc repro`) on the embedded
data, every model of the params file, one training seed and a few epochs, in a workspace of its own:
a copy of the pipeline (dvc.yaml, stages/, src/, the DVC config) in a fresh git repo, so this
checkout's params, dvc.lock, metrics/ and plots/ stay as they are. It ends by saying where the report is.

Minutes, not the default run's half hour: one seed instead of three, a few epochs, and the profile
stage's cheapest setting (eager only, one round, no wait for a quiet machine): its latencies are a
glimpse, not a measurement (the default run's are).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import ConfigError, SegbenchError

HELP = "the first look: the whole pipeline on the embedded data, 1 seed, a few epochs, in a workspace of its own"
# What a fresh checkout holds that `dvc repro` needs; everything else is the pipeline's output.
PIPELINE_FILES = ("dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore", "stages", "src")
# The profile stage at its cheapest: eager (the reference) only, one round, no extra input size.
QUICK_PROFILE = {"rounds": 1, "max_rounds": 1, "quiet_wait_s": 0, "backends": ["eager"], "input_sizes": []}
_GIT = ["git", "-c", "user.name=segbench demo", "-c", "user.email=demo@segbench.invalid"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the workspace goes (a new or empty folder; default: a new temporary folder)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of every model (default: 3)")


def quick_params(params: dict[str, Any], *, seeds: int = 1, epochs: int = 3) -> None:
    """Cut a params mapping (in place, any YAML mapping type) to the first `seeds` training seeds,
    `epochs` epochs for every model (a model's own epochs too) and the cheapest profiling."""
    if isinstance(params.get("seeds"), list):
        del params["seeds"][seeds:]
    params.setdefault("train", {})["epochs"] = epochs
    for entry in (params.get("models") or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("train"), dict) and "epochs" in entry["train"]:
            entry["train"]["epochs"] = epochs
    params.setdefault("profile", {}).update({k: inline_list(v) for k, v in QUICK_PROFILE.items()})


def inline_list(value: Any) -> Any:
    """Lists written [a, b] as the params files write theirs (DVC's round-trip YAML keeps comments)."""
    if not isinstance(value, list):
        return value
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(inline_list(v) for v in value)
    seq.fa.set_flow_style()
    return seq


def copy_pipeline(source: Path, dest: Path) -> None:
    """The pipeline's files from `source` (a checkout) into `dest`, as a fresh git repo (DVC wants one)."""
    for name in PIPELINE_FILES:
        src, target = source / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, target)


def _workspace(where: Path | None) -> Path:
    if where is None:
        return Path(tempfile.mkdtemp(prefix="segbench-demo-"))
    if where.exists() and (not where.is_dir() or any(where.iterdir())):
        raise ConfigError(f"--dir {where}: exists and is not an empty folder; give a new or empty folder "
                          "(the demo writes a whole workspace there)")
    where.mkdir(parents=True, exist_ok=True)
    return where


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    if subprocess.run(cmd, cwd=cwd, env=env).returncode:
        raise SegbenchError(f"{' '.join(cmd)} failed in {cwd} (its output is above); the workspace is left there to look at")


def run(args: argparse.Namespace) -> None:
    from dvc.utils.serialize import modify_yaml

    from ..config import load_params

    source, params_file = Path.cwd(), Path(args.params)
    if not (source / "dvc.yaml").is_file():
        raise ConfigError(f"{source}: no dvc.yaml here; run segbench demo from the repository root")
    if args.epochs < 1:
        raise ConfigError(f"--epochs: {args.epochs} is too small; expected an integer >= 1")
    load_params(params_file, pipeline=source / "dvc.yaml")  # a broken file stops here, before any copy
    dest = _workspace(args.dir).resolve()
    copy_pipeline(source, dest)
    shutil.copy2(params_file, dest / "params.yaml")
    with modify_yaml(dest / "params.yaml") as params:
        quick_params(params, epochs=args.epochs)
    _run(["git", "init", "-q"], dest)
    _run([*_GIT, "add", "-A"], dest)
    _run([*_GIT, "commit", "-qm", "segbench demo workspace"], dest)  # DVCLive logs against a commit
    print(f"segbench demo: dvc repro in {dest} (1 seed, {args.epochs} epochs, every model of {params_file})", flush=True)
    # The stages import the workspace's own copy of segbench, so its code deps are the code that runs.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(dest / "src"), os.environ.get("PYTHONPATH")])))
    _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    print(f"\nreport: {dest / paths.summary_md()}\n"
          f"plots:  cd {dest} && dvc plots show   (writes dvc_plots/index.html; open it in a browser)")
