"""The one exception family. A stage turns these into one line on stderr and exit code 2."""
from __future__ import annotations

import errno
import sys


class SegbenchError(Exception):
    """A user-facing mistake: bad params, bad data, missing files. Never a bug of ours."""

    def __str__(self) -> str:
        # The CLI prints exactly one line: text quoted from elsewhere (a torch or YAML message)
        # must not break it.
        return " ".join(line.strip() for line in super().__str__().splitlines() if line.strip())


class ConfigError(SegbenchError):
    """params.yaml (or an override) names an unknown key, a bad type or an invalid value."""


class DataError(SegbenchError):
    """A dataset on disk is missing, malformed or inconsistent."""


class TrainingError(SegbenchError):
    """Training cannot go on (non-finite loss, device unavailable, ...)."""


class OutputError(SegbenchError):
    """An output cannot be written: disk full, quota, read-only file system, permissions."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno  # the OSError's errno behind it, when there was one


class ResourceError(SegbenchError):
    """The machine ran out of something (GPU or host memory) or lost a worker process."""


# errno values that say "the machine", not "segbench": worth one line, not a traceback.
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large for the file system",
}


def storage_error(path, exc: OSError, previous_kept: bool | None = None, doing: str = "cannot write: ") -> OutputError | None:
    """An OutputError for `exc` when it is a storage failure (disk full, ...) at `path`; else None."""
    reason = STORAGE_ERRNOS.get(getattr(exc, "errno", None))
    if reason is None:
        return None
    code = errno.errorcode.get(exc.errno, str(exc.errno))
    kept = {None: "", True: "; the previous version is kept", False: "; nothing was written"}[previous_kept]
    advice = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space", errno.EFBIG: "free disk space",
              errno.EROFS: "use a writable file system"}.get(exc.errno, "fix the permissions")
    return OutputError(f"{path}: {doing}{reason} ({code}){kept}; {advice} and re-run", exc.errno)


def first_line(exc: object) -> str:
    """The first non-empty line of a (library's) exception message, or its type's name: how a
    message quoted from elsewhere goes into our one-line errors."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def explain(exc: BaseException) -> SegbenchError | None:
    """A one-line SegbenchError for failures of the machine rather than of segbench (a DataLoader
    worker killed, CUDA or host memory exhausted, a full disk), or None: then it is our bug and
    keeps its traceback. cli.main uses this for every exception that is not a SegbenchError."""
    if isinstance(exc, SegbenchError):
        return exc
    text = str(exc)
    chain = _chain(exc)
    if isinstance(exc, RuntimeError) and "DataLoader worker" in text:
        # torch raises "exited unexpectedly" from "is killed by signal: ..." (the informative one)
        detail = next((first_line(e) for e in chain if "killed by signal" in str(e)), first_line(exc))
        return ResourceError(
            f"a DataLoader worker process died ({detail}); usually the machine ran out of memory "
            "(see dmesg) or the data loading code crashed: set train.num_workers: 0 to load data in the main "
            "process, or lower train.num_workers / train.batch_size")
    oom_type = getattr(getattr(sys.modules.get("torch"), "cuda", None), "OutOfMemoryError", None)
    if (oom_type is not None and isinstance(exc, oom_type)) or (isinstance(exc, RuntimeError) and "CUDA out of memory" in text):
        return ResourceError(
            f"CUDA out of memory ({first_line(exc)[:200]}); lower train.batch_size (or evaluate.batch_size / "
            "profile.batch_size for those stages), use train.amp: bf16 (or fp16), a smaller data.image_size or a "
            "smaller model, and make sure no other process holds the GPU (nvidia-smi)")
    if isinstance(exc, MemoryError):
        return ResourceError("out of host memory (MemoryError); lower train.batch_size, train.num_workers or "
                             "data.workers, or use a smaller data.image_size")
    for error in chain:  # an OSError, or one wrapped by a library (torch's C++ writers)
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            where = error.filename if error.filename is not None else "an output file"
            return storage_error(where, error, doing="")
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """exc, then what caused it (explicitly or while handling), oldest last."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain
