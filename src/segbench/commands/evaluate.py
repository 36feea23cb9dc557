"""`segbench evaluate MODEL SEED` (stage `evaluate@MODEL-SEED`): score one seed's checkpoint."""
from __future__ import annotations

import argparse

from .. import paths
from .common import add_model_seed_arguments, load_params

HELP = "stage: score one model's checkpoint of one seed"


add_arguments = add_model_seed_arguments


def run(args: argparse.Namespace) -> None:
    from ..evaluate import evaluate_checkpoint
    from ..io import save_npz, smallest_exact, write_json

    params = load_params(args)
    params.model(args.model)
    seed = params.seed_of(args.seed)
    cfg = params.evaluate
    result = evaluate_checkpoint(paths.checkpoint_path(args.model, seed), paths.PROCESSED_DIR, cfg.split, cfg.batch_size,
                                 params.train.device, samples=cfg.samples, ap_bins=cfg.ap_bins,
                                 train_subset=cfg.train_subset)
    # In git beside eval.json (a few KB a seed): `segbench diff` on a fresh clone resamples them.
    per_image = {name: smallest_exact(value) for name, value in result.per_image.items()}
    save_npz(paths.per_image_path(args.model, seed), confusion=smallest_exact(result.confusion.matrix.numpy()),
             class_names=result.class_names, **per_image)
    save_npz(paths.samples_path(args.model, seed), **result.samples.arrays())  # aggregate draws every seed's
    write_json(paths.seed_metrics_path(args.model, seed, "eval"), result.report)
    report = result.report
    note = "" if report["split_source"] == "the dataset's own" else f" ({report['split_source']})"
    depth = ""
    if "depth_rmse" in report:
        depth = (f", depth RMSE {report['depth_rmse']:.3f} m (mean-depth predictor "
                 f"{report['depth_rmse_mean_baseline']:.3f} m)")
    train = f", train mIoU {report['train_miou']:.4f}" if "train_miou" in report else ""
    print(f"{args.model} seed {seed}: {result.split} mIoU {report['miou']:.4f}{train}, mAP {report['map']:.4f}{depth}{note}")
