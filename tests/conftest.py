"""Shared fixtures: tiny synthetic data, and a way to run segbench/DVC as a user would."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def segbench(args: list[str], cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "segbench", *args], cwd, check=check)


def dvc(args: list[str], cwd: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check=check, timeout=timeout)


# Bookkeeping stages: `environment` is always_changed (every repro runs it, `dvc status` always
# names it); `model_code` re-hashes the architectures' files in a second whenever `models:` changes.
ALWAYS = {"environment"}
BOOKKEEPING = ALWAYS | {"model_code"}


def ran_stages(output: str) -> set[str]:
    """The stages a `dvc repro` ran (from its output), less the bookkeeping ones."""
    return set(re.findall(r"Running stage '([^']+)'", output)) - BOOKKEEPING


def stale_stages(repo: Path) -> set[str]:
    """The stages `dvc status` names, less the one that is always changed."""
    return set(json.loads(dvc(["status", "--json"], repo).stdout or "{}")) - ALWAYS


TINY_PARAMS = {
    "seed": 0,
    "seeds": [0],  # dvc.yaml's matrix reads it: a params file for `dvc repro` must list it
    "task": "segmentation",
    "data": {"dataset": "synthetic", "image_size": [32, 32],
             "synthetic": {"num_train": 12, "num_val": 6, "num_test": 6, "height": 32, "width": 32, "num_classes": 6}},
    "augmentation": {"hflip": 0.5},
    "train": {"epochs": 1, "batch_size": 4, "lr": 0.01},
    "evaluate": {"batch_size": 8},
    # quiet_wait_s 0: no wait for a quiet machine before timing (the suite runs on every core at once;
    # the wait itself is tested in test_profile.py and test_environment.py)
    "profile": {"warmup": 1, "min_runs": 3, "max_runs": 5, "time_budget_s": 0.5, "input_sizes": [[48, 64]], "batch_size": 2,
                "quiet_wait_s": 0},
    "plot": {"dpi": 60},
    "models": {
        "unet": {"arch": "unet", "base_channels": 4},
        "deeplab": {"arch": "deeplabv3", "backbone": "mobilenet_v3_small", "head_channels": 8},
    },
}


def train_setting_error(key: str, value) -> str:
    """The ConfigError message TINY_PARAMS gets with `train.<key>: value` (it must be refused)."""
    import copy

    from segbench.config import params_from_dict
    from segbench.errors import ConfigError

    raw = copy.deepcopy(TINY_PARAMS)
    raw["train"][key] = value
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    return str(info.value)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny inputs gain nothing from threads, and OpenMP threads stall badly on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_params(path: Path, params: dict) -> None:
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_pipeline(dest: Path) -> None:
    """The repository's pipeline files, as the working tree has them, into `dest` (and params.yaml)."""
    from segbench.commands.demo import copy_pipeline as copy_files

    copy_files(REPO, dest)
    shutil.copy2(REPO / "params.yaml", dest / "params.yaml")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the repository's pipeline files in a fresh git + DVC repo, with tiny params."""
    dest = tmp_path / "repo"
    copy_pipeline(dest)
    write_params(dest / "params.yaml", TINY_PARAMS)
    git = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
    run(["git", "init", "-q"], dest)
    run([*git, "add", "-A"], dest)
    run([*git, "commit", "-qm", "tiny benchmark"], dest)
    return dest
