"""dvc.yaml against the code: declared outputs match segbench.paths, and each stage's deps cover
every module the stage imports (else editing that module would not re-run the stage).
Pure Python: reads dvc.yaml and parses sources with `ast`; runs nothing."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from segbench import paths

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
MODEL = "unet"  # stands for ${key} in the foreach stages and ${item.model} in the matrix ones
SEED = 0  # stands for ${item.seed} and ${seeds[0]} (the first listed seed)
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def substitute(node, model: str, seed: int = SEED):
    if isinstance(node, str):
        for var, value in (("${key}", model), ("${item.model}", model), ("${item.seed}", seed), ("${seeds[0]}", seed)):
            node = node.replace(var, str(value))
        return node
    if isinstance(node, list):
        return [substitute(item, model, seed) for item in node]
    if isinstance(node, dict):
        return {substitute(k, model, seed): substitute(v, model, seed) for k, v in node.items()}
    return node


def stage(name: str, model: str = MODEL, seed: int = SEED) -> dict:
    """A stage's definition; a foreach stage's `do:` for one model, a matrix stage for one (model, seed)."""
    spec = STAGES[name]
    if "foreach" in spec:
        return substitute(spec["do"], model, seed)
    if "matrix" in spec:
        assert spec["matrix"] == {"model": "${models}", "seed": "${seeds}"}, name
        return substitute({k: v for k, v in spec.items() if k != "matrix"}, model, seed)
    return spec


def declared(spec: dict, *fields: str) -> set[str]:
    """The paths listed under fields (outs, metrics, plots, deps); an entry may carry options."""
    return {next(iter(e)) if isinstance(e, dict) else e for f in fields for e in spec.get(f, [])}


def posix(*items: Path) -> set[str]:
    return {p.as_posix() for p in items}


# --- outputs: dvc.yaml and segbench.paths agree ------------------------------------------------------

def test_data_stages_match_paths():
    assert declared(stage("download"), "outs") == posix(paths.RAW_DIR)
    assert posix(paths.RAW_DIR) <= declared(stage("preprocess"), "deps")
    assert declared(stage("preprocess"), "outs") == posix(paths.PROCESSED_DIR)


def test_train_matches_paths():
    from segbench.checkpoint import resume_path_for  # imports torch: kept out of the other tests

    train = stage("train", seed=3)
    assert posix(paths.PROCESSED_DIR) <= declared(train, "deps")
    assert declared(train, "outs") == posix(paths.checkpoint_path(MODEL, 3), paths.train_log_dir(MODEL, 3),
                                            paths.seed_metrics_path(MODEL, 3, "train"))
    assert resume_path_for(paths.checkpoint_path(MODEL, 3)).as_posix() not in declared(train, "outs", "metrics", "plots")
    assert "seeds" not in STAGES["train"]["params"]  # adding a seed must not re-run the other seeds


def test_evaluate_matches_paths():
    evaluate = stage("evaluate", seed=3)
    assert posix(paths.PROCESSED_DIR, paths.checkpoint_path(MODEL, 3)) <= declared(evaluate, "deps")
    assert declared(evaluate, "outs") == posix(paths.seed_metrics_path(MODEL, 3, "eval"), paths.per_image_path(MODEL, 3),
                                               paths.seed_predictions_png(MODEL, 3))
    assert "seeds" not in STAGES["evaluate"]["params"]


def test_aggregate_matches_paths():
    aggregate = stage("aggregate")
    # every seed's files, and the first seed's prediction samples (copied into the report)
    assert posix(paths.seeds_dir(MODEL, paths.METRICS_DIR), paths.seed_predictions_png(MODEL, SEED)) <= declared(
        aggregate, "deps")
    assert all(p.is_relative_to(paths.seeds_dir(MODEL, paths.METRICS_DIR))
               for p in (paths.seed_metrics_path(MODEL, 5, "train"), paths.seed_metrics_path(MODEL, 5, "eval"),
                         paths.per_image_path(MODEL, 5)))
    assert declared(aggregate, "metrics") == posix(paths.metrics_path(MODEL, "train"), paths.metrics_path(MODEL, "eval"))
    assert declared(aggregate, "plots", "outs") == posix(*paths.aggregate_plot_files(MODEL))
    assert "seeds" in aggregate["params"]


def test_profile_matches_paths():
    profile = stage("profile")
    assert posix(paths.checkpoint_path(MODEL, SEED)) <= declared(profile, "deps")
    assert declared(profile, "metrics") == posix(paths.metrics_path(MODEL, "profile"))


def test_plot_matches_paths():
    plot = stage("plot")
    assert posix(paths.METRICS_DIR) <= declared(plot, "deps")
    assert all(paths.metrics_path(MODEL, part).is_relative_to(paths.METRICS_DIR) for part in paths.METRIC_PARTS)
    assert declared(plot, "outs") == posix(*paths.report_files(), paths.REPORT_TEMPLATE)
    # the top-level `plots:` draw the plot stage's files (an entry is a file, or a title whose y: names files)
    shown = set()
    for entry in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]:
        name, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        shown |= set(options["y"]) if isinstance(options.get("y"), dict) else {name}
    assert shown <= posix(*paths.report_files())


# --- deps: every module a stage imports ----------------------------------------------------------------

def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def imported(nodes, package: str) -> set[str]:
    """segbench modules that import statements among nodes load (with their packages' __init__s)."""
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
    return {name for name in found if name.split(".")[0] == "segbench" and module_file(name)}


def cli_nodes(command: str) -> list[ast.AST]:
    """cli.py as stage `command` runs it: module level, plus main, cmd_<command> and the cli
    functions they call (the per-command imports are lazy, inside those functions)."""
    tree = ast.parse(module_file("segbench.cli").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    roots = [node for node in tree.body if not isinstance(node, ast.FunctionDef)]
    todo, seen = ["main", f"cmd_{command}"], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            roots.append(functions[name])
            todo += [call.func.id for call in ast.walk(functions[name]) if isinstance(call, ast.Call)
                     and isinstance(call.func, ast.Name) and call.func.id in functions]
    return [node for root in roots for node in ast.walk(root)]


def import_closure(script: Path, command: str) -> set[str]:
    """Repository-relative files that running stage script `script` loads from src/segbench."""
    todo, seen = list(imported(ast.walk(ast.parse(script.read_text())), "")), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        nodes = cli_nodes(command) if name == "segbench.cli" else ast.walk(ast.parse(path.read_text()))
        todo += imported(nodes, name if path.name == "__init__.py" else name.rpartition(".")[0])
    return {module_file(name).relative_to(REPO).as_posix() for name in seen}


def uncovered(files: set[str], deps: set[str]) -> list[str]:
    """Files no dep names, itself or as a folder above it."""
    return sorted(f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))


def test_deps_cover_imported_modules():
    missing = {}
    for name in STAGES:
        spec = stage(name)
        script = spec["cmd"].split()[1]  # python stages/<x>.py [model [seed]]
        files = import_closure(REPO / script, command=name) | {script}
        if gaps := uncovered(files, declared(spec, "deps")):
            missing[name] = gaps
    assert not missing, "dvc.yaml deps miss modules their stage imports:\n" + "\n".join(
        f"  {name}: {', '.join(files)}" for name, files in missing.items())


@pytest.mark.parametrize("files, deps, gaps", [
    ({"src/segbench/models/unet.py"}, {"src/segbench/models"}, []),
    ({"src/segbench/models_extra.py"}, {"src/segbench/models"}, ["src/segbench/models_extra.py"]),
])
def test_a_folder_dep_covers_only_files_below_it(files, deps, gaps):
    assert uncovered(files, deps) == gaps


# --- import cycles -------------------------------------------------------------------------------

def explicit_imports(name: str) -> set[str]:
    """segbench modules that module `name` names in an import statement, anywhere in the file
    (function-level imports included: a lazy import that closes a cycle is still a cycle). A
    package's __init__ is an edge only where it is named itself, not as the parent of a submodule."""
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            submodules = {f"{module}.{alias.name}" for alias in node.names} & ALL_MODULES
            targets |= submodules or {module}  # `from . import x` names x; `from .a import f` names a
            if len(submodules) < len(node.names):
                targets.add(module)  # names that are not modules come from `module` itself
    return (targets & ALL_MODULES) - {name}


ALL_MODULES = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
               for p in (SRC / "segbench").rglob("*.py")}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_src_segbench_has_no_import_cycles():
    graph = {name: explicit_imports(name) for name in ALL_MODULES}
    assert graph["segbench.engine"] >= {"segbench.evaluate", "segbench.tasks", "segbench.state"}  # the walk sees imports
    assert not import_cycles(graph), f"import cycles in src/segbench: {import_cycles(graph)}"


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_every_code_dep_exists():
    stale = [f"{name}: {dep}" for name in STAGES for dep in declared(stage(name), "deps")
             if dep.startswith(("src/", "stages/")) and not (REPO / dep).exists()]
    assert not stale, f"dvc.yaml names code that does not exist: {stale}"
