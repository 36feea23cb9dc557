"""The training loop: one model, one config, deterministic on CPU for a given seed.

Selects the epoch with the best validation mIoU; that checkpoint is the stage's output.
Stops early when `train.patience` epochs pass without a better validation mIoU. Mixed
precision (`train.amp`: bf16 on CPU or CUDA, fp16 on CUDA with gradient scaling) covers the
forward pass; losses compute in float32 and validation runs in float32, like the evaluate stage.
Per-epoch curves go to DVCLive; a progress bar appears only on a terminal.
"""
from __future__ import annotations

import contextlib
import copy
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import save_checkpoint
from .config import AugmentConfig, ModelSpec, TrainConfig
from .data.dataset import SegmentationCache
from .errors import TrainingError
from .evaluate import run_evaluation
from .losses import build_loss, class_weights_from_manifest
from .models import build_model
from .optim import LRSchedule, build_optimizer, build_scheduler


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device: cuda requested but no CUDA device is available; use device: auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: under autocast to `dtype`, or in float32 when dtype is None."""

    device_type: str
    dtype: torch.dtype | None = None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none."""
        return torch.amp.GradScaler(self.device_type) if self.dtype == torch.float16 else None


def _autocast_available(device_type: str) -> bool:
    check = getattr(torch.amp, "is_autocast_available", None)
    return True if check is None else bool(check(device_type))


def resolve_precision(amp: str, device: torch.device) -> Precision:
    if amp == "off":
        return Precision(device.type)
    if amp == "fp16":
        if device.type != "cuda":
            raise TrainingError(f"train.amp: fp16 needs CUDA but training runs on {device.type}; use amp: bf16 or off")
        return Precision("cuda", torch.float16)
    if amp != "bf16":
        raise TrainingError(f"train.amp: unknown value {amp!r}; valid: off, bf16, fp16")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError("train.amp: bf16 is not supported by this GPU; use amp: fp16 or off")
    if not _autocast_available(device.type):
        raise TrainingError(f"train.amp: this torch has no bf16 autocast on {device.type}; use amp: off")
    return Precision(device.type, torch.bfloat16)


@dataclass
class EpochStats:
    loss: float
    images: int
    step_time_s: float
    data_wait_s: float


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict
    history: list[dict] = field(default_factory=list)


def _progress(iterable, desc: str, total: int):
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, epoch: int, *, precision: Precision | None = None,
                    scaler: torch.amp.GradScaler | None = None, schedule: LRSchedule | None = None,
                    channels_last: bool = False) -> EpochStats:
    precision = precision or Precision(device.type)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    model.train()
    total_loss, images, step_time, data_wait = 0.0, 0, 0.0, 0.0
    tick = time.perf_counter()
    for step, (x, y) in enumerate(_progress(loader, f"epoch {epoch}", len(loader)), start=1):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        start = time.perf_counter()
        data_wait += start - tick
        with precision.autocast():
            logits = model(x)
        loss = loss_fn(logits, y)  # outside autocast: losses compute in float32
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}; lower train.lr or check the data")
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
        total_loss += loss.item()
        images += x.shape[0]
        tick = time.perf_counter()
        step_time += tick - start
    return EpochStats(total_loss / max(1, len(loader)), images, step_time, data_wait)


def fit_without_gradients(model: nn.Module, data: SegmentationCache, ignore_index: int) -> None:
    """Models with no trainable parameters (the class prior) learn from the masks directly."""
    fit = getattr(model, "fit_from_masks", None)
    if fit is None:
        raise TrainingError(f"{type(model).__name__} has no trainable parameters and no fit_from_masks method")
    fit(torch.from_numpy(np.asarray(data.masks).astype(np.int64)), ignore_index)


def make_loss(cfg: TrainConfig, manifest: dict) -> nn.Module:
    """The configured loss; weighted_ce takes its class weights from the training split's pixel counts."""
    weights = class_weights_from_manifest(manifest, cfg.class_weighting) if cfg.loss == "weighted_ce" else None
    return build_loss(cfg.loss, manifest["ignore_index"], beta=cfg.beta, focal_gamma=cfg.focal_gamma,
                      class_weights=weights)


class EarlyStopping:
    """Counts epochs without a better validation mIoU; `patience` 0 never stops."""

    def __init__(self, patience: int) -> None:
        self.patience, self.stale = patience, 0

    def update(self, improved: bool) -> bool:
        """Record one epoch; True when training should stop."""
        self.stale = 0 if improved else self.stale + 1
        return self.patience > 0 and self.stale >= self.patience


