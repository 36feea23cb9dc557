"""The coordinator: DVC's plan, run on Dask as stages become ready, each recorded as it finishes."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from .. import __version__
from . import record
from .connect import check_node_resource, profile_worker, workers_of
from .plan import Plan, removable_outs
from .remote import RemoteSpec, fetch_outputs, push_inputs, spec_for
from .resources import ClusterError, check_fits, load_stage_params, stage_request
from .worker import TOPIC, StageTask, run_stage


@dataclass
class Outcome:
    ran: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # stage -> why
    skipped: list[str] = field(default_factory=list)        # upstream failed


class Coordinator:
    def __init__(self, client, plan: Plan, root: str, force: bool = False, say=print, remote: RemoteSpec | None = None) -> None:
        self.client, self.plan, self.root, self.force, self.say = client, plan, root, force, say
        self.remote = remote  # None: the workers share this workspace; else they use clones and the DVC remote
        self.workers = workers_of(client)
        check_node_resource(self.workers)
        params = load_stage_params(root, plan.names())
        has_gpus = any(w.get("resources", {}).get("GPU", 0) for w in self.workers.values())
        self.requests = {s: stage_request(s.name, params, has_gpus) for s in plan.stages}
        check_fits({s.addressing: r for s, r in self.requests.items()}, self.workers)
        self.profile_host, self.profile_slots = profile_worker(self.workers)
        if remote is not None:
            self._check_clones()
        self.cancel = f"segbench-cancel-{uuid.uuid4().hex}"
        self.outcome = Outcome()
        self.done: set = set()
        self.pending = list(plan.stages)
        self.running: dict = {}  # future -> stage

    def _check_clones(self) -> None:
        """No shared file system: every worker with stage slots holds the commit, before anything runs."""
        from .clone import check

        slotted = [a for a, w in self.workers.items() if w.get("resources", {}).get("node")]
        why = self.client.run(check, self.remote.commit, __version__, workers=slotted)
        refused = sorted(line for line in why.values() if line)
        if refused:
            raise ClusterError(refused[0] + (f" (and {len(refused) - 1} more worker(s))" if len(refused) > 1 else ""))

    def _task(self, stage) -> StageTask:
        request = self.requests[stage]
        return StageTask(stage.addressing, tuple(_commands(stage)), self.root, _rel(stage.wdir, self.root),
                         removable_outs(stage), request.gpus, request.exclusive, self.cancel, __version__,
                         {"DVC_ROOT": self.root, "DVC_STAGE": stage.addressing},
                         None if self.remote is None else spec_for(self.remote, stage, self.plan.sources[stage]))

    def _submit(self, stage):
        request = self.requests[stage]
        where = {"workers": [self.profile_host], "allow_other_workers": False} if request.exclusive else {}
        if self.remote is not None:
            with record.dvc_section(stage.repo):
                push_inputs(self.plan.sources[stage], self.remote.remote)
        return self.client.submit(run_stage, self._task(stage), key=f"{stage.addressing}-{uuid.uuid4().hex[:8]}",
                                  resources=request.dask_resources(self.profile_slots), pure=False, **where)

    def _ready(self) -> list:
        return [s for s in self.pending if all(u in self.done for u in self.plan.upstream[s])]

    def launch_ready(self, as_completed) -> None:
        """Every stage whose upstream is done: skipped when unchanged (as DVC decides it now, after its
        upstream ran), restored from the run cache, or submitted; repeated while that frees more."""
        while ready := self._ready():
            for stage in ready:
                self.pending.remove(stage)
                if not record.should_run(stage, self.force, self.plan.upstream[stage]):
                    self.done.add(stage)
                    self.outcome.unchanged.append(stage.addressing)
                elif not self.force and record.restore_from_run_cache(stage):
                    self.done.add(stage)
                    self.outcome.restored.append(stage.addressing)
                    self.say(f"restored {stage.addressing} from the run cache")
                else:
                    record.prepare(stage)
                    future = self._submit(stage)
                    self.running[future] = stage
                    as_completed.add(future)

    def finish(self, future) -> None:
        stage = self.running.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # KilledWorker after the bounded retries, or a lost connection
            self._fail(stage, f"{type(exc).__name__}: its worker died on every try (killed or out of memory)")
            return
        if result.refused:
            raise ClusterError(f"{stage.addressing}: {result.refused}")
        took = f"{result.finished - result.started:.1f} s"
        if result.returncode:
            self._fail(stage, f"exit {result.returncode} after {took} on {result.worker}; log {result.log}:\n{result.log_tail}")
            return
        if self.remote is not None:
            with record.dvc_section(stage.repo):
                fetch_outputs(stage, result.outs, result.files, self.remote.remote)
        record.record(stage)
        self.done.add(stage)
        self.outcome.ran.append(stage.addressing)
        self.say(f"{self._count()} finished {stage.addressing} on {result.worker} in {took}")

    def _fail(self, stage, why: str) -> None:
        self.outcome.failed[stage.addressing] = why
        self.say(f"{self._count()} FAILED {stage.addressing}: {why}")

    def _count(self) -> str:
        finished = len(self.done) + len(self.outcome.failed)
        return f"[{finished}/{len(self.plan.stages)} done, {len(self.running)} running]"

    def cancel_running(self) -> None:
        """Ctrl-C: running commands end (each worker polls the event), their partial outs go."""
        from distributed import Event, wait

        Event(self.cancel, client=self.client).set()
        wait(list(self.running), timeout=30)
        for stage in self.running.values():
            record.discard(stage)
            self.say(f"cancelled {stage.addressing}; its partial outputs removed")

    def run(self) -> Outcome:
        from distributed import as_completed

        self.say(f"{len(self.plan.stages)} stages planned; dashboard: {self.client.dashboard_link}")
        _start_watcher(self.client, self.say)
        completed = as_completed()
        try:
            self.launch_ready(completed)
            for future in completed:
                self.finish(future)
                self.launch_ready(completed)
        except BaseException:
            self.cancel_running()
            raise
        self.outcome.skipped = [s.addressing for s in self.pending]
        return self.outcome


def _start_watcher(client, say) -> None:
    """Start lines: each worker logs an event when a stage's command starts there."""
    def started(event) -> None:
        when, (stage, worker) = event  # the worker's clock when the command started, not when the line arrives
        say(f"started {stage} on {worker} ({time.strftime('%H:%M:%S', time.localtime(when))})")

    client.subscribe_topic(TOPIC, started)


def _commands(stage) -> list[str]:
    return stage.cmd if isinstance(stage.cmd, list) else stage.cmd.splitlines()


def _rel(path: str, root: str) -> str:
    import os

    return os.path.relpath(path, root)
