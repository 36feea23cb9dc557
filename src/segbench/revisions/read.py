"""A benchmark as one revision holds it: resolve a name, read its metrics and params.

A revision is a git commit, branch or tag, a DVC experiment name (a git ref under refs/exps,
resolved by DVC's own `dvc.scm.resolve_rev`, as `dvc metrics diff` does), or the workspace.
The JSON metrics and params.yaml are in git, so they are read from the commit's tree
(scmrepo's GitFileSystem, the one DVC uses); the per-image statistics are DVC outputs, read by
segbench.revisions.arrays. Nothing here imports torch, and DVC only when a name must be resolved.

A revision's models are those its params.yaml lists (metrics of a model it no longer lists are
left-overs, ignored); a listed model without any metrics file has not been run there. A model
with some of its files but not all is an error naming the missing one.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import paths
from ..errors import SegbenchError
from ..report import view as report_view

WORKSPACE = "workspace"


class RevisionError(SegbenchError):
    """A revision that cannot be read or compared: unknown, without metrics, or with half of a model's files."""


@dataclass(frozen=True)
class Revision:
    name: str        # as the user wrote it: HEAD, main, an experiment name, workspace
    sha: str | None  # the commit; None for the workspace

    @property
    def is_workspace(self) -> bool:
        return self.sha is None

    @property
    def label(self) -> str:
        typed_sha = len(self.name) >= 7 and self.sha is not None and self.sha.startswith(self.name.lower())
        return self.name if self.sha is None or typed_sha else f"{self.name} ({self.sha[:7]})"


@dataclass(frozen=True)
class ModelMetrics(report_view.ModelMetrics):
    """One model's metrics files at a revision: the model-level ones (the report's view of them) and each seed's."""

    seeds: dict[int, dict[str, dict]]  # seed -> {"train": ..., "eval": ...}

    def seed_values(self, part: str, key: str) -> list[float]:
        """Every seed's number under `key` in its train.json or eval.json (null, missing and NaN left out)."""
        values = [self.seeds[s][part].get(key) for s in sorted(self.seeds)]
        return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]


@dataclass
class RevisionData:
    revision: Revision
    params: dict | None
    models: dict[str, ModelMetrics]
    not_run: list[str] = field(default_factory=list)  # listed in params, no metrics file yet
    tree: Any = None                                    # where its files are read from (GitTree / WorkspaceTree)
    _read: dict = field(default_factory=dict, repr=False)  # files parsed on demand (dvc.lock)


# --- naming a revision ---------------------------------------------------------------------------

def open_scm(root: Path):
    """The git repository around `root` (DVC's scmrepo Git)."""
    from dvc.scm import SCM, SCMError

    try:
        return SCM(str(root))
    except SCMError as exc:
        raise RevisionError(f"{root}: not inside a git repository ({exc}); segbench diff compares git revisions") from None


def resolve(name: str, root: Path, scm=None) -> Revision:
    """A git revision, branch, tag or DVC experiment name as a commit; `workspace` as the working tree."""
    if name == WORKSPACE:
        return Revision(WORKSPACE, None)
    from dvc.scm import RevError, resolve_rev

    scm = scm or open_scm(root)
    try:
        return Revision(name, resolve_rev(scm, name))
    except RevError as exc:
        what = "ambiguous" if "ambiguous" in str(exc) else "unknown"
        raise RevisionError(f"{what} revision {name!r}: give a git commit, branch or tag (git branch -a), a DVC "
                            f"experiment name (dvc exp list), or {WORKSPACE}") from None


# --- reading files -------------------------------------------------------------------------------

class WorkspaceTree:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def read(self, path: str | PurePosixPath) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def files(self, under: str | PurePosixPath) -> list[str]:
        base = self.root / under
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()) if base.is_dir() else []


class GitTree:
    """Files of one commit, paths relative to `root` (a DVC project may sit below the git root)."""

    def __init__(self, scm, sha: str, root: Path) -> None:
        self.fs = scm.get_fs(sha)
        prefix = os.path.relpath(Path(root).resolve(), Path(scm.root_dir).resolve())
        self.prefix = PurePosixPath("" if prefix == "." else Path(prefix).as_posix())

    def read(self, path: str | PurePosixPath) -> bytes | None:
        try:
            return self.fs.cat_file((self.prefix / path).as_posix())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def files(self, under: str | PurePosixPath) -> list[str]:
        base = (self.prefix / under).as_posix()
        if not self.fs.isdir(base):
            return []
        return sorted(PurePosixPath(f).relative_to(self.prefix).as_posix() for f in self.fs.find(base))


def open_tree(revision: Revision, root: Path, scm=None):
    if revision.is_workspace:
        return WorkspaceTree(root)
    return GitTree(scm or open_scm(root), revision.sha, root)


