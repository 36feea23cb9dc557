"""Directory-level atomic output: build a tree beside the target, then swap it into place."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError, storage_error


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces `path`, on failure it vanishes.

    A previous `path` survives any failure inside the block. A full disk (or quota, read-only
    file system) is an OutputError naming `path`.
    """
    path = Path(path)
    staging = path.parent / f".{path.name}.partial"
    try:
        if staging.exists():  # left by a killed run
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
    except OSError as exc:
        raise storage_error(path, exc, previous_kept=path.exists()) or exc from None
    try:
        yield staging
        _swap(staging, path)
    except OSError as exc:
        raise storage_error(path, exc, previous_kept=path.exists()) or exc from None
    except OutputError as exc:  # a file in the staging folder: name the output the user knows
        if exc.errno is None:
            raise
        raise storage_error(path, OSError(exc.errno, ""), previous_kept=path.exists()) or exc from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, path: Path) -> None:
    """Move `staging` to `path`, keeping the previous `path` until the new one is in place."""
    old = path.parent / f".{path.name}.old"
    if old.exists():  # left by a run killed mid-swap
        shutil.rmtree(old)
    if not path.exists():
        os.replace(staging, path)
        return
    os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old, path)  # put the previous tree back
        raise
    shutil.rmtree(old, ignore_errors=True)
