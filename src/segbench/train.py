"""The training loop: one model, one config, deterministic on CPU for a given seed.

Selects the epoch with the best validation mIoU; that checkpoint is the stage's output.
Stops early when `train.patience` epochs pass without a better validation mIoU. Mixed
precision (`train.amp`: bf16 on CPU or CUDA, fp16 on CUDA with gradient scaling) covers the
forward pass; losses compute in float32 and validation runs in float32, like the evaluate stage.
Per-epoch curves go to DVCLive; a progress bar appears only on a terminal.

Resumable: after every epoch the whole state (model, optimiser, scheduler, grad scaler, early
stopping, best weights, history, every RNG) goes atomically to a resume checkpoint; a run killed
part-way continues from it and ends bit-identical to an uninterrupted run on CPU. Sample order is a
function of (seed, epoch) and each sample's augmentation of (seed, epoch, index), so nothing about
the data pipeline needs saving and any number of workers or processes sees the same samples.

Data-parallel under torchrun (see segbench.distributed): DistributedSampler order, DDP gradient
averaging, the global batch split across ranks, rank 0 alone validating and writing.

Task seg_depth: the model predicts a mask and a depth map; the loss is the mask loss plus
`train.depth_weight` times the depth loss (segbench.losses.SegDepthLoss), both terms and the
validation depth RMSE are logged per epoch, and `train.select: depth_rmse` picks the epoch with
the lowest validation depth RMSE instead of the best mIoU.
"""
from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .checkpoint import load_resume, resume_path_for, run_fingerprint, save_checkpoint, save_resume
from .config import AugmentConfig, ModelSpec, TrainConfig
from .data.dataset import SegmentationCache
from .distributed import DistContext, per_rank_batch, usable_cores
from .errors import TrainingError
from .evaluate import run_evaluation
from .io import write_json
from .losses import DepthLoss, SegDepthLoss, build_loss, class_weights_from_manifest
from .models import build_model
from .models.multitask import set_depth_statistics
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
    mask_loss: float = float("nan")  # task seg_depth: the two terms of `loss`
    depth_loss: float = float("nan")


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
    parts, with_depth = np.zeros(2), False  # seg_depth: mask and depth terms
    tick = time.perf_counter()
    for step, (x, y, *depth) in enumerate(_progress(loader, f"epoch {epoch}", len(loader)), start=1):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        start = time.perf_counter()
        data_wait += start - tick
        with precision.autocast():
            output = model(x)
        if depth:  # outside autocast: losses compute in float32
            loss, mask_term, depth_term = loss_fn.parts(output, y, depth[0].to(device, non_blocking=True))
            parts += [mask_term.item(), depth_term.item()]
            with_depth = True
        else:
            loss = loss_fn(output, y)
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
    batches = max(1, len(loader))
    mask_loss, depth_loss = (parts / batches).tolist() if with_depth else (float("nan"), float("nan"))
    return EpochStats(total_loss / batches, images, step_time, data_wait, mask_loss, depth_loss)


def fit_without_gradients(model: nn.Module, data: SegmentationCache, ignore_index: int) -> None:
    """Models with no trainable parameters (the class prior) learn from the masks directly."""
    fit = getattr(model, "fit_from_masks", None)
    if fit is None:
        raise TrainingError(f"{type(model).__name__} has no trainable parameters and no fit_from_masks method")
    fit(torch.from_numpy(np.asarray(data.masks).astype(np.int64)), ignore_index)


def make_loss(cfg: TrainConfig, manifest: dict, task: str = "segmentation") -> nn.Module:
    """The configured loss; weighted_ce takes its class weights from the training split's pixel counts.
    seg_depth adds the depth loss, in units of the training split's depth std."""
    weights = class_weights_from_manifest(manifest, cfg.class_weighting) if cfg.loss == "weighted_ce" else None
    mask_loss = build_loss(cfg.loss, manifest["ignore_index"], beta=cfg.beta, focal_gamma=cfg.focal_gamma,
                           class_weights=weights)
    if task != "seg_depth":
        return mask_loss
    depth = DepthLoss(cfg.depth_loss, scale=manifest["depth"]["std"], delta=cfg.huber_delta)
    return SegDepthLoss(mask_loss, depth, cfg.depth_weight)


def _better(row: dict, progress: "Progress", select: str) -> bool:
    """Whether this epoch's validation beats the best so far (`train.select`): a higher mIoU, or a
    lower depth RMSE. A NaN score never counts as better."""
    score = row["val_depth_rmse"] if select == "depth_rmse" else row["val_miou"]
    if not math.isfinite(score):
        return False
    if progress.best_epoch == 0:
        return True
    return score < progress.best_score if select == "depth_rmse" else score > progress.best_score


