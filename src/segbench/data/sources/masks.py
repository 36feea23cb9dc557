"""Mask decoding shared by the dataset sources: single-channel index images and
colour-coded masks mapped to the nearest palette colour.

Colour mapping is vectorised. A 32 x 32 x 32 lookup table (one cell per 8 x 8 x 8 block of
RGB values) is built once per palette and process; a cell holds the palette entry nearest
to every colour in it, or -1 where two entries are close enough that the block straddles
their boundary. Pixels in such cells (few: only near Voronoi boundaries) get an exact
search over the palette, so the result is always the exact nearest colour. The distance to
that colour decides whether a pixel matches at all (`tolerance`, RGB Euclidean).

Everything here is a module-level function taking plain tuples, so sources can hand
`functools.partial`s of them to preprocess's worker processes.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError

Colour = tuple[int, int, int]

_BITS = 5  # lookup table: 2**_BITS levels per channel
_STEP = 1 << (8 - _BITS)


def open_mask(path: Path):
    """The mask as a loaded PIL image; unreadable files become DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: unreadable mask ({exc}); expected an image file") from None


def single_channel(path: Path, im) -> np.ndarray | None:
    """H x W integer values of a single-channel (L, I, 1, P) image, or of a grey colour image
    (all channels equal); None for a colour image."""
    if im.mode == "1":
        return np.asarray(im, dtype=np.uint8)
    if im.mode in ("L", "P", "I", "F") or im.mode.startswith("I;"):
        values = np.asarray(im)
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
                raise DataError(f"{path}: mask has non-integer values; expected integer class indices 0..255")
        return values
    if im.mode in ("LA", "PA"):
        return np.asarray(im)[..., 0]
    rgb = np.asarray(im.convert("RGB"))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    return None


def to_uint8(path: Path, values: np.ndarray) -> np.ndarray:
    """Integer values -> uint8, or DataError if any is outside 0..255."""
    if values.dtype == np.uint8:
        return values
    lo, hi = values.min(initial=0), values.max(initial=0)
    if lo < 0 or hi > 255:
        bad = lo if lo < 0 else hi
        raise DataError(f"{path}: mask value {int(bad)} out of range; expected class indices 0..255")
    return values.astype(np.uint8)


def read_index_mask(path: Path) -> np.ndarray:
    """A single-channel (L, I, 1 or palette-mode) mask whose values are class indices."""
    im = open_mask(path)
    values = single_channel(path, im)
    if values is None:
        raise DataError(f"{path}: mask is a colour ({im.mode}) image; expected a single-channel image of class indices")
    return to_uint8(path, values)


# --- nearest palette colour ------------------------------------------------------------


