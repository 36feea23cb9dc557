"""Depth maps: one H x W float32 array in metres per image.

Convention, everywhere from the sources to the torch Dataset: a depth of 0 means "no depth"
(unknown, invalid, out of the sensor's range, padded by augmentation). Every valid depth is
finite and > 0. Files on disk are either
  .npy   a 2-D float or integer array already in metres
  .png   a single-channel 16-bit (or 8-bit) image; metres = value / scale (scale 1000: the
         values are millimetres, as most depth sensors store them); value 0 = no depth
Non-finite or negative values are read as 0 (no depth).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError

NO_DEPTH = 0.0  # the depth of a pixel whose depth is unknown
EXPECTED = "a 2-D .npy in metres or a single-channel 16-bit PNG (value / scale = metres, 0 = no depth)"
_SINGLE_MODES = ("L", "I", "I;16", "I;16B", "I;16L", "I;16N")


def _read_npy(path: Path) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable depth map ({exc}); expected {EXPECTED}") from None
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "fiu":
        kind = getattr(values, "dtype", type(values).__name__)
        raise DataError(f"{path}: depth map holds {kind} values; expected {EXPECTED}")
    return values


def _read_image(path: Path, scale: float) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode, values = im.mode, np.asarray(im)
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: unreadable depth map ({exc}); expected {EXPECTED}") from None
    if mode not in _SINGLE_MODES:
        raise DataError(f"{path}: depth map is a {mode}-mode image; expected {EXPECTED}")
    return values.astype(np.float64) / scale


def read_depth(path: Path, scale: float = 1000.0) -> np.ndarray:
    """One depth file -> H x W float32 metres, 0 where there is no depth.

    `scale`: PNG units per metre (ignored for .npy, which holds metres).
    """
    path = Path(path)
    values = _read_npy(path) if path.suffix.lower() == ".npy" else _read_image(path, scale)
    if values.ndim != 2:
        raise DataError(f"{path}: depth map has shape {values.shape}; expected {EXPECTED}")
    return sanitize(values)


def sanitize(values: np.ndarray) -> np.ndarray:
    """float32 metres with every non-finite or negative value set to 0 (no depth)."""
    depth = np.asarray(values, dtype=np.float32)
    bad = ~np.isfinite(depth) | (depth < 0)
    if bad.any():
        depth = np.where(bad, np.float32(NO_DEPTH), depth)
    return depth
