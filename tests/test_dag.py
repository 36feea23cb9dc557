"""dvc.yaml against the code: declared outputs match segbench.paths, and each stage's deps cover
every module the stage imports (else editing that module would not re-run the stage), and dvc.lock
records only stages dvc.yaml defines. Reads dvc.yaml and parses sources with `ast`; runs no stage."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from segbench import paths
from segbench.models import code

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
MODEL = "unet"  # stands for ${key} in the foreach stages and ${item.model} in the matrix ones
SEED = 0  # stands for ${item.seed} and ${seeds[0]} (the first listed seed)
DATASET = "camvid"  # stands for ${data.dataset}
LAYOUTS = "segbench.data.sources"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def substitute(node, model: str, seed: int = SEED):
    if isinstance(node, str):
        for var, value in (("${key}", model), ("${item.model}", model), ("${item.seed}", seed), ("${seeds[0]}", seed),
                           ("${data.dataset}", DATASET)):
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
    return substitute(spec, model, seed)  # ${data.dataset}


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
                                               paths.samples_path(MODEL, 3))
    assert "seeds" not in STAGES["evaluate"]["params"]


def test_aggregate_matches_paths():
    aggregate = stage("aggregate")
    # every seed's files: metrics, per-image statistics and prediction samples
    assert posix(paths.seeds_dir(MODEL, paths.METRICS_DIR)) <= declared(aggregate, "deps")
    assert all(p.is_relative_to(paths.seeds_dir(MODEL, paths.METRICS_DIR))
               for p in (paths.seed_metrics_path(MODEL, 5, "train"), paths.seed_metrics_path(MODEL, 5, "eval"),
                         paths.per_image_path(MODEL, 5), paths.samples_path(MODEL, 5)))
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


# --- deps: exactly the modules a stage imports ---------------------------------------------------------

# A model's architecture is loaded by name (segbench.models.registry: archs/<arch>.py and the module it
# names), which no import statement shows: a stage that builds models depends on its model's code
# manifest (data/model_code/<model>.json, stage model_code) instead, whose files are that architecture's
# closure (segbench.models.code); stage model_code depends on every architecture's files. Params
# validation loads the declarations of the architectures params name, and its batch-size probe
# (segbench.models.batch_norm_problem, batch size 1 only) builds a model: both can only refuse the
# params, never change a stage's outputs, so neither is counted.
BUILDS_MODELS = "build_model"


def builds_models(nodes) -> bool:
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == BUILDS_MODELS
               for n in nodes)


def closure_names(script: Path) -> set[str]:
    return code.import_closure(code.imported(ast.walk(ast.parse(script.read_text())), ""))


def import_closure(script: Path) -> set[str]:
    """Repository-relative files that running stage script `script` loads from src/segbench through
    import statements (lazy imports inside functions included: some call of the stage may run them)."""
    return {code.module_file(name).relative_to(REPO).as_posix() for name in closure_names(script)}


def stage_builds_models(script: Path) -> bool:
    return any(builds_models(code.runtime_nodes(ast.parse(code.module_file(name).read_text())))
               for name in closure_names(script) if name != "segbench.models")


# The stages that run the active dataset layout (data.dataset), loaded by name: they depend on its
# module and the layouts' helpers (segbench.data.sources.base.HELPERS), never on another layout's module.
RUNS_THE_LAYOUT = ("download", "preprocess")


def layout_files(dataset: str) -> set[str]:
    from segbench.data.sources.base import HELPERS

    closure = code.import_closure([f"{LAYOUTS}.{dataset}"])
    assert closure - {f"{LAYOUTS}.{h}" for h in HELPERS} <= {f"{LAYOUTS}.{dataset}", LAYOUTS, "segbench.errors",
                                                              "segbench.registry", "segbench", "segbench.data"}, closure
    return {f"src/segbench/data/sources/{name}.py" for name in (dataset, *HELPERS)}


def test_only_download_and_preprocess_depend_on_a_layout_module():
    from segbench.data.sources import SOURCES

    for name in STAGES:
        layouts = {d for d in expand(code_deps(stage(name))) for layout in SOURCES.declared()
                   if d == f"src/segbench/data/sources/{layout}.py"}
        assert layouts == ({f"src/segbench/data/sources/{DATASET}.py"} if name in RUNS_THE_LAYOUT else set()), name


def every_arch_file() -> set[str]:
    return {f"src/{name}" for arch in code.declared_archs() for name in code.arch_files(arch)}


def code_deps(spec: dict) -> set[str]:
    return {d for d in declared(spec, "deps") if d.startswith(("src/", "stages/"))}


def expand(deps: set[str]) -> set[str]:
    """The Python files the deps name: a file itself, a folder every .py file below it."""
    files = set()
    for dep in deps:
        path = REPO / dep
        files |= {p.relative_to(REPO).as_posix() for p in path.rglob("*.py")} if path.is_dir() else {dep}
    return files


def dep_gaps(name: str) -> tuple[list[str], list[str]]:
    """(files the stage loads that no dep names, files the deps name that the stage never loads)."""
    spec = stage(name)
    script = spec["cmd"].split()[1]  # python stages/<x>.py [model [seed]]
    loaded = import_closure(REPO / script) | {script}
    if name == "model_code":  # it reads (hashes) every architecture's files
        loaded |= every_arch_file()
    if name in RUNS_THE_LAYOUT:
        loaded |= layout_files(DATASET)
    named = expand(code_deps(spec))
    return sorted(loaded - named), sorted(named - loaded)


def test_a_stage_that_builds_models_depends_on_its_models_code_manifest():
    manifest = paths.model_code_path(MODEL).as_posix()
    builders = {name for name in STAGES if stage_builds_models(REPO / stage(name)["cmd"].split()[1])}
    assert builders == {"train", "evaluate", "profile"}, builders
    for name in STAGES:
        assert (manifest in declared(stage(name), "deps")) == (name in builders), name
    assert declared(stage("model_code"), "outs") == posix(paths.MODEL_CODE_DIR)


def test_a_manifest_names_exactly_its_architectures_closure():
    files = set(code.arch_files("deeplabv3"))
    assert {"segbench/models/archs/deeplabv3.py", "segbench/models/deeplabv3.py", "segbench/models/backbones.py"} <= files
    assert not {"segbench/models/unet.py", "segbench/models/archs/unet.py", "segbench/models/prior.py"} & files
    assert "segbench/models/multitask.py" in code.arch_files("unet")  # through unet.py's depth branch
    assert set(code.code_manifest("unet")) == set(code.arch_files("unet"))


def test_code_deps_are_exactly_the_modules_each_stage_imports():
    wrong = {name: gaps for name in STAGES if any(gaps := dep_gaps(name))}
    assert not wrong, "dvc.yaml code deps differ from what their stage imports:\n" + "\n".join(
        f"  {name}: missing {missing or '-'}; extra {extra or '-'}" for name, (missing, extra) in wrong.items())


def test_a_stage_depends_on_its_own_command_only():
    for name in STAGES:
        commands = {d for d in code_deps(stage(name)) if d.startswith("src/segbench/commands/")}
        own = {"src/segbench/commands/__init__.py", "src/segbench/commands/common.py"}
        assert len(commands - own) == 1, (name, sorted(commands))
        assert "src/segbench/cli.py" not in code_deps(stage(name)), name


def test_the_closure_sees_lazy_imports_and_skips_annotation_only_ones(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("from segbench.commands import evaluate\n")
    loaded = import_closure(script)
    assert "src/segbench/evaluate.py" in loaded  # imported inside run()
    assert "src/segbench/models/unet.py" not in loaded  # loaded by name: its manifest carries it
    assert "segbench/models/unet.py" in code.arch_files("unet")
    script.write_text("from segbench.commands import aggregate\n")
    assert "src/segbench/evaluate.py" not in import_closure(script)  # model_figures names it for type checking only


@pytest.mark.parametrize("deps, files", [
    ({"src/segbench/models"}, {"src/segbench/models/unet.py", "src/segbench/models/archs/unet.py"}),
    ({"src/segbench/io.py"}, {"src/segbench/io.py"}),
])
def test_a_folder_dep_names_every_module_below_it(deps, files):
    assert files <= expand(deps)


# --- import cycles -------------------------------------------------------------------------------

def explicit_imports(name: str) -> set[str]:
    """segbench modules that module `name` names in an import statement, anywhere in the file
    (function-level imports included: a lazy import that closes a cycle is still a cycle). A
    package's __init__ is an edge only where it is named itself, not as the parent of a submodule."""
    path = code.module_file(name)
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


