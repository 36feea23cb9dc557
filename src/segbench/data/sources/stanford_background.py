"""dataset: stanford_background -- the Stanford Background Dataset (Gould et al., ICCV 2009;
the `iccv09Data` archive): `images/*.jpg` + `labels/<stem>.regions.txt`, a text file of
whitespace-separated integers, one row per image row: 0..7 the class, -1 unknown
(ignore_index).

8 classes: sky, tree, road, grass, water, building, mountain, foreground object.

Splits: the archive has none (the paper uses random 5-fold cross-validation), so every image
is in "train"; preprocess makes val from it (data.val_fraction, seed) and evaluation, having
no test split, uses that val. A fixed test split is not invented here: it would be a
benchmark of our own making rather than the dataset's, and cutting a third split from 715
images leaves little to train on.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ...errors import DataError
from .base import SOURCES, RawDataset, Sample, list_images, locate

CLASSES = ("sky", "tree", "road", "grass", "water", "building", "mountain", "foreground object")
LAYOUT = "stanford_background: images/*.jpg + labels/<stem>.regions.txt"
_EXPECTED = f"expected whitespace-separated integers -1..{len(CLASSES) - 1}, one line per image row"


def decode_regions(path: Path, ignore_index: int) -> np.ndarray:
    """A `.regions.txt` file -> H x W uint8 class indices (-1 -> ignore_index)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable regions file ({exc}); {_EXPECTED}") from None
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise DataError(f"{path}: empty regions file; {_EXPECTED}")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}: line {i + 1} has {len(row)} values but line 1 has {width}; {_EXPECTED}")
    try:
        values = np.array([v for row in rows for v in row], dtype=np.int64).reshape(len(rows), width)
    except (ValueError, OverflowError):
        token = next((v for row in rows for v in row if not _is_int(v)), None)
        what = f"{token[:20]!r} is not an integer" if token is not None else "a value is out of range"
        raise DataError(f"{path}: {what}; {_EXPECTED}") from None
    bad = (values < -1) | (values >= len(CLASSES))
    if bad.any():
        raise DataError(f"{path}: value {int(values[bad][0])} out of range; {_EXPECTED}")
    return np.where(values < 0, ignore_index, values).astype(np.uint8)


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


class StanfordBackgroundSource:
    layout = LAYOUT

    def read(self, params, root: Path) -> RawDataset:
        folder = locate(root, ("images", "labels"), self.layout)
        samples = []
        for image in list_images(folder / "images"):
            regions = folder / "labels" / f"{image.stem}.regions.txt"
            if not regions.is_file():
                raise DataError(f"{image}: image has no labels/{image.stem}.regions.txt; expected {self.layout}")
            samples.append(Sample(image, regions))
        if not samples:
            raise DataError(f"{folder / 'images'}: no images; expected {self.layout}")
        return RawDataset(class_names=CLASSES, splits={"train": samples},
                          decode_mask=partial(decode_regions, ignore_index=params.data.ignore_index))


SOURCES.add("stanford_background", StanfordBackgroundSource())