def read_json_at(tree, revision: Revision, path: str | PurePosixPath) -> dict | None:
    data = tree.read(path)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RevisionError(f"{revision.label}: {path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RevisionError(f"{revision.label}: {path}: expected a JSON object of metrics")
    return value


def read_params_at(tree, revision: Revision, params_file: str = "params.yaml") -> dict | None:
    import yaml

    data = tree.read(params_file)
    if data is None:
        return None
    try:
        value = yaml.load(data, Loader=yaml.CSafeLoader)  # libyaml: PyYAML's wheels bundle it
    except yaml.YAMLError as exc:
        raise RevisionError(f"{revision.label}: {params_file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return value if isinstance(value, dict) else None


# --- a revision's benchmark ----------------------------------------------------------------------

def read_revision(revision: Revision, root: Path, scm=None, params_file: str = "params.yaml") -> RevisionData:
    """Params and the metrics of every model that has them; RevisionError when there are none."""
    tree = open_tree(revision, root, scm)
    params = read_params_at(tree, revision, params_file)
    found = _models_with_files(tree.files(paths.METRICS_DIR))
    listed = list(params["models"]) if params and isinstance(params.get("models"), dict) else sorted(found)
    if not found or not any(m in found for m in listed):
        what = f" for the models its {params_file} lists ({', '.join(listed)})" if found else ""
        raise RevisionError(f"{revision.label}: no segbench metrics{what}: no {paths.METRICS_DIR}/<model>/eval.json; "
                            "give a revision where `dvc repro` has run and its metrics are committed")
    default_seeds = params.get("seeds") if params else None
    models = {m: _read_model(tree, revision, m, default_seeds) for m in listed if m in found}
    return RevisionData(revision, params, models, [m for m in listed if m not in found], tree)


def _models_with_files(files: list[str]) -> set[str]:
    """Models with a metrics file of their own (metrics/<model>/...)."""
    return {PurePosixPath(f).parts[1] for f in files if len(PurePosixPath(f).parts) > 2}


def _read_model(tree, revision: Revision, model: str, default_seeds) -> ModelMetrics:
    parts = {part: read_json_at(tree, revision, paths.metrics_path(model, part).as_posix()) for part in paths.METRIC_PARTS}
    listed = parts["eval"].get("seeds") if parts["eval"] else None
    seed_list = listed if isinstance(listed, list) else (default_seeds if isinstance(default_seeds, list) else [])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seed_list):
        raise RevisionError(f"{revision.label}: {paths.metrics_path(model, 'eval').as_posix()}: seeds {seed_list!r} "
                            "are not a list of integers")
    seeds = {int(s): {part: read_json_at(tree, revision, paths.seed_metrics_path(model, s, part).as_posix())
                      for part in paths.SEED_PARTS} for s in seed_list}
    wanted = [(paths.metrics_path(model, p), v) for p, v in parts.items()]
    wanted += [(paths.seed_metrics_path(model, s, p), v) for s, by_part in seeds.items() for p, v in by_part.items()]
    missing = [path.as_posix() for path, value in wanted if value is None]
    if missing:
        present = next(path.as_posix() for path, value in wanted if value is not None) if len(missing) < len(wanted) else None
        beside = f" while {present} is there" if present else ""
        raise RevisionError(f"{revision.label}: {model}'s metrics are half present: {missing[0]} is missing{beside}"
                            f"{f' ({len(missing) - 1} more missing)' if len(missing) > 1 else ''}; run `dvc repro` there "
                            f"(and commit its metrics), or compare other revisions")
    return ModelMetrics(model, parts["train"], parts["eval"], parts["profile"], seeds)


def shared_models(a: RevisionData, b: RevisionData) -> list[str]:
    """Models with metrics in both revisions, in B's order; RevisionError when there are none."""
    common = [m for m in b.models if m in a.models]
    if not common:
        raise RevisionError(f"{a.revision.label} and {b.revision.label} share no model with metrics "
                            f"({', '.join(a.models)} against {', '.join(b.models)}); compare revisions of one benchmark")
    return common


def evaluated_data(data: RevisionData, model: str) -> set[str] | None:
    """The content hash of the processed data each seed's evaluate stage read (dvc.lock), or None when
    the lock does not record it: a fingerprint of the test data when per-image files are missing."""
    lock = _lock(data)
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        return None
    found = set()
    for seed in data.models[model].seeds:
        deps = (stages.get(f"evaluate@{model}-{seed}") or {}).get("deps") or []
        hashes = [d.get("md5") for d in deps if isinstance(d, dict) and d.get("path") == paths.PROCESSED_DIR.as_posix()]
        if not hashes:
            return None
        found.add(str(hashes[0]))
    return found or None


def _lock(data: RevisionData) -> dict | None:
    if "dvc.lock" not in data._read:
        import yaml

        raw = data.tree.read("dvc.lock") if data.tree is not None else None
        try:
            # libyaml's loader (PyYAML's wheels bundle it): dvc.lock is hundreds of KB
            data._read["dvc.lock"] = yaml.load(raw, Loader=yaml.CSafeLoader) if raw else None
        except yaml.YAMLError:
            data._read["dvc.lock"] = None
    return data._read["dvc.lock"]
