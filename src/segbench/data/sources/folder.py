"""dataset: folder -- any dataset laid out as `<root>/<images>/*` + `<root>/<masks>/*`
(data.folder.images / .masks, default `images` and `masks`), images and masks matched by
file stem, any image format for either. With split folders (`<root>/train/<images>`
exists) the layout is `<root>/{train,val,test}/{<images>,<masks>}`, val and test optional;
without them everything is train (preprocess carves test and val from it).

data.folder.classes names the classes in index order (required). How a mask file becomes
class indices (data.folder.mask_format):
  index    single-channel values are the class indices (a palette-mode PNG's indices too)
  palette  with data.folder.palette (one [R, G, B] per class): each pixel takes the class of
           its colour (any image mode); without it: a palette-mode (P) PNG whose indices
           are the classes
  binary   0/255 or 0/1 single-channel masks -> 0/1; exactly 2 classes
  auto     decided once for the whole dataset (see resolve_mask_format) and recorded in the
           manifest as `mask_format`: colour images -> palette; single-channel masks ->
           index, or binary when there are 2 classes and the masks hold only 0 and 255;
           files that would be read two ways stop preprocess with one line naming them
data.folder.ignore_colors: colours of colour masks that mean "void" (-> data.ignore_index).

Colour matching: masks in a lossless format (PNG, BMP, TIFF) must use the palette colours
exactly; any other colour is an error naming it. JPEG/WebP masks are noisy: a pixel takes
its nearest palette colour within RGB distance data.folder.tolerance (default 60; farther:
ignore_index, at most data.folder.max_unmatched of an image, default 2%), as for cityscapes_pairs.

Depth (optional, for task seg_depth): a folder `<depths>` (data.folder.depths, default
`depths`) beside `<images>` (in each split folder, with split folders) holding one depth map
per image, matched by file stem: a 2-D `.npy` in metres, or a single-channel 16-bit `.png`
whose values are metres * data.folder.depth_scale (default 1000: millimetres). 0, negative
and non-finite values mean "no depth" there. When the folder exists, every image needs its
depth map; when it does not, the dataset has no depth.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError
from .base import SOURCES, SPLITS, RawDataset, Sample, list_images, locate, pair_by_stem
from .depth import read_depth
from .masks import Colour, map_colours, open_mask, single_channel, to_uint8, with_ignore_colours

LOSSY = (".jpg", ".jpeg", ".webp")
DEPTH_EXTENSIONS = (".png", ".npy")
_SINGLE_MODES = ("1", "L", "I", "F", "LA")


def _colour_mask(path: Path, im, classes: tuple[str, ...], palette: tuple[Colour, ...], ignore_index: int,
                 tolerance: float, max_unmatched: float, ignore_colours: tuple[Colour, ...] = ()) -> np.ndarray:
    lossy = Path(path).suffix.lower() in LOSSY
    colours, values, names = with_ignore_colours(palette, tuple(range(len(classes))), classes, ignore_colours,
                                                 ignore_index, "data.folder")
    return map_colours(path, np.asarray(im.convert("RGB")), colours, values, names,
                       ignore_index=ignore_index,
                       tolerance=tolerance if lossy else 0.0,
                       max_unmatched=max_unmatched if lossy else 0.0,
                       hint="add that colour to data.folder.palette (and its class to data.folder.classes) or fix the mask")


def _single(path: Path, im, fmt: str) -> np.ndarray:
    values = single_channel(path, im)
    if values is None:
        raise DataError(f"{path}: mask is a colour ({im.mode}) image; mask_format {fmt} expects a single-channel image "
                        "(for colour masks set data.folder.palette to the [R, G, B] colour of each class)")
    return values


def _binary(path: Path, values: np.ndarray) -> np.ndarray:
    present = set(np.unique(values).tolist())
    if present <= {0, 1}:
        return values.astype(np.uint8)
    if present <= {0, 255}:
        return (values == 255).astype(np.uint8)
    other = sorted(present - {0, 1, 255}) or sorted(present)
    raise DataError(f"{path}: mask value {other[0]} (values present: {sorted(present)[:6]}) is not binary; "
                    "mask_format binary expects only 0 and 255, or only 0 and 1")


def decode_folder_mask(path: Path, mask_format: str, classes: tuple[str, ...], palette: tuple[Colour, ...],
                       ignore_index: int, tolerance: float = 60.0, max_unmatched: float = 0.02,
                       ignore_colours: tuple[Colour, ...] = ()) -> np.ndarray:
    """One mask file -> H x W uint8 class indices, as `mask_format` (index, binary or palette; the
    folder source resolves auto once per dataset, see resolve_mask_format) says."""
    im = open_mask(path)
    if mask_format == "index":
        return to_uint8(path, _single(path, im, "index"))
    if mask_format == "binary":
        return _binary(path, _single(path, im, "binary"))
    if mask_format != "palette":
        raise ValueError(f"mask_format {mask_format!r}: resolve auto first (resolve_mask_format)")
    if palette:
        return _colour_mask(path, im, classes, palette, ignore_index, tolerance, max_unmatched, ignore_colours)
    if im.mode == "P":
        return np.asarray(im, dtype=np.uint8)
    raise DataError(f"{path}: mask is a {im.mode}-mode image, not a palette (P-mode) PNG; set data.folder.palette "
                    "to the [R, G, B] colour of each class, or use mask_format index for class-index images")


def _kind(path: Path) -> tuple[str, frozenset[int]]:
    """("colour" | "P" | "values", the values present) of one mask file, for `resolve_mask_format`."""
    im = open_mask(path)
    values = single_channel(path, im)
    if values is None:
        return "colour", frozenset()
    return ("P" if im.mode == "P" else "values"), frozenset(np.unique(values).tolist())


def resolve_mask_format(masks: list[Path], cfg) -> str:
    """mask_format auto, decided once for the whole dataset: index, binary or palette.

    Every mask is read once: all colour images -> palette (data.folder.palette required); else
    index, except with 2 classes when masks hold only 0 and 255 (or 0 and 1) -> binary (255 = the
    second class).
    Where two files would be read two ways (colour beside single-channel masks; a 0/255-only mask
    beside one holding other values, so that 255 would mean a class in one file and ignore in the
    other), one line names both files and the fix.
    """
    kinds = {path: _kind(path) for path in masks}
    colour = [p for p, (kind, _) in kinds.items() if kind == "colour"]
    single = [p for p, (kind, _) in kinds.items() if kind != "colour"]
    if colour and single:
        raise DataError(f"{colour[0]} is a colour mask but {single[0]} is single-channel: one dataset, two readings; "
                        "set data.folder.mask_format to palette (with data.folder.palette) or index")
    if colour:
        if not cfg.palette:
            raise DataError(f"{colour[0]}: mask is a colour image and data.folder.palette is not set; set it to the "
                            "[R, G, B] colour of each class, in data.folder.classes order")
        return "palette"
    if len(cfg.classes) != 2:
        return "index"
    zero_255 = [p for p, (_, v) in kinds.items() if 255 in v and v <= {0, 255}]
    other = [p for p, (_, v) in kinds.items() if not v <= {0, 255} and not v <= {0, 1}]  # binary cannot read these
    if zero_255 and other:
        values = sorted(kinds[other[0]][1])[:6]
        raise DataError(f"{zero_255[0]} holds only 0 and 255 (binary: 255 = class {cfg.classes[1]!r}) but {other[0]} "
                        f"holds {values} (class indices: 255 = ignore): one dataset, two readings of 255; set "
                        "data.folder.mask_format to binary or index")
    return "binary" if zero_255 else "index"


def _check_config(cfg) -> None:
    key = "data.folder"
    if not cfg.classes:
        raise ConfigError(f"{key}.classes: required for dataset folder: list the class names in index order")
    if len(cfg.classes) < 2:
        raise ConfigError(f"{key}.classes: {list(cfg.classes)} has 1 class; expected at least 2 class names in index order")
    if len(set(cfg.classes)) != len(cfg.classes):
        dup = next(c for c in cfg.classes if cfg.classes.count(c) > 1)
        raise ConfigError(f"{key}.classes: {dup!r} appears twice; expected distinct class names")
    if cfg.palette and len(cfg.palette) != len(cfg.classes):
        raise ConfigError(f"{key}.palette: {len(cfg.palette)} colours for {len(cfg.classes)} classes; expected one "
                          f"[R, G, B] colour per class, in {key}.classes order")
    if len(set(cfg.palette)) != len(cfg.palette):
        dup = next(c for c in cfg.palette if cfg.palette.count(c) > 1)
        raise ConfigError(f"{key}.palette: colour {list(dup)} appears twice; expected one distinct colour per class")
    if cfg.mask_format == "binary" and len(cfg.classes) != 2:
        raise ConfigError(f"{key}.mask_format: binary needs exactly 2 classes; {key}.classes has {len(cfg.classes)}")


def _stems_unique(files: list[Path], folder: Path) -> None:
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise DataError(f"{folder}: {seen[f.stem].name} and {f.name} share the stem {f.stem!r}; "
                            "expected one file per stem (images and masks are matched by stem)")
        seen[f.stem] = f


def _add_depths(samples: list[Sample], depth_dir: Path) -> list[Sample]:
    """Each sample with the depth map of the same stem in `depth_dir`; a missing one is an error."""
    files = sorted(p for p in depth_dir.iterdir() if p.is_file() and p.suffix.lower() in DEPTH_EXTENSIONS)
    _stems_unique(files, depth_dir)
    by_stem = {f.stem: f for f in files}
    for s in samples:
        if s.image.stem not in by_stem:
            raise DataError(f"{s.image}: image has no depth map in {depth_dir} (expected {s.image.stem}.png or "
                            f"{s.image.stem}.npy; depth maps are matched by file stem)")
    return [replace(s, depth=by_stem[s.image.stem]) for s in samples]


def _depth_dirs(split_dirs: dict[str, Path], depths: str) -> dict[str, Path] | None:
    """The depth folder of each split, or None when no split has one; some but not all is an error."""
    found = {split: base / depths for split, base in split_dirs.items() if (base / depths).is_dir()}
    if not found:
        return None
    missing = [base / depths for split, base in split_dirs.items() if split not in found]
    if missing:
        raise DataError(f"{missing[0]}: missing, but {next(iter(found.values()))} exists; expected a depth folder "
                        f"for every split or for none (data.folder.depths)")
    return found


class FolderSource:
    layout = "folder: <images>/* + <masks>/* matched by file stem, or {train,val,test}/<images|masks>/*"

    def _layout(self, cfg) -> str:
        return (f"folder: {cfg.images}/* + {cfg.masks}/* matched by file stem, "
                f"or {{train,val,test}}/{cfg.images}/* + {{train,val,test}}/{cfg.masks}/*")

    def read(self, params, root: Path) -> RawDataset:
        cfg = params.data.folder
        _check_config(cfg)
        layout = self._layout(cfg)
        try:
            folder = locate(root, (f"train/{cfg.images}",), layout)
            split_dirs = {s: folder / s for s in SPLITS if (folder / s / cfg.images).is_dir()}
        except DataError:
            folder = locate(root, (cfg.images, cfg.masks), layout)
            split_dirs = {"train": folder}
        splits, unlabelled = {}, {}
        for split, base in split_dirs.items():
            image_dir, mask_dir = base / cfg.images, base / cfg.masks
            if not mask_dir.is_dir() and split != "train":  # a challenge's test images: nothing to score
                unlabelled[split] = (str(image_dir), len(list_images(image_dir)))
                continue
            if not mask_dir.is_dir():
                raise DataError(f"{mask_dir}: missing (the masks of {image_dir}); expected {layout}")
            images, masks = list_images(image_dir), list_images(mask_dir)
            _stems_unique(images, image_dir)
            _stems_unique(masks, mask_dir)
            splits[split] = pair_by_stem(images, masks, str(mask_dir))
        if not splits["train"]:
            raise DataError(f"{split_dirs['train'] / cfg.images}: no images; expected {layout}")
        depth_dirs = _depth_dirs({s: d for s, d in split_dirs.items() if s in splits}, cfg.depths)
        if depth_dirs is not None:
            splits = {split: _add_depths(samples, depth_dirs[split]) for split, samples in splits.items()}
        mask_format = cfg.mask_format
        if mask_format == "auto":
            mask_format = resolve_mask_format([s.mask for samples in splits.values() for s in samples], cfg)
        return RawDataset(
            class_names=tuple(cfg.classes),
            splits=splits,
            mask_format=mask_format,
            decode_mask=partial(decode_folder_mask, mask_format=mask_format, classes=tuple(cfg.classes),
                                palette=tuple(cfg.palette), ignore_index=params.data.ignore_index,
                                tolerance=cfg.tolerance, max_unmatched=cfg.max_unmatched,
                                ignore_colours=tuple(cfg.ignore_colors)),
            decode_depth=partial(read_depth, scale=cfg.depth_scale) if depth_dirs is not None else None,
            unlabelled=unlabelled,
        )


SOURCES.add("folder", FolderSource())
