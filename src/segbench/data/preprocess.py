"""The preprocess stage: decode, check and resize every sample once into a compact cache.

Cache layout (data/processed):
    <split>_images.npy   uint8, N x H x W x 3
    <split>_masks.npy    uint8, N x H x W (class index, ignore_index for void)
    <split>_depths.npy   float32, N x H x W metres, 0 = no depth (only for datasets with depth)
    manifest.json        class names, image size, split sizes and file names, per-class pixel
                         counts and frequencies per split, per-channel mean/std of the training
                         images, and how the splits were made; `has_depth`, and with depth:
                         `depth` (unit, mean, std, min, max over the valid training pixels)
                         and `depth_valid_fraction` per split

Depth maps are resized with nearest neighbour, like masks: a blend would invent depths
between an object and what it occludes, or between a valid depth and a 0 ("no depth").

Samples are decoded in worker processes (data.workers) and written straight into the
output arrays, so memory holds one copy of the cache. Splits the dataset lacks are made
deterministically from "train" with the seed: first "test" (data.test_fraction), so the split a
number is reported on is never the one that selected the epoch, then "val" (data.val_fraction).
A split whose images have no masks (challenge test sets) is left out and named in the manifest. data.subset keeps at most N samples per split, chosen by seed.
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
from .sources import SOURCES, SPLITS, RawDataset, Sample, ignore_index_problem
from .sources.depth import sanitize


def _resize(array: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    import cv2

    h, w = size
    if array.shape[:2] == (h, w):
        return array
    return cv2.resize(array, (w, h), interpolation=interpolation)


def _decoded(decode, path: Path, what: str, hint: str = "") -> np.ndarray:
    """decode(path); any failure but our own DataError becomes one line naming the file."""
    try:
        return decode(path)
    except DataError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise DataError(f"{path}: unreadable {what} ({type(exc).__name__}: {exc}){hint}") from None


def decode_pair(sample: Sample, raw: RawDataset, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode and validate one sample's image and mask, at their own size.
    Every problem is a one-line DataError naming the file."""
    num_classes = len(raw.class_names)
    image = _decoded(raw.decode_image, sample.image, "image", "; re-download or remove it")
    if sample.mask is None or not Path(sample.mask).is_file():
        raise DataError(f"{sample.image}: image has no mask (expected {sample.mask})")
    mask = _decoded(raw.decode_mask, sample.mask, "mask")
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
    return image, mask


def _resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int], resize: str) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = size
    down = h <= image.shape[0] and w <= image.shape[1]
    interp = cv2.INTER_AREA if resize == "area" and down else cv2.INTER_LINEAR
    return _resize(image, size, interp), _resize(mask.astype(np.uint8), size, cv2.INTER_NEAREST)


def load_sample(sample: Sample, raw: RawDataset, size: tuple[int, int], resize: str, ignore_index: int,
                with_depth: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Decode, validate and resize one sample, plus its depth map (checked against the image's own size)
    when `with_depth`. Every problem is a one-line DataError naming the file."""
    image, mask = decode_pair(sample, raw, ignore_index)
    depth = load_depth(sample, raw, image.shape[:2], size) if with_depth else None
    return (*_resize_pair(image, mask, size, resize), depth)


def load_depth(sample: Sample, raw: RawDataset, image_shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Decode, validate and resize (nearest) one sample's depth map -> H x W float32 metres, 0 = no depth."""
    import cv2

    if sample.depth is None or not Path(sample.depth).is_file():
        raise DataError(f"{sample.image}: image has no depth map (expected {sample.depth})")
    depth = np.asarray(_decoded(raw.decode_depth, sample.depth, "depth map"))
    if depth.ndim != 2:
        raise DataError(f"{sample.depth}: depth map has shape {depth.shape}; expected a 2-D H x W map in metres")
    if depth.shape != tuple(image_shape):
        raise DataError(f"{sample.depth}: depth map is {depth.shape[1]}x{depth.shape[0]} but its image {sample.image.name} "
                        f"is {image_shape[1]}x{image_shape[0]} (width x height); they must match")
    return _resize(sanitize(depth), size, cv2.INTER_NEAREST)


def _load_chunk(args) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None]:
    start, samples, raw, size, resize, ignore_index, with_depth = args
    loaded = [load_sample(s, raw, size, resize, ignore_index, with_depth) for s in samples]
    images, masks = np.stack([x[0] for x in loaded]), np.stack([x[1] for x in loaded])
    return start, images, masks, (np.stack([x[2] for x in loaded]) if with_depth else None)


def _load_split(samples: list[Sample], raw: RawDataset, cfg, workers: int, images: np.ndarray, masks: np.ndarray,
                depths: np.ndarray | None = None) -> None:
    n = len(samples)
    step = max(1, min(32, -(-n // (workers * 4))))
    jobs = [(i, samples[i:i + step], raw, tuple(cfg.image_size), cfg.resize, cfg.ignore_index, depths is not None)
            for i in range(0, n, step)]

    def store(start: int, im: np.ndarray, ma: np.ndarray, de: np.ndarray | None) -> None:
        images[start:start + len(im)], masks[start:start + len(ma)] = im, ma
        if de is not None:
            depths[start:start + len(de)] = de

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(_load_chunk, jobs):
                store(*result)
    else:
        for job in jobs:
            store(*_load_chunk(job))


def _rng(seed: int, *words: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(int.from_bytes(w.encode(), "little") % (2**32) for w in words)])


def _carve(train: list[Sample], fraction: float, seed: int, name: str, where: str) -> tuple[list[Sample], list[Sample]]:
    """(rest of train, `name` split): a seeded `fraction` of train, at least one sample, never all."""
    if len(train) < 2:
        raise DataError(f"{where}: {len(train)} training sample(s); need >= 2 to carve a {name} split")
    n = min(len(train) - 1, max(1, round(len(train) * fraction)))
    chosen = set(_rng(seed, name).permutation(len(train))[:n].tolist())
    return [s for i, s in enumerate(train) if i not in chosen], [s for i, s in enumerate(train) if i in chosen]


def make_splits(raw: RawDataset, *, seed: int, val_fraction: float, subset: int | None, where: str,
                test_fraction: float = 0.1) -> tuple[dict[str, list[Sample]], dict]:
    """The dataset's own splits; a test split carved from train if missing (the reported number is
    never on the split that selected the epoch), then a val split if missing; then the subset."""
    splits = {k: list(v) for k, v in raw.splits.items() if k in SPLITS}
    for split, samples in splits.items():
        if not samples:
            raise DataError(f"{where}: split {split!r} is empty (no images found); add images or remove the folder")
    if "train" not in splits:
        raise DataError(f"{where}: no training split found")
    info: dict = {"test_from_train": False, "val_from_train": False}
    if "test" not in splits:
        splits["train"], splits["test"] = _carve(splits["train"], test_fraction, seed, "test", where)
        info.update(test_from_train=True, test_fraction=test_fraction)
    if "val" not in splits:
        splits["train"], splits["val"] = _carve(splits["train"], val_fraction, seed, "val", where)
        info.update(val_from_train=True, val_fraction=val_fraction)
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


def _depth_sums(depths: np.ndarray) -> tuple[int, float, float, float, float]:
    """(count, sum, sum of squares, min, max) of the valid (> 0) depths, in blocks, float64."""
    count, total, squares, lo, hi = 0, 0.0, 0.0, np.inf, -np.inf
    for i in range(0, len(depths), 64):
        block = np.asarray(depths[i:i + 64])
        valid = block[block > 0].astype(np.float64)
        if valid.size:
            count += valid.size
            total += float(valid.sum())
            squares += float((valid ** 2).sum())
            lo, hi = min(lo, float(valid.min())), max(hi, float(valid.max()))
    return count, total, squares, lo, hi


def _depth_stats(sums: tuple[int, float, float, float, float]) -> dict:
    """Mean, std, min and max (metres) of the valid pixels from their _depth_sums; all 0 when there are none."""
    count, total, squares, lo, hi = sums
    if not count:
        return {"unit": "m", "mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
    mean = total / count
    return {"unit": "m", "mean": mean, "std": float(np.sqrt(max(squares / count - mean ** 2, 0.0))), "min": lo, "max": hi}


def _has_depth(raw: RawDataset, splits: dict[str, list[Sample]]) -> bool:
    """Whether the dataset has depth: a depth decoder and a depth map for every sample (some but not all is an error)."""
    if raw.decode_depth is None:
        return False
    samples = [s for split in splits.values() for s in split]
    without = [s for s in samples if s.depth is None]
    if len(without) == len(samples):
        return False
    if without:
        raise DataError(f"{without[0].image}: image has no depth map but others of the dataset have one; "
                        "expected a depth map for every image or for none")
    return True


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
    problem = ignore_index_problem(cfg.ignore_index, raw.class_names, cfg.dataset)
    if problem:
        raise DataError(problem)
    splits, split_info = make_splits(raw, seed=params.seed, val_fraction=cfg.val_fraction, subset=cfg.subset,
                                     where=str(root), test_fraction=cfg.test_fraction)
    workers = workers or cfg.workers or min(8, os.cpu_count() or 1)
    h, w = cfg.image_size
    has_depth = _has_depth(raw, splits)
    manifest = {"dataset": cfg.dataset, "class_names": list(raw.class_names), "num_classes": len(raw.class_names),
                "image_size": [h, w], "ignore_index": cfg.ignore_index, "splits": {}, **split_info,
                "class_pixels_by_split": {}, "class_frequency_by_split": {}, "ignored_pixels": {}, "files": {},
                "has_depth": has_depth, "unlabelled_splits": {s: n for s, (_, n) in raw.unlabelled.items()}}
    if raw.mask_format is not None:
        manifest["mask_format"] = raw.mask_format
    if has_depth:
        manifest["depth_valid_fraction"] = {}
    with atomic_dir(out_dir) as staging:
        for split, samples in splits.items():
            n = len(samples)
            images = open_memmap(staging / f"{split}_images.npy", np.uint8, (n, h, w, 3))
            masks = open_memmap(staging / f"{split}_masks.npy", np.uint8, (n, h, w))
            depths = open_memmap(staging / f"{split}_depths.npy", np.float32, (n, h, w)) if has_depth else None
            _load_split(samples, raw, cfg, workers, images, masks, depths)
            images.flush()
            masks.flush()
            if depths is not None:
                depths.flush()
                sums = _depth_sums(depths)
                manifest["depth_valid_fraction"][split] = sums[0] / depths.size
                if split == "train":
                    manifest["depth"] = _depth_stats(sums)
            stats = _class_stats(masks, raw.class_names, cfg.ignore_index)
            manifest["splits"][split] = n
            manifest["class_pixels_by_split"][split] = stats["pixels"]
            manifest["class_frequency_by_split"][split] = stats["frequency"]
            manifest["ignored_pixels"][split] = stats["ignored_pixels"]
            manifest["files"][split] = [_relative(s.image, root) for s in samples]
            if split == "train":
                manifest["class_pixels"], manifest["class_frequency"] = stats["pixels"], stats["frequency"]
                manifest["mean"], manifest["std"] = _channel_stats(images)
            del images, masks, depths
        write_json(staging / "manifest.json", manifest)
    return manifest
