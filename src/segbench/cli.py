"""Command line: dispatch only. Each command lives in its own module of segbench.commands.

    segbench download | preprocess | train MODEL SEED | evaluate MODEL SEED | aggregate MODEL | profile MODEL | plot
    segbench check                 validate params.yaml and exit
    segbench generate OUT ...      write a synthetic dataset anywhere
    segbench html-template [OUT]   write the offline page `dvc plots show` fills (the plot stage does too)
    segbench cluster-repro [TARGET ...]   dvc repro on a Dask cluster (docs/cluster.md)

The DVC stage scripts in stages/ run their own command module (segbench.commands.common.stage_main),
not this file, so editing one command re-runs only its stage.
"""
from __future__ import annotations

import argparse
import importlib

from .commands.common import add_params_option, run_command

# command -> module of segbench.commands, in the order `segbench --help` lists them
COMMANDS = {"check": "check", "download": "download", "preprocess": "preprocess", "train": "train",
            "evaluate": "evaluate", "aggregate": "aggregate", "profile": "profile", "plot": "plot",
            "model-code": "model_code", "environment": "environment",
            "html-template": "html_template", "generate": "generate",
            "diff": "diff", "cluster-repro": "cluster_repro", "demo": "demo"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbench", description="Reproducible segmentation benchmarks (PyTorch + DVC).")
    add_params_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        command = importlib.import_module(f"{__package__}.commands.{module}")
        command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.HELP))
        sub.choices[name].set_defaults(fn=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)
