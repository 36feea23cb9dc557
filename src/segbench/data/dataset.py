"""A torch Dataset over the preprocess cache, with optional albumentations augmentation.

With depth (task seg_depth), items carry the depth map too, in metres with 0 = no depth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..io import read_json


def load_manifest(cache_dir: str | Path) -> dict:
    return read_json(Path(cache_dir) / "manifest.json")


DEPTH_TARGETS = {"depth": "mask", "inside": "mask"}  # extra targets with depth, resampled like masks
_INSIDE = 1  # the `inside` marker on every source pixel; padding takes fill_mask (ignore_index) instead


def build_augmentation(cfg, size: tuple[int, int], ignore_index: int, seed: int, depth: bool = False):
    """albumentations pipeline from an AugmentConfig (params `augmentation:`).

    Geometric transforms move image and mask together; masks are resampled with nearest
    neighbour (class indices never blend) and areas padded by a rotation get `ignore_index`,
    so they count in neither loss nor metrics. Output size stays `size`.

    With `depth`, the pipeline also takes `depth` (H x W float32) and `inside` (H x W uint8,
    a constant marker) and moves them like the mask (nearest: depths never blend across an occlusion
    edge); see augment_with_depth. Without it, the pipeline is exactly the mask-only one.
    """
    import albumentations as A
    import cv2

    steps = []
    if cfg.hflip > 0:
        steps.append(A.HorizontalFlip(p=cfg.hflip))
    if cfg.crop_p > 0:
        steps.append(A.RandomResizedCrop(size=tuple(size), scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio),
                                         interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=cfg.crop_p))
    if cfg.rotate > 0 and cfg.rotate_p > 0:
        steps.append(A.Rotate(limit=(-cfg.rotate, cfg.rotate), interpolation=cv2.INTER_LINEAR,
                              mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT,
                              fill=0, fill_mask=ignore_index, p=cfg.rotate_p))
    if cfg.jitter_p > 0:
        steps.append(A.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast, saturation=cfg.saturation,
                                   hue=cfg.hue, p=cfg.jitter_p))
    return A.Compose(steps, seed=seed, additional_targets=dict(DEPTH_TARGETS)) if depth else A.Compose(steps, seed=seed)


def augment_with_depth(transform, image: np.ndarray, mask: np.ndarray, depth: np.ndarray,
                       ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply a build_augmentation(..., depth=True) pipeline; pixels that a rotation padded get depth 0 (no depth).

    The padding cannot be read off the depth itself (fill_mask is ignore_index, a plausible
    depth), so a constant marker rides along and shows where the source did not reach.
    """
    marker = _INSIDE if ignore_index != _INSIDE else _INSIDE + 1  # must differ from the padding value
    out = transform(image=image, mask=mask, depth=depth, inside=np.full(mask.shape, marker, np.uint8))
    depth = np.where(out["inside"] == marker, out["depth"], np.float32(0)).astype(np.float32)
    return out["image"], out["mask"], depth


def _load_depths(cache_dir: Path, split: str, manifest: dict) -> np.ndarray:
    if not manifest.get("has_depth"):  # caches from before depth existed lack the key: no depth either
        raise DataError(f"{cache_dir}: task seg_depth needs depth maps, but dataset {manifest['dataset']!r} has none "
                        "(sources with depth: synthetic; folder with a depths/ folder)")
    try:
        return np.load(cache_dir / f"{split}_depths.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{cache_dir}: depth cache for split {split!r} unreadable ({exc}); re-run preprocess") from None


class SegmentationCache(Dataset):
    """Items are (image float32 3 x H x W, normalised with the training mean/std; mask int64 H x W),
    and with `depth=True` also depth float32 H x W (metres, 0 = no depth)."""

    def __init__(self, cache_dir: str | Path, split: str, augment=None, seed: int = 0, depth: bool = False) -> None:
        """`augment`: an AugmentConfig; None: no augmentation.
        `depth`: also return depth maps; a cache without them is a DataError."""
        cache_dir = Path(cache_dir)
        self.manifest = load_manifest(cache_dir)
        try:
            self.images = np.load(cache_dir / f"{split}_images.npy", mmap_mode="r", allow_pickle=False)
            self.masks = np.load(cache_dir / f"{split}_masks.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{cache_dir}: cache for split {split!r} unreadable ({exc}); re-run preprocess") from None
        if len(self.images) != len(self.masks):
            raise DataError(f"{cache_dir}: {split} has {len(self.images)} images but {len(self.masks)} masks; re-run preprocess")
        self.depths = _load_depths(cache_dir, split, self.manifest) if depth else None
        if self.depths is not None and self.depths.shape != self.masks.shape:
            raise DataError(f"{cache_dir}: {split} depth maps have shape {self.depths.shape} but the masks "
                            f"{self.masks.shape}; re-run preprocess")
        self.mean = np.asarray(self.manifest["mean"], np.float32) * 255
        self.std = np.asarray(self.manifest["std"], np.float32) * 255
        self.seed = seed
        self.transform = None
        if augment is not None:  # an AugmentConfig (params `augmentation:`)
            self.transform = build_augmentation(augment, tuple(self.manifest["image_size"]), self.manifest["ignore_index"],
                                                seed, depth=depth)

    def set_epoch(self, epoch: int, worker: int = 0) -> None:
        """Reseed the augmentation from (seed, epoch, worker): a resumed run replays the same draws."""
        if self.transform is not None:
            self.transform.set_random_seed(int(np.random.SeedSequence([self.seed, epoch, worker]).generate_state(1)[0]))

    @property
    def class_names(self) -> list[str]:
        return self.manifest["class_names"]

    @property
    def has_depth(self) -> bool:
        """Whether items carry a depth map (constructed with depth=True)."""
        return self.depths is not None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        image, mask = np.asarray(self.images[i]), np.asarray(self.masks[i])
        depth = None if self.depths is None else np.array(self.depths[i], np.float32)
        if self.transform is not None and depth is not None:
            image, mask, depth = augment_with_depth(self.transform, image, mask, depth, self.manifest["ignore_index"])
        elif self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        image = (image.astype(np.float32) - self.mean) / self.std
        items = (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), torch.from_numpy(mask.astype(np.int64)))
        return items if depth is None else (*items, torch.from_numpy(np.ascontiguousarray(depth)))
