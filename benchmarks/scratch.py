"""A scratch copy of this repository's pipeline (dvc.yaml, stages, src, DVC config) as a fresh git
repo with its own params.yaml, for benchmarks that run `dvc repro` without touching this checkout."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from segbench.commands.demo import copy_pipeline

REPO = Path(__file__).resolve().parents[1]


def scratch_repo(dest: Path, params: dict, message: str = "scratch benchmark") -> Path:
    copy_pipeline(REPO, dest)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=bench@segbench", "-c", "user.name=segbench-bench"]
    for cmd in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", message]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest
