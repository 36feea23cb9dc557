"""The download stage: obtain a dataset's raw files into data/raw (atomically)."""
from __future__ import annotations

from pathlib import Path

from ..fsutil import atomic_dir
from .sources import SOURCES


def download(params, dest: Path) -> None:
    source = SOURCES.get(params.data.dataset, "data.dataset")
    with atomic_dir(dest) as staging:
        source.fetch(params, staging)