class EarlyStopping:
    """Counts epochs without a better validation mIoU; `patience` 0 never stops."""

    def __init__(self, patience: int) -> None:
        self.patience, self.stale = patience, 0

    def update(self, improved: bool) -> bool:
        """Record one epoch; True when training should stop."""
        self.stale = 0 if improved else self.stale + 1
        return self.patience > 0 and self.stale >= self.patience


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


@dataclass
class Progress:
    """A run so far: what the final metrics and a resume need besides the model and optimiser."""

    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)
    best_miou: float = -1.0  # validation mIoU at the best epoch
    best_epoch: int = 0
    best_score: float = -1.0  # what train.select compares: mIoU, or depth RMSE (lower is better)
    best_depth_rmse: float = float("nan")  # seg_depth: validation depth RMSE at the best epoch
    best_state: dict | None = None
    images: int = 0
    step_time: float = 0.0
    data_wait: float = 0.0
    elapsed: float = 0.0  # wall seconds of training, over every attempt of this run
    stopped_early: int = 0
    stale: int = 0  # early-stopping counter

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def rng_state(loader_generator: torch.Generator) -> dict:
    """Every random stream training draws from, as tensors and plain values (weights_only loads it)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "loader": loader_generator.get_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)},
             "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, loader_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    loader_generator.set_state(state["loader"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
                         np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu_state(model: nn.Module, copy: bool = True) -> dict:
    """The weights on the CPU; `copy`: detached from the model's storage (which training changes)."""
    return {k: (v.detach().cpu().clone() if copy else v.detach().cpu()) for k, v in model.state_dict().items()}


