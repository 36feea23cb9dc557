"""What a Dask worker runs for one stage: its command, as DVC runs it, on the slots it was given.

Runs inside the worker process, so it imports nothing of DVC: the coordinator sent everything it needs.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

TOPIC = "segbench-cluster-start"  # start lines: the coordinator subscribes
POLL_S = 0.5  # how often a running stage checks the run's cancel event (Ctrl-C at the coordinator)
LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class StageTask:
    """One stage's command, as the coordinator planned it."""

    stage: str
    commands: tuple[str, ...]
    root: str                      # the workspace (shared file system)
    wdir: str                      # the stage's working directory, relative to root
    remove: tuple[str, ...]        # its non-persist outs, relative to root: removed before every try
    gpus: int = 0
    exclusive: bool = False        # the whole node: every slot, core and GPU of the worker
    cancel_event: str = ""
    segbench_version: str = ""
    env: dict[str, str] = field(default_factory=dict)
    clone: object = None           # a remote.RemoteSpec: no shared file system, the worker's own clone


@dataclass(frozen=True)
class StageResult:
    stage: str
    returncode: int
    worker: str
    started: float
    finished: float
    log: str
    log_tail: str
    refused: str = ""              # why the worker would not run it (another segbench, no workspace)
    outs: dict = field(default_factory=dict)   # no shared file system: the out entries the worker pushed
    files: dict = field(default_factory=dict)  # and its `cache: false` outs, path -> bytes


class _Slots:
    """The worker's GPU ids and core groups in use. Dask's resource accounting guarantees a free one
    exists when a task starts; this picks *which*, so two stages never share a GPU or a core."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy_gpus: set[str] = set()
        self._busy_groups: set[int] = set()

    def take(self, gpus: int, groups: list[list[int]], all_groups: bool, all_gpus: list[str]) -> tuple[list[str], list[int]]:
        with self._lock:
            free_gpus = [g for g in all_gpus if g not in self._busy_gpus]
            taken_gpus = free_gpus if all_groups else free_gpus[:gpus]
            free = [i for i in range(len(groups)) if i not in self._busy_groups]
            taken = free if all_groups else free[:1]
            self._busy_gpus.update(taken_gpus)
            self._busy_groups.update(taken)
            return taken_gpus, taken

    def give(self, gpus: list[str], groups: list[int]) -> None:
        with self._lock:
            self._busy_gpus.difference_update(gpus)
            self._busy_groups.difference_update(groups)


SLOTS = _Slots()  # one per worker process: the slots are the process's, like Dask's own resource counts


def worker_gpu_ids(total: int) -> list[str]:
    """The GPU ids this worker hands out: its own CUDA_VISIBLE_DEVICES when set, else 0..total-1."""
    visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return (visible or [str(i) for i in range(total)])[:total]


def core_groups(slots: int) -> list[list[int]]:
    """This process's cores split into `slots` groups: a stage gets one group's cores to itself."""
    cores = sorted(os.sched_getaffinity(0))
    slots = max(1, min(slots, len(cores)))
    size = len(cores) // slots
    return [cores[i * size:(i + 1) * size] for i in range(slots)]


def _refusal(task: StageTask) -> str:
    from segbench import __version__

    host = socket.gethostname()
    if task.segbench_version and task.segbench_version != __version__:
        return f"worker on {host} has segbench {__version__}, the coordinator {task.segbench_version}; install the same version"
    if task.clone is None and not (Path(task.root) / "dvc.yaml").is_file():
        return (f"worker on {host} cannot see the workspace {task.root} (no dvc.yaml there): "
                "the workers must share the coordinator's file system")
    return ""


def _remove_outs(task: StageTask) -> None:
    """DVC removes a stage's outs before running it; a retry after a killed worker must too."""
    for rel in task.remove:
        path = Path(task.root) / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _cancelled(name: str) -> bool:
    if not name:
        return False
    from distributed import Event

    return Event(name).is_set()


