"""`segbench aggregate MODEL` (stage `aggregate@MODEL`): summarise one model's seeds."""
from __future__ import annotations

import argparse

from .common import add_model_argument, load_params

HELP = "stage: summarise one model's seeds (mean, sd, 95 percent CI)"  # no "%": argparse formats `help` and not `description`


add_arguments = add_model_argument


def run(args: argparse.Namespace) -> None:
    from ..aggregate import aggregate_model

    params = load_params(args)
    params.model(args.model)
    summary = aggregate_model(args.model, params.seeds, dpi=params.plot.dpi)
    miou = summary["eval"]["miou"]
    spread = (f" +- {miou['ci95_high'] - miou['mean']:.4f} (95% CI over {miou['n']} seeds)" if miou["n"] > 1
              else " (1 seed: no interval)")
    print(f"{args.model}: test mIoU {miou['mean']:.4f}{spread}")
