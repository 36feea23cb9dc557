"""The shared sections of params.yaml as typed dataclasses: data, augmentation, train, evaluate,
profile, plot. Each field carries its default, type and bounds (segbench.schema); `__post_init__`
checks what spans fields. segbench.config assembles them with `models:` into `Params`; the
per-dataset sections (`data.<dataset>`) are declared beside the sources (data/sources/options.py).

Torch-free: a choice that names a registry's entries reads the torch-free declarations
(segbench.catalog, the source registry), so validating params imports no torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from . import catalog
from .data.sources import SOURCES
from .data.sources.options import FolderConfig, PairsConfig, SyntheticConfig
from .errors import ConfigError
from .keys import BACKEND_TAGS
from .schema import option


def _source_names() -> list[str]:
    return SOURCES.names()


# profile.backends' values; segbench.backends implements each (named here so validating params
# does not import the runtimes)
PROFILE_BACKENDS = tuple(BACKEND_TAGS)  # segbench.keys names each one's keys


def _loss_names() -> list[str]:
    return list(catalog.LOSSES)


def _depth_loss_names() -> list[str]:
    return list(catalog.DEPTH_LOSSES)


def _optimizer_names() -> list[str]:
    return list(catalog.OPTIMIZERS)


def _scheduler_names() -> list[str]:
    return list(catalog.SCHEDULERS)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = option("synthetic", choices=_source_names)
    image_size: tuple[int, int] = option((64, 64), min=8, max=8192)  # (height, width)
    ignore_index: int = option(255, min=0, max=255)
    url: Optional[str] = None  # http(s):// or file:// archive (zip/tar*) fetched by the download stage
    sha256: Optional[str] = None  # required with url: the archive's checksum
    path: Optional[str] = None  # a local folder holding the dataset (read in place, not copied)
    val_fraction: float = option(0.1, min=0.0, max=0.9, min_exclusive=True)  # when the data has no val split
    test_fraction: float = option(0.1, min=0.0, max=0.9, min_exclusive=True)  # when the data has no (labelled) test split
    subset: Optional[int] = option(None, min=1)  # keep at most N samples per split (deterministic by seed)
    workers: int = option(0, min=0)  # preprocess processes; 0: one per core (at most 8)
    resize: str = option("area", choices=("area", "bilinear"))  # image downscaling; masks always nearest
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    folder: FolderConfig = field(default_factory=FolderConfig)
    cityscapes_pairs: PairsConfig = field(default_factory=PairsConfig)

    def __post_init__(self) -> None:
        if self.url is not None and self.path is not None:
            raise ConfigError("url and path are both set; give one: url (download) or path (local folder)")
        if self.url is not None:
            if not re.match(r"^(https?|file)://", self.url):
                raise ConfigError(f"url: {self.url!r} is not valid; expected an http://, https:// or file:// URL")
            if self.sha256 is None:
                raise ConfigError("sha256: required with url (the archive's SHA-256, 64 hex digits); "
                                  "compute it with: sha256sum ARCHIVE")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ConfigError(f"sha256: {self.sha256!r} is not valid; expected 64 hex digits")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (albumentations) for models with train.augment: true."""

    hflip: float = option(0.5, min=0.0, max=1.0)  # probability of a horizontal flip
    crop_p: float = option(0.5, min=0.0, max=1.0)  # probability of a random resized crop
    crop_scale: tuple[float, float] = option((0.5, 1.0), min=0.01, max=1.0)  # area fraction range
    crop_ratio: tuple[float, float] = option((0.75, 1.3333), min=0.1, max=10.0)  # aspect ratio range
    rotate: float = option(10.0, min=0.0, max=180.0)  # max degrees either way; padding is ignore_index
    rotate_p: float = option(0.3, min=0.0, max=1.0)
    brightness: float = option(0.2, min=0.0, max=1.0)
    contrast: float = option(0.2, min=0.0, max=1.0)
    saturation: float = option(0.2, min=0.0, max=1.0)
    hue: float = option(0.03, min=0.0, max=0.5)
    jitter_p: float = option(0.5, min=0.0, max=1.0)

    def __post_init__(self) -> None:
        for name in ("crop_scale", "crop_ratio"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"{name}: [{lo}, {hi}] is not a range; expected [low, high] with low <= high")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(10, min=1)
    batch_size: int = option(16, min=1)
    optimizer: str = option("adam", choices=_optimizer_names)
    lr: float = option(1e-3, min=0.0, min_exclusive=True)
    momentum: float = option(0.9, min=0.0, max=1.0)
    weight_decay: float = option(0.0, min=0.0)
    scheduler: str = option("cosine", choices=_scheduler_names)
    loss: str = option("cross_entropy", choices=_loss_names)
    augment: bool = False
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    num_workers: int = option(0, min=0)
    threads: int = option(0, min=0)  # 0: leave torch's default
    beta: float = option(0.5, min=0.0, max=1.0)  # ce_dice: beta * CE + (1 - beta) * Dice
    focal_gamma: float = option(2.0, min=0.0)  # focal: 0 is cross-entropy
    class_weighting: str = option("inverse", choices=("inverse", "median"))  # weighted_ce
    patience: int = option(0, min=0)  # early stopping: epochs without a better val mIoU; 0: off
    # autocast precision; fp16 needs CUDA; auto: bf16 where the hardware has native bf16 (a GPU that
    # supports it, a CPU with AVX-512-BF16 or AMX-BF16), else off; train.json records which ran
    amp: str = option("off", choices=("off", "auto", "bf16", "fp16"))
    channels_last: bool = False  # model and inputs in channels_last memory format
    # Data-parallel training (torch.distributed): the stage re-launches itself under torchrun with
    # nproc processes on this machine; batch_size stays the global batch, split across them.
    launcher: str = option("none", choices=("none", "torchrun"))
    nproc: int = option(1, min=1)
    sync_bn: bool = False  # SyncBatchNorm across processes (torch supports it on CUDA only)
    # task seg_depth: loss = mask loss (`loss`) + depth_weight * depth loss, the depth loss in units
    # of the training split's depth std (see segbench.losses)
    depth_loss: str = option("l1", choices=_depth_loss_names)
    select: str = option("miou", choices=("miou", "depth_rmse"))  # the kept epoch: best val mIoU or depth RMSE
    depth_weight: float = option(1.0, min=0.0)
    huber_delta: float = option(1.0, min=0.0, min_exclusive=True)

    def __post_init__(self) -> None:
        if self.amp == "fp16" and self.device == "cpu":
            raise ConfigError("amp: fp16 needs CUDA but device is cpu; use amp: bf16 or off")
        if self.launcher == "none" and self.nproc != 1:
            raise ConfigError(f"nproc: {self.nproc} needs launcher: torchrun (launcher is none, which runs one process)")
        if self.launcher == "torchrun" and self.batch_size % self.nproc:
            raise ConfigError(f"batch_size: {self.batch_size} is not divisible by nproc {self.nproc}; batch_size is the "
                              f"global batch, split evenly across the processes (use a multiple of {self.nproc})")
        if self.sync_bn and self.device == "cpu":
            raise ConfigError("sync_bn: true needs CUDA (torch's SyncBatchNorm runs on GPUs only) but device is cpu; "
                              "use sync_bn: false")


