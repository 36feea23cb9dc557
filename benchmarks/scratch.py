"""A scratch copy of this repository's pipeline (dvc.yaml, stages, src, DVC config) as a fresh git
repo with its own params.yaml, for benchmarks that run `dvc repro` without touching this checkout."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ["dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore", "stages", "src"]


def scratch_repo(dest: Path, params: dict, message: str = "scratch benchmark") -> Path:
    for name in PIPELINE_FILES:
        src, target = REPO / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, target)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=bench@segbench", "-c", "user.name=segbench-bench"]
    for cmd in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", message]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest
