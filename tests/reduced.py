"""Shrink a params file to a tiny run of the same benchmark: every model, every section, the same
file (comments kept, DVC's own round-trip YAML), but one seed, one epoch, a few small images and
the cheapest profiling. Tests and the documentation runner use it to run `dvc repro` on a shipped
params file in minutes instead of hours."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from dvc.utils.serialize import modify_yaml

from segbench.commands.demo import inline_list, quick_params

# On top of `segbench demo`'s cut (seeds, epochs, one eager profiling round): the fewest timed runs
# the config accepts, small evaluation extras, the smallest bootstrap.
PROFILE = {"warmup": 1, "min_runs": 3, "max_runs": 3, "time_budget_s": 0.05, "batch_size": 2}
EVALUATE = {"samples": 2, "ap_bins": 100, "train_subset": 4}
PLOT = {"bootstrap": 100, "dpi": 50}


def _cap(section: Any, key: str, value: int) -> None:
    """Lower section[key] to at most value (a size), leaving a smaller one alone."""
    if isinstance(section, dict) and isinstance(section.get(key), int):
        section[key] = min(section[key], value)


def _small_batches(train: Any, batch_size: int) -> None:
    _cap(train, "batch_size", batch_size)  # 2: BatchNorm's minimum, and a few images still make batches
    _cap(train, "num_workers", 0)  # loader processes cost more than they save on a few images


def _shrink_data(data: Any, image_size: tuple[int, int], subset: int, data_path: str | Path | None) -> None:
    if not isinstance(data, dict):
        return
    data["image_size"] = inline_list(list(image_size))
    data["subset"] = subset
    data["workers"] = 1
    if data_path is not None and "path" in data:  # only a dataset read from a folder has one
        data["path"] = str(data_path)
    synthetic = data.get("synthetic")
    if isinstance(synthetic, dict):  # generating fewer, smaller scenes is most of a tiny run's preprocess
        for key in ("num_train", "num_val", "num_test"):
            _cap(synthetic, key, subset)
        synthetic["height"], synthetic["width"] = list(image_size)


def shrink_params(params_path: Path, *, seeds: int = 1, epochs: int = 1, image_size: tuple[int, int] = (32, 32),
                  subset: int = 4, batch_size: int = 2, data_path: str | Path | None = None) -> None:
    """Rewrite `params_path` in place at a tiny size, keeping every model and the file's layout.

    seeds: keep the first N of `seeds:` (a file without `seeds:` stays without it: that is a bug
    the run must show). epochs: the shared and every model's own `train.epochs`. subset: images per
    split (`data.subset`; synthetic data also generates only that many). data_path: replaces
    `data.path` where the file sets one (a relative path means nothing in a scratch copy)."""
    with modify_yaml(Path(params_path)) as params:
        quick_params(params, seeds=seeds, epochs=epochs)
        _shrink_data(params.get("data"), image_size, subset, data_path)
        params["train"].setdefault("batch_size", batch_size)
        _small_batches(params["train"], batch_size)
        for entry in (params.get("models") or {}).values():
            if isinstance(entry, dict):
                _small_batches(entry.get("train"), batch_size)
        for name, values in (("evaluate", EVALUATE), ("profile", PROFILE), ("plot", PLOT)):
            params.setdefault(name, {}).update(values)


def model_code_key(params: dict, entry: Any) -> tuple:
    """What decides the code a model runs: the task (its heads), architecture, backbone and encoder;
    two models with one key differ only in options that `segbench check` validates."""
    spec = entry if isinstance(entry, dict) else {}
    return params.get("task", "segmentation"), spec.get("arch"), spec.get("backbone"), spec.get("encoder")


def first_runs(params_files: list[Path]) -> dict[Path, list[str]]:
    """For files reduced in this order, the models each runs so that the code of every model of every
    file runs once: a file's first model of each key not seen in an earlier file. A file all of whose
    keys ran earlier still runs its first model that trains (or its first model), so every file runs."""
    seen: set[tuple] = set()
    runs: dict[Path, list[str]] = {}
    for path in params_files:
        params = yaml.safe_load(Path(path).read_text())
        models = params.get("models") or {}
        keys = {name: model_code_key(params, entry) for name, entry in models.items()}
        kept = [name for name, key in keys.items() if key not in seen and not seen.add(key)]
        if not kept and models:
            learned = [name for name, key in keys.items() if key[1] != "prior_baseline"]
            kept = (learned or list(models))[:1]
        runs[Path(path)] = kept
    return runs


def keep_models(params_path: Path, kept: list[str]) -> None:
    """Drop every model of the file but `kept`, leaving the rest of the file as it is."""
    with modify_yaml(Path(params_path)) as params:
        models = params.get("models") or {}
        for name in [m for m in models if m not in kept]:
            del models[name]