# --- the allowed imports between modules ------------------------------------------------------------

def third_party(name: str) -> set[str]:
    """Top-level packages outside the standard library and segbench that module `name` imports anywhere."""
    import sys

    tree = ast.parse(code.module_file(name).read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
    return roots - set(sys.stdlib_module_names) - {"segbench", "__future__"}


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_command_line_imports_the_commands():
    for name in ALL_MODULES:
        targets = explicit_imports(name)
        if not in_package(name, "segbench.commands") and name not in ("segbench.cli", "segbench.__main__"):
            assert not {t for t in targets if in_package(t, "segbench.commands") or t == "segbench.cli"}, name
        elif in_package(name, "segbench.commands") and name not in ("segbench.commands", "segbench.commands.common"):
            others = {t for t in targets if in_package(t, "segbench.commands")} - {"segbench.commands.common"}
            assert not others, f"{name} imports another command's code: {others}"


def test_leaf_modules_stay_leaves():
    assert not explicit_imports("segbench.keys") and not third_party("segbench.keys")  # stdlib only
    assert explicit_imports("segbench.report.spec") <= {"segbench.keys"} and not third_party("segbench.report.spec")
    assert not explicit_imports("segbench.stats") - {"segbench.metrics", "segbench.replicates"}  # numpy and scipy
    assert third_party("segbench.stats") <= {"numpy", "scipy"}
    # what aggregate and profile summarise with: no segbench module, so the comparison statistics stay out of their deps
    assert not explicit_imports("segbench.replicates") and third_party("segbench.replicates") <= {"numpy", "scipy"}


def test_the_report_reads_computes_and_draws_in_separate_modules():
    report = sorted(name for name in ALL_MODULES if in_package(name, "segbench.report"))
    assert not [name for name in report if "torch" in third_party(name)], "no part of the report imports torch"
    writers = [name for name in report if "segbench.io" in explicit_imports(name)]
    drawers = [name for name in report if "matplotlib" in third_party(name)]
    assert writers and set(writers) <= {"segbench.report.build", "segbench.report.view"}, writers  # view reads
    assert drawers == ["segbench.report.figures"], drawers
    assert not third_party("segbench.report.tables") - {"numpy", "pandas"}, "tables are pure pandas"



# --- dvc.lock: no entry outlives its stage --------------------------------------------------------------

def test_the_committed_lock_records_only_stages_dvc_yaml_defines():
    from segbench.commands.check import leftover_lock_entries

    assert leftover_lock_entries(REPO) == []


def test_check_names_the_lock_entries_of_removed_stages(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    from segbench.commands.check import leftover_lock_entries, lock_check

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  kept:\n    foreach: [a, b]\n    do:\n      cmd: echo ${item}\n")
    entry = {"cmd": "echo"}
    lock = {"schema": "2.0", "stages": {"kept@a": entry, "kept@b": entry, "renamed": entry, "kept@gone": entry}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert leftover_lock_entries(tmp_path) == ["renamed", "kept@gone"]
    line = lock_check(tmp_path)
    assert line.startswith("dvc.lock: 2 entries for stages dvc.yaml no longer defines (renamed, kept@gone)"), line
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"kept@a": entry}}))
    assert lock_check(tmp_path) == "dvc.lock: every entry is a stage of dvc.yaml"


