"""On-disk dataset layouts. One module per layout; each registers a Source here.

A source knows two things: how to obtain its raw files (`fetch`, the download stage) and how
to list its samples and decode its masks (`read`, used by the preprocess stage).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ...registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path


@dataclass(frozen=True)
class RawDataset:
    """What preprocess needs: class names, samples per split, and how to decode a mask file."""

    class_names: tuple[str, ...]
    splits: dict[str, list[Sample]]
    decode_mask: Callable[[Path], np.ndarray]  # -> HxW uint8 class indices, ignore_index for void


class Source(Protocol):
    def fetch(self, params, dest: Path) -> None: ...

    def read(self, params, root: Path) -> RawDataset: ...


def read_index_png(path: Path) -> np.ndarray:
    """A single-channel (or palette) PNG whose pixel values are class indices."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im, dtype=np.uint8)


SOURCES: Registry[Source] = Registry("dataset")

from . import synthetic  # noqa: E402,F401  (registers)
