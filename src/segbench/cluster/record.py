"""The coordinator's side of DVC, stage by stage, under DVC's repository lock like `dvc repro`:
decide (changed? in the run cache?), remove outs, and record a finished stage as `dvc commit -f` does."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

import psutil

from .resources import ClusterError

LOCK_NAME = "segbench-cluster.lock"


def should_run(stage, force: bool, upstream: list) -> bool:
    if force:
        return True
    with dvc_section(stage.repo):
        return stage.changed(False, upstream)  # what Stage.reproduce asks before running


def restore_from_run_cache(stage) -> bool:
    """`dvc repro` checks outs out of the run cache instead of running a stage it has seen (run_stage)."""
    from dvc.stage.cache import RunCacheNotFoundError

    with dvc_section(stage.repo):
        try:
            stage.repo.stage_cache.restore(stage)
        except RunCacheNotFoundError:
            return False
        _save_commit_dump(stage)
    return True


def prepare(stage) -> None:
    """Stage.run's first step: the outs go before the command runs (persist ones are unprotected)."""
    with dvc_section(stage.repo):
        stage.remove_outs(ignore_remove=False, force=False)
        stage.save_deps()


def record(stage) -> None:
    """A finished stage into the cache and dvc.lock: Stage.run's last steps, then _reproduce_stage's dump."""
    with dvc_section(stage.repo):
        _save_commit_dump(stage)


def _save_commit_dump(stage) -> None:
    no_cache_outs = any(not out.use_cache for out in stage.outs if not (out.is_metric or out.is_plot))
    stage.save(run_cache=not no_cache_outs)
    stage.commit()
    stage.dump(update_pipeline=False)


def discard(stage) -> None:
    """Partial outs of a cancelled stage: gone, as if it never ran."""
    with dvc_section(stage.repo):
        stage.remove_outs(ignore_remove=False, force=False)


@contextlib.contextmanager
def dvc_section(repo):
    """DVC's repository lock, as `dvc repro` holds it outside stage commands; Ctrl-C waits until the
    section ends, so dvc.lock, the cache and DVC's rwlock file are never left half-written."""
    from dvc.repo import lock_repo

    with _no_interrupt(), lock_repo(repo):
        yield


@contextlib.contextmanager
def _no_interrupt():
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


@contextlib.contextmanager
def coordinator_lock(root: str):
    """One coordinator per workspace (two would both write dvc.lock): a lock file naming the holder's
    pid and host, taken over when that process is gone (like DVC's rwlock)."""
    path = Path(root) / ".dvc" / "tmp" / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid, _, host = path.read_text().partition(" ")
            alive = host.strip() != socket.gethostname() or (pid.isdigit() and psutil.pid_exists(int(pid)))
            if alive:
                raise ClusterError(f"{path}: another cluster-repro (pid {pid} on {host.strip() or '?'}) runs on this "
                                   "workspace; wait for it, or delete the file if that process is gone") from None
            path.unlink(missing_ok=True)  # stale: its holder was killed
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(me)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
