"""A name -> object registry. Adding a model, loss, optimiser or dataset layout is one entry."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
from typing import Any, Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: Any) -> bool:
        return name in self._items

    def get(self, name: str, where: str = "") -> T:
        if name not in self._items:
            prefix = f"{where}: " if where else ""
            raise ConfigError(
                f"{prefix}unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                f"valid: {', '.join(self.names())}"
            )
        return self._items[name]


class LazyRegistry(Registry[T]):
    """A registry whose built-in entries are declared one per module of `package`, the module named
    after the entry (`get("unet")` imports <package>.unet, which adds it), imported on first lookup.
    `names()` lists them from the package's file names without importing any, so checking a name
    reads one module, and a new module changes nothing that does not name it. Modules starting with
    "_" and those in `helpers` declare nothing. Entries added at run time (plugins, tests) work as in
    Registry."""

    def __init__(self, kind: str, package: str, helpers: tuple[str, ...] = ()) -> None:
        super().__init__(kind)
        self.package, self.helpers = package, helpers

    def declared(self) -> list[str]:
        """The entries `package` declares, from its file names."""
        spec = importlib.util.find_spec(self.package)
        return [m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)
                if not m.name.startswith("_") and m.name not in self.helpers]

    def _load(self, name: Any) -> None:
        if isinstance(name, str) and name not in self._items and name in self.declared():
            importlib.import_module(f"{self.package}.{name}")
            if name not in self._items:
                raise RuntimeError(f"{self.kind} {name!r}: {self.package}.{name} declares no {self.kind} of that name")

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self.declared()))

    def __contains__(self, name: Any) -> bool:
        return name in self._items or name in self.declared()

    def get(self, name: str, where: str = "") -> T:
        self._load(name)
        return super().get(name, where)
