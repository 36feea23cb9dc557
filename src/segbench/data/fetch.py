"""Fetch a dataset archive: resumable, retried, verified before anyone reads it.

An http(s) URL is streamed into `<cache_dir>/<name>.part` and renamed to `<cache_dir>/<name>`
only once its SHA-256 matches; an interrupted download resumes from the `.part` file with a
Range request. A file already at `<cache_dir>/<name>` with the right checksum is used without
touching the network, which is also how a user without network access supplies the archive.
A file:// URL is verified and read in place (copying a local archive would only cost disk).
"""
from __future__ import annotations

import email.utils
import os
import re
import sys
import time
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Callable, Optional
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, url2pathname, urlopen

from ..errors import DataError, first_line
from ..io import sha256_file

CHUNK = 1 << 20
RETRY_STATUS = (408, 429)  # besides every 5xx


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `attempts` in all, waiting base_delay_s * 2**k (at most max_delay_s) between."""

    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    timeout_s: float = 60.0  # per socket operation, not per download

    def delay(self, failed: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** failed)


class _Transient(Exception):
    """A failure worth another attempt (network trouble, 5xx, 429)."""

    def __init__(self, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def cache_name(url: str) -> str:
    """The file name a URL's archive gets in the downloads folder."""
    name = os.path.basename(unquote(urlparse(url).path))
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".")
    return name or "download"


def fetch(url: str, sha256: str, cache_dir: str | os.PathLike, *, retry: RetryPolicy = RetryPolicy(),
          sleep: Callable[[float], None] = time.sleep) -> Path:
    """A local file holding `url`'s bytes, verified against `sha256`; DataError if it cannot be had."""
    sha256 = sha256.lower()
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _local_file(url, sha256)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DataError(f"data.url: {url!r} is not valid; expected http://HOST/..., https://HOST/... or file:///PATH")

    cache_dir = Path(cache_dir)
    target = cache_dir / cache_name(url)
    stale = None
    if target.is_file():
        stale = sha256_file(target)
        if stale == sha256:
            return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")

    reason = ""
    for attempt in range(retry.attempts):
        try:
            _download(url, part, sha256, retry.timeout_s)
            break
        except _Transient as exc:
            reason = str(exc)
            if attempt + 1 < retry.attempts:
                wait = retry.delay(attempt)
                if exc.retry_after is not None:
                    wait = min(retry.max_delay_s, max(wait, exc.retry_after))
                sleep(wait)
    else:
        there = f"; the file there now has sha256 {stale}" if stale else ""
        raise DataError(f"data.url {url}: cannot download ({first_line(reason)}) after {retry.attempts} attempts; "
                        f"download the archive yourself and set data.path to the extracted folder, "
                        f"or place the archive at {target} (sha256 {sha256}){there}")
    verify(part, sha256, url, delete=True)
    os.replace(part, target)
    return target


def verify(path: Path, sha256: str, url: str, *, delete: bool) -> None:
    """DataError unless `path` has checksum `sha256`; with `delete`, a bad file is removed so a re-run re-fetches it."""
    actual = sha256_file(path)
    if actual == sha256.lower():
        return
    if delete:
        Path(path).unlink(missing_ok=True)
        then = "the download was deleted; re-run to fetch it again, or fix data.sha256"
    else:
        then = "fix data.url or data.sha256"
    raise DataError(f"data.sha256: checksum mismatch for {url}: expected {sha256.lower()}, got {actual}; {then}")


def _local_file(url: str, sha256: str) -> Path:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise DataError(f"data.url: {url!r} is not a local file; a file URL is file:///ABSOLUTE/PATH")
    path = Path(url2pathname(parsed.path))
    if not path.is_file():
        raise DataError(f"data.url {url}: {path}: file not found; fix data.url, or set data.path to the extracted folder")
    verify(path, sha256, url, delete=False)
    return path


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) if isinstance(exc, URLError) else None
    return first_line(reason if reason is not None else exc)


def _retry_after(exc: HTTPError) -> Optional[float]:
    value = exc.headers.get("Retry-After") if exc.headers else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None


def _range_start(content_range: Optional[str]) -> Optional[int]:
    match = re.match(r"\s*bytes\s+(\d+)-", content_range or "")
    return int(match.group(1)) if match else None


def _download(url: str, part: Path, sha256: str, timeout: float) -> None:
    """One attempt: append the rest of `url` to `part` (or restart it). _Transient on a retryable failure."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "segbench", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing left to send: the .part may already be whole (we died before renaming it).
            if sha256_file(part) == sha256:
                return
            part.unlink()
            raise _Transient("the partial download did not fit the file on the server; starting over") from None
        if exc.code >= 500 or exc.code in RETRY_STATUS:
            raise _Transient(f"HTTP {exc.code} {exc.reason}", _retry_after(exc)) from None
        raise DataError(f"data.url {url}: HTTP {exc.code} {first_line(exc.reason)}; check the URL") from None
    except (URLError, OSError, HTTPException) as exc:  # refused, DNS, timeout, reset
        raise _Transient(_reason(exc)) from None

    with response:
        if response.status == 206:
            if _range_start(response.headers.get("Content-Range")) != offset:
                part.unlink(missing_ok=True)
                raise _Transient("the server resumed at the wrong offset; starting over")
            mode = "ab"
        else:  # 200: the server ignored the Range header and sends everything
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length", "")
        expected = offset + int(length) if length.strip().isdigit() else None
        received = offset
        with open(part, mode) as out, _progress(part.name[: -len(".part")], expected, offset) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, HTTPException) as exc:
                    raise _Transient(f"connection lost after {received} bytes ({_reason(exc)})") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise _Transient(f"connection closed after {received} of {expected} bytes")


def _progress(name: str, total: Optional[int], initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, disable=not sys.stderr.isatty())
