"""The download stage: obtain a dataset's raw files (atomically).

- embedded source (synthetic), no url/path: generate into data/raw
- data.path: the folder is read in place; data/raw/source.json records where and a fingerprint
- data.url + data.sha256: fetch, verify, extract safely into data/raw

Either way the layout is validated here (source.read), so a wrong archive or folder fails at
download, not three stages later.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

from ..errors import DataError
from ..fsutil import atomic_dir
from ..io import write_json
from .archive import extract
from .fetch import RetryPolicy, fetch
from .sources import SOURCES

SOURCE_FILE = "source.json"


def raw_root(params, raw_dir: Path) -> Path:
    """Where the preprocess stage reads the dataset from."""
    return Path(params.data.path).expanduser() if params.data.path is not None else Path(raw_dir)


def downloads_dir(raw_dir: Path) -> Path:
    """The archive cache beside data/raw (data/downloads): kept, so a re-run does not re-fetch."""
    return Path(raw_dir).parent / "downloads"


def download(params, dest: Path, *, retry: Optional[RetryPolicy] = None) -> Optional[dict]:
    """Fill `dest` (data/raw). Returns what dest/source.json records (None for a generated dataset)."""
    cfg = params.data
    source = SOURCES.get(cfg.dataset, "data.dataset")
    if cfg.path is not None:
        return _use_folder(params, source, Path(dest))
    if cfg.url is not None:
        return _download_archive(params, source, Path(dest), retry or RetryPolicy())
    if not hasattr(source, "generate"):
        raise DataError(f"data.dataset {cfg.dataset}: no data; set data.path to a local folder with "
                        f"{source.layout}, or data.url + data.sha256 to an archive of it")
    with atomic_dir(dest) as staging:
        source.generate(params, staging)
    return None


def _download_archive(params, source, dest: Path, retry: RetryPolicy) -> dict:
    cfg = params.data
    archive = fetch(cfg.url, cfg.sha256, downloads_dir(dest), retry=retry)
    with atomic_dir(dest) as staging:
        files = extract(archive, staging)
        _validate(params, source, staging, f"data.url {cfg.url}: the archive", shown_as=dest)
        record = {"dataset": cfg.dataset, "url": cfg.url, "sha256": cfg.sha256.lower(), "archive": str(archive),
                  "files": files}
        write_json(staging / SOURCE_FILE, record)
    return record


def _use_folder(params, source, dest: Path) -> dict:
    cfg = params.data
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "folder not found"
        raise DataError(f"data.path {cfg.path}: {what} (looked at {root.absolute()}); "
                        f"expected a folder with {source.layout}")
    absolute, out = root.resolve(), dest.resolve()
    if absolute == out or out in absolute.parents or absolute in out.parents:
        raise DataError(f"data.path {cfg.path}: overlaps {dest}, which the download stage replaces; "
                        "keep the dataset in a folder of its own")
    _validate(params, source, root, f"data.path {cfg.path}")
    record = {"dataset": cfg.dataset, "path": str(absolute), **folder_fingerprint(root)}
    with atomic_dir(dest) as staging:
        write_json(staging / SOURCE_FILE, record)
    return record


def _validate(params, source, root: Path, what: str, shown_as: Optional[Path] = None) -> None:
    """source.read must accept `root` and find training samples; DataError otherwise."""
    try:
        raw = source.read(params, root)
    except DataError as exc:
        message = str(exc).replace(str(root), str(shown_as)) if shown_as is not None else str(exc)
        raise DataError(f"{what} is not a {params.data.dataset} dataset: {message}") from None
    if not raw.splits.get("train"):
        raise DataError(f"{what} is not a {params.data.dataset} dataset: no training samples found; "
                        f"expected {source.layout}")


def folder_fingerprint(root: str | os.PathLike) -> dict:
    """sha256 over sorted (relative path, size, mtime_ns) of every file under `root`.

    Cheap (no file is read) and changes when a file is added, removed, resized or rewritten,
    so DVC sees a changed data/raw/source.json when the download stage re-runs.
    """
    root = Path(root)
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:  # a dangling link: not data anyone can read
                continue
            entries.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    digest = hashlib.sha256()
    for rel, size, mtime_ns in sorted(entries):
        digest.update(f"{rel}\0{size}\0{mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return {"fingerprint": digest.hexdigest(), "files": len(entries), "bytes": sum(e[1] for e in entries)}