@dataclass(frozen=True)
class EvaluateConfig:
    split: str = option("test", choices=("val", "test"))  # val selected the epoch: its score is optimistic
    batch_size: int = option(32, min=1)
    samples: int = option(6, min=1, max=64)  # first N validation images in plots/<model>/predictions.png
    ap_bins: int = option(1000, min=10, max=100000)  # score-histogram bins per class for average precision
    # Training images (a fixed, seeded subset) the selected checkpoint is also scored on, in eval mode:
    # eval.json `train_miou` and `generalization_gap`; 0: off.
    train_subset: int = option(80, min=0)


@dataclass(frozen=True)
class ProfileConfig:
    warmup: int = option(5, min=0)
    min_runs: int = option(20, min=3)
    max_runs: int = option(500, min=3)
    time_budget_s: float = option(8.0, min=0.0, min_exclusive=True)
    threads: int = option(0, min=0)  # 0: torch.get_num_threads(); set explicitly and recorded
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    # Further [H, W] sizes timed at batch 1 besides the training size; null: [[750, 1000]].
    input_sizes: Optional[tuple[tuple[int, int], ...]] = option(None, min=8, max=8192)
    batch_size: int = option(8, min=1)  # throughput_*_ips is measured at this batch size
    amp_dtype: str = option("bfloat16", choices=("bfloat16", "float16"))  # GPU mixed precision
    # Before timing, wait up to this long for a quiet machine (other processes under the contention
    # threshold, segbench.contention); 0: time at once. Contention is recorded either way.
    quiet_wait_s: float = option(60.0, min=0.0)
    # The runtimes timed on the CPU (segbench.backends); eager (PyTorch fp32) is the reference
    # the others' speed and agreement are measured against, so it is always listed.
    backends: tuple[str, ...] = option(("eager", "eager_bf16", "onnxruntime"), choices=PROFILE_BACKENDS)
    # Every size and backend is timed in `rounds` rounds, each a fresh worker process, so the interval
    # of each latency covers the spread between processes; more rounds, up to `max_rounds`, while some
    # latency's 95% interval is wider than +-target_rel_ci of it. `time_budget_s` is per round.
    rounds: int = option(5, min=1, max=50)
    max_rounds: int = option(8, min=1, max=50)
    target_rel_ci: float = option(0.05, min=0.0, min_exclusive=True, max=1.0)

    def __post_init__(self) -> None:
        if self.max_runs < self.min_runs:
            raise ConfigError(f"max_runs ({self.max_runs}) must be >= min_runs ({self.min_runs})")
        if self.max_rounds < self.rounds:
            raise ConfigError(f"max_rounds ({self.max_rounds}) must be >= rounds ({self.rounds})")
        if "eager" not in self.backends:
            raise ConfigError(f"backends: {list(self.backends)} lacks eager, the reference every other backend's "
                              "latency and agreement are compared with; add it")
        repeated = sorted({b for b in self.backends if self.backends.count(b) > 1})
        if repeated:
            raise ConfigError(f"backends: {', '.join(repeated)} listed twice; list each backend once")


