"""`segbench train MODEL SEED` (stage `train@MODEL-SEED`): train one model with one seed."""
from __future__ import annotations

import argparse
import sys

from .. import paths
from .common import add_model_seed_arguments, load_params

HELP = "stage: train one model with one seed"


add_arguments = add_model_seed_arguments


def run(args: argparse.Namespace) -> None:
    from ..distributed import inside_torchrun, process_group, run_under_torchrun
    from ..engine import train_and_save

    params = load_params(args)
    spec = params.model(args.model)
    seed = params.seed_of(args.seed)
    if spec.train.launcher == "torchrun" and not inside_torchrun():
        from ..data.dataset import load_manifest

        load_manifest(paths.PROCESSED_DIR)  # a missing cache is one line here, not one per rank
        code = run_under_torchrun(spec.train.nproc, ["--params", args.params, "train", args.model, str(seed)])
        if code:
            raise SystemExit(code)
        return
    with process_group(spec.train.device) as dist:
        metrics = train_and_save(spec, paths.PROCESSED_DIR, paths.checkpoint_path(args.model, seed), seed=seed,
                                 log_dir=paths.train_log_dir(args.model, seed), augmentation=params.augmentation,
                                 metrics_path=paths.seed_metrics_path(args.model, seed, "train"), dist=dist)
    if dist.is_main:
        _report(args.model, seed, metrics, dist.world_size)


def _report(model: str, seed: int, metrics: dict, world_size: int) -> None:
    if metrics["contention"]["contended"]:
        from ..contention import contention_warning

        print(contention_warning(metrics["contention"], f"training {model} seed {seed}"), file=sys.stderr)
    ranks = f" on {world_size} processes" if world_size > 1 else ""
    depth = f", depth RMSE {metrics['best_val_depth_rmse']:.3f} m" if "best_val_depth_rmse" in metrics else ""
    print(f"{model} seed {seed}: best val mIoU {metrics['best_val_miou']:.4f}{depth} at epoch {metrics['best_epoch']} "
          f"in {metrics['train_time_s']:.1f} s{ranks}")
