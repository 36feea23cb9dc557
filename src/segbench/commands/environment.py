"""`segbench environment` (stage `environment`, run on every `dvc repro`): record the machine and
software that timings are measured on, in metrics/environment.json.

The file holds only the fingerprint's timing fields (segbench.environment.TIMING_FIELDS: CPU model
and the instruction sets that pick PyTorch's kernels, bf16 among them; usable cores; the library
versions; the GPU): it changes when the machine or the software does, and nothing else. The
profile stages depend on it, so on a new machine `dvc repro` re-profiles every model, and on the
same machine the rewritten file has the same hash and no profile re-runs.
"""
from __future__ import annotations

import argparse

from .. import paths

HELP = "stage: record the machine and software timings are measured on"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from ..environment import describe_env, timing_fingerprint
    from ..io import write_json

    env = timing_fingerprint()
    write_json(paths.ENVIRONMENT_PATH, env)
    print(f"environment {env['id']}: {describe_env(env)}")
