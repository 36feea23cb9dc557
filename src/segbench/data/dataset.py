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


def default_augmentation(seed: int):
    """Geometric + photometric augmentation; masks follow the geometry with nearest sampling."""
    import albumentations as A

    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.8, 1.25), rotate=(-15, 15), translate_percent=(-0.1, 0.1), p=0.7,
                 fill=0, fill_mask=255),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.7),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
    ], seed=seed)


class SegmentationCache(Dataset):
    """Items are (image float32 3 x H x W, normalised with the training mean/std; mask int64 H x W)."""

    def __init__(self, cache_dir: str | Path, split: str, augment: bool = False, seed: int = 0) -> None:
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
        self.transform = default_augmentation(seed) if augment else None

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
