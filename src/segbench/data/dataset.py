"""A torch Dataset over the preprocess cache, with optional albumentations augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..io import read_json


def load_manifest(cache_dir: str | Path) -> dict:
    return read_json(Path(cache_dir) / "manifest.json")


def build_augmentation(cfg, size: tuple[int, int], ignore_index: int, seed: int):
    """albumentations pipeline from an AugmentConfig (params `augmentation:`).

    Geometric transforms move image and mask together; masks are resampled with nearest
    neighbour (class indices never blend) and areas padded by a rotation get `ignore_index`,
    so they count in neither loss nor metrics. Output size stays `size`.
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
    return A.Compose(steps, seed=seed)


class SegmentationCache(Dataset):
    """Items are (image float32 3 x H x W, normalised with the training mean/std; mask int64 H x W)."""

    def __init__(self, cache_dir: str | Path, split: str, augment=None, seed: int = 0) -> None:
        """`augment`: an AugmentConfig (or True for its defaults); None/False: no augmentation."""
        cache_dir = Path(cache_dir)
        self.manifest = load_manifest(cache_dir)
        try:
            self.images = np.load(cache_dir / f"{split}_images.npy", mmap_mode="r", allow_pickle=False)
            self.masks = np.load(cache_dir / f"{split}_masks.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{cache_dir}: cache for split {split!r} unreadable ({exc}); re-run preprocess") from None
        if len(self.images) != len(self.masks):
            raise DataError(f"{cache_dir}: {split} has {len(self.images)} images but {len(self.masks)} masks; re-run preprocess")
        self.mean = np.asarray(self.manifest["mean"], np.float32) * 255
        self.std = np.asarray(self.manifest["std"], np.float32) * 255
        self.seed = seed
        self.transform = None
        if augment:
            from ..config import AugmentConfig

            cfg = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
            self.transform = build_augmentation(cfg, tuple(self.manifest["image_size"]), self.manifest["ignore_index"], seed)

    def set_epoch(self, epoch: int, worker: int = 0) -> None:
        """Reseed the augmentation from (seed, epoch, worker): a resumed run replays the same draws."""
        if self.transform is not None:
            self.transform.set_random_seed(int(np.random.SeedSequence([self.seed, epoch, worker]).generate_state(1)[0]))

    @property
    def class_names(self) -> list[str]:
        return self.manifest["class_names"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = np.asarray(self.images[i]), np.asarray(self.masks[i])
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        image = (image.astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), torch.from_numpy(mask.astype(np.int64))
