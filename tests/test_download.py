"""The download stage's url and path modes: fetch (resume, retry, verify), safe extraction, layout checks.

Network tests talk to an HTTP server started here on 127.0.0.1; it serves Range requests and can
be told to fail the next requests (503, a connection dropped mid-body, a Range request ignored).
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import TINY_PARAMS, segbench

from segbench.config import params_from_dict
from segbench.data.archive import extract
from segbench.data.download import download, downloads_dir
from segbench.data.fetch import RetryPolicy, fetch
from segbench.data.sources.synthetic import generate
from segbench.errors import DataError

FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01, timeout_s=5.0)
SIZES = {"train": 2, "val": 1, "test": 1}


# --- a test HTTP server -------------------------------------------------------------------

class ServerState:
    def __init__(self, base: str) -> None:
        self.base = base
        self.files: dict[str, bytes] = {}
        self.failures: list[str] = []  # consumed one per request: "503", "drop", "ignore-range"
        self.log: list[dict] = []  # one entry per request: path, range, status, sent
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        with state.lock:
            action = state.failures.pop(0) if state.failures else None
        requested = self.headers.get("Range")
        entry = {"path": self.path, "range": requested, "status": None, "sent": 0}
        state.log.append(entry)
        body = state.files.get(self.path.lstrip("/"))
        if action == "503" or body is None:
            entry["status"] = 503 if action == "503" else 404
            self.send_error(entry["status"])
            return
        start = 0
        if requested and action != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(body):
                entry["status"] = 416
                self.send_error(416)
                return
        payload = body[start:]
        entry["status"] = 206 if requested and action != "ignore-range" else 200
        self.send_response(entry["status"])
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        if entry["status"] == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if action == "drop":  # half the body, then hang up
            payload = payload[: len(payload) // 2]
            self.close_connection = True
        # Logged before the write: once the client has every byte it may read the log, and this
        # thread may not have run another line by then.
        entry["sent"] = len(payload)
        self.wfile.write(payload)
        self.wfile.flush()


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- datasets and archives ----------------------------------------------------------------

@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dataset") / "synthetic"
    generate(folder, seed=0, sizes=SIZES, height=16, width=16, num_classes=3)
    return folder


@pytest.fixture(scope="session")
def archive(dataset_dir: Path) -> bytes:
    """The synthetic dataset as a .tar.gz, files at the archive root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for child in sorted(dataset_dir.iterdir()):
            tf.add(child, arcname=child.name)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_params(**data):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"]["synthetic"] = {"num_train": 2, "num_val": 1, "num_test": 1, "height": 16, "width": 16, "num_classes": 3}
    raw["data"].update(data)
    return params_from_dict(raw)


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def assert_extracted(raw: Path) -> None:
    assert json.loads((raw / "classes.json").read_text()) == ["background", "disk", "box"]
    assert len(list((raw / "train" / "images").glob("*.png"))) == 2
    assert len(list((raw / "test" / "masks").glob("*.png"))) == 1


def assert_nothing_extracted(data: Path) -> None:
    assert not (data / "raw").exists()
    assert not (data / ".raw.partial").exists()


# --- url over http: fetch, resume, retry, verify -------------------------------------------

