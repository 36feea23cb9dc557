"""On-disk dataset layouts. One module per layout; each registers a Source here.

A source turns a folder (data.path, or what the download stage extracted from data.url)
into a RawDataset: class names, the samples of each split, and how to decode one image and
one mask (and, for sources with depth, one depth map: see depth.py). The preprocess stage does the rest (resize, validate, cache). Decoders must be
picklable (module-level functions or functools.partial of them): preprocess runs them in
worker processes.

The embedded default (`synthetic`) also has `generate(params, dest)`: it writes its files
instead of downloading them (its scenes are drawn in scenes.py).

What `data.<dataset>:` may say in params.yaml is declared in options.py, torch-free, beside
the layouts that read it (as models/options.py declares the architectures' options).
"""
from .base import (IMAGE_EXTENSIONS, SOURCES, SPLITS, RawDataset, Sample, Source,  # noqa: F401
                   ignore_index_problem, list_images, locate, pair_by_stem, read_rgb)

from . import synthetic  # noqa: E402,F401  (registers)
from . import camvid  # noqa: E402,F401
from . import cityscapes_pairs  # noqa: E402,F401
from . import floodnet  # noqa: E402,F401
from . import folder  # noqa: E402,F401
from . import stanford_background  # noqa: E402,F401