def _set_threads(threads: int, dist: DistContext) -> None:
    """train.threads when given; under several local processes, the cores shared out among them
    (torchrun would otherwise leave each process a single thread)."""
    if threads:
        torch.set_num_threads(threads)
    elif dist.local_world_size > 1:
        torch.set_num_threads(max(1, usable_cores() // dist.local_world_size))


@dataclass
class Setup:
    """Everything an epoch touches, built once per run."""

    model: nn.Module  # the bare model: validation and checkpoints
    net: nn.Module  # what trains: the model, or its DistributedDataParallel wrapper
    loader: DataLoader
    sampler: EpochSampler
    val_loader: DataLoader
    loss_fn: nn.Module
    device: torch.device
    precision: Precision
    num_classes: int
    ignore_index: int
    generator: torch.Generator  # the DataLoader's (worker base seeds)


@dataclass
class Optimisation:
    """What a training step changes besides the weights; saved and restored with them."""

    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler | None
    stopper: EarlyStopping


@dataclass(frozen=True)
class ResumeFile:
    """The resume checkpoint of one run: only a file with this run's fingerprint is ever used."""

    path: Path
    fingerprint: str
    name: str  # the model, for messages

    def load(self, dist: DistContext) -> dict | None:
        """Rank 0 reads it and hands it to every rank; None: start fresh (and say why)."""
        saved, note = load_resume(self.path, self.fingerprint) if dist.is_main else (None, "")
        if dist.is_main:
            if saved is not None:
                print(f"{self.name}: resuming from {self.path} after epoch {saved['progress']['epoch']}", flush=True)
            elif note:
                print(f"{self.name}: {note}", flush=True)
        return dist.broadcast_object(saved)

    def save(self, run: Setup, opt: Optimisation, progress: Progress) -> None:
        saved_progress = progress.as_dict()
        if progress.best_epoch == progress.epoch:  # the best weights are the model's: store them once
            saved_progress["best_state"] = None
        save_resume(self.path, self.fingerprint, {
            "model": _cpu_state(run.model, copy=False), "optimizer": opt.optimizer.state_dict(),
            "scheduler": opt.schedule.scheduler.state_dict(),
            "scaler": opt.scaler.state_dict() if opt.scaler is not None else None,
            "rng": rng_state(run.generator), "progress": saved_progress})


def _restore(saved: dict, run: Setup, opt: Optimisation) -> Progress:
    run.model.load_state_dict(saved["model"])
    opt.optimizer.load_state_dict(saved["optimizer"])
    opt.schedule.scheduler.load_state_dict(saved["scheduler"])
    if opt.scaler is not None and saved.get("scaler"):
        opt.scaler.load_state_dict(saved["scaler"])
    restore_rng(saved["rng"], run.generator)
    progress = Progress(**saved["progress"])
    if progress.best_state is None and progress.best_epoch == progress.epoch:
        progress.best_state = saved["model"]
    opt.stopper.stale = progress.stale
    return progress


def train(spec: ModelSpec, cache_dir: Path, *, seed: int, log_dir: Path | None = None,
          augmentation: AugmentConfig | None = None, resume_path: Path | None = None,
          dist: DistContext | None = None) -> TrainResult:
    """Train `spec` on the cache. `resume_path`: continue from (and keep updating) a resume checkpoint
    of this very run. `dist`: this process's rank in a torchrun job (default: a single process)."""
    cfg: TrainConfig = spec.train
    dist = dist or DistContext()
    augment = (augmentation or AugmentConfig()) if cfg.augment else None
    run, train_set = _set_up(spec, cache_dir, seed, augment, dist)
    live = _open_live(log_dir) if dist.is_main else None
    started = time.perf_counter()
    trainable = [p for p in run.model.parameters() if p.requires_grad]
    if not trainable:
        progress = _fit_prior(run, train_set, live)
    else:
        resume = None
        if resume_path is not None:
            resume = ResumeFile(resume_path, run_fingerprint(spec, seed=seed, augmentation=augment, world_size=dist.world_size,
                                                             manifest_path=Path(cache_dir) / "manifest.json"), spec.name)
        optimizer = build_optimizer(trainable, cfg)
        opt = Optimisation(optimizer, build_scheduler(optimizer, cfg, steps_per_epoch=len(run.loader)),
                           run.precision.grad_scaler(), EarlyStopping(cfg.patience))
        progress = _fit(run, opt, cfg, dist, live, resume)
    if live is not None:
        live.end()
    model = run.model
    if cfg.channels_last:  # the checkpoint keeps the default layout
        model = model.to(memory_format=torch.contiguous_format)
    wall = progress.elapsed or time.perf_counter() - started
    return TrainResult(model=model.cpu(), metrics=_metrics(progress, wall, run.device, dist), history=progress.history)


def _set_up(spec: ModelSpec, cache_dir: Path, seed: int, augment: AugmentConfig | None,
            dist: DistContext) -> tuple[Setup, SegmentationCache]:
    cfg = spec.train
    local_batch = per_rank_batch(cfg.batch_size, dist.world_size)
    generator = seed_everything(seed)
    _set_threads(cfg.threads, dist)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and dist.distributed:
        device = torch.device("cuda", dist.local_rank)
    precision = resolve_precision(cfg.amp, device)
    with_depth = spec.task == "seg_depth"
    train_set = SegmentationCache(cache_dir, "train", augment=augment, seed=seed, depth=with_depth)
    val_set = SegmentationCache(cache_dir, "val", depth=with_depth)
    model = build_model(spec.arch, len(train_set.class_names), task=spec.task, **spec.options)
    if with_depth:  # the depth head starts at the mean training depth and learns a residual in std units
        set_depth_statistics(model, train_set.manifest["depth"]["mean"], train_set.manifest["depth"]["std"])
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
    run = Setup(model=model, net=net, loader=loader, sampler=sampler, val_loader=val_loader,
                loss_fn=make_loss(cfg, train_set.manifest, spec.task).to(device), device=device, precision=precision,
                num_classes=len(train_set.class_names), ignore_index=train_set.manifest["ignore_index"], generator=generator)
    return run, train_set


def _fit_prior(run: Setup, train_set: SegmentationCache, live) -> Progress:
    started = time.perf_counter()
    fit_without_gradients(run.model, train_set, run.ignore_index)
    evaluation = run_evaluation(run.model, run.val_loader, run.num_classes, run.ignore_index, run.device, run.loss_fn)
    miou = evaluation.scores.miou
    progress = Progress(epoch=1, best_miou=miou, best_score=miou, best_epoch=1, best_state=run.model.state_dict(), images=len(train_set),
                        step_time=time.perf_counter() - started)
    progress.history.append({"epoch": 1, "train_loss": float("nan"), "val_loss": evaluation.loss, "val_miou": miou, "lr": 0.0})
    _log_epoch(live, progress.history[-1])
    return progress


def _fit(run: Setup, opt: Optimisation, cfg: TrainConfig, dist: DistContext, live, resume: ResumeFile | None) -> Progress:
    saved = resume.load(dist) if resume is not None else None
    progress = _restore(saved, run, opt) if saved is not None else Progress()
    for row in progress.history:  # a resumed run's log is rebuilt from the checkpoint: complete, no step twice
        _log_epoch(live, row)
    started, earlier = time.perf_counter(), progress.elapsed
    while progress.epoch < cfg.epochs and not progress.stopped_early:
        epoch = progress.epoch + 1
        run.sampler.set_epoch(epoch)
        lr = opt.optimizer.param_groups[0]["lr"]  # at the start of the epoch (onecycle changes it per batch)
        stats = train_one_epoch(run.net, run.loader, run.loss_fn, opt.optimizer, run.device, epoch, precision=run.precision,
                                scaler=opt.scaler, schedule=opt.schedule, channels_last=cfg.channels_last)
        loss_sum, images, mask_sum, depth_sum = dist.all_reduce_sum([stats.loss, stats.images, stats.mask_loss,
                                                                     stats.depth_loss])
        # Rank 0 validates on the whole split (exactly what one process computes); the others wait.
        val = [float("nan")] * 5  # loss, mIoU, mask loss, depth loss, depth RMSE
        if dist.is_main:
            evaluation = run_evaluation(run.model, run.val_loader, run.num_classes, run.ignore_index, run.device, run.loss_fn)
            depth = evaluation.depth_scores
            val = [evaluation.loss, evaluation.scores.miou, evaluation.mask_loss, evaluation.depth_loss,
                   depth.rmse if depth is not None else float("nan")]
        val_loss, miou, val_mask, val_depth, val_rmse = dist.broadcast(val)
        opt.schedule.after_epoch(miou)
        progress.epoch = epoch
        progress.images += int(images)
        progress.step_time += stats.step_time_s
        progress.data_wait += stats.data_wait_s
        row = {"epoch": epoch, "train_loss": loss_sum / dist.world_size, "val_loss": val_loss, "val_miou": miou, "lr": lr}
        if math.isfinite(val_rmse):
            row.update(train_mask_loss=mask_sum / dist.world_size, train_depth_loss=depth_sum / dist.world_size,
                       val_mask_loss=val_mask, val_depth_loss=val_depth, val_depth_rmse=val_rmse)
        progress.history.append(row)
        _log_epoch(live, row)
        improved = _better(row, progress, cfg.select)
        if improved:
            progress.best_miou, progress.best_epoch = miou, epoch
            progress.best_score = val_rmse if cfg.select == "depth_rmse" else miou
            progress.best_depth_rmse = val_rmse
            progress.best_state = _cpu_state(run.model) if dist.is_main else None
        stop = opt.stopper.update(improved) and epoch < cfg.epochs
        progress.stopped_early = int(dist.broadcast([float(stop)])[0])  # rank 0 decides for all
        progress.stale = opt.stopper.stale
        progress.elapsed = earlier + time.perf_counter() - started
        if resume is not None and dist.is_main:
            resume.save(run, opt, progress)
    if progress.best_state is not None:  # None only if every validation mIoU was NaN: keep the last weights
        run.model.load_state_dict(progress.best_state)
    return progress


def _metrics(progress: Progress, wall: float, device: torch.device, dist: DistContext) -> dict:
    step_time, data_wait = progress.step_time, progress.data_wait
    depth = {}
    last = progress.history[-1] if progress.history else {}
    if "val_depth_rmse" in last:
        depth = {"best_val_depth_rmse": progress.best_depth_rmse, "final_train_mask_loss": last["train_mask_loss"],
                 "final_train_depth_loss": last["train_depth_loss"]}
    return {
        "train_time_s": wall,
        "time_per_epoch_s": wall / max(1, progress.epoch),
        "epochs": progress.epoch,
        "stopped_early": progress.stopped_early,
        "best_epoch": progress.best_epoch,
        "best_val_miou": progress.best_miou,
        "final_train_loss": progress.history[-1]["train_loss"] if progress.history else float("nan"),
        "images_per_s": progress.images / step_time if step_time > 0 else float("nan"),
        "data_wait_fraction": data_wait / (data_wait + step_time) if step_time > 0 else 0.0,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "world_size": dist.world_size,
        **depth,
    }


def _open_live(log_dir: Path | None):
    if log_dir is None:
        return None
    from dvclive import Live

    # resume=False: the directory is rebuilt from the run's own history (see train); DVC deletes
    # it before re-running the stage anyway, so DVCLive's resume=True would have nothing to go on.
    try:
        return Live(dir=str(log_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    except Exception as exc:  # scmrepo's SCMError, which DVCLive lets through (dvclive#522)
        if "Empty git repo" not in str(exc):
            raise
        raise TrainingError(f"{log_dir}: DVCLive cannot log in a git repository without commits; "
                            "commit once (git add -A && git commit -m init) and run again") from None


def _log_epoch(live, row: dict) -> None:
    if live is None:
        return
    for key, value in row.items():
        if key != "epoch" and math.isfinite(value):
            live.log_metric(key, value)
    live.next_step()


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
                        class_names=data.class_names,
                        image_size=data.manifest["image_size"], epoch=result.metrics["best_epoch"],
                        val_miou=result.metrics["best_val_miou"])
        if metrics_path is not None:
            write_json(metrics_path, result.metrics)
        if resume_path is not None:
            resume_path.unlink(missing_ok=True)
    return result.metrics
