"""The preprocess stage: decode, check and resize every sample once into a compact cache.

Cache layout (data/processed):
    <split>_images.npy   uint8, N x H x W x 3
    <split>_masks.npy    uint8, N x H x W (class index, ignore_index for void)
    manifest.json        class names, image size, split sizes and file names, per-class pixel
                         counts and frequencies per split, per-channel mean/std of the training
                         images, and how the splits were made

Samples are decoded in worker processes (data.workers) and written straight into the
output arrays, so memory holds one copy of the cache. Splits the dataset lacks are made
deterministically: "val" from "train" with data.val_fraction and seed; no "test" means
evaluation uses "val". data.subset keeps at most N samples per split, chosen by seed.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fsutil import atomic_dir
from ..io import open_memmap, write_json
from .download import raw_root
from .sources import SOURCES, SPLITS, RawDataset, Sample


def _resize(array: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    import cv2

    h, w = size
    if array.shape[:2] == (h, w):
        return array
    return cv2.resize(array, (w, h), interpolation=interpolation)


def load_pair(sample: Sample, raw: RawDataset, size: tuple[int, int], resize: str, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode, validate and resize one sample. Every problem is a one-line DataError naming the file."""
    import cv2

    num_classes = len(raw.class_names)
    try:
        image = raw.decode_image(sample.image)
    except DataError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise DataError(f"{sample.image}: unreadable image ({type(exc).__name__}: {exc}); re-download or remove it") from None
    if sample.mask is None or not Path(sample.mask).is_file():
        raise DataError(f"{sample.image}: image has no mask (expected {sample.mask})")
    try:
        mask = raw.decode_mask(sample.mask)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{sample.mask}: unreadable mask ({type(exc).__name__}: {exc})") from None
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{sample.image}: decoded to shape {image.shape}; expected H x W x 3")
    if mask.ndim != 2:
        raise DataError(f"{sample.mask}: mask has shape {mask.shape}; expected a single-channel class-index image")
    if mask.shape != image.shape[:2]:
        raise DataError(f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {sample.image.name} is "
                        f"{image.shape[1]}x{image.shape[0]} (width x height); they must match")
    bad = (mask >= num_classes) & (mask != ignore_index)
    if bad.any():
        values = np.unique(mask[bad])
        raise DataError(f"{sample.mask}: class index {int(values[0])} out of range ({len(values)} bad values, "
                        f"{int(bad.sum())} pixels); expected 0..{num_classes - 1} or {ignore_index} (data.ignore_index)")
    h, w = size
    down = h <= image.shape[0] and w <= image.shape[1]
    interp = cv2.INTER_AREA if resize == "area" and down else cv2.INTER_LINEAR
    return _resize(image, size, interp), _resize(mask.astype(np.uint8), size, cv2.INTER_NEAREST)


