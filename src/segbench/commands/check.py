"""`segbench check`: validate the params file, and say whether this machine matches the one that made metrics/."""
from __future__ import annotations

import argparse

from .. import paths
from .common import load_params

HELP = "validate the params file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    params = load_params(args)
    print(f"{args.params}: ok ({len(params.models)} models: {', '.join(params.models)})")
    print(environment_check(list(params.models)))


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
