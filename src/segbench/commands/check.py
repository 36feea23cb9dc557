"""`segbench check [--prune-lock]`: validate the params file, say whether this machine matches the one that
made metrics/, and whether dvc.lock still records stages that dvc.yaml no longer defines (--prune-lock:
delete those entries)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import paths

HELP = "validate the params file"
LOCK_FILE = "dvc.lock"
PIPELINE = "dvc.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prune-lock", action="store_true",
                        help=f"delete {LOCK_FILE}'s entries of stages {PIPELINE} no longer defines (over the params "
                             "file's models and seeds); a stage that comes back later runs again unless DVC's run cache holds it")


def run(args: argparse.Namespace) -> None:
    from ..config import load_params

    # Beside a dvc.yaml (the repository root), a file is checked as a benchmark DVC can run: every
    # key dvc.yaml reads must be in it. Elsewhere it is checked as the Python API reads it.
    pipeline = Path(PIPELINE) if Path(PIPELINE).is_file() else None
    params = load_params(args.params, pipeline=pipeline)
    against = f", every key {PIPELINE} reads is set" if pipeline else ""
    print(f"{args.params}: ok ({len(params.models)} models: {', '.join(params.models)}){against}")
    print(environment_check(list(params.models)))
    if Path(LOCK_FILE).is_file():
        print(prune_lock(Path.cwd()) if args.prune_lock else lock_check(Path.cwd()))


def environment_check(models: list[str]) -> str:
    """One line: does this machine match the environment the metrics in metrics/ were made in?"""
    from ..environment import describe_env, env_differences, fingerprint, group_fingerprints
    from ..errors import SegbenchError
    from ..io import read_json

    here = fingerprint()
    recorded = []
    for model in models:
        for part in paths.METRIC_PARTS:
            path = paths.metrics_path(model, part)
            try:
                recorded.append((str(path), read_json(path).get("env") if path.is_file() else None))
            except (SegbenchError, AttributeError):
                continue
    made = group_fingerprints(recorded)
    if not made:
        return f"environment: {here['id']} ({describe_env(here)}); no metrics in {paths.METRICS_DIR} to compare with"
    differ = {env_id: env_differences(env, here) for env_id, (env, _) in made.items()}
    if not any(differ.values()):
        return f"environment: {here['id']}, the same as the one that made {paths.METRICS_DIR}/ ({describe_env(here)})"
    env_id, (env, files) = next((i, made[i]) for i, d in differ.items() if d)
    return (f"environment: this machine differs from the one that made {files[0]}"
            f"{f' and {len(files) - 1} other metrics files' if len(files) > 1 else ''} "
            f"({'; '.join(d.replace(' vs ', ' there, ') + ' here' for d in differ[env_id])}): a re-run will not "
            f"reproduce their timings, and quality may differ in the last digits")


def leftover_lock_entries(root: Path, recorded: dict | None = None) -> list[str]:
    """Stages dvc.lock records (`recorded`: its `stages` mapping, read from root/dvc.lock when not given)
    that dvc.yaml (expanded over params.yaml's models and seeds) no longer defines.

    DVC keeps the entry of a removed or renamed stage for good, and every stage it runs parses and rewrites
    the whole dvc.lock, so leftovers slow every stage of every later run."""
    import yaml
    from dvc.repo import Repo

    pipeline = (root / PIPELINE).resolve()
    with Repo(str(root)) as repo:
        defined = {stage.name for stage in repo.index.stages if Path(stage.dvcfile.path).resolve() == pipeline}
    if recorded is None:
        recorded = (yaml.safe_load((root / LOCK_FILE).read_text()) or {}).get("stages", {})
    return [name for name in recorded if name not in defined]


def _named(leftovers: list[str]) -> str:
    shown = ", ".join(leftovers[:5]) + (f" and {len(leftovers) - 5} more" if len(leftovers) > 5 else "")
    return f"{len(leftovers)} entries for stages {PIPELINE} no longer defines ({shown})"


def lock_check(root: Path) -> str:
    """One line: are all of dvc.lock's entries stages that dvc.yaml defines?"""
    from dvc.exceptions import DvcException

    try:
        leftovers = leftover_lock_entries(root)
    except DvcException as exc:
        return f"{LOCK_FILE}: not checked ({exc})"
    if not leftovers:
        return f"{LOCK_FILE}: every entry is a stage of {PIPELINE}"
    return (f"{LOCK_FILE}: {_named(leftovers)}; DVC keeps "
            f"them and re-reads them at every stage it runs: `segbench check --prune-lock` deletes them")


def prune_lock(root: Path) -> str:
    """Delete dvc.lock's leftover entries (leftover_lock_entries), keeping the rest of the file as DVC wrote it;
    one line saying what went. The file is replaced whole or not at all."""
    from dvc.exceptions import DvcException
    from dvc.utils.serialize import dump_yaml, parse_yaml_for_update

    from ..errors import ConfigError
    from ..io import atomic_path

    path = root / LOCK_FILE
    lock = parse_yaml_for_update(path.read_text(encoding="utf-8"), str(path))  # read once: checked, then written
    try:
        leftovers = leftover_lock_entries(root, lock.get("stages") or {})
    except DvcException as exc:
        raise ConfigError(f"{LOCK_FILE}: not pruned ({exc})") from None
    if not leftovers:
        return f"{LOCK_FILE}: every entry is a stage of {PIPELINE}; nothing to prune"
    for name in leftovers:
        del lock["stages"][name]
    with atomic_path(path) as tmp:
        dump_yaml(tmp, lock)
    return f"{LOCK_FILE}: deleted {_named(leftovers)}"
