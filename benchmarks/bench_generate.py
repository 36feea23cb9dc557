"""How long the embedded default dataset takes to generate, and what it looks like.

    python benchmarks/bench_generate.py [--params params.yaml]

Prints generation wall time for the sizes in params.yaml (target: < 20 s), the class
shares of the training masks, and the mIoU of the per-pixel class prior on the val split.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segbench.config import load_params
from segbench.data.sources.scenes import class_names
from segbench.data.sources.synthetic import generate
from segbench.metrics import ConfusionMatrix


def read_masks(root: Path, split: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted((root / split / "masks").glob("*.png"))])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = params.data.synthetic
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        generate(root, seed=params.seed, sizes={"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
                 height=cfg.height, width=cfg.width, num_classes=cfg.num_classes)
        elapsed = time.perf_counter() - start
        train, val = read_masks(root, "train"), read_masks(root, "val")
    names = class_names(cfg.num_classes)
    share = np.bincount(train.ravel(), minlength=len(names)) / train.size
    prior = np.stack([(train == c).mean(0) for c in range(len(names))]).argmax(0)
    cm = ConfusionMatrix(len(names))
    cm.update(torch.from_numpy(np.broadcast_to(prior, val.shape).copy()), torch.from_numpy(val))
    total = cfg.num_train + cfg.num_val + cfg.num_test
    print(f"generated {total} images of {cfg.height}x{cfg.width} in {elapsed:.2f} s (target < 20 s)")
    print("class shares (train): " + ", ".join(f"{n} {s:.1%}" for n, s in zip(names, share)))
    print(f"per-pixel prior mIoU (val): {cm.scores().miou:.4f} (target <= 0.25)")


if __name__ == "__main__":
    main()
