"""The model registry, a torch-free leaf: architectures are declared here and built elsewhere.

An architecture is a name, an options dataclass, the tasks it can be built for and a builder
`fn(num_classes, options) -> nn.Module` (plus `task` when registered for several); the model
it returns maps (N, 3, H, W) images to named outputs, `{"out": N x C x H x W logits}` plus,
for task seg_depth, `"depth": N x 1 x H x W` metres (torchvision's segmentation models use the
same dict).

Built-in architectures are *declared* one per file, `archs/<arch>.py` (name, options, tasks
and the module that builds them: no torch). A declaration is imported by name when an
architecture is first looked up, and its building module on the first build, where
`register_model` attaches the builder: validating params that name unet reads archs/unet.py
and no other architecture's file, so a new or edited architecture touches only the models
built from it (DVC stage `model_code`). An architecture defined at run time (a plugin, a test)
calls `register_model` with its options and is declared and built at once. Nothing here
imports a model module, torch, the config or the task objects (only the tasks' torch-free
declarations in segbench.catalog).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..catalog import TASKS
from ..errors import ConfigError
from ..registry import LazyRegistry
from ..schema import parse

SEGMENTATION = ("segmentation",)


@dataclass(frozen=True)
class ModelEntry:
    build: Optional[Callable[..., Any]]  # (num_classes, options[, task]) -> nn.Module; None until `module` is imported
    options: type
    tasks: tuple[str, ...] = SEGMENTATION  # the tasks this architecture has heads for
    module: Optional[str] = None  # a declared architecture's building module, relative to segbench.models


DECLARATIONS = f"{__package__}.archs"  # the package of archs/<arch>.py
MODELS: LazyRegistry[ModelEntry] = LazyRegistry("model arch", DECLARATIONS)


def declared_archs() -> list[str]:
    """The architectures archs/ declares, from its file names (nothing imported)."""
    return MODELS.declared()
_BUILDERS: dict[str, Callable[..., Any]] = {}


def declare_model(name: str, options: type, module: str, tasks: tuple[str, ...] = SEGMENTATION) -> None:
    """Declare a built-in architecture without importing the module that builds it (archs/<name>.py
    calls this; `module` is relative to segbench.models)."""
    MODELS.add(name, ModelEntry(build=None, options=options, tasks=tuple(tasks), module=module))


def register_model(name: str, options: type, tasks: tuple[str, ...] = SEGMENTATION) -> Callable:
    """Decorator for a builder `fn(num_classes, options) -> nn.Module`; an architecture registered
    for several tasks gets the task too: `fn(num_classes, options, task) -> nn.Module`. A declared
    architecture must be registered with the options and tasks it was declared with."""

    def add(build: Callable[..., Any]) -> Callable[..., Any]:
        if name in MODELS and MODELS.get(name).build is None:  # a declared built-in (loaded by the get)
            declared = MODELS.get(name)
            if declared.options is not options or declared.tasks != tuple(tasks):
                raise RuntimeError(f"model arch {name!r}: registered with options {options.__name__} and tasks "
                                   f"{tuple(tasks)}, declared with {declared.options.__name__} and {declared.tasks}")
            if name in _BUILDERS:
                raise RuntimeError(f"model arch {name!r} registered twice")
            _BUILDERS[name] = build
        else:
            MODELS.add(name, ModelEntry(build=build, options=options, tasks=tuple(tasks)))
        return build

    return add


def builder(arch: str) -> Callable[..., Any]:
    """The builder of `arch`, importing its module on first use."""
    entry = MODELS.get(arch)
    if entry.build is not None:
        return entry.build
    if arch not in _BUILDERS:
        importlib.import_module(entry.module, __package__)
    if arch not in _BUILDERS:
        raise RuntimeError(f"model arch {arch!r}: segbench.models{entry.module} registers no builder for it")
    return _BUILDERS[arch]


def known_tasks() -> list[str]:
    """Every task an architecture may be built for (segbench.catalog's): reading each declaration
    to find out would make validating params read every architecture's file."""
    return sorted(TASKS, key=lambda t: (t != "segmentation", t))


def archs_for(task: str) -> list[str]:
    """Architectures that can be built for `task` (reads every declaration: for error messages)."""
    return [name for name in MODELS.names() if task in MODELS.get(name).tasks]


def check_task(arch: Any, task: Any, where: str = "model") -> None:
    """ConfigError unless `arch` has a head for `task`: the one check of task x architecture, for
    params validation (`where`: the model's key) and `build_model` alike."""
    tasks = known_tasks()
    if task not in tasks:
        raise ConfigError(f"task: {task!r} is not valid; expected {' or '.join(tasks)}")
    if task not in model_entry(arch, where).tasks:
        head = TASKS[task].outputs[-1] if task in TASKS else task  # the output only that task's models have
        raise ConfigError(f"{where}.arch: {arch} has no {head} head, which task: {task} needs; "
                          f"architectures with one: {', '.join(archs_for(task))}")


def model_entry(arch: Any, where: str = "model") -> ModelEntry:
    if not isinstance(arch, str):
        raise ConfigError(f"{where}.arch: {arch!r} is not valid; expected one of: {', '.join(MODELS.names())}")
    return MODELS.get(arch, f"{where}.arch")


def parse_model_options(arch: Any, options: dict, where: str = "model") -> Any:
    return parse(model_entry(arch, where).options, options, where)
