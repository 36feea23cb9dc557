"""Data-parallel training with torch.distributed: launching under torchrun, and what a rank needs.

The train stage runs unchanged under ``torchrun --nproc_per_node N`` (any torchrun flags, multi-node
included): torchrun sets RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT and every process
joins the group they describe (gloo on CPU, nccl on CUDA). With ``train.launcher: torchrun`` the stage
launches itself: when it is not already inside torchrun it re-executes
``python -m segbench.distributed --standalone --nproc_per_node <train.nproc> -m segbench ...`` --
torchrun itself (torch.distributed.run's parser and launcher), but exiting with the failing rank's
own status and without the launcher's traceback, so a user mistake stays one line and exit code 2.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from .errors import TrainingError
from .runtime import resolve_device, usable_cores


def inside_torchrun(environ: dict | os._Environ = os.environ) -> bool:
    """torchrun sets both (with RANK, MASTER_ADDR, MASTER_PORT) for every process it starts."""
    return "LOCAL_RANK" in environ and "WORLD_SIZE" in environ


def torchrun_command(nproc: int, segbench_args: Sequence[str]) -> list[str]:
    """An argument list (never a shell string) running `python -m segbench *segbench_args` on
    `nproc` local processes. --standalone picks a free port for a single-node rendezvous."""
    return [sys.executable, "-m", "segbench.distributed", "--standalone", "--nproc_per_node", str(int(nproc)),
            "-m", "segbench", *map(str, segbench_args)]


def torchrun_main(argv: Sequence[str] | None = None) -> int:
    """torchrun (`python -m torch.distributed.run`), returning the first failed rank's exit status
    instead of raising the launcher's ChildFailedError (a traceback after the rank's own message)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(list(argv) if argv is not None else None))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode if isinstance(failure.exitcode, int) and failure.exitcode > 0 else 1
        print(f"segbench: rank {rank} failed with exit code {failure.exitcode}", file=sys.stderr)
        return code
    return 0


def _parent_death_signal(sig: int):
    """Linux: a function making the calling process receive `sig` when its parent dies (even by
    SIGKILL); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    return lambda: libc.prctl(pr_set_pdeathsig, sig)


def die_with_parent() -> None:
    """A rank ends when its torchrun dies: torchrun starts ranks in sessions of their own, so a
    SIGKILLed stage would otherwise leave them training and writing outputs behind a resumed run."""
    arm = _parent_death_signal(signal.SIGTERM)
    if arm is not None:
        arm()


def run_under_torchrun(nproc: int, segbench_args: Sequence[str]) -> int:
    """Run the command under torchrun in the foreground; its exit status."""
    if not torch.distributed.is_available():
        raise TrainingError("train.launcher: torchrun needs torch.distributed, which this torch build lacks; "
                            "use launcher: none")
    # torchrun gives each process one thread unless told; say so ourselves: the cores shared out.
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // max(1, int(nproc)))))
    # torchrun itself ends with the stage process (and each rank with torchrun: die_with_parent).
    return subprocess.run(torchrun_command(nproc, segbench_args), env=env,
                          preexec_fn=_parent_death_signal(signal.SIGTERM)).returncode


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job. The default is a single process (no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None  # None: no process group (a single process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def broadcast(self, values: Sequence[float]) -> list[float]:
        """Rank 0's values on every rank (float64, so NaN and exact floats survive)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        torch.distributed.broadcast(tensor, src=0)
        return tensor.tolist()

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's object (pickled) on every rank; e.g. a resume checkpoint only rank 0 can read."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, device=self._device())
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def _env_int(environ, name: str, default: int) -> int:
    value = environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise TrainingError(f"environment: {name}={value!r} is not an integer (set by torchrun)") from None


@contextmanager
def process_group(device: str, environ: dict | os._Environ = os.environ) -> Iterator[DistContext]:
    """Join the job torchrun describes (a plain single-process context outside torchrun or with
    WORLD_SIZE 1); leave it afterwards. `device` is train.device: nccl for CUDA, gloo otherwise."""
    if inside_torchrun(environ):
        die_with_parent()
    if not inside_torchrun(environ) or _env_int(environ, "WORLD_SIZE", 1) == 1:
        yield DistContext()
        return
    if not torch.distributed.is_available():
        raise TrainingError("launched by torchrun but this torch build has no torch.distributed")
    ctx = DistContext(rank=_env_int(environ, "RANK", 0), world_size=_env_int(environ, "WORLD_SIZE", 1),
                      local_rank=_env_int(environ, "LOCAL_RANK", 0),
                      local_world_size=_env_int(environ, "LOCAL_WORLD_SIZE", 1),
                      backend="nccl" if resolve_device(device).type == "cuda" else "gloo")
    if ctx.backend == "nccl":
        if ctx.local_rank >= torch.cuda.device_count():
            raise TrainingError(f"local rank {ctx.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                                f"lower train.nproc (or --nproc_per_node) to at most {torch.cuda.device_count()}")
        torch.cuda.set_device(ctx.local_rank)
    elif not torch.distributed.is_gloo_available():
        raise TrainingError("torch.distributed has no gloo backend for CPU training; use launcher: none or a CUDA device")
    torch.distributed.init_process_group(ctx.backend)
    ok = False
    try:
        yield ctx
        ok = True
    finally:
        if ok:
            torch.distributed.barrier()  # nobody leaves while rank 0 still writes outputs
        torch.distributed.destroy_process_group()


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """train.batch_size is the global batch: split evenly across the ranks."""
    if batch_size % world_size:
        raise TrainingError(f"train.batch_size: {batch_size} is not divisible by the {world_size} processes; "
                            f"the global batch is split evenly across them (use a multiple of {world_size})")
    return batch_size // world_size


if __name__ == "__main__":
    sys.exit(torchrun_main())
