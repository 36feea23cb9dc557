"""params.yaml -> typed, validated config objects.

Every stage loads and validates the whole file before it writes anything, so a typo in any
section fails fast with one line naming the key, e.g.
``params.yaml: train.epocs: unknown key (did you mean 'epochs'?); valid keys under train: ...``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from . import catalog
from .errors import ConfigError
from .keys import BACKEND_TAGS
from .schema import option, parse


def _source_names() -> list[str]:
    from .data.sources import SOURCES

    return SOURCES.names()


# profile.backends' values; segbench.backends implements each (named here so validating params
# does not import the runtimes)
PROFILE_BACKENDS = tuple(BACKEND_TAGS)  # segbench.keys names each one's keys


def _loss_names() -> list[str]:
    return list(catalog.LOSSES)


def _depth_loss_names() -> list[str]:
    return list(catalog.DEPTH_LOSSES)


def _task_names() -> list[str]:
    return list(catalog.TASKS)


def _optimizer_names() -> list[str]:
    return list(catalog.OPTIMIZERS)


def _scheduler_names() -> list[str]:
    return list(catalog.SCHEDULERS)


@dataclass(frozen=True)
class SyntheticConfig:
    """The embedded default dataset (see segbench.data.sources.synthetic)."""

    num_train: int = option(320, min=1)
    num_val: int = option(80, min=1)
    num_test: int = option(80, min=1)
    height: int = option(64, min=16, max=4096)
    width: int = option(64, min=16, max=4096)
    num_classes: int = option(6, min=2, max=8)


@dataclass(frozen=True)
class FolderConfig:
    """dataset: folder -- <root>/<images>/* + <root>/<masks>/* matched by file stem."""

    classes: tuple[str, ...] = ()  # class names in index order (required for this dataset)
    mask_format: str = option("auto", choices=("auto", "index", "palette", "binary"))
    # RGB colour of each class, in `classes` order, for masks stored as RGB images
    palette: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)
    # colour masks: "void" colours decoded to ignore_index (not classes, not unmatched)
    ignore_colors: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)
    tolerance: float = option(60.0, min=0.0, max=442.0)  # JPEG/WebP colour masks: max RGB distance to a palette colour
    max_unmatched: float = option(0.02, min=0.0, max=1.0)  # ... fraction of pixels beyond it (ignored) per image
    images: str = "images"
    masks: str = "masks"
    depths: str = "depths"  # optional: one depth map per image, matched by stem (.png 16-bit or .npy metres)
    depth_scale: float = option(1000.0, min=0.0, min_exclusive=True)  # depth PNG units per metre (1000: millimetres)


@dataclass(frozen=True)
class PairsConfig:
    """dataset: cityscapes_pairs -- each image is the photo and its colour mask side by side."""

    preset: str = option("cityscapes", choices=("cityscapes", "custom"))
    grouping: str = option("categories", choices=("categories", "classes"))  # cityscapes preset only
    classes: tuple[str, ...] = ()  # preset custom: class names
    palette: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)  # preset custom: one colour per class
    ignore_colors: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)  # "void" colours -> ignore_index
    tolerance: float = option(60.0, min=0.0, max=442.0)  # max RGB distance to the nearest palette colour
    max_unmatched: float = option(0.02, min=0.0, max=1.0)  # fraction of pixels beyond tolerance (ignored) per image
    mask_side: str = option("right", choices=("left", "right"))


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
    # threshold, segbench.environment); 0: time at once. Contention is recorded either way.
    quiet_wait_s: float = option(60.0, min=0.0)
    # The runtimes timed on the CPU (segbench.backends); eager (PyTorch fp32) is the reference
    # the others' speed and agreement are measured against, so it is always listed.
    backends: tuple[str, ...] = option(("eager", "eager_bf16", "onnxruntime"), choices=PROFILE_BACKENDS)

    def __post_init__(self) -> None:
        if self.max_runs < self.min_runs:
            raise ConfigError(f"max_runs ({self.max_runs}) must be >= min_runs ({self.min_runs})")
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


@dataclass(frozen=True)
class ModelSpec:
    """One entry of `models:`: an architecture, its options and its training settings."""

    name: str
    arch: str
    options: dict[str, Any]
    train: TrainConfig
    task: str = "segmentation"  # params `task`: segmentation | seg_depth (two outputs: mask and depth)


@dataclass(frozen=True)
class Params:
    seed: int
    seeds: tuple[int, ...]
    data: DataConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    profile: ProfileConfig
    plot: PlotConfig
    models: dict[str, ModelSpec]
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    task: str = "segmentation"
    source: str = "params.yaml"

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ConfigError(f"{self.source}: models: no model named {name!r}; defined: {', '.join(self.models)}")
        return self.models[name]

    def seed_of(self, text: str | int) -> int:
        """A training seed named on the command line (a DVC stage's matrix value): one of `seeds`."""
        listed = ", ".join(map(str, self.seeds))
        try:
            seed = int(str(text), 10)
        except ValueError:
            raise ConfigError(f"seed {text!r}: not an integer; expected one of seeds: [{listed}]") from None
        if seed not in self.seeds:
            raise ConfigError(f"{self.source}: seeds: [{listed}] does not list seed {seed}; add it there "
                              "(dvc.yaml's matrix runs each model once per listed seed)")
        return seed


@dataclass(frozen=True)
class _Sections:
    """Everything in params.yaml but `models:` (which is parsed per architecture)."""

    seed: int = option(0, min=0, max=2**32 - 1)  # the data's: synthetic generation, carved splits, subsets
    seeds: tuple[int, ...] = option((0,), min=0, max=2**32 - 1)  # training replicates: one run per model and seed
    task: str = option("segmentation", choices=_task_names)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)


_TOP_KEYS = ("seed", "seeds", "task", "data", "augmentation", "train", "evaluate", "profile", "plot", "models")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _parse_models(raw: Any, shared_train: TrainConfig, task: str) -> dict[str, ModelSpec]:
    from .models import archs_for, model_entry, validate_model_options

    if not isinstance(raw, dict) or not raw:
        raise ConfigError("models: must be a non-empty mapping of model name -> {arch: ..., options}")
    seen: dict[str, str] = {}
    specs = {}
    for name, entry in raw.items():
        key = f"models.{name}"
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            raise ConfigError(f"{key}: invalid model name; use letters, digits, '_', '-', '.' (it names files and DVC stages)")
        if name.lower() in seen:
            raise ConfigError(f"{key}: duplicates models.{seen[name.lower()]} "
                              "(names must differ in more than case: they name files)")
        seen[name.lower()] = name
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: {entry!r} is not valid; expected a mapping with at least 'arch'")
        entry = dict(entry)
        if "arch" not in entry:
            raise ConfigError(f"{key}.arch: required key is missing")
        arch = entry.pop("arch")
        if "seeds" in entry:
            raise ConfigError(f"{key}.seeds: seeds are one list for every model (the top-level seeds:, which dvc.yaml's "
                              "matrix crosses with models:); remove it here, or run the model in an experiment with "
                              "`dvc exp run -S 'seeds=[...]'`")
        train = parse(TrainConfig, entry.pop("train", None), f"{key}.train", base=shared_train)
        options = validate_model_options(arch, entry, key)
        # Cross-registry checks (task x architecture, task x training settings) live here, above both.
        if task not in model_entry(arch, key).tasks:
            raise ConfigError(f"{key}.arch: {arch} has no {catalog.TASKS[task].outputs[-1]} head, which task: {task} needs; "
                              f"architectures with one: {', '.join(archs_for(task))}")
        scores = catalog.TASKS[task].scores
        if train.select not in scores:
            needs = [t for t in _task_names() if train.select in catalog.TASKS[t].scores]
            raise ConfigError(f"{key}.train.select: {train.select} needs task: {' or '.join(needs)} (task is {task}); "
                              f"use select: {' or '.join(scores)}")
        specs[name] = ModelSpec(name=name, arch=arch, options=options, train=train, task=task)
    return specs


def _check_batch_norm(models: dict[str, ModelSpec], raw: dict, image_size: tuple[int, int]) -> None:
    """A model trained on batches of one image fails inside torch when a BatchNorm layer sees a
    1x1 map (DeepLab's ASPP pooling always does); say so now, not as a traceback mid-training."""
    from .models import batch_norm_problem

    for name, spec in models.items():
        per_process = spec.train.batch_size // (spec.train.nproc if spec.train.launcher == "torchrun" else 1)
        if per_process >= 2:
            continue
        problem = batch_norm_problem(spec.arch, spec.options, image_size, per_process)
        if problem is None:
            continue
        own = isinstance(raw[name].get("train"), dict) and "batch_size" in raw[name]["train"]
        key = f"models.{name}.train.batch_size" if own else "train.batch_size"
        each = f" per process (nproc {spec.train.nproc})" if per_process != spec.train.batch_size else ""
        raise ConfigError(f"{key}: {spec.train.batch_size}{each} is too small for models.{name} (arch {spec.arch}) at "
                          f"data.image_size {list(image_size)}: {problem}; expected a batch_size of at least "
                          f"{2 * (spec.train.batch_size // per_process)}")


def _check_ignore_index(data: DataConfig) -> None:
    """An ignore index naming a real class, caught here where the params alone give the class names
    (preprocess checks every dataset once it has read them)."""
    from .data.sources import ignore_index_problem
    from .data.sources.synthetic import class_names

    names = {"synthetic": lambda: class_names(data.synthetic.num_classes), "folder": lambda: data.folder.classes,
             "cityscapes_pairs": lambda: data.cityscapes_pairs.classes if data.cityscapes_pairs.preset == "custom" else ()}
    problem = ignore_index_problem(data.ignore_index, tuple(names.get(data.dataset, tuple)()), data.dataset)
    if problem:
        raise ConfigError(problem)


def _check_seeds(seeds: tuple[int, ...]) -> None:
    if not seeds:
        raise ConfigError("seeds: [] is empty; expected at least one training seed, e.g. seeds: [0, 1, 2]")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"seeds: {list(seeds)} lists {', '.join(map(str, repeated))} more than once; a repeated seed "
                          "reruns the same training (no new information) and would name the same DVC stage twice")


def params_from_dict(raw: Any, source: str = "params.yaml") -> Params:
    try:
        if not isinstance(raw, dict):
            raise ConfigError("the file must be a mapping with sections: " + ", ".join(_TOP_KEYS))
        parse_top = {k: v for k, v in raw.items() if k != "models"}

        unknown = [k for k in raw if k not in _TOP_KEYS]
        if unknown:
            from .registry import did_you_mean

            raise ConfigError(f"{unknown[0]}: unknown section{did_you_mean(unknown[0], list(_TOP_KEYS))}; "
                              f"valid: {', '.join(_TOP_KEYS)}")
        top = parse(_Sections, parse_top, "")
        _check_seeds(top.seeds)
        models = _parse_models(raw.get("models"), top.train, top.task)
        _check_batch_norm(models, raw.get("models"), top.data.image_size)
        _check_ignore_index(top.data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return Params(seed=top.seed, seeds=top.seeds, data=top.data, train=top.train, evaluate=top.evaluate,
                  profile=top.profile, plot=top.plot, models=models, augmentation=top.augmentation,
                  task=top.task, source=source)


class _ParamsLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans, so
    `amp: off` (which `dvc exp run -S` writes unquoted) would turn into False."""


_ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "file not found"
        raise ConfigError(f"{path}: {what}; run from the repository root (where dvc.yaml is) or pass --params FILE")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected YAML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        raw = yaml.load(text, Loader=_ParamsLoader)  # a SafeLoader: no tags that build objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and (mark is None or start.line != mark.line):
            problem = f"{problem} {context} that starts at line {start.line + 1}"  # e.g. an unclosed [
        raise ConfigError(f"{path}:{where}: not valid YAML ({problem})") from None
    return params_from_dict(raw, str(path))
