"""One gzip verifier (``cdnlogs.gzipcheck``) for sync and adopt: the same files accepted, the
same files refused with the same error, the same inflate cap."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdnlogs.config import DEFAULT_LAYOUT
from cdnlogs.errors import IncompleteDownloadError, RetriesExceededError
from cdnlogs.gzipcheck import GzipStreamVerifier
from cdnlogs.housekeeping import adopt_files
from cdnlogs.manifest import Manifest
from cdnlogs.retry import RetryPolicy
from cdnlogs.transfer import Downloader, DownloadResult, DownloadTask, TransferConfig

NAME = "a.example.com_2026_01_01_080000_090000.gz"
PLAIN = b"".join(
    b'[01/Jan/2026:08:00:%02d +0800] 10.0.0.%d - 12 "-" "GET https://a.example.com/p" 200 1 2 '
    b'HIT "ua" "text/html"\n' % (i % 60, i % 250)
    for i in range(3000)
)
#: A member followed by zero padding (tools that pad to a block size write such files).
PADDED = gzip.compress(PLAIN) + b"\x00" * 1024


@pytest.fixture
def serve() -> Iterator[dict[str, bytes]]:
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = files[self.path.split("?", 1)[0].lstrip("/")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    files["port"] = str(httpd.server_address[1]).encode()
    try:
        yield files
    finally:
        httpd.shutdown()
        httpd.server_close()


def _sync(
    files: dict[str, bytes], body: bytes, dest: Path, cap: int | None = None
) -> DownloadResult:
    files[NAME] = body
    port = int(files["port"])
    config = TransferConfig(
        retry=RetryPolicy(attempts=2, base_delay_seconds=0.001, max_delay_seconds=0.01),
        **({} if cap is None else {"max_inflated_bytes": cap}),
    )
    task = DownloadTask(
        url=f"http://127.0.0.1:{port}/{NAME}?Expires=9999999999&OSSAccessKeyId=AK&Signature=s",
        destination=dest,
        expected_size=len(body),
        key=NAME,
    )
    return Downloader(config=config).download(task)


def _adopt(tmp_path: Path, body: bytes, cap: int | None = None) -> tuple[list[str], list[str]]:
    src = tmp_path / "src"
    src.mkdir()
    (src / NAME).write_bytes(body)
    out = tmp_path / "out"
    with Manifest.open(out / ".cdnlogs", clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)) as led:
        if cap is None:
            result = adopt_files(led, src, out, layout=DEFAULT_LAYOUT)
        else:
            result = adopt_files(led, src, out, layout=DEFAULT_LAYOUT, max_inflated_bytes=cap)
        row = led.get("a.example.com", NAME)
        if row is not None:
            assert row.plain_size == len(PLAIN) and row.plain_lines == 3000
    return [a.log_name for a in result.adopted], [reason for _, reason in result.skipped]


def test_a_zero_padded_member_is_accepted_by_sync_and_adopt(
    serve: dict[str, bytes], tmp_path: Path
) -> None:
    result = _sync(serve, PADDED, tmp_path / "synced.log")
    assert result.error is None
    assert (tmp_path / "synced.log").read_bytes() == PLAIN
    assert _adopt(tmp_path, PADDED) == ([NAME], [])


def test_an_over_cap_file_is_refused_by_both_with_the_same_error(
    serve: dict[str, bytes], tmp_path: Path
) -> None:
    cap = len(PLAIN) - 1
    result = _sync(serve, PADDED, tmp_path / "synced.log", cap)
    error = result.error
    assert isinstance(error, RetriesExceededError)
    assert isinstance(error.last_exception, IncompleteDownloadError)
    message = str(error.last_exception)
    assert "inflate cap" in message
    assert not (tmp_path / "synced.log").exists()
    assert _adopt(tmp_path, PADDED, cap) == ([], [message])


def test_garbage_after_the_padding_is_refused_by_both(
    serve: dict[str, bytes], tmp_path: Path
) -> None:
    body = PADDED + b"junk"
    error = _sync(serve, body, tmp_path / "synced.log").error
    assert isinstance(error, RetriesExceededError)
    message = str(error.last_exception)
    assert message == "corrupt gzip: data after the zero padding"
    assert _adopt(tmp_path, body) == ([], [message])


def test_the_cap_bounds_each_piece_and_the_whole() -> None:
    verifier = GzipStreamVerifier(max_output=1000, max_inflated=len(PLAIN))
    pieces = list(verifier.feed(PADDED))
    verifier.finish()
    assert b"".join(pieces) == PLAIN and max(map(len, pieces)) <= 1000
    with pytest.raises(IncompleteDownloadError, match="inflate cap"):
        list(GzipStreamVerifier(max_inflated=len(PLAIN) - 1).feed(PADDED))