def train(spec: ModelSpec, cache_dir: Path, *, seed: int, log_dir: Path | None = None,
          augmentation: AugmentConfig | None = None) -> TrainResult:
    cfg: TrainConfig = spec.train
    generator = seed_everything(seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.amp, device)
    train_set = SegmentationCache(cache_dir, "train", augment=(augmentation or AugmentConfig()) if cfg.augment else None,
                                  seed=seed)
    val_set = SegmentationCache(cache_dir, "val")
    num_classes, ignore = len(train_set.class_names), train_set.manifest["ignore_index"]
    model = build_model(spec.arch, num_classes, **spec.options).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = make_loss(cfg, train_set.manifest).to(device)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                        drop_last=len(train_set) > cfg.batch_size,  # BatchNorm needs > 1 sample per batch
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    val_loader = DataLoader(val_set, batch_size=max(cfg.batch_size, 32), shuffle=False)

    live = _open_live(log_dir)
    history: list[dict] = []
    started = time.perf_counter()
    stopped_early = 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        fit_without_gradients(model, train_set, ignore)
        epochs_run, images, step_time, data_wait = 1, len(train_set), time.perf_counter() - started, 0.0
        evaluation = run_evaluation(model, val_loader, num_classes, ignore, device, loss_fn)
        best_miou, best_epoch, best_state = evaluation.scores.miou, 1, model.state_dict()
        history.append({"epoch": 1, "train_loss": float("nan"), "val_loss": evaluation.loss, "val_miou": best_miou, "lr": 0.0})
        _log_epoch(live, history[-1])
    else:
        optimizer = build_optimizer(trainable, cfg)
        schedule = build_scheduler(optimizer, cfg, steps_per_epoch=len(loader))
        scaler = precision.grad_scaler()
        stopper = EarlyStopping(cfg.patience)
        best_miou, best_epoch, best_state = -1.0, 0, None
        images, step_time, data_wait, epochs_run = 0, 0.0, 0.0, 0
        for epoch in range(1, cfg.epochs + 1):
            lr = optimizer.param_groups[0]["lr"]  # at the start of the epoch (onecycle changes it per batch)
            stats = train_one_epoch(model, loader, loss_fn, optimizer, device, epoch, precision=precision,
                                    scaler=scaler, schedule=schedule, channels_last=cfg.channels_last)
            evaluation = run_evaluation(model, val_loader, num_classes, ignore, device, loss_fn)
            miou = evaluation.scores.miou
            schedule.after_epoch(miou)
            epochs_run = epoch
            images, step_time, data_wait = images + stats.images, step_time + stats.step_time_s, data_wait + stats.data_wait_s
            history.append({"epoch": epoch, "train_loss": stats.loss, "val_loss": evaluation.loss, "val_miou": miou, "lr": lr})
            _log_epoch(live, history[-1])
            improved = miou > best_miou
            if improved:
                best_miou, best_epoch = miou, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            if stopper.update(improved) and epoch < cfg.epochs:
                stopped_early = 1
                break
        if best_state is not None:  # None only if every validation mIoU was NaN: keep the last weights
            model.load_state_dict(best_state)
        if cfg.channels_last:  # the checkpoint keeps the default layout
            model = model.to(memory_format=torch.contiguous_format)
    if live is not None:
        live.end()
    wall = time.perf_counter() - started
    metrics = {
        "train_time_s": wall,
        "time_per_epoch_s": wall / epochs_run,
        "epochs": epochs_run,
        "stopped_early": stopped_early,
        "best_epoch": best_epoch,
        "best_val_miou": best_miou,
        "final_train_loss": history[-1]["train_loss"],
        "images_per_s": images / step_time if step_time > 0 else float("nan"),
        "data_wait_fraction": data_wait / (data_wait + step_time) if step_time > 0 else 0.0,
        "device": device.type,
        "threads": torch.get_num_threads(),
    }
    return TrainResult(model=model.cpu(), metrics=metrics, history=history)


def _open_live(log_dir: Path | None):
    if log_dir is None:
        return None
    from dvclive import Live

    return Live(dir=str(log_dir), save_dvc_exp=False, dvcyaml=None, report=None)


def _log_epoch(live, row: dict) -> None:
    if live is None:
        return
    for key in ("train_loss", "val_loss", "val_miou", "lr"):
        if math.isfinite(row[key]):
            live.log_metric(key, row[key])
    live.next_step()


def train_and_save(spec: ModelSpec, cache_dir: Path, checkpoint_path: Path, *, seed: int, log_dir: Path | None = None,
                   augmentation: AugmentConfig | None = None) -> dict:
    result = train(spec, cache_dir, seed=seed, log_dir=log_dir, augmentation=augmentation)
    data = SegmentationCache(cache_dir, "val")
    save_checkpoint(checkpoint_path, result.model, arch=spec.arch, options=spec.options, class_names=data.class_names,
                    image_size=data.manifest["image_size"], epoch=result.metrics["best_epoch"],
                    val_miou=result.metrics["best_val_miou"])
    return result.metrics