def test_prune_lock_deletes_only_the_leftovers_and_keeps_the_rest_as_written(tmp_path):
    import subprocess
    import sys

    from segbench.commands.check import prune_lock
    from segbench.errors import ConfigError

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  kept:\n    foreach: [a, b]\n    do:\n      cmd: echo ${item}\n")
    kept = ("  kept@a:\n    cmd: echo a\n    deps:\n    - path: x\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n"
            "      size: 2\n  kept@b:\n    cmd: echo b\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  gone@a:\n    cmd: echo gone\n" + kept +
                                       "  renamed:\n    cmd: echo old\n")
    assert prune_lock(tmp_path).startswith("dvc.lock: deleted 2 entries for stages dvc.yaml no longer defines "
                                           "(gone@a, renamed)")
    assert (tmp_path / "dvc.lock").read_text() == "schema: '2.0'\nstages:\n" + kept
    assert prune_lock(tmp_path) == "dvc.lock: every entry is a stage of dvc.yaml; nothing to prune"
    (tmp_path / "dvc.yaml").write_text("stages:\n  kept:\n    foreach: ${nosuchvar}\n    do:\n      cmd: echo\n")
    with pytest.raises(ConfigError, match=r"^dvc\.lock: not pruned \(.*nosuchvar"):
        prune_lock(tmp_path)
    assert (tmp_path / "dvc.lock").read_text() == "schema: '2.0'\nstages:\n" + kept
