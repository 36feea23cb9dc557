"""CamVid in the SegNet layout: train/ trainannot/ val/ valannot/ test/ testannot/.

Images are RGB (PNG or JPEG), masks single-channel PNGs matched by file stem. 11 classes;
index 11 is void (unlabelled) and becomes the ignore label. Any other value above 10 is an
error (preprocess reports the file).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from .base import SOURCES, RawDataset, list_images, locate, pair_by_stem
from .masks import read_index_mask

CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist")
VOID = 11
DIRS = {"train": ("train", "trainannot"), "val": ("val", "valannot"), "test": ("test", "testannot")}


def decode_camvid_mask(path: Path, ignore_index: int) -> np.ndarray:
    mask = read_index_mask(path)
    if ignore_index != VOID:
        mask = mask.copy()
        mask[mask == VOID] = ignore_index
    return mask


class CamVidSource:
    layout = "camvid: train/, trainannot/, val/, valannot/, test/, testannot/ (SegNet layout, masks matched by stem)"

    def read(self, params, root: Path) -> RawDataset:
        root = locate(Path(root), ("train", "trainannot"), self.layout)
        splits = {}
        for split, (images, masks) in DIRS.items():
            if not (root / images).is_dir():
                continue
            mask_dir = root / masks
            mask_files = list_images(mask_dir) if mask_dir.is_dir() else []
            splits[split] = pair_by_stem(list_images(root / images), mask_files, str(mask_dir))
        return RawDataset(class_names=CLASSES, splits=splits,
                          decode_mask=partial(decode_camvid_mask, ignore_index=params.data.ignore_index))


SOURCES.add("camvid", CamVidSource())
