"""How fast is the data path? Preprocess throughput and the share of training spent waiting on data.

    python benchmarks/bench_data.py [--camvid ../shared/datasets/camvid] [--size 180 240] [--steps 20]

1. Preprocess CamVid (701 images, 480x360) to --size with 1 worker and with one per core,
   side by side in one run (target: <= 30 s on 2 cores).
2. Train a UNet on that cache with segbench's loop at the default settings (batch 8,
   num_workers 0) without and with augmentation, and report the data-wait share of step
   time as train.json computes it (target: <= 5%).
Prints tables; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from segbench.config import AugmentConfig, params_from_dict
from segbench.data.dataset import SegmentationCache
from segbench.data.preprocess import preprocess
from segbench.engine import train_one_epoch
from segbench.losses import Criterion, Term, build_loss
from segbench.models import build_model

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", default=str(REPO.parent / "shared" / "datasets" / "camvid"))
    parser.add_argument("--size", type=int, nargs=2, default=(180, 240))
    parser.add_argument("--steps", type=int, default=20, help="training steps per measurement")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    if not Path(args.camvid, "trainannot").is_dir():
        print(f"CamVid not found at {args.camvid}", file=sys.stderr)
        return 1
    raw = {"seed": 0, "data": {"dataset": "camvid", "path": args.camvid, "image_size": list(args.size)},
           "models": {"unet": {"arch": "unet"}}}
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        print(f"preprocess CamVid -> {args.size[0]}x{args.size[1]} ({cores} cores)")
        print(f"{'workers':>8} {'images':>7} {'seconds':>8} {'images/s':>9}")
        cache = None
        for workers in sorted({1, cores}):
            cfg = copy.deepcopy(raw)
            cfg["data"]["workers"] = workers
            out = Path(tmp) / f"processed_{workers}"
            start = time.perf_counter()
            manifest = preprocess(params_from_dict(cfg), Path(tmp) / "raw", out)
            seconds = time.perf_counter() - start
            n = sum(manifest["splits"].values())
            print(f"{workers:>8} {n:>7} {seconds:>8.2f} {n / seconds:>9.1f}")
            cache = out

        print(f"\ntraining data wait (unet, batch {args.batch}, num_workers 0, {args.steps} steps, "
              f"{torch.get_num_threads()} threads)")
        print(f"{'augment':>8} {'step s':>8} {'wait s':>8} {'wait %':>7}")
        for augment in (None, AugmentConfig()):
            data = SegmentationCache(cache, "train", augment=augment, seed=0)
            subset = Subset(data, range(min(len(data), args.steps * args.batch)))
            loader = DataLoader(subset, batch_size=args.batch, shuffle=True, generator=torch.Generator().manual_seed(0))
            torch.manual_seed(0)
            model = build_model("unet", len(data.class_names))
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            loss = Criterion({"mask": Term(build_loss("cross_entropy", data.manifest["ignore_index"]))})
            stats = train_one_epoch(model, loader, loss, optimizer, torch.device("cpu"), 1)
            share = stats.data_wait_s / (stats.data_wait_s + stats.step_time_s)
            print(f"{'on' if augment else 'off':>8} {stats.step_time_s:>8.2f} {stats.data_wait_s:>8.3f} {100 * share:>6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
