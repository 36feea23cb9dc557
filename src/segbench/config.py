"""params.yaml -> typed, validated config objects.

Every stage loads and validates the whole file before it writes anything, so a typo in any
section fails fast with one line naming the key, e.g.
``params.yaml: train.epocs: unknown key (did you mean 'epochs'?); valid keys under train: ...``.

The shared sections' dataclasses are in segbench.sections (re-exported here), each dataset's
options beside the sources (data/sources/options.py), each architecture's in models/options.py;
this module parses `models:` and checks what spans sections.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import catalog
from .errors import ConfigError
from .schema import option, parse
from .sections import (
    AugmentConfig,
    DataConfig,
    EvaluateConfig,
    PlotConfig,
    ProfileConfig,
    TrainConfig,
    deployment_problem,
)

__all__ = ["AugmentConfig", "DataConfig", "EvaluateConfig", "ModelSpec", "Params", "PlotConfig", "ProfileConfig",
           "TrainConfig", "load_params", "params_from_dict", "pipeline_keys"]


def _task_names() -> list[str]:
    return list(catalog.TASKS)


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
            close = difflib.get_close_matches(name, list(self.models), n=1)  # `unet_agg`: did you mean unet_aug
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{self.source}: models: no model named {name!r}{hint}; defined: {', '.join(self.models)}")
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
    from .models import check_task, validate_model_options

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
        check_task(arch, task, key)
        # Task x training settings: a cross-registry check, here above both.
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
    from .data.sources.scenes import class_names

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
        if problem := deployment_problem(top.plot.deployment, top.profile, top.data.image_size):
            raise ConfigError(problem)
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


_INTERPOLATED = re.compile(r"\$\{\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)")
_STAGE_LOCALS = ("item", "key", "value")  # foreach / matrix variables: not params
_EXAMPLES = {"seeds": "seeds: [0, 1, 2]", "models": "models: {unet: {arch: unet}}", "data": "data: {dataset: synthetic}"}


def pipeline_keys(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, list[str]]:
    """Every params key `dvc_yaml` reads -> the stages that read it, taken from the file itself (its
    `${...}` interpolations and its stages' `params:` lists), so the check cannot drift from the DAG.

    DVC stops on a missing one: an interpolated key fails the parse of the whole dvc.yaml, a listed
    one fails the stage after it has run (MissingParamsError)."""
    stages = (yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8")) or {}).get("stages") or {}
    needed: dict[str, list[str]] = {}
    for name, stage in stages.items():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        listed = [p.split("${")[0].rstrip(".") for p in body.get("params") or [] if isinstance(p, str)]
        for match in _INTERPOLATED.finditer(yaml.safe_dump(stage)):
            listed.append(match.group(1))
        for key in listed:
            if key and key.split(".")[0] not in _STAGE_LOCALS and name not in needed.setdefault(key, []):
                needed[key].append(name)
    return needed


def _missing_pipeline_key(raw: Any, needed: dict[str, list[str]]) -> str | None:
    for dotted, stages in needed.items():
        node, parts = raw, dotted.split(".")
        for depth, part in enumerate(parts, 1):
            if not isinstance(node, dict) or part not in node:
                key = ".".join(parts[:depth])  # the outermost missing one: `plot`, not `plot.dpi`
                example = _EXAMPLES.get(key, f"the {key} section of params.yaml (`{key}: {{}}` takes every default)")
                stages = list(dict.fromkeys(s for k, v in needed.items() if f"{k}.".startswith(f"{key}.") for s in v))
                return (f"{key}: required key is missing; dvc.yaml reads it (stage{'s' * (len(stages) > 1)} "
                        f"{', '.join(stages)}) and DVC stops without it; add e.g. {example}")
            node = node[part]
    return None


def load_params(path: str | Path = "params.yaml", pipeline: str | Path | None = None) -> Params:
    """The validated params file; with `pipeline` (a dvc.yaml), also every key that file reads must
    be written out in it: the config's defaults serve the Python API, never a DVC run."""
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
    missing = _missing_pipeline_key(raw, pipeline_keys(pipeline)) if pipeline and isinstance(raw, dict) else None
    if missing:
        raise ConfigError(f"{path}: {missing}")
    return params_from_dict(raw, str(path))
