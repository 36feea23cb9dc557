"""Typed, strict conversion of plain YAML data into frozen dataclasses.

Every field may carry `min`, `max` and `choices` (a tuple, or a callable returning the names
of a registry). Any mistake raises ConfigError naming the full key, the bad value and what
would be valid, e.g. ``train.epochs: -1 is too small; expected an integer >= 1``.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable

from .errors import ConfigError
from .registry import did_you_mean

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def option(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None,
           choices: tuple | Callable[[], list[str]] | None = None, min_exclusive: bool = False) -> Any:
    meta = {"min": min, "max": max, "choices": choices, "min_exclusive": min_exclusive}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp in _TYPE_WORDS:
        return _TYPE_WORDS[tp]
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _describe(args[0])
        return f"a list of {len(args)} values, each {inner}" if args[-1] is not Ellipsis else f"a list, each {inner}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _fail(key: str, value: Any, expected: str) -> typing.NoReturn:
    raise ConfigError(f"{key}: {value!r} is not valid; expected {expected}")


def convert(tp: Any, value: Any, key: str, meta: typing.Mapping[str, Any] | None = None) -> Any:
    meta = meta or {}
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return convert(non_none[0], value, key, meta) if len(non_none) == 1 else value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or (args[-1] is not Ellipsis and len(value) != len(args)):
            _fail(key, value, _describe(tp))
        item_tp = args[0]
        return tuple(convert(item_tp, v, f"{key}[{i}]", meta) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, value, "true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, value, _bounds_text("an integer", meta))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(key, value, _bounds_text("a finite number", meta))
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            _fail(key, value, _choices_text(meta) or "a string")
    _check_bounds(key, value, meta)
    return value


def _choices(meta: typing.Mapping[str, Any]) -> list[str] | None:
    choices = meta.get("choices")
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


def _choices_text(meta: typing.Mapping[str, Any]) -> str:
    names = _choices(meta)
    return f"one of: {', '.join(map(str, names))}" if names else ""


def _bounds_text(what: str, meta: typing.Mapping[str, Any]) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    op = ">" if meta.get("min_exclusive") else ">="
    if lo is not None and hi is not None:
        return f"{what} {op} {lo} and <= {hi}"
    if lo is not None:
        return f"{what} {op} {lo}"
    if hi is not None:
        return f"{what} <= {hi}"
    return what


def _check_bounds(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    names = _choices(meta)
    if names is not None and value not in names:
        raise ConfigError(f"{key}: unknown value {value!r}{did_you_mean(value, names)}; valid: {', '.join(map(str, names))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        too_small = lo is not None and (value <= lo if meta.get("min_exclusive") else value < lo)
        if too_small or (hi is not None and value > hi):
            what = "an integer" if isinstance(value, int) else "a number"
            raise ConfigError(f"{key}: {value!r} is out of range; expected {_bounds_text(what, meta)}")


def parse(cls: type, raw: Any, key: str, base: Any = None) -> Any:
    """Build `cls` from a mapping; fields missing from `raw` come from `base` or the defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(key, raw, "a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in raw:
        if name not in known:
            valid = sorted(known)
            raise ConfigError(
                f"{key + '.' if key else ''}{name}: unknown key{did_you_mean(name, valid)}; "
                f"valid keys{' under ' + key if key else ''}: {', '.join(valid) or '(none)'}"
            )
    kwargs = {}
    for name, f in known.items():
        sub = f"{key}.{name}" if key else name
        if name in raw:
            if dataclasses.is_dataclass(hints[name]):
                inner_base = getattr(base, name) if base is not None else None
                kwargs[name] = parse(hints[name], raw[name], sub, inner_base)
            else:
                kwargs[name] = convert(hints[name], raw[name], sub, f.metadata)
        elif base is not None:
            kwargs[name] = getattr(base, name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required key is missing")
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:  # __post_init__ cross-field checks
        raise ConfigError(f"{key}: {exc}" if key else str(exc)) from None
    return obj


def to_dict(obj: Any) -> Any:
    """The plain-data form of a parsed config (for logs and checkpoints)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
