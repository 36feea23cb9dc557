"""`segbench html-template [OUT]`: write the offline page `dvc plots show` fills (the plot stage does too)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import paths

HELP = "write the offline page template `dvc plots show` uses (no CDN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", default=str(paths.REPORT_TEMPLATE))


def run(args: argparse.Namespace) -> None:
    from ..html_template import write_template

    print(f"wrote {write_template(Path(args.out))} (the page `dvc plots show` fills; plots.html_template in .dvc/config)")
