"""segbench cluster-repro [TARGET ...]: `dvc repro` with the ready stages running concurrently on Dask."""
from __future__ import annotations

import argparse
import os

from ..errors import SegbenchError

HELP = "dvc repro with the ready stages running concurrently on a Dask cluster (pip install -e '.[cluster]')"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", help="stages (as `dvc repro TARGET`); default: every stage of dvc.yaml")
    parser.add_argument("-f", "--force", action="store_true", help="run every planned stage, changed or not")
    parser.add_argument("--dry", action="store_true", help="print what would run; run and record nothing")
    parser.add_argument("--downstream", action="store_true", help="the targets and the stages below them")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0, metavar="N",
                       help="a local cluster with N stage slots (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="attach to a running Dask scheduler (tcp://host:8786)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                        help="give up on an unreachable scheduler, or one without workers, after S seconds (default 10)")
    parser.add_argument("--no-shared-fs", action="store_true",
                        help="workers do not see this workspace: each uses its own clone ($SEGBENCH_CLONE) at this "
                             "commit, pulling inputs from and pushing outputs to the DVC remote (docs/cluster.md)")
    parser.add_argument("--remote", metavar="NAME", help="with --no-shared-fs: the DVC remote (default: the project's default)")
    parser.add_argument("--root", default=".", metavar="DIR",
                        help="the DVC project; runs as if started there, like `dvc --cd DIR` (default: here)")


def run(args: argparse.Namespace) -> None:
    try:
        from ..cluster.repro import cluster_repro, summary
    except ImportError as exc:
        raise SegbenchError(f"cluster-repro needs Dask ({exc.name} is missing): pip install -c requirements.lock "
                            "-e '.[cluster]'") from None
    if args.workers < 0:
        raise SegbenchError(f"--workers {args.workers}: give a positive number of stage slots")
    if args.remote and not args.no_shared_fs:
        raise SegbenchError(f"--remote {args.remote}: only with --no-shared-fs (shared-file-system workers use no remote)")
    if not os.path.isdir(args.root):
        raise SegbenchError(f"--root {args.root}: no such directory")
    os.chdir(args.root)  # as `dvc --cd`: stage names, paths and logs read as they would from there
    outcome = cluster_repro(".", args.targets, force=args.force, dry=args.dry, downstream=args.downstream,
                            workers=args.workers, scheduler=args.scheduler,
                            connect_timeout_s=args.connect_timeout, shared_fs=not args.no_shared_fs,
                            remote=args.remote)
    if outcome is None:
        return
    print(summary(outcome))
    if outcome.failed:
        raise SegbenchError(f"{len(outcome.failed)} stage(s) failed: {', '.join(outcome.failed)}; the others are "
                            "recorded in dvc.lock, a re-run does only what is left")
