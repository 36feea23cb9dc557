"""What `data.<dataset>:` in params.yaml may say for each on-disk layout, without the code that
reads it: torch-free, as models/options.py is for architectures.

`segbench.config.DataConfig` holds one section per class here; validating params reads only this
module and the source registry's names. The layout's own module (synthetic.py, folder.py,
cityscapes_pairs.py) reads its section as `params.data.<dataset>`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...schema import option


@dataclass(frozen=True)
class SyntheticConfig:
    """The embedded default dataset (see segbench.data.sources.synthetic)."""

    num_train: int = option(320, min=1)
    num_val: int = option(80, min=1)
    num_test: int = option(80, min=1)
    height: int = option(64, min=16, max=4096)
    width: int = option(64, min=16, max=4096)
    num_classes: int = option(6, min=2, max=8)


@dataclass(frozen=True)
class FolderConfig:
    """dataset: folder -- <root>/<images>/* + <root>/<masks>/* matched by file stem."""

    classes: tuple[str, ...] = ()  # class names in index order (required for this dataset)
    mask_format: str = option("auto", choices=("auto", "index", "palette", "binary"))
    # RGB colour of each class, in `classes` order, for masks stored as RGB images
    palette: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)
    # colour masks: "void" colours decoded to ignore_index (not classes, not unmatched)
    ignore_colors: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)
    tolerance: float = option(60.0, min=0.0, max=442.0)  # JPEG/WebP colour masks: max RGB distance to a palette colour
    max_unmatched: float = option(0.02, min=0.0, max=1.0)  # ... fraction of pixels beyond it (ignored) per image
    images: str = "images"
    masks: str = "masks"
    depths: str = "depths"  # optional: one depth map per image, matched by stem (.png 16-bit or .npy metres)
    depth_scale: float = option(1000.0, min=0.0, min_exclusive=True)  # depth PNG units per metre (1000: millimetres)


@dataclass(frozen=True)
class PairsConfig:
    """dataset: cityscapes_pairs -- each image is the photo and its colour mask side by side."""

    preset: str = option("cityscapes", choices=("cityscapes", "custom"))
    grouping: str = option("categories", choices=("categories", "classes"))  # cityscapes preset only
    classes: tuple[str, ...] = ()  # preset custom: class names
    palette: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)  # preset custom: one colour per class
    ignore_colors: tuple[tuple[int, int, int], ...] = option((), min=0, max=255)  # "void" colours -> ignore_index
    tolerance: float = option(60.0, min=0.0, max=442.0)  # max RGB distance to the nearest palette colour
    max_unmatched: float = option(0.02, min=0.0, max=1.0)  # fraction of pixels beyond tolerance (ignored) per image
    mask_side: str = option("right", choices=("left", "right"))
