"""The training loop, top to bottom: `train_and_save` -> `train` -> `fit` -> `train_one_epoch` and
`validate`. What is learned (the batch layout, the loss terms, the scores) is the task's
(segbench.tasks); where and how it computes is the runtime's (segbench.runtime); what a run has
done so far, and its resume file, is the state's (segbench.state); what an epoch touches, and
how it is built, is segbench.training_run's.

- The kept epoch is the one with the best validation score `train.select` (mIoU, or depth RMSE
  for task seg_depth); `train.patience` epochs without a better one stop training early.
- Mixed precision (`train.amp`: bf16 on CPU or CUDA, fp16 on CUDA with gradient scaling) covers
  the forward pass; losses compute in float32 and validation runs in float32, like evaluate.
- Resumable: after every epoch the whole state goes atomically to a resume file, and a run killed
  part-way ends bit-identical to an uninterrupted one on CPU (the data's order and augmentation
  need no saving: segbench.training_run).
- Data-parallel under torchrun (segbench.distributed): DDP gradient averaging, the global batch
  split across ranks, rank 0 alone validating and writing.
- Per-epoch curves go to DVCLive; a progress bar appears only on a terminal.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import resume_path_for, run_fingerprint, save_checkpoint
from .config import AugmentConfig, ModelSpec, TrainConfig
from .contention import ContentionMonitor
from .data.dataset import SegmentationCache
from .distributed import DistContext
from .environment import fingerprint, peak_rss_mb
from .errors import TrainingError
from .evaluate import run_evaluation
from .io import write_json
from .losses import Criterion
from .optim import LRSchedule, build_optimizer, build_scheduler
from .runtime import Precision
from .state import Optimisation, Progress, ResumeFile, cpu_state, restore
from .tasks import Segmentation, get_task
from .training_run import Run, build_run, open_live, train_metrics


@dataclass
class TrainResult:
    model: nn.Module  # on the CPU, with the kept epoch's weights
    metrics: dict  # the train.json content


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
    return TrainResult(model=model.cpu(), metrics=metrics)


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
        progress.elapsed = earlier + time.perf_counter() - started  # over every attempt: a resumed run counts on
        row = epoch_row(epoch, lr, train_losses, val, progress.elapsed)
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


def epoch_row(epoch: int, lr: float, train_losses: dict[str, float], val: dict[str, float],
              elapsed_s: float = math.nan) -> dict:
    """One history row: the totals, the scores, the training seconds so far (the report's equal-time
    comparison), then each term when there are several."""
    row = {"epoch": epoch, "train_loss": train_losses["loss"], "val_loss": val["val_loss"],
           **{k: v for k, v in val.items() if not k.endswith("_loss")}, "lr": lr, "elapsed_s": elapsed_s}
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
    val = validate(run, DistContext())
    row = epoch_row(1, 0.0, {"loss": float("nan")}, val, time.perf_counter() - started)
    progress = Progress(images=len(run.train_set), step_time=time.perf_counter() - started)
    progress.record(row, True, run.model.state_dict(), patience=0, last_epoch=1)
    log_epoch(live, row)
    return progress


# --- logging -----------------------------------------------------------------------------------------

def progress_bar(iterable, desc: str, total: int):
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def log_epoch(live, row: dict) -> None:
    if live is None:
        return
    for key, value in row.items():
        if key != "epoch" and math.isfinite(value):
            live.log_metric(key, value)
    live.next_step()
