"""What changed in the inputs between two revisions' params.yaml: per model, the settings it runs with.

A model's resolved settings are what its stages read (dvc.yaml's params): its `models.<name>` entry,
the shared `train:` section with the model's own `train:` keys over it, and the shared sections
every model inherits (task, seed, seeds, data, evaluate, profile; augmentation where the model
trains with `augment: true`). Plain dictionaries: params of an older revision need not validate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INHERITED = ("task", "seed", "seeds", "data", "evaluate", "profile")
_MISSING = object()


@dataclass(frozen=True)
class ParamChange:
    key: str    # dotted, as params.yaml spells it (models.unet.train.lr for a model's own override)
    old: Any    # _MISSING-free: None shown as null, an absent key as "(absent)"
    new: Any

    def as_dict(self) -> dict:
        return {"key": self.key, "a": self.old, "b": self.new}

    def text(self) -> str:
        return f"{self.key} {show(self.old)} -> {show(self.new)}"


ABSENT = "(absent)"


def show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"train.lr": 0.01, ...}: nested mappings become dotted keys; lists and scalars are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value} if prefix else {}


def resolved_settings(params: dict | None, model: str) -> dict[str, Any]:
    """The dotted settings `model` runs with at one revision ({} without params); its own train keys
    resolved into `train.*`."""
    params = params or {}
    entry = _entry(params, model)
    own_train = entry.pop("train", None) or {}
    shared_train = params.get("train") if isinstance(params.get("train"), dict) else {}
    train = {**shared_train, **own_train}
    settings = {f"models.{model}.{k}": v for k, v in flatten(entry).items()}
    settings.update(flatten(train, "train"))
    for section in (s for s in INHERITED if s in params):
        value = params[section]
        settings.update(flatten(value, section) if isinstance(value, dict) else {section: value})
    if train.get("augment") and isinstance(params.get("augmentation"), dict):
        settings.update(flatten(params["augmentation"], "augmentation"))
    return settings


def _entry(params: dict, model: str) -> dict:
    entry = (params.get("models") or {}).get(model) if isinstance(params.get("models"), dict) else None
    return dict(entry) if isinstance(entry, dict) else {}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[ParamChange]:
    """Keys whose value differs (or exist on one side), in B's order then A's left-overs."""
    found = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a is _MISSING or b is _MISSING or a != b:
            found.append(ParamChange(key, ABSENT if a is _MISSING else a, ABSENT if b is _MISSING else b))
    return found


def model_changes(params_a: dict | None, params_b: dict | None, model: str) -> list[ParamChange]:
    """The resolved settings of `model` that differ; a train key the model sets itself (in either
    revision) is named models.<model>.train.<key>, where a reader would change it."""
    own = {k for p in (params_a, params_b) for k in (_entry(p or {}, model).get("train") or {})}
    named = []
    for change in changes(resolved_settings(params_a, model), resolved_settings(params_b, model)):
        section, _, rest = change.key.partition(".")
        if section == "train" and rest.split(".")[0] in own:
            change = ParamChange(f"models.{model}.{change.key}", change.old, change.new)
        named.append(change)
    return named


def file_changes(params_a: dict | None, params_b: dict | None) -> list[ParamChange]:
    """Every differing key of the two params files (what `dvc exp run -S` set)."""
    return changes(flatten(params_a or {}), flatten(params_b or {}))
