"""`segbench diff [A] [B]`: what changed between two revisions, and whether it is real.

A and B: git revisions, branches, tags or DVC experiment names; by default HEAD and the workspace,
as `dvc metrics diff`. Exit status: 0; 1 with `--fail-on worse` when a model is significantly
worse; 2 for a bad revision or half-present metrics (one line on stderr).
"""
from __future__ import annotations

import argparse

HELP = "compare two revisions' metrics and say which changes are beyond noise (default: HEAD against the workspace)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", nargs="?", default="HEAD", help="the old revision: commit, branch, tag or experiment (HEAD)")
    parser.add_argument("b", nargs="?", default="workspace", help="the new revision (workspace: the working tree)")
    parser.add_argument("--all", dest="every", action="store_true", help="every score and cost with its interval")
    style = parser.add_mutually_exclusive_group()
    style.add_argument("--md", action="store_true", help="Markdown, for a pull-request comment")
    style.add_argument("--json", action="store_true", help="JSON, for programs")
    parser.add_argument("--fail-on", choices=["worse"], help="exit 1 when a model is significantly worse (for CI)")
    parser.add_argument("--exps", action="store_true",
                        help="every DVC experiment against A (default HEAD): the params it set, the models it changed")
    parser.add_argument("--resamples", type=_resamples, default=None,
                        help="test-image bootstrap resamples (default: params plot.bootstrap, else 2000)")
    parser.add_argument("--retime", action="store_true",
                        help="re-time both revisions' models side by side, interleaved, on this machine now, and "
                             "give their latencies a verdict (timings from two runs are otherwise not comparable)")
    parser.add_argument("--rounds", type=_resamples, default=5, help="--retime: interleaved rounds per revision (5)")


def _resamples(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of at least 2")
    return int(text)


def run(args: argparse.Namespace) -> None:
    from ..revisions import render
    from ..revisions.compare import compare_experiments, compare_revisions
    from ..revisions.read import RevisionError

    if args.exps:
        if args.b != "workspace":
            raise RevisionError(f"--exps compares every experiment with one baseline; got two revisions ({args.a}, {args.b})")
        baseline, summaries = compare_experiments(args.a, params_file=args.params, resamples=args.resamples)
        out = render.experiments_json(baseline, summaries) if args.json else render.experiments_text(baseline, summaries, args.md)
        worse = [s.name for s in summaries if s.models("worse")]
    else:
        diff = compare_revisions(args.a, args.b, params_file=args.params, resamples=args.resamples)
        out = render.as_json(diff) if args.json else render.markdown(diff) if args.md else render.text(diff, args.every)
        worse = diff.worse()
        if args.retime:
            from ..revisions.retime import render as retimed
            from ..revisions.retime import retime

            rows = retime(args.a, args.b, rounds=args.rounds, params_file=args.params)
            out = _with_json(out, rows) if args.json else out + "\n\n" + retimed(rows, args.a, args.b, args.rounds)
    _print(out)
    if args.fail_on == "worse" and worse:
        raise SystemExit(1)


def _with_json(text: str, rows: list) -> str:
    """The JSON output with the re-timed rows under "retimed"."""
    import dataclasses
    import json

    return json.dumps({**json.loads(text), "retimed": [dataclasses.asdict(r) for r in rows]}, indent=2)


def _print(text: str) -> None:
    """Print; a reader that stops early (`| head`) is not an error."""
    import os
    import sys

    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
