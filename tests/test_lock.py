"""requirements.lock pins every dependency the install resolves, and the README's commands use it."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    found = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"requirements.lock: {line!r} is not an exact pin (name==version)"
            found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


def test_every_declared_dependency_is_pinned_exactly():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]).lower() for d in declared}
    locked = pins()
    assert not names - locked.keys(), f"not in requirements.lock: {sorted(names - locked.keys())}"
    assert "segbench" not in locked  # the project itself is installed from the checkout


def test_the_readme_commands_install_from_the_lock():
    readme = (REPO / "README.md").read_text()
    installs = re.findall(r"pip install[^\n&]*", readme.split("## What you get")[0])
    assert len(installs) >= 2 and all("-c requirements.lock" in cmd for cmd in installs), installs


def test_this_environment_has_the_locked_versions():
    """The README's install (what CI runs) gets exactly the pinned version of every locked package it has."""
    import importlib.metadata

    locked = pins()
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in importlib.metadata.distributions()}
    differ = {name: (installed[name], version) for name, version in locked.items()
              if name in installed and installed[name] != version}
    assert not differ, f"installed vs requirements.lock: {differ}"
    missing = [name for name in ("torch", "torchvision", "numpy", "dvc", "onnxruntime") if name not in installed]
    assert not missing
