"""The download stage: obtain a dataset's raw files (atomically).

- embedded source (synthetic), no url/path: generate into data/raw
- data.path: the folder is read in place; data/raw/source.json records where and a fingerprint
- data.url + data.sha256: fetch, verify, extract safely into data/raw
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..fsutil import atomic_dir
from .sources import SOURCES


def raw_root(params, raw_dir: Path) -> Path:
    """Where the preprocess stage reads the dataset from."""
    return Path(params.data.path).expanduser() if params.data.path is not None else Path(raw_dir)


def download(params, dest: Path) -> None:
    cfg = params.data
    source = SOURCES.get(cfg.dataset, "data.dataset")
    if cfg.url is None and cfg.path is None:
        if not hasattr(source, "generate"):
            raise DataError(f"data.dataset {cfg.dataset}: no data; set data.path to a local folder with "
                            f"{source.layout}, or data.url + data.sha256 to an archive of it")
        with atomic_dir(dest) as staging:
            source.generate(params, staging)
        return
    raise DataError("data.url / data.path: not implemented yet")
