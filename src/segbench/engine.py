"""The training loop, top to bottom: `train_and_save` -> `train` -> `fit` -> `train_one_epoch` and
`validate`. What is learned (the batch layout, the loss terms, the scores) is the task's
(segbench.tasks); where and how it computes is the runtime's (segbench.runtime); what a run has
done so far, and its resume file, is the state's (segbench.state).

- The kept epoch is the one with the best validation score `train.select` (mIoU, or depth RMSE
  for task seg_depth); `train.patience` epochs without a better one stop training early.
- Mixed precision (`train.amp`: bf16 on CPU or CUDA, fp16 on CUDA with gradient scaling) covers
  the forward pass; losses compute in float32 and validation runs in float32, like evaluate.
- Resumable: after every epoch the whole state goes atomically to a resume file, and a run killed
  part-way ends bit-identical to an uninterrupted one on CPU. Sample order is a function of
  (seed, epoch) and each sample's augmentation of (seed, epoch, index), so nothing about the data
  pipeline needs saving and any number of workers or processes sees the same samples.
- Data-parallel under torchrun (segbench.distributed): DistributedSampler order, DDP gradient
  averaging, the global batch split across ranks, rank 0 alone validating and writing.
- Per-epoch curves go to DVCLive; a progress bar appears only on a terminal.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .checkpoint import resume_path_for, run_fingerprint, save_checkpoint
from .config import AugmentConfig, ModelSpec, TrainConfig
from .data.dataset import SegmentationCache
from .distributed import DistContext, per_rank_batch
from .environment import ContentionMonitor, fingerprint, peak_rss_mb
from .errors import SegbenchError, TrainingError
from .evaluate import run_evaluation
from .io import write_json
from .losses import Criterion
from .models import build_model
from .optim import LRSchedule, build_optimizer, build_scheduler
from .runtime import Precision, resolve_device, resolve_precision, seed_everything, set_threads
from .state import Optimisation, Progress, ResumeFile, cpu_state, restore
from .tasks import Segmentation, get_task


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict  # the train.json content
    history: list[dict] = field(default_factory=list)


def train_and_save(spec: ModelSpec, cache_dir: Path, checkpoint_path: Path, *, seed: int, log_dir: Path | None = None,
                   augmentation: AugmentConfig | None = None, metrics_path: Path | None = None, resume: bool = True,
                   dist: DistContext | None = None) -> dict:
    """Train, then write the best checkpoint (and `metrics_path`, train.json) from rank 0.

    With `resume`, the training state goes to <checkpoint>.resume.pt after every epoch and a run
    killed part-way continues from it; the file is deleted once checkpoint and metrics are written.
    """
    dist = dist or DistContext()
    resume_path = resume_path_for(checkpoint_path) if resume else None
    result = train(spec, cache_dir, seed=seed, log_dir=log_dir, augmentation=augmentation, resume_path=resume_path, dist=dist)
    if dist.is_main:
        data = SegmentationCache(cache_dir, "val")
        save_checkpoint(checkpoint_path, result.model, arch=spec.arch, options=spec.options, task=spec.task,
                        class_names=data.class_names, image_size=data.manifest["image_size"],
                        epoch=result.metrics["best_epoch"], val_miou=result.metrics["best_val_miou"])
        if metrics_path is not None:
            write_json(metrics_path, result.metrics)
        if resume_path is not None:
            resume_path.unlink(missing_ok=True)
    return result.metrics


def train(spec: ModelSpec, cache_dir: Path, *, seed: int, log_dir: Path | None = None,
          augmentation: AugmentConfig | None = None, resume_path: Path | None = None,
          dist: DistContext | None = None) -> TrainResult:
    """Train `spec` on the cache. `resume_path`: continue from (and keep updating) a resume file of
    this very run. `dist`: this process's rank in a torchrun job (default: a single process)."""
    cfg: TrainConfig = spec.train
    dist = dist or DistContext()
    augment = (augmentation or AugmentConfig()) if cfg.augment else None
    run = build_run(spec, cache_dir, seed, augment, dist)
    live = open_live(log_dir) if dist.is_main else None
    started = time.perf_counter()
    trainable = [p for p in run.model.parameters() if p.requires_grad]
    # Under torchrun the measured tree is the launcher's: the other ranks are this run, not contention.
    monitor = ContentionMonitor(root_pid=os.getppid() if dist.distributed else None)
    if not trainable:
        with monitor:
            progress = fit_prior(run, live)
    else:
        resume = None
        if resume_path is not None:
            run_id = run_fingerprint(spec, seed=seed, augmentation=augment, world_size=dist.world_size,
                                   manifest_path=Path(cache_dir) / "manifest.json")
            resume = ResumeFile(resume_path, run_id, spec.name)
        optimizer = build_optimizer(trainable, cfg)
        opt = Optimisation(optimizer, build_scheduler(optimizer, cfg, steps_per_epoch=len(run.loader)),
                           run.precision.grad_scaler())
        with monitor:
            progress = fit(run, opt, cfg, dist, live, resume)
    if live is not None:
        live.end()
    model = run.model
    if cfg.channels_last:  # the checkpoint keeps the default layout
        model = model.to(memory_format=torch.contiguous_format)
    wall = progress.elapsed or time.perf_counter() - started
    metrics = train_metrics(run.task, progress, wall, run.device, dist)
    metrics["amp"] = run.precision.name  # what ran: `amp: auto` resolves per machine
    metrics["peak_rss_mb"] = peak_rss_mb()
    if run.device.type == "cuda":
        metrics["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(run.device) / 2**20
    if trainable:
        metrics.update(progress.convergence(cfg.select, run.task.scores[cfg.select]))
    else:  # nothing to learn: the prior is exact after one pass
        metrics.update(converged=True, late_gain=None, late_epochs=0)
    metrics["contention"], metrics["env"] = monitor.result.as_dict(), fingerprint()
    return TrainResult(model=model.cpu(), metrics=metrics, history=progress.history)


def fit(run: Run, opt: Optimisation, cfg: TrainConfig, dist: DistContext, live, resume: ResumeFile | None) -> Progress:
    """Epochs until `cfg.epochs` or early stopping; the model ends with the best epoch's weights."""
    saved = resume.load(dist) if resume is not None else None
    progress = restore(saved, run.model, opt, run.generator) if saved is not None else Progress()
    for row in progress.history:  # a resumed run's log is rebuilt from the checkpoint: complete, no step twice
        log_epoch(live, row)
    started, earlier = time.perf_counter(), progress.elapsed
    higher_is_better = run.task.scores[cfg.select]
    while progress.epoch < cfg.epochs and not progress.stopped_early:
        epoch = progress.epoch + 1
        run.sampler.set_epoch(epoch)
        lr = opt.optimizer.param_groups[0]["lr"]  # at the start of the epoch (onecycle changes it per batch)
        stats = train_one_epoch(run.net, run.loader, run.criterion, opt.optimizer, run.device, epoch, task=run.task,
                                precision=run.precision, scaler=opt.scaler, schedule=opt.schedule,
                                channels_last=cfg.channels_last)
        images, *train_losses = dist.all_reduce_sum([stats.images, *stats.losses.values()])
        train_losses = {name: value / dist.world_size for name, value in zip(stats.losses, train_losses)}
        val = validate(run, dist)
        opt.schedule.after_epoch(val["val_miou"])
        progress.images += int(images)
        progress.step_time += stats.step_time_s
        progress.data_wait += stats.data_wait_s
        row = epoch_row(epoch, lr, train_losses, val)
        log_epoch(live, row)
        improved = progress.improves(row, cfg.select, higher_is_better)
        progress.record(row, improved, cpu_state(run.model) if improved and dist.is_main else None, cfg.patience, cfg.epochs)
        progress.stopped_early = bool(dist.broadcast([float(progress.stopped_early)])[0])  # rank 0 decides for all
        progress.elapsed = earlier + time.perf_counter() - started
        if resume is not None and dist.is_main:
            resume.save(run.model, opt, run.generator, progress)
    if progress.best_state is not None:  # None only if every validation score was NaN: keep the last weights
        run.model.load_state_dict(progress.best_state)
    return progress


@dataclass
class EpochStats:
    losses: dict[str, float]  # mean per batch: "loss" (the total) and each named term
    images: int
    step_time_s: float
    data_wait_s: float

    @property
    def loss(self) -> float:
        return self.losses["loss"]


def train_one_epoch(model: nn.Module, loader: DataLoader, criterion: Criterion, optimizer: torch.optim.Optimizer,
                    device: torch.device, epoch: int, *, task: Segmentation | None = None,
                    precision: Precision | None = None, scaler: torch.amp.GradScaler | None = None,
                    schedule: LRSchedule | None = None, channels_last: bool = False) -> EpochStats:
    """One pass over `loader`; `criterion(outputs, targets)` gives the total and the named terms."""
    task = task or get_task("segmentation")
    precision = precision or Precision(device.type)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    model.train()
    sums: dict[str, float] = {}
    images, step_time, data_wait = 0, 0.0, 0.0
    tick = time.perf_counter()
    for step, batch in enumerate(progress_bar(loader, f"epoch {epoch}", len(loader)), start=1):
        x, targets = task.unpack(batch, device, memory_format)
        start = time.perf_counter()
        data_wait += start - tick
        with precision.autocast():
            outputs = model(x)
        losses = criterion(outputs, targets)  # outside autocast: losses compute in float32
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}; "
                                "lower train.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if schedule is not None:
            schedule.after_batch()
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        images += x.shape[0]
        tick = time.perf_counter()
        step_time += tick - start
    batches = max(1, len(loader))
    return EpochStats({name: total / batches for name, total in sums.items()}, images, step_time, data_wait)


