"""On-disk dataset layouts. One module per layout; each registers a Source here.

A source turns a folder (data.path, or what the download stage extracted from data.url)
into a RawDataset: class names, the samples of each split, and how to decode one image and
one mask (and, for sources with depth, one depth map: see depth.py). The preprocess stage does the rest (resize, validate, cache). Decoders must be
picklable (module-level functions or functools.partial of them): preprocess runs them in
worker processes.

A layout's module is named after it and imported on the first SOURCES.get of its name (base.py:
SOURCES lists the names from the file names, HELPERS aside), so a stage imports the active layout only.

The embedded default (`synthetic`) also has `generate(params, dest)`: it writes its files
instead of downloading them (its scenes are drawn in scenes.py).

What `data.<dataset>:` may say in params.yaml is declared in options.py, torch-free, beside
the layouts that read it (as models/options.py declares the architectures' options).
"""
from .base import (IMAGE_EXTENSIONS, SOURCES, SPLITS, RawDataset, Sample, Source,  # noqa: F401
                   ignore_index_problem, list_images, locate, pair_by_stem, read_rgb)

