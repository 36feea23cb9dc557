"""`segbench preprocess` (stage `preprocess`): decode and resize the raw dataset into the cache."""
from __future__ import annotations

import argparse
import time

from .. import paths
from .common import load_params

HELP = "stage: decode + resize into the cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from ..data.preprocess import preprocess

    start = time.perf_counter()
    manifest = preprocess(load_params(args), paths.RAW_DIR, paths.PROCESSED_DIR)
    carved = [s for s in ("test", "val") if manifest.get(f"{s}_from_train")]
    made = f" ({' and '.join(carved)} carved from train)" if carved else ""
    for split, count in manifest["unlabelled_splits"].items():
        print(f"{split}: {count} images without masks: not evaluated (nothing to score them against)")
    print(f"preprocessed {manifest['dataset']} {manifest['splits']}{made} at {manifest['image_size']} into "
          f"{paths.PROCESSED_DIR} in {time.perf_counter() - start:.1f} s")