def test_http_download_verifies_extracts_and_records_source(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    params = make_params(url=server.url("ds.tar.gz"), sha256=sha(archive))
    raw = tmp_path / "data" / "raw"
    record = download(params, raw, retry=FAST)
    assert_extracted(raw)
    source = json.loads((raw / "source.json").read_text())
    assert source["url"] == server.url("ds.tar.gz") and source["sha256"] == sha(archive) == record["sha256"]
    cached = downloads_dir(raw) / "ds.tar.gz"
    assert cached.read_bytes() == archive and not cached.with_name("ds.tar.gz.part").exists()
    assert [e["status"] for e in server.log] == [200]

    download(params, raw, retry=FAST)  # a re-run uses the verified cache: no request
    assert len(server.log) == 1
    assert_extracted(raw)


def test_resume_requests_only_the_rest_of_a_partial_download(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    cache = tmp_path / "downloads"
    cache.mkdir()
    done = len(archive) // 3
    (cache / "ds.tar.gz.part").write_bytes(archive[:done])
    path = fetch(server.url("ds.tar.gz"), sha(archive), cache, retry=FAST)
    assert path.read_bytes() == archive
    assert server.log == [{"path": "/ds.tar.gz", "range": f"bytes={done}-", "status": 206, "sent": len(archive) - done}]


def test_server_ignoring_range_restarts_from_zero(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    server.failures = ["ignore-range"]
    cache = tmp_path / "downloads"
    cache.mkdir()
    (cache / "ds.tar.gz.part").write_bytes(archive[:100])
    assert fetch(server.url("ds.tar.gz"), sha(archive), cache, retry=FAST).read_bytes() == archive
    assert [(e["status"], e["sent"]) for e in server.log] == [(200, len(archive))]


def test_retry_after_503(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    server.failures = ["503"]
    slept = []
    path = fetch(server.url("ds.tar.gz"), sha(archive), tmp_path, retry=FAST, sleep=slept.append)
    assert path.read_bytes() == archive
    assert [e["status"] for e in server.log] == [503, 200]
    assert slept == [FAST.base_delay_s]


def test_retry_after_disconnect_mid_body_resumes(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    server.failures = ["drop"]
    path = fetch(server.url("ds.tar.gz"), sha(archive), tmp_path, retry=FAST)
    assert path.read_bytes() == archive
    first, second = server.log
    assert first["status"] == 200 and 0 < first["sent"] < len(archive)
    assert second["range"] == f"bytes={first['sent']}-" and second["status"] == 206
    assert first["sent"] + second["sent"] == len(archive)


def test_backoff_grows_exponentially_and_gives_up_with_a_clear_error(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    server.failures = ["503"] * 3
    slept = []
    with pytest.raises(DataError) as exc:
        fetch(server.url("ds.tar.gz"), sha(archive), tmp_path, retry=FAST, sleep=slept.append)
    message = one_line(exc)
    assert "HTTP 503" in message and "after 3 attempts" in message and "data.path" in message
    assert slept == [0.001, 0.002]


def test_http_404_is_not_retried(server, tmp_path):
    with pytest.raises(DataError) as exc:
        fetch(server.url("missing.zip"), "0" * 64, tmp_path, retry=FAST)
    assert "HTTP 404" in one_line(exc)
    assert len(server.log) == 1


def test_checksum_mismatch_is_one_line_and_leaves_nothing(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    params = make_params(url=server.url("ds.tar.gz"), sha256="ab" * 32)
    data = tmp_path / "data"
    with pytest.raises(DataError) as exc:
        download(params, data / "raw", retry=FAST)
    message = one_line(exc)
    assert "ab" * 32 in message and sha(archive) in message and server.url("ds.tar.gz") in message
    assert_nothing_extracted(data)
    assert list((data / "downloads").iterdir()) == []  # the bad file is gone: a re-run fetches again


# --- offline: a pre-placed archive, or a clear error ---------------------------------------

def test_offline_without_a_local_copy_says_what_to_place_where(archive, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/ds.tar.gz"
    data = tmp_path / "data"
    with pytest.raises(DataError) as exc:
        download(make_params(url=url, sha256=sha(archive)), data / "raw", retry=FAST)
    message = one_line(exc)
    assert "data.path" in message and str(data / "downloads" / "ds.tar.gz") in message and sha(archive) in message
    assert_nothing_extracted(data)


def test_offline_with_the_wrong_file_in_place_reports_its_checksum(archive, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/ds.tar.gz"
    cache = tmp_path / "data" / "downloads"
    cache.mkdir(parents=True)
    (cache / "ds.tar.gz").write_bytes(b"not it")
    with pytest.raises(DataError) as exc:
        download(make_params(url=url, sha256=sha(archive)), tmp_path / "data" / "raw", retry=FAST)
    assert f"the file there now has sha256 {sha(b'not it')}" in one_line(exc)
    assert (cache / "ds.tar.gz").read_bytes() == b"not it"  # never delete what the user placed


def test_pre_placed_archive_is_used_without_network(archive, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/ds.tar.gz"
    raw = tmp_path / "data" / "raw"
    downloads_dir(raw).mkdir(parents=True)
    (downloads_dir(raw) / "ds.tar.gz").write_bytes(archive)
    download(make_params(url=url, sha256=sha(archive)), raw, retry=RetryPolicy(attempts=1))
    assert_extracted(raw)


# --- file:// ------------------------------------------------------------------------------

def test_file_url_is_verified_and_extracted_in_place(archive, tmp_path):
    path = tmp_path / "ds.tar.gz"
    path.write_bytes(archive)
    raw = tmp_path / "data" / "raw"
    download(make_params(url=path.as_uri(), sha256=sha(archive).upper()), raw)
    assert_extracted(raw)
    assert json.loads((raw / "source.json").read_text())["url"] == path.as_uri()
    assert not downloads_dir(raw).exists()  # no copy of a local archive


def test_file_url_mismatch_keeps_the_users_file(archive, tmp_path):
    path = tmp_path / "ds.tar.gz"
    path.write_bytes(archive)
    with pytest.raises(DataError) as exc:
        download(make_params(url=path.as_uri(), sha256="0" * 64), tmp_path / "data" / "raw")
    assert "checksum mismatch" in one_line(exc)
    assert path.exists()
    assert_nothing_extracted(tmp_path / "data")


def test_file_url_missing_file(tmp_path):
    with pytest.raises(DataError) as exc:
        download(make_params(url=(tmp_path / "nope.zip").as_uri(), sha256="0" * 64), tmp_path / "data" / "raw")
    assert "file not found" in one_line(exc) and "nope.zip" in str(exc.value)


def test_archive_with_the_wrong_layout_fails_at_download(tmp_path):
    path = tar_with(tmp_path / "other.tar", (tar_member("README.txt"), b"hello\n"))
    data = tmp_path / "data"
    with pytest.raises(DataError) as exc:
        download(make_params(url=path.as_uri(), sha256=sha(path.read_bytes())), data / "raw")
    message = one_line(exc)
    assert "not a synthetic dataset" in message and str(data / "raw" / "classes.json") in message
    assert ".partial" not in message
    assert_nothing_extracted(data)


def test_zip_archive_downloads_too(dataset_dir, tmp_path):
    path = tmp_path / "ds.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(dataset_dir.rglob("*")):
            zf.write(file, file.relative_to(dataset_dir).as_posix())
    raw = tmp_path / "data" / "raw"
    download(make_params(url=path.as_uri(), sha256=sha(path.read_bytes())), raw)
    assert_extracted(raw)


# --- safe extraction ----------------------------------------------------------------------

def assert_rejected(archive_path: Path, member: str, dest: Path, **limits) -> str:
    dest.mkdir(exist_ok=True)
    with pytest.raises(DataError) as exc:
        extract(archive_path, dest, **limits)
    message = one_line(exc)
    assert str(archive_path) in message and repr(member) in message
    return message


def test_tar_absolute_path_is_rejected(tmp_path):
    path = tar_with(tmp_path / "a.tar", (tar_member(str(tmp_path / "evil.txt")), b"x"))
    assert "absolute" in assert_rejected(path, str(tmp_path / "evil.txt"), tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_tar_dotdot_member_is_rejected(tmp_path):
    path = tar_with(tmp_path / "a.tar", (tar_member("ok.txt"), b"fine"), (tar_member("sub/../../evil.txt"), b"x"))
    assert "'..'" in assert_rejected(path, "sub/../../evil.txt", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_tar_symlink_pointing_outside_is_rejected(tmp_path):
    path = tar_with(tmp_path / "a.tar", (tar_member("link", tarfile.SYMTYPE, "../../etc"), b""),
                    (tar_member("link/passwd"), b"x"))
    assert "symbolic link" in assert_rejected(path, "link", tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists()


def test_tar_hardlink_pointing_outside_is_rejected(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    path = tar_with(tmp_path / "a.tar", (tar_member("hard", tarfile.LNKTYPE, str(outside)), b""))
    assert "hard link" in assert_rejected(path, "hard", tmp_path / "out")
    assert outside.read_text() == "secret" and not (tmp_path / "out" / "hard").exists()


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_device_and_fifo_members_are_rejected(tmp_path, kind):
    path = tar_with(tmp_path / "a.tar", (tar_member("dev", kind), b""))
    assert "device or fifo" in assert_rejected(path, "dev", tmp_path / "out")


def test_tar_decompression_bomb_is_rejected(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name in ("a.bin", "b.bin"):
            info = tarfile.TarInfo(name)
            info.size = 60_000
            tf.addfile(info, io.BytesIO(bytes(60_000)))
    assert path.stat().st_size < 2_000
    assert "max_bytes" in assert_rejected(path, "b.bin", tmp_path / "out", max_bytes=100_000)


def test_too_many_members_are_rejected(tmp_path):
    path = tar_with(tmp_path / "a.tar", *[(tar_member(f"f{i}"), b"") for i in range(5)])
    assert "max_members" in assert_rejected(path, "f3", tmp_path / "out", max_members=3)


def test_zip_traversal_is_rejected_before_anything_is_written(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../evil.txt", "x")
    out = tmp_path / "out"
    assert "'..'" in assert_rejected(path, "../evil.txt", out)
    assert list(out.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_zip_absolute_and_backslash_traversal_are_rejected(tmp_path):
    for name in ("/abs.txt", "..\\evil.txt"):
        path = tmp_path / "a.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(name, "x")
        assert_rejected(path, name, tmp_path / "out")


def test_zip_symlink_entry_is_rejected(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert "symbolic link" in assert_rejected(path, "link", tmp_path / "out")


def test_zip_bomb_is_rejected(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(500_000))
    assert path.stat().st_size < 2_000
    assert "max_bytes" in assert_rejected(path, "zeros.bin", tmp_path / "out", max_bytes=100_000)


def test_corrupt_archive_is_a_data_error(tmp_path):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError) as exc:
        extract(path, tmp_path / "out")
    assert "corrupt or truncated" in one_line(exc)


def test_malicious_archive_via_download_leaves_no_raw(tmp_path):
    path = tar_with(tmp_path / "a.tar", (tar_member("classes.json"), b"[]"), (tar_member("../evil"), b"x"))
    data = tmp_path / "data"
    with pytest.raises(DataError):
        download(make_params(url=path.as_uri(), sha256=sha(path.read_bytes())), data / "raw")
    assert_nothing_extracted(data)
    assert not (data / "evil").exists()


# --- data.path ------------------------------------------------------------------------------

def test_data_path_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError) as exc:
        download(make_params(path=str(tmp_path / "nowhere")), tmp_path / "data" / "raw")
    message = one_line(exc)
    assert message.startswith(f"data.path {tmp_path / 'nowhere'}: folder not found")
    assert "classes.json" in message  # the expected layout
    assert_nothing_extracted(tmp_path / "data")


def test_data_path_with_the_wrong_layout_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as exc:
        download(make_params(path=str(tmp_path / "empty")), tmp_path / "data" / "raw")
    assert "not a synthetic dataset" in one_line(exc)


def test_data_path_is_read_in_place_and_fingerprinted(dataset_dir, tmp_path):
    folder = tmp_path / "mine"
    generate(folder, seed=0, sizes=SIZES, height=16, width=16, num_classes=3)
    raw = tmp_path / "data" / "raw"
    params = make_params(path=str(folder))
    download(params, raw)
    assert [p.name for p in raw.iterdir()] == ["source.json"]  # nothing copied
    first = json.loads((raw / "source.json").read_text())
    # 4 images, 4 masks, 4 depth maps and classes.json
    assert first["path"] == str(folder.resolve()) and first["files"] == 13 and len(first["fingerprint"]) == 64

    download(params, raw)
    assert json.loads((raw / "source.json").read_text()) == first  # unchanged folder, same record
    image = folder / "train" / "images" / "00000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 1_000_000))
    download(params, raw)
    assert json.loads((raw / "source.json").read_text())["fingerprint"] != first["fingerprint"]


def test_data_path_must_not_overlap_data_raw(tmp_path):
    raw = tmp_path / "data" / "raw"
    generate(raw, seed=0, sizes=SIZES, height=16, width=16, num_classes=3)
    with pytest.raises(DataError) as exc:
        download(make_params(path=str(raw)), raw)
    assert "overlaps" in one_line(exc)
    assert (raw / "classes.json").exists()


# --- the command line --------------------------------------------------------------------

def test_cli_wrong_checksum_exits_2_with_one_line(server, archive, tmp_path):
    server.files["ds.tar.gz"] = archive
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"].update(url=server.url("ds.tar.gz"), sha256="12" * 32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = segbench(["download"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segbench: error:"), proc.stderr
    assert "12" * 32 in lines[0] and sha(archive) in lines[0]
    assert_nothing_extracted(tmp_path / "data")
