"""What one stage asks of a worker, read from params.yaml the way the stage itself reads it.

Dask worker resources: `node` (the worker's stage slots; a profile stage takes them all, so nothing
else runs beside it) and `GPU` (a cuda train or evaluate stage takes one, a torchrun stage `nproc`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SegbenchError

PER_MODEL_SEED = ("train", "evaluate")
EXCLUSIVE = ("profile",)  # timing stages: the node to themselves, so contention does not skew their numbers


class ClusterError(SegbenchError):
    """The cluster cannot run the plan: no scheduler, no worker with what a stage needs, ..."""


@dataclass(frozen=True)
class Request:
    gpus: int = 0
    exclusive: bool = False

    def dask_resources(self, node_slots: int) -> dict[str, float]:
        wanted = {"node": float(node_slots if self.exclusive else 1)}
        if self.gpus:
            wanted["GPU"] = float(self.gpus)
        return wanted


def _gpus_for(device: str, processes: int, cluster_has_gpus: bool) -> int:
    # device auto means "a GPU where there is one": on a cluster with GPU workers it asks for one, as
    # `dvc repro` on a GPU machine would use it.
    if device == "cuda" or (device == "auto" and cluster_has_gpus):
        return processes
    return 0


def stage_request(stage: str, params, cluster_has_gpus: bool) -> Request:
    """The request of stage `train@unet-0`, `profile@unet`, ... (params: segbench.config.Params or None)."""
    group, _, key = stage.partition("@")
    if group in EXCLUSIVE:
        return Request(exclusive=True)
    if params is None or group not in PER_MODEL_SEED:
        return Request()
    model = next((m for m in params.models for s in params.seeds if key == f"{m}-{s}"), None)
    if model is None:
        return Request()
    if group == "train":
        cfg = params.models[model].train
        processes = cfg.nproc if cfg.launcher == "torchrun" else 1
        return Request(gpus=_gpus_for(cfg.device, processes, cluster_has_gpus))
    return Request(gpus=_gpus_for(params.train.device, 1, cluster_has_gpus))  # evaluate reads the shared train.device


def load_stage_params(root, stage_names: list[str]):
    """The project's params when it has segbench's per-model stages; None for any other DVC project."""
    if not any(name.partition("@")[0] in PER_MODEL_SEED for name in stage_names):
        return None
    from ..config import load_params

    return load_params(f"{root}/params.yaml")


def check_fits(requests: dict[str, Request], workers: dict[str, dict]) -> None:
    """One line, before anything runs, for a stage no worker can ever take (else Dask waits forever)."""
    most_gpus = max((w.get("resources", {}).get("GPU", 0) for w in workers.values()), default=0)
    for stage, request in requests.items():
        if request.gpus > most_gpus:
            have = f"the most any worker has is {most_gpus:g}" if most_gpus else "no worker has a GPU resource"
            raise ClusterError(f"{stage} asks for {request.gpus} GPU(s) but {have}; start workers with "
                               f"`dask worker ... --resources \"node=K,GPU={request.gpus}\"` or set its device to cpu")
