"""Atomic writes and hashing: every file segbench produces goes through here.

A write lands in a temporary file in the target directory and is moved into place with
os.replace, so a crash (or SIGKILL) leaves either the old file or the new one, never half.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # reading the umask means setting it; put it straight back


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it over `path` only if the block succeeds.

    A full disk (or quota, read-only file system, permissions) is an OutputError naming `path`;
    the temporary file is removed and a previous `path` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual mode
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())  # a full disk can surface only here (delayed allocation)
        os.replace(tmp_path, path)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:  # never hide the error that got us here
            pass


def _storage_error(path: Path, exc: OSError) -> BaseException:
    """OutputError for a full disk & co. (one line from the CLI); anything else stays as it is."""
    from .errors import storage_error

    return storage_error(path, exc, previous_kept=path.exists()) or exc


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; an undefined score is written as null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False, allow_nan=False)
    write_bytes(path, (text + "\n").encode())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def save_figure(fig, path: str | os.PathLike, dpi: int) -> None:
    """A matplotlib Figure as a PNG (the figure object is passed in: io imports no matplotlib)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Compressed named arrays, no pickles (a list of strings becomes a unicode array)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{name: np.asarray(value) for name, value in arrays.items()})


def smallest_exact(array: Any) -> np.ndarray:
    """An integer array in the smallest integer dtype that holds each of its values exactly (counts of
    pixels: uint16 for 64x64 images), others unchanged. What git stores per seed shrinks; readers
    widen before any arithmetic (uint16 sums would wrap)."""
    array = np.asarray(array)
    if array.dtype.kind not in "iu" or array.size == 0:
        return array
    return array.astype(np.result_type(np.min_scalar_type(array.min()), np.min_scalar_type(array.max())))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz file, read in full; a missing or unreadable file is one DataError line."""
    import zipfile

    from .errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); re-run the stage that writes it") from None


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        # Through a Python file object: a full disk is then an OSError (ENOSPC), not an opaque
        # RuntimeError from torch's C++ zip writer.
        with open(tmp, "wb") as fh:
            try:
                torch.save(obj, fh)
            except RuntimeError as exc:  # torch wraps the writer's OSError when it fails mid-save
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, OSError):
                    raise cause from None
                raise


def open_memmap(path: str | os.PathLike, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """np.lib.format.open_memmap(mode="w+") with the file's blocks allocated up front.

    A memory-mapped file is sparse: on a full disk, writing into the map kills the process
    with SIGBUS and no message. Allocating first turns that into an OutputError (ENOSPC) here.
    """
    path = Path(path)
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        if hasattr(os, "posix_fallocate") and path.stat().st_size:
            with open(path, "rb+") as fh:
                os.posix_fallocate(fh.fileno(), 0, path.stat().st_size)
    except OSError as exc:
        from .errors import storage_error

        raise storage_error(path, exc) or exc from None
    return array


def read_json(path: str | os.PathLike) -> Any:
    from .errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it and re-run the stage that writes it") from None


def load_torch(path: str | os.PathLike) -> Any:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True: tensors and
    plain containers only; a file holding any other pickled object is refused, never run)."""
    import pickle

    import torch

    from .errors import DataError, first_line

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found; run the train stage first (dvc repro)")
    try:
        with warnings.catch_warnings():  # torch warns about odd files before failing; the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"\bGLOBAL\s+([\w.]+)", str(exc))
        if found:  # torch refused to import something: the file would run code if unpickled freely
            raise DataError(f"{path}: refused: the file holds a pickled Python object ({found.group(1)}), not just "
                            "tensors; loaded with weights_only=True, nothing in it was run; a segbench checkpoint "
                            "never holds one: delete it and re-run the train stage (dvc repro)") from None
        raise DataError(f"{path}: unreadable checkpoint (truncated or corrupt: not a file written by torch.save); "
                        "delete it and re-run the train stage (dvc repro)") from None
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        gist = first_line(exc).split(". ")[0].rstrip(".")  # torch's first sentence
        raise DataError(f"{path}: unreadable checkpoint (truncated or corrupt: {type(exc).__name__}: {gist}); "
                        "delete it and re-run the train stage (dvc repro)") from None


def state_dict_bytes(state_dict: dict) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
