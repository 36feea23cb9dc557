"""The model registry, a leaf: every model module imports it and registers its builder.

An architecture is a name, an options dataclass, a builder and the tasks it can be built for.
A builder is `fn(num_classes, options) -> nn.Module` (plus `task` when registered for several);
the model it returns maps
(N, 3, H, W) images to named outputs, `{"out": N x C x H x W logits}` plus, for task
seg_depth, `"depth": N x 1 x H x W` metres (torchvision's segmentation models use the same
dict). Nothing here imports a model module, the config or the task objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from ..schema import parse

SEGMENTATION = ("segmentation",)


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., nn.Module]  # (num_classes, options[, task]) -> nn.Module
    options: type
    tasks: tuple[str, ...] = SEGMENTATION  # the tasks this architecture has heads for


MODELS: Registry[ModelEntry] = Registry("model arch")


def register_model(name: str, options: type, tasks: tuple[str, ...] = SEGMENTATION) -> Callable:
    """Decorator for a builder `fn(num_classes, options) -> nn.Module`; an architecture registered
    for several tasks gets the task too: `fn(num_classes, options, task) -> nn.Module`."""

    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(build=build, options=options, tasks=tuple(tasks)))
        return build

    return add


def known_tasks() -> list[str]:
    """Every task some registered architecture can be built for, in registration order."""
    names: dict[str, None] = {}
    for arch in MODELS.names():
        names.update(dict.fromkeys(MODELS.get(arch).tasks))
    return sorted(names, key=lambda t: (t != "segmentation", t))


def archs_for(task: str) -> list[str]:
    """Architectures that can be built for `task`."""
    return [name for name in MODELS.names() if task in MODELS.get(name).tasks]


def model_entry(arch: Any, where: str = "model") -> ModelEntry:
    if not isinstance(arch, str):
        raise ConfigError(f"{where}.arch: {arch!r} is not valid; expected one of: {', '.join(MODELS.names())}")
    return MODELS.get(arch, f"{where}.arch")


def parse_model_options(arch: Any, options: dict, where: str = "model") -> Any:
    return parse(model_entry(arch, where).options, options, where)
