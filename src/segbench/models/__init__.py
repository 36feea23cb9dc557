"""Model registry: an architecture is a name, an options dataclass and a builder.

    build_model("unet", num_classes=6, base_channels=16)
    build_model("unet", num_classes=6, task="seg_depth", depth_decoder="shared")

Adding an architecture is one module that calls `register_model` plus one import line below.
Every model maps (N, 3, H, W) images to (N, num_classes, H, W) logits for any H and W.

Under `task: seg_depth` (only architectures registered with `depth=True`, see `depth_archs`)
a model returns a tuple `(logits N x C x H x W, depth N x 1 x H x W in metres)`; the depth
head's mean and std come from `set_depth_statistics` (see `multitask`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..config import TASKS
from ..errors import ConfigError
from ..registry import Registry
from ..schema import parse, to_dict
from .multitask import DEPTH_DECODERS, DepthHead, set_depth_statistics  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., nn.Module]
    options: type
    depth: bool = False  # the builder takes `depth=` and can add a depth head (task seg_depth)


MODELS: Registry[ModelEntry] = Registry("model arch")


def register_model(name: str, options: type, depth: bool = False) -> Callable:
    """Decorator for a builder `fn(num_classes, options) -> nn.Module`, or with `depth=True`
    `fn(num_classes, options, depth: bool) -> nn.Module` (depth: also return a depth map)."""

    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(build=build, options=options, depth=depth))
        return build

    return add


def depth_archs() -> list[str]:
    """Architectures that can be built for task seg_depth."""
    return [name for name in MODELS.names() if MODELS.get(name).depth]


def model_entry(arch: Any, where: str = "model") -> ModelEntry:
    if not isinstance(arch, str):
        raise ConfigError(f"{where}.arch: {arch!r} is not valid; expected one of: {', '.join(MODELS.names())}")
    return MODELS.get(arch, f"{where}.arch")


def parse_model_options(arch: Any, options: dict, where: str = "model") -> Any:
    return parse(model_entry(arch, where).options, options, where)


def validate_model_options(arch: Any, options: dict, where: str) -> dict[str, Any]:
    """Check a params.yaml model entry; returns its options with defaults filled in."""
    return to_dict(parse_model_options(arch, options, where))


def check_task(arch: Any, task: Any) -> None:
    """ConfigError unless `arch` can be built for `task`."""
    if task not in TASKS:
        raise ConfigError(f"task: {task!r} is not valid; expected {' or '.join(TASKS)}")
    if task == "seg_depth" and not model_entry(arch, str(arch)).depth:
        raise ConfigError(f"{arch}: no depth head for task seg_depth; architectures with one: {', '.join(depth_archs())}")


def build_model(arch: str, num_classes: int, task: str = "segmentation", **options: Any) -> nn.Module:
    """`task: seg_depth` makes the model return (logits, depth); see the module docstring."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes: {num_classes!r} is not valid; expected an integer >= 1")
    check_task(arch, task)
    opts = parse_model_options(arch, options, arch)
    entry = MODELS.get(arch)
    if entry.depth:
        return entry.build(num_classes, opts, depth=task == "seg_depth")
    return entry.build(num_classes, opts)


def batch_norm_problem(arch: str, options: dict, image_size: tuple[int, int], batch_size: int) -> str | None:
    """Why training `arch` on batches of `batch_size` images of `image_size` would fail in a
    BatchNorm layer (one value per channel: torch refuses to normalise it), or None.

    Runs one training-mode forward pass on the meta device: shapes only, no memory, no compute.
    Inconclusive probes (an op without a meta kernel, weights that cannot be read) say None and
    leave the verdict to training.
    """
    if batch_size >= 2:
        return None  # BatchNorm then always sees >= 2 values per channel
    import torch

    try:
        with torch.device("meta"):
            model = build_model(arch, 2, **{**options, "pretrained": False} if "pretrained" in options else options)
        model.train()
        with torch.no_grad():
            model(torch.empty(batch_size, 3, *image_size, device="meta"))
    except ValueError as exc:
        if "Expected more than 1 value per channel" in str(exc):
            return (f"in training a BatchNorm layer would see {batch_size} image x a 1x1 feature map, a single value "
                    "per channel, which torch cannot normalise")
        return None
    except Exception:
        return None
    return None


def options_of(arch: str) -> list[str]:
    return [f.name for f in dataclasses.fields(MODELS.get(arch).options)]


# One line per architecture family: importing the module registers it.
from . import unet  # noqa: E402,F401
from . import deeplabv3  # noqa: E402,F401
from . import unet_lean  # noqa: E402,F401
from . import fcn_baseline  # noqa: E402,F401
from . import resnet_unet  # noqa: E402,F401
from . import enet  # noqa: E402,F401
from . import esnet  # noqa: E402,F401
from . import torchvision_zoo  # noqa: E402,F401
from . import prior  # noqa: E402,F401
