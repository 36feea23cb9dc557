"""Outputs without a shared file system: the coordinator's side of the DVC remote.

A worker in its own clone checks out the coordinator's commit, pulls a stage's inputs from the DVC
remote, runs it and pushes its outputs (clone.py). Here: which commit and remote (refused in one line
when a worker could not reproduce the workspace), the inputs pushed before a stage is sent, and its
outputs fetched back into this cache and workspace before the stage is recorded as usual.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .resources import ClusterError


@dataclass(frozen=True)
class RemoteSpec:
    """What a worker needs to reproduce the workspace in its clone."""

    remote: str                   # the DVC remote's name (the clone's config has it: it is committed)
    commit: str                   # the coordinator's HEAD
    subdir: str                   # the DVC project inside the git repository ("." at its top)
    lock_text: str = ""           # the coordinator's dvc.lock now: its upstream entries are not committed yet
    needs: tuple[str, ...] = ()   # the stages whose outs this stage reads (`dvc pull` targets)
    uncached: tuple[str, ...] = ()  # outs with `cache: false`: they come back in the result, not the remote


def _git(root: str, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode:
        raise ClusterError(f"{root}: `git {' '.join(args)}` failed ({done.stderr.strip() or done.returncode}); "
                           "--no-shared-fs workers check out the project's git commit, so it must be a git repository")
    return done.stdout.strip()


def choose_remote(repo, name: str | None) -> str:
    remotes = list(repo.config.get("remote", {}))
    chosen = name or repo.config.get("core", {}).get("remote")
    if not chosen:
        raise ClusterError("--no-shared-fs: no DVC remote configured; add one the workers can reach with "
                           "`dvc remote add -d NAME URL` and commit .dvc/config, or pass --remote NAME")
    if chosen not in remotes:
        raise ClusterError(f"--remote {chosen}: not a DVC remote of this project; remotes: {', '.join(remotes) or 'none'}")
    return chosen


def workspace_commit(root: str) -> tuple[str, str]:
    """(HEAD, the project's path in the repository); refused when tracked files differ from HEAD, since a
    worker sees only the commit. dvc.lock travels with each stage, and DVC's .gitignore edits change no
    stage, so those two may differ."""
    top = _git(root, "rev-parse", "--show-toplevel")
    subdir = os.path.relpath(root, top)
    lock = os.path.normpath(os.path.join(subdir, "dvc.lock"))
    changed = _git(top, "diff", "--name-only", "HEAD").splitlines()  # staged or not, paths from the top
    dirty = [p for p in changed if p != lock and Path(p).name != ".gitignore"]
    commit = _git(root, "rev-parse", "HEAD")
    if dirty:
        shown = ", ".join(dirty[:5]) + (", ..." if len(dirty) > 5 else "")
        raise ClusterError(f"--no-shared-fs: uncommitted changes to {shown}; workers check out commit {commit[:10]} "
                           "and cannot see them: commit them and push the commit where the workers fetch from")
    return commit, subdir


def spec_for(base: RemoteSpec, stage, sources: list) -> RemoteSpec:
    lock = Path(stage.repo.root_dir) / "dvc.lock"
    uncached = tuple(os.path.relpath(o.fs_path, stage.repo.root_dir) for o in stage.outs if not o.use_cache)
    return RemoteSpec(base.remote, base.commit, base.subdir, lock.read_text() if lock.exists() else "",
                      tuple(s.addressing for s in sources), uncached)


def _hashes(stages) -> list:
    return [out.hash_info for stage in stages for out in stage.outs if out.use_cache and out.hash_info]


def push_inputs(stages, remote: str) -> None:
    """The upstream outs a worker will pull: ones that ran here earlier or came from the run cache are
    only in this cache (those a worker pushed are already there: DVC skips them)."""
    if stages:
        stages[0].repo.cloud.push(_hashes(stages), remote=remote)


def fetch_outputs(stage, entries: dict[str, dict], files: dict[str, bytes], remote: str) -> None:
    """A stage a worker ran: its cached outs from the remote into this cache and workspace (by the hashes
    the worker reports; the record then hashes them again here), its `cache: false` outs from the result."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta

    root = Path(stage.repo.root_dir)
    for out in stage.outs:
        rel = os.path.relpath(out.fs_path, stage.wdir)  # as dvc.lock names it
        if not out.use_cache:
            continue
        entry = entries.get(rel)
        if entry is None:
            raise ClusterError(f"{stage.addressing}: the worker pushed no {rel}; see its log")
        out.hash_info = HashInfo(out.hash_name, entry[out.hash_name])
        out.meta = Meta.from_dict(entry)
    stage.repo.cloud.pull(_hashes([stage]), remote=remote)
    for out in stage.outs:
        if out.use_cache:
            out.checkout()
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