@lru_cache(maxsize=16)
def _table(colours: tuple[Colour, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(palette as K x 3 int32, lookup table of 2**(3*_BITS) int16 entries; -1 = ambiguous)."""
    palette = np.asarray(colours, dtype=np.int32).reshape(-1, 3)
    levels = np.arange(1 << _BITS, dtype=np.float64) * _STEP + (_STEP - 1) / 2
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    r, g, b = r.ravel(), g.ravel(), b.ravel()
    first = np.full(r.shape, np.inf)
    second = np.full(r.shape, np.inf)
    nearest = np.zeros(r.shape, dtype=np.int16)
    for k, (cr, cg, cb) in enumerate(palette.tolist()):
        d = np.sqrt((r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2)
        closer = d < first
        second = np.where(closer, first, np.minimum(second, d))
        first = np.where(closer, d, first)
        nearest[closer] = k
    # Every colour of a cell lies within `radius` of its centre, so if the runner-up is more
    # than 2 * radius farther than the nearest, the nearest entry is the same for all of them.
    radius = np.sqrt(3.0) * (_STEP - 1) / 2
    lut = np.where(second - first > 2 * radius + 1e-6, nearest, -1).astype(np.int16)
    return palette, lut


def _exact_nearest(r: np.ndarray, g: np.ndarray, b: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Channels of N pixels (int32) -> index of the nearest palette entry (first on ties)."""
    best = np.full(r.shape, np.iinfo(np.int32).max, dtype=np.int32)
    out = np.zeros(r.shape, dtype=np.int16)
    for k, (cr, cg, cb) in enumerate(palette.tolist()):
        dr, dg, db = r - cr, g - cg, b - cb
        d2 = dr * dr + dg * dg + db * db
        closer = d2 < best
        best = np.where(closer, d2, best)
        out[closer] = k
    return out


def nearest_colour(rgb: np.ndarray, colours: tuple[Colour, ...]) -> tuple[np.ndarray, np.ndarray]:
    """H x W x 3 uint8 -> (H x W index of the nearest palette colour, H x W squared distance)."""
    palette, lut = _table(tuple(tuple(int(c) for c in colour) for colour in colours))
    rgb = np.asarray(rgb, dtype=np.uint8)
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    shift = 8 - _BITS
    index = lut[((r >> shift) << (2 * _BITS)) | ((g >> shift) << _BITS) | (b >> shift)]
    ambiguous = index < 0
    if ambiguous.any():
        index[ambiguous] = _exact_nearest(r[ambiguous], g[ambiguous], b[ambiguous], palette)
    index = index.astype(np.intp)
    dr, dg, db = (np.take(palette[:, c], index) for c in range(3))
    dr -= r
    dg -= g
    db -= b
    return index, dr * dr + dg * dg + db * db


def map_colours(path: Path, rgb: np.ndarray, colours: tuple[Colour, ...], values: tuple[int, ...],
                names: tuple[str, ...], *, ignore_index: int, tolerance: float, max_unmatched: float,
                hint: str) -> np.ndarray:
    """Colour mask -> H x W uint8 labels: each pixel takes `values[i]` of its nearest colour
    `colours[i]` (`names[i]` names it in messages); pixels farther than `tolerance` from every
    colour become `ignore_index`. If more than `max_unmatched` of the pixels are that far,
    DataError names the file, the share and the commonest such colour; `hint` says what to do.
    """
    index, d2 = nearest_colour(rgb, colours)
    labels = np.asarray(values, dtype=np.uint8)[index]
    unmatched = d2 > tolerance * tolerance
    if unmatched.any():
        labels[unmatched] = ignore_index
        share = float(unmatched.mean())
        if share > max_unmatched:
            bad = rgb[unmatched].astype(np.int64)
            packed, counts = np.unique((bad[:, 0] << 16) | (bad[:, 1] << 8) | bad[:, 2], return_counts=True)
            top = int(packed[counts.argmax()])
            example = np.array([[[top >> 16, (top >> 8) & 255, top & 255]]], dtype=np.uint8)
            near, near_d2 = nearest_colour(example, colours)
            k = int(near[0, 0])
            raise DataError(
                f"{path}: {share:.1%} of mask pixels are farther than {tolerance:g} from every palette colour "
                f"(allowed {max_unmatched:.1%}); e.g. colour {tuple(int(v) for v in example[0, 0])} is "
                f"{float(np.sqrt(near_d2[0, 0])):.1f} from the nearest, {tuple(colours[k])} ({names[k]}); {hint}")
    return labels


def with_ignore_colours(colours: tuple[Colour, ...], values: tuple[int, ...], names: tuple[str, ...],
                        ignore_colours: tuple[Colour, ...], ignore_index: int,
                        key: str) -> tuple[tuple[Colour, ...], tuple[int, ...], tuple[str, ...]]:
    """The palette plus `ignore_colours` (a dataset's "void" colours), each decoded to ignore_index.

    A void colour is matched like a class colour (nearest within the tolerance), so its pixels are
    neither a class nor "unmatched": `max_unmatched` keeps catching a wrong palette.
    """
    ignore_colours = tuple(tuple(int(c) for c in colour) for colour in ignore_colours)
    clash = next((c for c in ignore_colours if c in colours and values[colours.index(c)] != ignore_index), None)
    if clash is not None:
        cls = names[colours.index(clash)]
        raise ConfigError(f"{key}.ignore_colors: {list(clash)} is also the colour of class {cls!r}; "
                          "expected colours that no class uses")
    return (colours + ignore_colours, values + (ignore_index,) * len(ignore_colours),
            names + ("ignore",) * len(ignore_colours))
