"""The code a model is built from: its architecture's declaration (archs/<arch>.py), the module
that builds it, and every segbench module those import, found by reading their import
statements (lazy imports inside functions included), never by importing them.

Stage `model_code` writes one manifest per model (`code_manifest`: each file's SHA-256) and the
model's DVC stages depend on that file: DVC's `matrix` can name a file by the model
(`${item.model}`) but cannot look up its architecture, so the per-model file carries it. An
edit to unet.py changes the manifests of the models built with arch unet and no other.
tests/test_dag.py walks stage scripts with the same functions.

The standard library and the torch-free model registry: no model module is imported.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Iterable

from .registry import MODELS, declared_archs  # noqa: F401  (declared_archs: every manifest-able arch)

SRC = Path(__file__).resolve().parents[2]  # the folder that holds the segbench package
DECLARATIONS = "segbench.models.archs"


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of segbench module `name` (a package's __init__.py), or None for a name that is no module."""
    base = src.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of a module except what sits under `if TYPE_CHECKING:` (imports for annotations
    only, never run)."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for body in node.body for n in ast.walk(body)}
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def imported(nodes: Iterable[ast.AST], package: str, src: Path = SRC) -> set[str]:
    """segbench modules that the import statements among `nodes` load (with their packages' __init__s);
    `package`: the package relative imports start from."""
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}  # `from . import x`
    parts = [name.split(".") for name in names]
    found = {".".join(p[:i]) for p in parts for i in range(1, len(p) + 1)}
    return {name for name in found if name.split(".")[0] == "segbench" and module_file(name, src)}


def import_closure(modules: Iterable[str], src: Path = SRC) -> set[str]:
    """`modules` and every segbench module they load, as module names."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, src)
        if path is None:
            raise FileNotFoundError(f"segbench module {name} has no file under {src}")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += imported(runtime_nodes(ast.parse(path.read_text())), package, src)
    return seen


def arch_modules(arch: str) -> list[str]:
    """The modules loaded by name for `arch`: its declaration and the module that builds it."""
    entry = MODELS.get(arch)
    if entry.module is None:
        raise ValueError(f"model arch {arch!r} is registered at run time, not declared in archs/: it has no code manifest")
    return [f"{DECLARATIONS}.{arch}", f"segbench.models{entry.module}"]


def arch_files(arch: str, src: Path = SRC) -> list[str]:
    """The files (relative to `src`, posix) a model of arch `arch` is built from, sorted."""
    return sorted(module_file(name, src).relative_to(src).as_posix() for name in import_closure(arch_modules(arch), src))


def code_manifest(arch: str, src: Path = SRC) -> dict[str, str]:
    """{file: SHA-256 of its bytes} over `arch_files(arch)`: equal manifests, the same model code."""
    return {name: hashlib.sha256((src / name).read_bytes()).hexdigest() for name in arch_files(arch, src)}
