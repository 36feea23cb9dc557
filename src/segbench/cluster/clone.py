"""A worker without the coordinator's file system: its own clone of the project (SEGBENCH_CLONE), at the
coordinator's commit, the stage's inputs pulled from the DVC remote and its outputs pushed there.

Runs in the worker process; DVC runs as `python -m dvc` in the clone. The clone's dvc.lock is scratch:
the coordinator's is written into it before a pull, and the coordinator records the stage itself.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import yaml

CLONE_ENV = "SEGBENCH_CLONE"
# One DVC or git step at a time in a clone (DVC's repository lock would refuse a second); the stage
# commands themselves run side by side.
CLONE_LOCK = threading.Lock()


class CloneError(Exception):
    """The clone cannot reproduce the coordinator's workspace: the refusal line."""


def _run(cwd: Path, *args: str, log=None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT if log else
                          subprocess.PIPE, text=True, check=False)


def _dvc(root: Path, log, *args: str) -> int:
    log.write(f"> dvc {' '.join(args)}\n")
    log.flush()
    return _run(root, sys.executable, "-m", "dvc", *args, log=log).returncode


def _dvc_api(root: Path, log, calls: str) -> int:
    """`dvc commit -f STAGE` then `dvc push STAGE` in one process: one interpreter start, not two."""
    log.write(f"> {calls}\n")
    log.flush()
    script = f"from dvc.repo import Repo\nwith Repo('.') as repo:\n    {calls}"
    return _run(root, sys.executable, "-c", script, log=log).returncode


def reach(commit: str) -> Path:
    """This worker's clone, holding the coordinator's commit (fetched from its origin when missing)."""
    host = socket.gethostname()
    clone = os.environ.get(CLONE_ENV, "")
    if not clone or not (Path(clone) / ".git").exists():
        raise CloneError(f"worker on {host} has no clone of the project: start it with {CLONE_ENV}=<a git clone> "
                         f"(now {clone or 'unset'})")
    top = Path(clone)
    if _run(top, "git", "cat-file", "-e", f"{commit}^{{commit}}").returncode:
        _run(top, "git", "fetch", "-q", "origin")
    if _run(top, "git", "cat-file", "-e", f"{commit}^{{commit}}").returncode:
        raise CloneError(f"worker on {host}: its clone {clone} cannot reach the coordinator's commit {commit[:10]} "
                         "(not there after `git fetch origin`); push that commit where the workers fetch from")
    return top


def check(commit: str, version: str) -> str:
    """Run on every worker before anything starts (Client.run): why it would refuse, or ""."""
    from segbench import __version__

    if version != __version__:
        return f"worker on {socket.gethostname()} has segbench {__version__}, the coordinator {version}; install the same version"
    try:
        with CLONE_LOCK:
            reach(commit)
    except CloneError as exc:
        return str(exc)
    return ""


def clone_root(spec) -> Path:
    """The clone checked out at the coordinator's commit, or CloneError."""
    top = reach(spec.commit)
    checkout = _run(top, "git", "checkout", "-q", "-f", "--detach", spec.commit)
    if checkout.returncode:
        raise CloneError(f"worker on {socket.gethostname()}: `git checkout {spec.commit[:10]}` failed in {top}: "
                         f"{checkout.stderr.strip()}")
    return top / spec.subdir


def pull_inputs(root: Path, spec, log) -> int:
    """The coordinator's dvc.lock (its upstream entries), then the upstream stages' outs from the remote."""
    lock = root / "dvc.lock"
    if spec.lock_text:
        lock.write_text(spec.lock_text)
    else:
        lock.unlink(missing_ok=True)
    if not spec.needs:
        return 0
    return _dvc(root, log, "pull", "-q", "-r", spec.remote, *spec.needs)


def push_outputs(root: Path, stage: str, spec, log) -> tuple[int, dict[str, dict], dict[str, bytes]]:
    """`dvc commit -f` the stage here (into the clone's cache) and push its outs; the out entries tell the
    coordinator which objects to fetch; `cache: false` outs come back as bytes."""
    code = _dvc_api(root, log, f"repo.commit({stage!r}, force=True); repo.push({stage!r}, remote={spec.remote!r})")
    if code:
        return code, {}, {}
    entries = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]["outs"]
    files: dict[str, bytes] = {}
    for rel in spec.uncached:
        path = root / rel
        for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if item.is_file():
                files[str(item.relative_to(root))] = item.read_bytes()
    return 0, {e["path"]: e for e in entries}, files