def _load_chunk(args) -> tuple[int, np.ndarray, np.ndarray]:
    start, samples, raw, size, resize, ignore_index = args
    pairs = [load_pair(s, raw, size, resize, ignore_index) for s in samples]
    return start, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _load_split(samples: list[Sample], raw: RawDataset, cfg, workers: int, images: np.ndarray, masks: np.ndarray) -> None:
    n = len(samples)
    step = max(1, min(32, -(-n // (workers * 4))))
    jobs = [(i, samples[i:i + step], raw, tuple(cfg.image_size), cfg.resize, cfg.ignore_index) for i in range(0, n, step)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_load_chunk, jobs)
            for start, im, ma in results:
                images[start:start + len(im)], masks[start:start + len(ma)] = im, ma
    else:
        for job in jobs:
            start, im, ma = _load_chunk(job)
            images[start:start + len(im)], masks[start:start + len(ma)] = im, ma


def _rng(seed: int, *words: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(int.from_bytes(w.encode(), "little") % (2**32) for w in words)])


def make_splits(raw: RawDataset, *, seed: int, val_fraction: float, subset: int | None, where: str) -> tuple[dict[str, list[Sample]], dict]:
    """The dataset's own splits, a val split carved from train if missing, then the subset."""
    splits = {k: list(v) for k, v in raw.splits.items() if k in SPLITS}
    for split, samples in splits.items():
        if not samples:
            raise DataError(f"{where}: split {split!r} is empty (no images found); add images or remove the folder")
    if "train" not in splits:
        raise DataError(f"{where}: no training split found")
    info = {"val_from_train": False}
    if "val" not in splits:
        train = splits["train"]
        if len(train) < 2:
            raise DataError(f"{where}: {len(train)} training sample(s); need >= 2 to carve a validation split")
        n_val = min(len(train) - 1, max(1, round(len(train) * val_fraction)))
        order = _rng(seed, "val").permutation(len(train))
        val_idx = set(order[:n_val].tolist())
        splits["val"] = [s for i, s in enumerate(train) if i in val_idx]
        splits["train"] = [s for i, s in enumerate(train) if i not in val_idx]
        info = {"val_from_train": True, "val_fraction": val_fraction}
    if subset is not None:
        for split, samples in splits.items():
            if len(samples) > subset:
                keep = np.sort(_rng(seed, "subset", split).choice(len(samples), subset, replace=False))
                splits[split] = [samples[i] for i in keep]
        info["subset"] = subset
    return {k: splits[k] for k in SPLITS if k in splits}, info


def _class_stats(masks: np.ndarray, names: tuple[str, ...], ignore_index: int) -> dict:
    counts = np.zeros(256, np.int64)
    for m in masks:  # per image: bincount of a flat view needs no temporary copy of the split
        counts += np.bincount(m.ravel(), minlength=256)
    labelled = counts[: len(names)].sum()
    return {"pixels": {name: int(counts[i]) for i, name in enumerate(names)},
            "frequency": {name: (float(counts[i] / labelled) if labelled else 0.0) for i, name in enumerate(names)},
            "ignored_pixels": int(counts[ignore_index])}


def _channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1], in blocks (the split may not fit in memory as float64)."""
    total, squares = np.zeros(3), np.zeros(3)
    for i in range(0, len(images), 64):
        block = images[i:i + 64].reshape(-1, 3).astype(np.float64) / 255.0
        total += block.sum(0)
        squares += (block ** 2).sum(0)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def preprocess(params, raw_dir: Path, out_dir: Path, workers: int | None = None) -> dict:
    cfg = params.data
    source = SOURCES.get(cfg.dataset, "data.dataset")
    root = raw_root(params, raw_dir)
    raw = source.read(params, root)
    splits, split_info = make_splits(raw, seed=params.seed, val_fraction=cfg.val_fraction, subset=cfg.subset, where=str(root))
    workers = workers or cfg.workers or min(8, os.cpu_count() or 1)
    h, w = cfg.image_size
    manifest = {"dataset": cfg.dataset, "class_names": list(raw.class_names), "num_classes": len(raw.class_names),
                "image_size": [h, w], "ignore_index": cfg.ignore_index, "splits": {}, **split_info,
                "class_pixels_by_split": {}, "class_frequency_by_split": {}, "ignored_pixels": {}, "files": {}}
    with atomic_dir(out_dir) as staging:
        for split, samples in splits.items():
            n = len(samples)
            images = open_memmap(staging / f"{split}_images.npy", np.uint8, (n, h, w, 3))
            masks = open_memmap(staging / f"{split}_masks.npy", np.uint8, (n, h, w))
            _load_split(samples, raw, cfg, workers, images, masks)
            images.flush()
            masks.flush()
            stats = _class_stats(masks, raw.class_names, cfg.ignore_index)
            manifest["splits"][split] = n
            manifest["class_pixels_by_split"][split] = stats["pixels"]
            manifest["class_frequency_by_split"][split] = stats["frequency"]
            manifest["ignored_pixels"][split] = stats["ignored_pixels"]
            manifest["files"][split] = [_relative(s.image, root) for s in samples]
            if split == "train":
                manifest["class_pixels"], manifest["class_frequency"] = stats["pixels"], stats["frequency"]
                manifest["mean"], manifest["std"] = _channel_stats(images)
            del images, masks
        write_json(staging / "manifest.json", manifest)
    return manifest
