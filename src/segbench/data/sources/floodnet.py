"""dataset: floodnet -- FloodNet aerial imagery (UAV, post-hurricane), as
`{train,test}/image/*.jpg` with index-PNG masks `{train,test}/mask/<stem>.png` or
`<stem>_lab.png` (FloodNet's own naming).

8 classes, mask value = index: background, building, road, water, tree, vehicle, pool,
grass. (The original FloodNet labelling has 10: building and road each split into flooded
and non-flooded. Such masks are not this layout; their values 8 and 9 are reported.)

Splits: train and test; a `val/image` + `val/mask` folder is used when present, otherwise
preprocess makes val from train.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ...errors import DataError
from .base import SOURCES, RawDataset, Sample, list_images, locate
from .masks import read_index_mask

CLASSES = ("background", "building", "road", "water", "tree", "vehicle", "pool", "grass")
LAYOUT = "floodnet: {train,test}/image/*.jpg + {train,test}/mask/<stem>.png or <stem>_lab.png"


def decode_floodnet_mask(path: Path, ignore_index: int) -> np.ndarray:
    mask = read_index_mask(path)
    bad = (mask >= len(CLASSES)) & (mask != ignore_index)
    if bad.any():
        raise DataError(f"{path}: class index {int(mask[bad][0])} out of range; expected 0..{len(CLASSES) - 1} "
                        f"({', '.join(CLASSES)}) or {ignore_index} (ignore); masks with the 10 original FloodNet "
                        "classes (flooded/non-flooded building and road) need remapping first")
    return mask


def _pair(images: list[Path], mask_dir: Path) -> list[Sample]:
    masks = {p.stem: p for p in list_images(mask_dir)}
    samples = []
    for image in images:
        mask = masks.get(image.stem) or masks.get(f"{image.stem}_lab")
        if mask is None:
            raise DataError(f"{image}: image has no mask in {mask_dir}; expected {image.stem}.png or {image.stem}_lab.png")
        samples.append(Sample(image, mask))
    return samples


class FloodNetSource:
    layout = LAYOUT

    def read(self, params, root: Path) -> RawDataset:
        folder = locate(root, ("train/image", "train/mask"), self.layout)
        splits = {}
        for split in ("train", "val", "test"):
            image_dir, mask_dir = folder / split / "image", folder / split / "mask"
            if not image_dir.is_dir():
                continue
            if not mask_dir.is_dir():
                raise DataError(f"{mask_dir}: missing (the masks of {image_dir}); expected {self.layout}")
            splits[split] = _pair(list_images(image_dir), mask_dir)
        if not splits["train"]:
            raise DataError(f"{folder / 'train' / 'image'}: no images; expected {self.layout}")
        return RawDataset(class_names=CLASSES, splits=splits,
                          decode_mask=partial(decode_floodnet_mask, ignore_index=params.data.ignore_index))


SOURCES.add("floodnet", FloodNetSource())
