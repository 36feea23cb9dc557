"""The preprocess stage: decode and resize every sample once into a compact cache.

Cache layout (data/processed):
    <split>_images.npy   uint8, N x H x W x 3
    <split>_masks.npy    uint8, N x H x W (class index, ignore_index for void)
    manifest.json        class names, image size, split sizes, per-class pixel counts of the
                         training split, per-channel mean/std of the training images
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..fsutil import atomic_dir
from ..io import save_npy, write_json
from .sources import SOURCES, SPLITS, RawDataset, Sample


def _load_pair(sample: Sample, size: tuple[int, int], decode_mask, num_classes: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    try:
        with Image.open(sample.image) as im:
            image = im.convert("RGB")
            if image.size != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            image = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(f"{sample.image}: unreadable image ({exc})") from None
    if not sample.mask.is_file():
        raise DataError(f"{sample.mask}: mask missing for image {sample.image.name}")
    try:
        mask = decode_mask(sample.mask)
    except (OSError, ValueError) as exc:
        raise DataError(f"{sample.mask}: unreadable mask ({exc})") from None
    if mask.ndim != 2:
        raise DataError(f"{sample.mask}: mask has shape {mask.shape}; expected a single-channel class-index image")
    if mask.shape != (h, w):
        mask = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.NEAREST))
    bad = (mask >= num_classes) & (mask != ignore_index)
    if bad.any():
        raise DataError(f"{sample.mask}: class index {int(mask[bad][0])} out of range; expected 0..{num_classes - 1} or {ignore_index} (ignore)")
    return image, mask.astype(np.uint8)


def _load_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    samples, size, decode_mask, num_classes, ignore_index = args
    pairs = [_load_pair(s, size, decode_mask, num_classes, ignore_index) for s in samples]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _load_split(samples: list[Sample], size, raw: RawDataset, ignore_index: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(raw.class_names)
    chunks = [samples[i:i + 64] for i in range(0, len(samples), 64)]
    jobs = [(c, size, raw.decode_mask, n, ignore_index) for c in chunks]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_load_chunk, jobs))
    else:
        parts = [_load_chunk(j) for j in jobs]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def preprocess(params, raw_dir: Path, out_dir: Path, workers: int | None = None) -> dict:
    cfg = params.data
    source = SOURCES.get(cfg.dataset, "data.dataset")
    raw = source.read(params, raw_dir)
    workers = workers or min(4, os.cpu_count() or 1)
    manifest = {"dataset": cfg.dataset, "class_names": list(raw.class_names), "num_classes": len(raw.class_names),
                "image_size": list(cfg.image_size), "ignore_index": cfg.ignore_index, "splits": {}}
    with atomic_dir(out_dir) as staging:
        for split in SPLITS:
            samples = raw.splits.get(split, [])
            if not samples:
                raise DataError(f"{raw_dir}: split {split!r} has no samples")
            images, masks = _load_split(samples, cfg.image_size, raw, cfg.ignore_index, workers)
            save_npy(staging / f"{split}_images.npy", images)
            save_npy(staging / f"{split}_masks.npy", masks)
            manifest["splits"][split] = len(samples)
            if split == "train":
                counts = np.bincount(masks.ravel(), minlength=256)
                manifest["class_pixels"] = {name: int(counts[i]) for i, name in enumerate(raw.class_names)}
                pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
                manifest["mean"], manifest["std"] = pixels.mean(0).tolist(), np.maximum(pixels.std(0), 1e-3).tolist()
        write_json(staging / "manifest.json", manifest)
    return manifest
