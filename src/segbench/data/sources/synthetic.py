"""The embedded default dataset: procedurally generated scenes (segbench.data.sources.scenes),
written to disk by the download stage and read back like any other layout.

Files: `<split>/images/NNNNN.png`, `<split>/masks/NNNNN.png`, `<split>/depths/NNNNN.npy`
(float32 metres) and `classes.json`. Raw folders written before depth existed (no
`depths/`) still read, without depth.

Deterministic: sample i of a split depends only on (seed, split, i), so generation can be
parallel or partial and still give identical files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import DataError
from .base import SOURCES, SPLITS, RawDataset, Sample
from .depth import read_depth
from .masks import read_index_mask
from .scenes import class_names, generate_scene


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def generate(dest: Path, *, seed: int, sizes: dict[str, int], height: int, width: int, num_classes: int) -> None:
    """Write `dest/<split>/{images,masks}/NNNNN.png`, `dest/<split>/depths/NNNNN.npy` and `dest/classes.json`."""
    names = class_names(num_classes)
    for split, count in sizes.items():
        for sub in ("images", "masks", "depths"):
            (dest / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            scene = generate_scene(sample_rng(seed, split, i), height, width, num_classes)
            Image.fromarray(scene.image).save(dest / split / "images" / f"{i:05d}.png", compress_level=1)
            Image.fromarray(scene.mask).save(dest / split / "masks" / f"{i:05d}.png", compress_level=1)
            np.save(dest / split / "depths" / f"{i:05d}.npy", scene.depth, allow_pickle=False)
    (dest / "classes.json").write_text(json.dumps(names) + "\n")


class SyntheticSource:
    layout = ("synthetic: <split>/images/*.png + <split>/masks/*.png (+ <split>/depths/*.npy) and classes.json "
              "(written by the download stage)")

    def generate(self, params, dest: Path) -> None:
        cfg = params.data.synthetic
        generate(dest, seed=params.seed, sizes={"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
                 height=cfg.height, width=cfg.width, num_classes=cfg.num_classes)

    def read(self, params, root: Path) -> RawDataset:
        classes_file = root / "classes.json"
        if not classes_file.is_file():
            raise DataError(f"{classes_file}: missing; the download stage did not finish (run dvc repro)")
        names = tuple(json.loads(classes_file.read_text()))
        # raw folders generated before depth existed have no depths/: they read without depth
        has_depth = (root / "train" / "depths").is_dir()
        splits = {}
        for split in SPLITS:
            images = sorted((root / split / "images").glob("*.png"))
            splits[split] = [Sample(p, root / split / "masks" / p.name,
                                    root / split / "depths" / f"{p.stem}.npy" if has_depth else None) for p in images]
        return RawDataset(class_names=names, splits=splits, decode_mask=read_index_mask,
                          decode_depth=read_depth if has_depth else None)


SOURCES.add("synthetic", SyntheticSource())
