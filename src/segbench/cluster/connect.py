"""The Dask cluster: a local one (one worker, N stage slots) or an existing scheduler."""
from __future__ import annotations

import logging
import shutil
import subprocess
from urllib.parse import urlparse

from .resources import ClusterError

CONNECT_TIMEOUT_S = 10  # an unreachable scheduler: one line after this long, not a hang


def local_gpus() -> int:
    """GPUs on this machine (nvidia-smi -L), 0 without a driver: no torch import in the coordinator."""
    if not shutil.which("nvidia-smi"):
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return sum(line.startswith("GPU ") for line in listing.splitlines())


def connect(workers: int, scheduler: str | None, retries: int, timeout_s: float = CONNECT_TIMEOUT_S):
    """A distributed.Client. Local: one worker process whose `node` resource is `workers` slots (a
    profile stage takes them all), with this machine's GPUs; a killed worker is restarted by its nanny
    and its stages rerun up to `retries` times (distributed.scheduler.allowed-failures)."""
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": retries})
    if scheduler is None:
        resources = {"node": workers, "GPU": local_gpus()}
        cluster = LocalCluster(n_workers=1, threads_per_worker=workers, processes=True, resources=resources,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        return Client(cluster)
    try:
        client = Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"scheduler {scheduler}: unreachable after {timeout_s:g} s ({type(exc).__name__}); "
                           "is `dask scheduler` running there?") from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        client.close()
        raise ClusterError(f"scheduler {scheduler}: no worker joined within {timeout_s:g} s; start some with "
                           f"`dask worker {scheduler} --nthreads K --resources node=K`") from None
    return client


def workers_of(client) -> dict[str, dict]:
    return client.scheduler_info(n_workers=-1)["workers"]


def host_of(address: str) -> str:
    return urlparse(address).hostname or address


def profile_worker(workers: dict[str, dict]) -> tuple[str, int]:
    """The node every profile stage runs on (one node, so their costs compare): the worker with the
    most `node` slots, first by address; the stage asks for all of them."""
    address = max(sorted(workers), key=lambda a: workers[a].get("resources", {}).get("node", 0))
    return host_of(address), int(workers[address].get("resources", {}).get("node", 0))


def check_node_resource(workers: dict[str, dict]) -> None:
    if not any(w.get("resources", {}).get("node") for w in workers.values()):
        raise ClusterError("no worker has a `node` resource (its stage slots), so no stage could start; start "
                           "workers with `dask worker SCHEDULER --nthreads K --resources node=K`")