def _run_one(cmd: str, task: StageTask, env: dict[str, str], cores: list[int], log) -> int:
    # DVC's way: the user's shell, `-c`, in the stage's wdir (dvc/stage/run.py); in a session of its
    # own, so a cancel ends the whole process group, led by segbench.cluster.group, which ends the
    # group when this worker dies rather than leave the stage running beside its retry.
    def child_setup() -> None:
        if cores:
            os.sched_setaffinity(0, cores)

    shell = os.getenv("SHELL") or "/bin/sh"
    proc = subprocess.Popen([sys.executable, "-m", "segbench.cluster.group", shell, cmd], cwd=Path(task.root) / task.wdir,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=child_setup)
    while True:
        try:
            return proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            if _cancelled(task.cancel_event):
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                return -signal.SIGTERM


def _stage_environ() -> dict[str, str]:
    """The worker's environment without what Dask's nanny put there for its own threads
    (OMP/MKL/OpenBLAS_NUM_THREADS=1, ...): a stage gets its cores by CPU affinity, so torch and
    BLAS size their thread pools as under `dvc repro` (one thread of BLAS would change the sums)."""
    import dask

    dask_set = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **dask.config.get("distributed.nanny.environ", {})}
    return {k: v for k, v in os.environ.items() if k not in dask_set or str(dask_set[k]) != v}


def run_stage(task: StageTask) -> StageResult:
    """Run one stage's commands on this worker; never raises for a failing command (the coordinator
    reports it), so Dask's retries are only for a lost worker. Without a shared file system it runs in
    the worker's clone: inputs pulled from the DVC remote before, outputs pushed after."""
    from distributed import get_worker

    from . import clone

    worker = get_worker()
    started = time.time()
    refused = _refusal(task)
    pushed: tuple[int, dict, dict] = (0, {}, {})
    if task.clone is not None and not refused:
        try:
            with clone.CLONE_LOCK:
                root = clone.clone_root(task.clone)
            task = replace(task, root=str(root), env={**task.env, "DVC_ROOT": str(root)})
        except clone.CloneError as exc:
            refused = str(exc)
    if refused:
        return StageResult(task.stage, 2, worker.address, started, time.time(), "", "", refused)
    log_path = Path(task.root) / ".dvc" / "tmp" / "cluster" / "logs" / f"{task.stage.replace('/', '_')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        code = _pull(task, log)
        code = code or _run_commands(task, worker, log)
        if task.clone is not None and not code:
            with clone.CLONE_LOCK:
                pushed = clone.push_outputs(Path(task.root), task.stage, task.clone, log)
            code = pushed[0]
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    return StageResult(task.stage, code, worker.address, started, time.time(), str(log_path), tail,
                       outs=pushed[1], files=pushed[2])


def _pull(task: StageTask, log) -> int:
    if task.clone is None:
        return 0
    from . import clone

    with clone.CLONE_LOCK:
        return clone.pull_inputs(Path(task.root), task.clone, log)


def _run_commands(task: StageTask, worker, log) -> int:
    node = int(worker.state.total_resources.get("node", worker.state.nthreads))
    groups = core_groups(node)
    gpus, taken = SLOTS.take(task.gpus, groups, task.exclusive, worker_gpu_ids(int(worker.state.total_resources.get("GPU", 0))))
    cores = [c for i in taken for c in groups[i]]
    worker.log_event(TOPIC, [task.stage, worker.address])
    env = {**_stage_environ(), **task.env, "CUDA_VISIBLE_DEVICES": ",".join(gpus)}
    try:
        _remove_outs(task)
        code = 0
        for cmd in task.commands:
            log.write(f"> {cmd}\n")
            log.flush()
            code = _run_one(cmd, task, env, cores, log)
            if code:
                break
    finally:
        SLOTS.give(gpus, taken)
    return code
