"""Safe extraction of zip and tar archives from the internet.

Only regular files and directories come out, each under the destination folder. A member
with an absolute path, a `..` component, a link (symbolic or hard), a device or fifo, or an
archive that expands beyond `max_bytes` / `max_members` is refused with a DataError naming
the archive and the member. Sizes are checked twice: the sizes the archive declares, and the
bytes actually written while streaming (declared sizes can lie).

We write each file ourselves instead of calling extractall: the rules above are the whole
policy, and they do not depend on the Python version's tarfile filters.
"""
from __future__ import annotations

import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Optional

from ..errors import DataError

MAX_BYTES = 20 * 1024**3  # 20 GiB: larger than any dataset segbench targets, smaller than a bomb
MAX_MEMBERS = 1_000_000
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
SUPPORTED = ".zip, .tar, .tar.gz / .tgz, .tar.bz2, .tar.xz"
CHUNK = 1 << 20
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, OSError)


def archive_format(path: str | os.PathLike) -> str:
    """'zip' or 'tar', from the file name or, failing that, the content."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DataError(f"{path}: not a zip or tar archive; supported: {SUPPORTED}")


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int = MAX_BYTES,
            max_members: int = MAX_MEMBERS) -> int:
    """Extract `archive` into the existing folder `dest` (a staging folder: on error, discard it).

    Returns the number of files written.
    """
    archive, dest = Path(archive), Path(dest)
    extractor = _Extractor(archive, dest, max_bytes, max_members)
    kind = archive_format(archive)
    try:
        if kind == "zip":
            extractor.zip()
        else:
            extractor.tar()
    except _READ_ERRORS as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{archive}: corrupt or truncated {kind} archive ({reason}); delete it and download again") from None
    return extractor.files


class _Extractor:
    def __init__(self, archive: Path, dest: Path, max_bytes: int, max_members: int) -> None:
        self.archive, self.dest = archive, dest
        self.max_bytes, self.max_members = max_bytes, max_members
        self.members = 0
        self.declared = 0
        self.written = 0
        self.files = 0

    # --- policy ---------------------------------------------------------------------------

    def reject(self, name: str, why: str) -> DataError:
        return DataError(f"{self.archive}: member {name!r}: {why}; refusing to extract this archive")

    def target(self, name: str) -> Optional[Path]:
        """Where member `name` goes under dest; None for the archive root itself ('./')."""
        clean = name.replace("\\", "/")  # zips made on Windows may use backslashes
        if "\x00" in clean:
            raise self.reject(name, "invalid name (NUL character)")
        if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
            raise self.reject(name, "absolute path (members must be relative)")
        parts = [p for p in clean.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.reject(name, "'..' in path (would escape the destination)")
        return self.dest.joinpath(*parts) if parts else None

    def count(self, name: str) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise self.reject(name, f"more than {self.max_members} members (max_members); a decompression bomb?")

    def declare(self, name: str, size: int) -> None:
        self.declared += max(0, size)
        if self.declared > self.max_bytes:
            raise self.reject(name, f"archive declares more than {self.max_bytes} bytes of content (max_bytes); "
                                    "a decompression bomb?")

    def charge(self, name: str, size: int) -> None:
        self.written += size
        if self.written > self.max_bytes:
            raise self.reject(name, f"archive expands to more than {self.max_bytes} bytes (max_bytes); "
                                    "a decompression bomb?")

    # --- writing ----------------------------------------------------------------------------

    def make_dir(self, name: str, path: Optional[Path]) -> None:
        if path is None:
            return
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.reject(name, f"cannot create folder {path} ({exc.strerror or exc})") from None

    def write_file(self, name: str, path: Optional[Path], src: IO[bytes]) -> None:
        if path is None:
            raise self.reject(name, "a file with no name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: never write through a link, even one that was there before us.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise self.reject(name, f"cannot create {path} ({exc.strerror or exc})") from None
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src.read(CHUNK)  # read errors: a corrupt archive (see extract)
                if not chunk:
                    break
                self.charge(name, len(chunk))
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DataError(f"{path}: cannot write ({exc.strerror or exc}) while extracting {self.archive}") from None
        self.files += 1

    # --- formats ----------------------------------------------------------------------------

    def tar(self) -> None:
        with tarfile.open(self.archive, "r:*") as tf:
            for member in tf:  # lazily: headers are read as we go, so a bomb stops early
                name = member.name
                self.count(name)
                path = self.target(name)
                if member.issym() or member.islnk():
                    kind = "symbolic" if member.issym() else "hard"
                    raise self.reject(name, f"{kind} link to {member.linkname!r} (links are not extracted)")
                if member.ischr() or member.isblk() or member.isfifo():
                    raise self.reject(name, "device or fifo (only files and folders are extracted)")
                if member.isdir():
                    self.make_dir(name, path)
                elif member.issparse():
                    raise self.reject(name, "sparse file (not supported)")
                elif member.isreg():
                    self.declare(name, member.size)
                    src = tf.extractfile(member)
                    assert src is not None  # isreg() members always have data
                    with src:
                        self.write_file(name, path, src)
                else:
                    raise self.reject(name, f"unsupported member type {member.type!r} (only files and folders)")

    def zip(self) -> None:
        with zipfile.ZipFile(self.archive) as zf:
            infos = zf.infolist()
            # Check every entry before writing anything: a zip has its directory up front.
            for info in infos:
                self.count(info.filename)
                self.target(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise self.reject(info.filename, "symbolic link (links are not extracted)")
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                    raise self.reject(info.filename, "device, fifo or socket (only files and folders are extracted)")
                if info.flag_bits & 0x1:
                    raise self.reject(info.filename, "encrypted (not supported)")
                if not info.is_dir():
                    self.declare(info.filename, info.file_size)
            for info in infos:
                path = self.target(info.filename)
                if info.is_dir() or stat.S_ISDIR(info.external_attr >> 16):
                    self.make_dir(info.filename, path)
                else:
                    with zf.open(info) as src:
                        self.write_file(info.filename, path, src)
