"""`segbench cluster-repro`: the whole run, from the arguments to the summary line."""
from __future__ import annotations

import os

from .resources import ClusterError

RETRIES = 2  # a stage whose worker dies runs again this many times, then the run names it and stops


def cluster_repro(root: str, targets: list[str], force: bool = False, dry: bool = False, downstream: bool = False,
                  workers: int = 0, scheduler: str | None = None, connect_timeout_s: float = 10.0, say=print,
                  shared_fs: bool = True, remote: str | None = None):
    """Plan with DVC, run on Dask, record in dvc.lock. Returns the Outcome; raises ClusterError."""
    from .coordinator import Coordinator
    from .plan import build_plan, open_repo
    from .record import coordinator_lock, should_run

    root = os.path.abspath(root)
    repo = open_repo(root)
    plan = build_plan(repo, targets, downstream=downstream)
    spec = None if shared_fs else _remote_spec(repo, root, remote)
    if dry:  # DVC's --dry: what would run now; stages below a changed one are decided after it runs
        for stage in plan.stages:
            state = "would run" if should_run(stage, force, plan.upstream[stage]) else "unchanged now"
            say(f"{stage.addressing}: {state}")
        return None
    with coordinator_lock(root):
        from .connect import connect

        client = connect(workers or os.cpu_count() or 1, scheduler, RETRIES, connect_timeout_s)
        try:
            return Coordinator(client, plan, root, force=force, say=say, remote=spec).run()
        finally:
            cluster = client.cluster
            client.close()
            if cluster is not None and scheduler is None:
                cluster.close()


def _remote_spec(repo, root: str, remote: str | None):
    """No shared file system: the remote and the commit the workers use, refused before anything runs."""
    from .remote import RemoteSpec, choose_remote, workspace_commit

    name = choose_remote(repo, remote)
    commit, subdir = workspace_commit(root)
    return RemoteSpec(name, commit, subdir)


def summary(outcome) -> str:
    parts = [f"{len(outcome.ran)} ran", f"{len(outcome.unchanged)} unchanged"]
    if outcome.restored:
        parts.append(f"{len(outcome.restored)} restored from the run cache")
    if outcome.failed:
        parts.append(f"{len(outcome.failed)} failed ({', '.join(outcome.failed)})")
    if outcome.skipped:
        parts.append(f"{len(outcome.skipped)} not run because a stage they need failed ({', '.join(outcome.skipped)})")
    return "; ".join(parts)


__all__ = ["ClusterError", "cluster_repro", "summary"]