@dataclass(frozen=True)
class PlotConfig:
    dpi: int = option(120, min=50, max=600)
    bootstrap: int = option(2000, min=100, max=100000)  # test-image resamples for the intervals of differences
    bootstrap_seed: int = option(0, min=0, max=2**32 - 1)  # the resamples are the same on every run
    # mIoU: a difference to the best whose whole 95% interval lies inside +-this is `equivalent`.
    equivalence_margin: float = option(0.01, min=0.0, max=1.0, min_exclusive=True)
    # A converged row whose train - test mIoU (mean over seeds) exceeds this is diagnosed `overfits`.
    overfit_gap: float = option(0.10, min=0.0, max=1.0)
    # The training-time budget of "mIoU at equal training time" (seconds); null: the shortest learned model's.
    equal_time_s: Optional[float] = option(None, min=0.0, min_exclusive=True)
    # The headline's deployment latency: "<backend> <H>x<W>" (a profile.backends entry at a profiled size:
    # the training size or a profile.input_sizes one); auto: the largest profiled size on the fastest
    # backend there whose predictions agree with eager fp32 (report/deploy.py).
    deployment: str = option("auto")


DEFAULT_PROFILED_SIZE = (750, 1000)  # profile.input_sizes: null (segbench.profile.DEFAULT_EXTRA_SIZE, torch-free here)


def deployment_problem(deployment: str, profile: ProfileConfig, image_size: tuple[int, int]) -> str | None:
    """Why plot.deployment names no profiled CPU setting (one line), or None."""
    if deployment == "auto":
        return None
    sizes = [tuple(image_size), *(profile.input_sizes or [DEFAULT_PROFILED_SIZE])]
    valid = [f"{b} {h}x{w}" for b in profile.backends for h, w in sizes]
    parts = deployment.split()
    backend, size = (parts[0], parts[1]) if len(parts) == 2 else ("", "")
    if backend in profile.backends and size in {f"{h}x{w}" for h, w in sizes}:
        return None
    return (f"plot.deployment: {deployment!r} was not profiled; expected auto or a profile.backends entry at a "
            f"profiled size ({', '.join(valid)})")