def validate(run: Run, dist: DistContext) -> dict[str, float]:
    """`val_loss`, `val_<term>_loss` and `val_<score>` on the validation split. Rank 0 validates on
    the whole split (exactly what one process computes) and hands the values to the others."""
    names = ["val_loss", *(f"val_{t}_loss" for t in run.term_names), *(f"val_{s}" for s in run.task.scores)]
    values = [float("nan")] * len(names)
    if dist.is_main:
        evaluation = run_evaluation(run.model, run.val_loader, run.task, run.num_classes, run.ignore_index, run.device,
                                    run.criterion)
        values = [evaluation.losses["loss"], *(evaluation.losses[t] for t in run.term_names),
                  *(evaluation.scores[s] for s in run.task.scores)]
    return dict(zip(names, dist.broadcast(values)))


def epoch_row(epoch: int, lr: float, train_losses: dict[str, float], val: dict[str, float]) -> dict:
    """One history row: the totals and the scores, then each term when there are several."""
    row = {"epoch": epoch, "train_loss": train_losses["loss"], "val_loss": val["val_loss"],
           **{k: v for k, v in val.items() if not k.endswith("_loss")}, "lr": lr}
    terms = [name for name in train_losses if name != "loss"]
    if len(terms) > 1:
        row.update({f"train_{t}_loss": train_losses[t] for t in terms})
        row.update({f"val_{t}_loss": val[f"val_{t}_loss"] for t in terms})
    return row


def fit_prior(run: Run, live) -> Progress:
    """Models with no trainable parameters (the class prior) learn from the masks directly."""
    started = time.perf_counter()
    fit = getattr(run.model, "fit_from_masks", None)
    if fit is None:
        raise TrainingError(f"{type(run.model).__name__} has no trainable parameters and no fit_from_masks method")
    fit(torch.from_numpy(np.asarray(run.train_set.masks).astype(np.int64)), run.ignore_index)
    row = epoch_row(1, 0.0, {"loss": float("nan")}, validate(run, DistContext()))
    progress = Progress(images=len(run.train_set), step_time=time.perf_counter() - started)
    progress.record(row, True, run.model.state_dict(), patience=0, last_epoch=1)
    log_epoch(live, row)
    return progress


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


# --- building a run --------------------------------------------------------------------------------

@dataclass
class Run:
    """Everything an epoch touches, built once per run."""

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


# --- logging -----------------------------------------------------------------------------------------

def progress_bar(iterable, desc: str, total: int):
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def open_live(log_dir: Path | None):
    if log_dir is None:
        return None
    from dvclive import Live

    # resume=False: the directory is rebuilt from the run's own history (see fit); DVC deletes it
    # before re-running the stage anyway, so DVCLive's resume=True would have nothing to go on.
    try:
        return Live(dir=str(log_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    except Exception as exc:  # scmrepo's SCMError, which DVCLive lets through (dvclive#522)
        if "Empty git repo" not in str(exc):
            raise
        raise TrainingError(f"{log_dir}: DVCLive cannot log in a git repository without commits; "
                            "commit once (git add -A && git commit -m init) and run again") from None


def log_epoch(live, row: dict) -> None:
    if live is None:
        return
    for key, value in row.items():
        if key != "epoch" and math.isfinite(value):
            live.log_metric(key, value)
    live.next_step()
