"""One training run, set up: `build_run` gathers what every epoch of segbench.engine's loop touches
(the model on its device, the data loaders, the loss, the precision) into a `Run`;
`train_metrics` sums a finished run up as train.json.

Sample order is a function of (seed, epoch) (`EpochSampler`) and each sample's augmentation of
(seed, epoch, index) (`EpochSamples`), so nothing about the data pipeline needs saving for a
resume and any number of workers or processes sees the same samples. Under torchrun the ranks
share DistributedSampler's order and split the global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .config import AugmentConfig, ModelSpec
from .data.dataset import SegmentationCache
from .distributed import DistContext, per_rank_batch
from .errors import SegbenchError, TrainingError
from .losses import Criterion
from .models import build_model
from .runtime import Precision, resolve_device, resolve_precision, seed_everything, set_threads
from .state import Progress
from .tasks import Segmentation, get_task


@dataclass
class Run:
    """Everything an epoch touches, built once per run (`build_run`)."""

    task: Segmentation
    model: nn.Module  # the bare model: validation and checkpoints
    net: nn.Module  # what trains: the model, or its DistributedDataParallel wrapper
    train_set: SegmentationCache
    loader: DataLoader
    sampler: EpochSampler
    val_loader: DataLoader
    criterion: Criterion
    device: torch.device
    precision: Precision
    num_classes: int
    ignore_index: int
    generator: torch.Generator  # the DataLoader's (worker base seeds)

    @property
    def term_names(self) -> list[str]:
        """The criterion's named terms when there are several (one term is the total itself)."""
        names = list(self.criterion.routes)
        return names if len(names) > 1 else []


def build_run(spec: ModelSpec, cache_dir: Path, seed: int, augment: AugmentConfig | None, dist: DistContext) -> Run:
    """The model, data, loss and runtime of one run, on this process's device and rank."""
    cfg = spec.train
    task = get_task(spec.task)
    local_batch = per_rank_batch(cfg.batch_size, dist.world_size)
    generator = seed_everything(seed)
    set_threads(cfg.threads, dist.local_world_size)
    device = resolve_device(cfg.device, dist.local_rank if dist.distributed else None)
    try:
        precision = resolve_precision(cfg.amp, device)
    except SegbenchError as exc:  # the runtime names the value; the user set it as train.amp
        raise TrainingError(f"train.{exc}") from None
    train_set = task.dataset(cache_dir, "train", augment=augment, seed=seed)
    val_set = task.dataset(cache_dir, "val")
    model = build_model(spec.arch, len(train_set.class_names), task=spec.task, **spec.options)
    task.prepare(model, train_set.manifest)
    model = model.to(device)
    if cfg.sync_bn and dist.distributed:
        if device.type != "cuda":
            raise TrainingError("train.sync_bn: SyncBatchNorm needs CUDA (torch runs it on GPUs only) but training runs "
                                f"on {device.type}; use sync_bn: false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if dist.distributed and any(p.requires_grad for p in model.parameters()):
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = EpochSampler(train_set, seed=seed, rank=dist.rank, world_size=dist.world_size)
    loader = DataLoader(EpochSamples(train_set), batch_size=local_batch, sampler=sampler, generator=generator,
                        drop_last=len(train_set) > cfg.batch_size,  # BatchNorm needs > 1 sample per batch
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    val_loader = DataLoader(val_set, batch_size=max(cfg.batch_size, 32), shuffle=False)
    return Run(task=task, model=model, net=net, train_set=train_set, loader=loader, sampler=sampler,
               val_loader=val_loader, criterion=task.criterion(cfg, train_set.manifest).to(device), device=device,
               precision=precision, num_classes=len(train_set.class_names),
               ignore_index=train_set.manifest["ignore_index"], generator=generator)


class EpochSamples(Dataset):
    """The training set indexed by (epoch, index). Each sample's augmentation is reseeded from
    (seed, epoch, index), so what a sample looks like depends on nothing else: not on the order,
    the DataLoader workers (persistent or not), the DDP rank, or whether the run was resumed."""

    def __init__(self, data: SegmentationCache) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if self.data.transform is not None:
            self.data.set_epoch(epoch, index)  # keyed by the sample itself rather than a worker
        return self.data[index]


class EpochSampler(Sampler):
    """DistributedSampler's order, tagged with the epoch: a permutation drawn from seed + epoch,
    rank r taking every world_size-th index. A single process uses it with one replica, so a global
    batch holds the same samples whatever the number of processes, and an epoch's order is a
    function of (seed, epoch) alone (nothing to save for a resume)."""

    def __init__(self, data: Dataset, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.order = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


def train_metrics(task: Segmentation, progress: Progress, wall: float, device: torch.device, dist: DistContext) -> dict:
    """The train.json content."""
    step_time, data_wait = progress.step_time, progress.data_wait
    best, last = progress.best, progress.history[-1] if progress.history else {}
    terms = [k[len("train_"):] for k in last if k.startswith("train_") and k.endswith("_loss") and k != "train_loss"]
    return {
        "train_time_s": wall,
        "time_per_epoch_s": wall / max(1, progress.epoch),
        "epochs": progress.epoch,
        "stopped_early": progress.stopped_early,
        "best_epoch": progress.best_epoch,
        **{f"best_val_{s}": best.get(f"val_{s}", float("nan")) for s in task.scores},
        "final_train_loss": last.get("train_loss", float("nan")),
        **{f"final_train_{t}": last[f"train_{t}"] for t in terms},
        "images_per_s": progress.images / step_time if step_time > 0 else float("nan"),
        "data_wait_fraction": data_wait / (data_wait + step_time) if step_time > 0 else 0.0,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "world_size": dist.world_size,
    }


def open_live(log_dir: Path | None):
    """The DVCLive logger of the per-epoch curves (None: no log)."""
    if log_dir is None:
        return None
    from dvclive import Live

    # resume=False: the directory is rebuilt from the run's own history (see engine.fit); DVC deletes it
    # before re-running the stage anyway, so DVCLive's resume=True would have nothing to go on.
    try:
        return Live(dir=str(log_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    except Exception as exc:  # scmrepo's SCMError, which DVCLive lets through (dvclive#522)
        if "Empty git repo" not in str(exc):
            raise
        raise TrainingError(f"{log_dir}: DVCLive cannot log in a git repository without commits; "
                            "commit once (git add -A && git commit -m init) and run again") from None
