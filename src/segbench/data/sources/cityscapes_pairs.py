"""dataset: cityscapes_pairs -- Cityscapes as image pairs: `train/*.jpg` and `val/*.jpg`, each
file the photo and its colour-coded label map side by side (the photo on the left unless
data.cityscapes_pairs.mask_side is `left`), as in the widely shared 256 x 512 "cityscapes
image pairs" archive.

The label halves are JPEGs, so their colours are noisy: every pixel takes the class of the
nearest palette colour, and pixels farther than data.cityscapes_pairs.tolerance (RGB
distance) from every colour become ignore_index; an image with more than max_unmatched of
such pixels is an error (usually a wrong palette).

Palettes (data.cityscapes_pairs.preset):
  cityscapes  the official label colours of cityscapesScripts, grouped by
              data.cityscapes_pairs.grouping:
                categories  the 8 categories: void, flat, construction, object, nature, sky,
                            human, vehicle. void is a real class here: black/void regions are
                            large and consistently coloured in these images.
                classes     the 19 training classes (road ... bicycle); every other colour
                            (void, parking, rail track, guard rail, bridge, tunnel, caravan,
                            trailer) becomes ignore_index.
  custom      data.cityscapes_pairs.classes and .palette (one RGB colour per class).

Splits: train and val as in the archive. There is no test split: preprocess carves one from train.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError
from .base import SOURCES, RawDataset, Sample, list_images, locate, read_rgb
from .masks import Colour, map_colours, with_ignore_colours

# (name, colour, category, training class) from the 'labels' table of cityscapesScripts,
# in label-id order; the last field: one of the 19 training (evaluated) classes.
LABELS: tuple[tuple[str, Colour, str, bool], ...] = (
    ("unlabeled", (0, 0, 0), "void", False),
    ("dynamic", (111, 74, 0), "void", False),
    ("ground", (81, 0, 81), "void", False),
    ("road", (128, 64, 128), "flat", True),
    ("sidewalk", (244, 35, 232), "flat", True),
    ("parking", (250, 170, 160), "flat", False),
    ("rail track", (230, 150, 140), "flat", False),
    ("building", (70, 70, 70), "construction", True),
    ("wall", (102, 102, 156), "construction", True),
    ("fence", (190, 153, 153), "construction", True),
    ("guard rail", (180, 165, 180), "construction", False),
    ("bridge", (150, 100, 100), "construction", False),
    ("tunnel", (150, 120, 90), "construction", False),
    ("pole", (153, 153, 153), "object", True),
    ("polegroup", (153, 153, 153), "object", False),  # same colour as pole: dropped
    ("traffic light", (250, 170, 30), "object", True),
    ("traffic sign", (220, 220, 0), "object", True),
    ("vegetation", (107, 142, 35), "nature", True),
    ("terrain", (152, 251, 152), "nature", True),
    ("sky", (70, 130, 180), "sky", True),
    ("person", (220, 20, 60), "human", True),
    ("rider", (255, 0, 0), "human", True),
    ("car", (0, 0, 142), "vehicle", True),
    ("truck", (0, 0, 70), "vehicle", True),
    ("bus", (0, 60, 100), "vehicle", True),
    ("caravan", (0, 0, 90), "vehicle", False),
    ("trailer", (0, 0, 110), "vehicle", False),
    ("train", (0, 80, 100), "vehicle", True),
    ("motorcycle", (0, 0, 230), "vehicle", True),
    ("bicycle", (119, 11, 32), "vehicle", True),
    ("license plate", (0, 0, 142), "vehicle", False),  # same colour as car: dropped
)
# (unlabeled, ego vehicle, rectification border, out of roi and static all share (0, 0, 0).)
CATEGORIES = ("void", "flat", "construction", "object", "nature", "sky", "human", "vehicle")
TRAIN_CLASSES = tuple(name for name, _, _, train in LABELS if train)


def _unique_labels() -> list[tuple[str, Colour, str, bool]]:
    seen: set[Colour] = set()
    out = []
    for label in LABELS:
        if label[1] not in seen:
            seen.add(label[1])
            out.append(label)
    return out


def cityscapes_palette(grouping: str, ignore_index: int) -> tuple[tuple[str, ...], tuple[Colour, ...], tuple[int, ...], tuple[str, ...]]:
    """(class names, colours, class value of each colour, label name of each colour)."""
    labels = _unique_labels()
    colours = tuple(colour for _, colour, _, _ in labels)
    names = tuple(name for name, _, _, _ in labels)
    if grouping == "categories":
        values = tuple(CATEGORIES.index(category) for _, _, category, _ in labels)
        return CATEGORIES, colours, values, names
    values = tuple(TRAIN_CLASSES.index(name) if train else ignore_index for name, _, _, train in labels)
    return TRAIN_CLASSES, colours, values, names


def custom_palette(classes: tuple[str, ...], palette: tuple[Colour, ...], key: str) -> tuple[tuple[str, ...], tuple[Colour, ...], tuple[int, ...], tuple[str, ...]]:
    if len(classes) < 2 or len(palette) != len(classes):
        raise ConfigError(f"{key}.classes and {key}.palette: {len(classes)} classes and {len(palette)} colours; "
                          "expected at least 2 class names and one [R, G, B] colour per class, in the same order")
    if len(set(classes)) != len(classes):
        dup = next(c for c in classes if classes.count(c) > 1)
        raise ConfigError(f"{key}.classes: {dup!r} appears twice; expected distinct class names")
    if len(set(palette)) != len(palette):
        dup = next(c for c in palette if palette.count(c) > 1)
        raise ConfigError(f"{key}.palette: colour {list(dup)} appears twice; expected one distinct colour per class")
    return tuple(classes), tuple(palette), tuple(range(len(classes))), tuple(classes)


def _read(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable image ({exc}); expected a JPEG/PNG of a photo and its mask side by side") from None


def _half(path: Path, rgb: np.ndarray, side: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w % 2:
        raise DataError(f"{path}: width {w} is odd; expected the photo and its mask side by side, two halves of equal width")
    return rgb[:, : w // 2] if side == "left" else rgb[:, w // 2:]


def decode_pair_image(path: Path, side: str) -> np.ndarray:
    """The photo half of a pair image (`side` is where the photo is)."""
    return np.ascontiguousarray(_half(path, _read(path), side))


def decode_pair_mask(path: Path, side: str, colours: tuple[Colour, ...], values: tuple[int, ...],
                     names: tuple[str, ...], ignore_index: int, tolerance: float, max_unmatched: float) -> np.ndarray:
    """The mask half of a pair image (`side` is where the mask is) -> class indices."""
    return map_colours(path, _half(path, _read(path), side), colours, values, names, ignore_index=ignore_index,
                       tolerance=tolerance, max_unmatched=max_unmatched,
                       hint="raise data.cityscapes_pairs.tolerance or fix the palette (data.cityscapes_pairs.preset/palette)")


class CityscapesPairsSource:
    layout = "cityscapes_pairs: train/*.jpg and val/*.jpg, each the photo and its colour mask side by side"

    def read(self, params, root: Path) -> RawDataset:
        cfg = params.data.cityscapes_pairs
        if cfg.preset == "custom":
            classes, colours, values, names = custom_palette(cfg.classes, cfg.palette, "data.cityscapes_pairs")
        else:
            classes, colours, values, names = cityscapes_palette(cfg.grouping, params.data.ignore_index)
        colours, values, names = with_ignore_colours(colours, values, names, tuple(cfg.ignore_colors),
                                                     params.data.ignore_index, "data.cityscapes_pairs")
        folder = locate(root, ("train",), self.layout)
        splits = {}
        for split in ("train", "val"):
            if (folder / split).is_dir():
                splits[split] = [Sample(p, p) for p in list_images(folder / split)]
        if not splits["train"]:
            raise DataError(f"{folder / 'train'}: no images; expected {self.layout}")
        photo_side = "left" if cfg.mask_side == "right" else "right"
        return RawDataset(
            class_names=classes,
            splits=splits,
            decode_image=partial(decode_pair_image, side=photo_side),
            decode_mask=partial(decode_pair_mask, side=cfg.mask_side, colours=colours, values=values, names=names,
                                ignore_index=params.data.ignore_index, tolerance=cfg.tolerance,
                                max_unmatched=cfg.max_unmatched),
        )


SOURCES.add("cityscapes_pairs", CityscapesPairsSource())
