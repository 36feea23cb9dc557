"""What every command shares: the --params option, loading params, and turning errors into exit codes.

A user mistake (SegbenchError) becomes one line on stderr and exit code 2; a machine failure that
segbench.errors.explain recognises (a worker killed, out of memory, a full disk) too; anything
else is our bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Callable, Sequence

from ..errors import SegbenchError


def add_params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """The per-model stages' argument: MODEL."""
    parser.add_argument("model", help="a key of models: in the params file")


def add_model_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """The per-seed stages' arguments: MODEL SEED."""
    add_model_argument(parser)
    parser.add_argument("seed", help="a training seed listed in seeds: in the params file")


def load_params(args: argparse.Namespace):
    """The validated params file the command was given (segbench.config.Params)."""
    from ..config import load_params as load

    return load(args.params)


def run_command(run: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run one command; its exit status."""
    try:
        run(args)
    except SegbenchError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a machine failure (worker killed, out of memory, disk full) is one line too
        from ..errors import explain

        known = explain(exc)
        if known is None:
            raise  # our bug: keep the traceback
        print(f"segbench: error: {known}", file=sys.stderr)
        return 2
    return 0


def stage_main(command: ModuleType, argv: Sequence[str] | None = None) -> int:
    """`python stages/<stage>.py [--params FILE] ARGS`: one command, parsed and run."""
    name = command.__name__.rpartition(".")[2].replace("_", "-")
    parser = argparse.ArgumentParser(prog=f"segbench {name}", description=command.HELP)
    add_params_option(parser)
    command.add_arguments(parser)
    return run_command(command.run, parser.parse_args(argv))
