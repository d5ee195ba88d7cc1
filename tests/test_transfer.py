"""The downloader against a real threaded HTTP server on 127.0.0.1 with switchable faults."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from cdnlogs.errors import (
    IncompleteDownloadError,
    RedirectRefusedError,
    RemoteNotFoundError,
    RetriesExceededError,
    UrlExpiredError,
)
from cdnlogs.gzipcheck import GzipStreamVerifier
from cdnlogs.retry import RetryPolicy
from cdnlogs.signedurl import url_expires_at
from cdnlogs.transfer import (
    MAX_REDIRECTS,
    Downloader,
    DownloadResult,
    DownloadTask,
    TransferConfig,
    make_session,
    remove_stale_parts,
)

FAST = TransferConfig(
    max_workers=4,
    chunk_size=4096,
    retry=RetryPolicy(attempts=4, base_delay_seconds=0.001, max_delay_seconds=0.01),
    connect_timeout_seconds=2,
    read_timeout_seconds=2,
)


@dataclass
class FaultServer:
    """Serves ``files[name]`` at ``/name``; ``faults[name]`` is a queue of one-shot faults."""

    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    range_support: bool = True
    requests: Counter[str] = field(default_factory=Counter)
    ranges: list[str] = field(default_factory=list)
    #: Every request line's target (path and query), in order.
    targets: list[str] = field(default_factory=list)
    #: Names whose body goes out at ``trickle_bytes_per_second`` until the client hangs up.
    trickle: set[str] = field(default_factory=set)
    trickle_bytes_per_second: float = 20.0
    #: Name -> the Location every request for it is answered with (302).
    redirects: dict[str, str] = field(default_factory=dict)
    port: int = 0

    def url(self, name: str, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}{query}"


def _make_handler(state: FaultServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.split("?", 1)[0].lstrip("/")
            state.requests[name] += 1
            state.targets.append(self.path)
            if name in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            queue = state.faults.get(name) or []
            fault = queue.pop(0) if queue else ""
            if fault == "drop":
                self.connection.close()
                return
            if fault.isdigit():
                self.send_response(int(fault))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.files.get(name)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "corrupt":
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
            start = 0
            header = self.headers.get("Range")
            if header:
                state.ranges.append(header)
            if header and state.range_support:
                start = int(header.split("=")[1].split("-")[0])
                self.send_response(206)
                first = start + 1 if fault == "badrange" else start
                self.send_header("Content-Range", f"bytes {first}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if name in state.trickle:
                # A few bytes at a time, forever (well within any read timeout): a dying link.
                step = 2
                try:
                    for i in range(0, len(payload), step):
                        self.wfile.write(payload[i : i + step])
                        self.wfile.flush()
                        time.sleep(step / state.trickle_bytes_per_second)
                except OSError:
                    pass  # the client gave up
                return
            if fault.startswith("truncate"):
                # Promise the whole body, send part of it, hang up.
                self.wfile.write(payload[: len(payload) // 3])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(payload)

    return Handler


def _serve() -> Iterator[FaultServer]:
    state = FaultServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from _serve()


@pytest.fixture
def other_server() -> Iterator[FaultServer]:
    """A second host (another port on 127.0.0.1): where a hostile redirect points."""
    yield from _serve()


def _log_text(lines: int, seed: int = 0) -> bytes:
    return b"".join(
        b'[01/Jan/2026:00:00:%02d +0800] 10.0.%d.%d - 12 "-" "GET https://a.example.com/p/%d" '
        b'200 100 %d HIT "curl/8" "text/html"\n' % (i % 60, seed, i % 250, i * 31 + seed, i)
        for i in range(lines)
    )


def _task(
    server: FaultServer, tmp_path: Path, name: str, plain: bytes, **kw: object
) -> DownloadTask:
    server.files[name] = gzip.compress(plain)
    return DownloadTask(
        url=server.url(name, "?Expires=9999999999&OSSAccessKeyId=AK&Signature=sig"),
        destination=tmp_path / "out" / name.removesuffix(".gz"),
        expected_size=len(server.files[name]),
        key=name,
        **kw,  # type: ignore[arg-type]
    )


def _no_parts(tmp_path: Path) -> None:
    assert list(tmp_path.rglob("*.part")) == []


def test_plain_download_writes_verified_text_and_hashes(
    server: FaultServer, tmp_path: Path
) -> None:
    plain = _log_text(3000)
    task = _task(server, tmp_path, "a.gz", plain)
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert task.destination.read_bytes() == plain
    assert result.size == len(server.files["a.gz"])
    assert result.sha256 == hashlib.sha256(server.files["a.gz"]).hexdigest()
    assert result.plain_size == len(plain)
    assert result.plain_checksum == f"crc32:{zlib.crc32(plain):08x}"
    assert result.attempts == 1
    _no_parts(tmp_path)


def test_gz_format_keeps_the_bytes_exactly(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "b.gz", _log_text(500), keep_gzip=True)
    result = Downloader(config=FAST).download(task)
    assert result.ok
    assert task.destination.read_bytes() == server.files["b.gz"]


def test_multi_member_gzip_is_accepted(server: FaultServer, tmp_path: Path) -> None:
    parts = [_log_text(200, seed) for seed in range(3)]
    server.files["m.gz"] = b"".join(gzip.compress(p) for p in parts) + b"\x00" * 8
    task = DownloadTask(server.url("m.gz"), tmp_path / "m.log", len(server.files["m.gz"]), key="m")
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert task.destination.read_bytes() == b"".join(parts)


def test_5xx_then_success(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "c.gz", _log_text(100))
    server.faults["c.gz"] = ["500", "503"]
    result = Downloader(config=FAST).download(task)
    assert result.ok
    assert result.attempts == 3
    assert server.requests["c.gz"] == 3


def test_truncated_body_is_resumed_with_range(server: FaultServer, tmp_path: Path) -> None:
    plain = os.urandom(1 << 16).hex().encode()  # incompressible enough to span many chunks
    task = _task(server, tmp_path, "d.gz", plain)
    server.faults["d.gz"] = ["truncate"]
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert result.resumes == 1 and result.restarts == 0
    assert len(server.ranges) == 1 and server.ranges[0] != "bytes=0-"
    assert task.destination.read_bytes() == plain
    _no_parts(tmp_path)


def test_truncated_body_restarts_when_range_is_unsupported(
    server: FaultServer, tmp_path: Path
) -> None:
    server.range_support = False
    plain = os.urandom(1 << 16).hex().encode()
    task = _task(server, tmp_path, "e.gz", plain)
    server.faults["e.gz"] = ["truncate"]
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert result.resumes == 0 and result.restarts == 1
    assert task.destination.read_bytes() == plain


def test_wrong_content_range_restarts_from_zero(server: FaultServer, tmp_path: Path) -> None:
    plain = os.urandom(1 << 15).hex().encode()
    task = _task(server, tmp_path, "f.gz", plain)
    server.faults["f.gz"] = ["truncate", "badrange"]
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert result.restarts == 1
    assert task.destination.read_bytes() == plain


def test_corrupt_gzip_is_retried(server: FaultServer, tmp_path: Path) -> None:
    plain = _log_text(2000)
    task = _task(server, tmp_path, "g.gz", plain)
    server.faults["g.gz"] = ["corrupt"]
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert result.attempts == 2
    assert task.destination.read_bytes() == plain


def test_corrupt_gzip_every_time_fails_and_leaves_nothing(
    server: FaultServer, tmp_path: Path
) -> None:
    task = _task(server, tmp_path, "h.gz", _log_text(2000))
    server.faults["h.gz"] = ["corrupt"] * 10
    result = Downloader(config=FAST).download(task)
    assert isinstance(result.error, RetriesExceededError)
    assert isinstance(result.error.last_exception, IncompleteDownloadError)
    assert "corrupt gzip" in str(result.error)
    assert server.requests["h.gz"] == FAST.retry.attempts
    assert not task.destination.exists()
    _no_parts(tmp_path)


def test_dropped_connection_is_retried(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "i.gz", _log_text(100))
    server.faults["i.gz"] = ["drop", "drop"]
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert result.attempts == 3


def test_403_is_url_expired_without_retries(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "j.gz", _log_text(10))
    server.faults["j.gz"] = ["403"]
    result = Downloader(config=FAST).download(task)
    assert isinstance(result.error, UrlExpiredError)
    assert server.requests["j.gz"] == 1
    assert "Signature" not in str(result.error)
    _no_parts(tmp_path)


def test_expired_url_is_not_even_requested(server: FaultServer, tmp_path: Path) -> None:
    server.files["k.gz"] = gzip.compress(b"x\n")
    task = DownloadTask(server.url("k.gz", "?Expires=1000&Signature=s"), tmp_path / "k", None)
    result = Downloader(config=FAST, wall_clock=lambda: 2000.0).download(task)
    assert isinstance(result.error, UrlExpiredError)
    assert server.requests["k.gz"] == 0
    assert url_expires_at(task.url) == 1000.0


def test_404_is_permanent_after_a_small_number_of_tries(
    server: FaultServer, tmp_path: Path
) -> None:
    task = DownloadTask(server.url("missing.gz"), tmp_path / "missing", 10)
    result = Downloader(config=FAST).download(task)
    assert isinstance(result.error, RemoteNotFoundError)
    assert server.requests["missing.gz"] == FAST.not_found_attempts
    _no_parts(tmp_path)


def test_size_mismatch_is_refused(server: FaultServer, tmp_path: Path) -> None:
    server.files["l.gz"] = gzip.compress(_log_text(50))
    size = len(server.files["l.gz"])
    for expected in (size - 1, size + 1):
        task = DownloadTask(server.url("l.gz"), tmp_path / f"l{expected}", expected)
        result = Downloader(config=FAST).download(task)
        assert isinstance(result.error, RetriesExceededError), expected
        assert not task.destination.exists()
    _no_parts(tmp_path)


def test_a_failed_download_keeps_the_previous_good_file(
    server: FaultServer, tmp_path: Path
) -> None:
    task = _task(server, tmp_path, "n.gz", _log_text(10))
    task.destination.parent.mkdir(parents=True)
    task.destination.write_bytes(b"old good file\n")
    server.faults["n.gz"] = ["500"] * 10
    result = Downloader(config=FAST).download(task)
    assert not result.ok
    assert task.destination.read_bytes() == b"old good file\n"


def test_stale_parts_from_a_killed_run_are_removed(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "o.gz", _log_text(10))
    task.destination.parent.mkdir(parents=True)
    stale = task.destination.with_name(task.destination.name + ".abc123.part")
    stale.write_bytes(b"half")
    other = task.destination.with_name("other.log.abc.part")
    other.write_bytes(b"not ours")
    assert Downloader(config=FAST).download(task).ok
    assert not stale.exists() and other.exists()
    assert remove_stale_parts(task.destination.with_name("other.log")) == 1


def test_map_runs_concurrently_bounded_and_reports_progress(
    server: FaultServer, tmp_path: Path
) -> None:
    tasks = [_task(server, tmp_path, f"p{i}.gz", _log_text(300, i)) for i in range(20)]
    server.faults["p3.gz"] = ["500"] * 10
    seen: list[str] = []
    progress: Counter[str] = Counter()
    lock = threading.Lock()
    pulled = 0
    max_ahead = 0

    class Recorder:
        def on_queued(self, task: DownloadTask) -> None:
            seen.append(f"q:{task.key}")

        def on_progress(self, task: DownloadTask, nbytes: int) -> None:
            with lock:
                progress[task.key] += nbytes

        def on_done(self, result: DownloadResult) -> None:
            seen.append(f"d:{result.task.key}")

    def lazy() -> Iterator[DownloadTask]:
        nonlocal pulled
        for task in tasks:
            pulled += 1
            yield task

    config = TransferConfig(max_workers=2, queue_size=1, chunk_size=4096, retry=FAST.retry)
    results = []
    for result in Downloader(config=config).map(lazy(), Recorder()):
        results.append(result)
        # The producer is never more than workers + queue ahead of the consumer.
        max_ahead = max(max_ahead, pulled - len(results))
    assert max_ahead <= 3
    assert len(results) == 20
    failed = [r.task.key for r in results if not r.ok]
    assert failed == ["p3.gz"]
    for task in tasks:
        if task.key != "p3.gz":
            assert progress[task.key] == len(server.files[task.key])
    assert sorted(s for s in seen if s.startswith("d:")) == sorted(f"d:{t.key}" for t in tasks)


def test_verifier_rejects_garbage_and_short_streams() -> None:
    good = gzip.compress(b"hello\n" * 100)
    verifier = GzipStreamVerifier(max_output=16)
    out = b"".join(
        piece for i in range(0, len(good), 7) for piece in verifier.feed(good[i : i + 7])
    )
    verifier.finish()
    assert out == b"hello\n" * 100
    with pytest.raises(IncompleteDownloadError):
        short = GzipStreamVerifier()
        list(short.feed(good[:-4]))
        short.finish()
    with pytest.raises(IncompleteDownloadError):
        list(GzipStreamVerifier().feed(good + b"trailing garbage"))
    with pytest.raises(IncompleteDownloadError):
        GzipStreamVerifier().finish()
    bad_crc = good[:-8] + (zlib.crc32(b"other") & 0xFFFFFFFF).to_bytes(4, "little") + good[-4:]
    with pytest.raises(IncompleteDownloadError):
        list(GzipStreamVerifier().feed(bad_crc))


def test_session_asks_for_identity_encoding() -> None:
    assert make_session().headers["Accept-Encoding"] == "identity"


_RSS_SCRIPT = textwrap.dedent(
    """
    import http.server, resource, shutil, sys, threading
    from pathlib import Path
    from cdnlogs.transfer import Downloader, DownloadTask, TransferConfig

    src = Path(sys.argv[1])

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        def log_message(self, *a): pass
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(src.stat().st_size))
            self.end_headers()
            with src.open("rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    task = DownloadTask(f"http://127.0.0.1:{httpd.server_address[1]}/x.gz",
                        Path(sys.argv[2]), src.stat().st_size, keep_gzip=sys.argv[3] == "gz")
    result = Downloader(config=TransferConfig()).download(task)
    assert result.ok, result.error
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before, after, result.size, result.plain_size)
    """
)


@pytest.mark.parametrize("fmt", ["log", "gz"])
def test_memory_stays_bounded_for_a_large_file(tmp_path: Path, fmt: str) -> None:
    # 48 MB of gzip that inflates to 48 MB, plus 2 MB of gzip that inflates to ~200 MB:
    # both would show up in peak RSS if anything held the body or the text in memory.
    src = tmp_path / "big.gz"
    with src.open("wb") as out:
        out.write(gzip.compress(os.urandom(48 << 20), compresslevel=1))
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as member:
            block = b"A" * (1 << 20)
            for _ in range(200):
                member.write(block)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(src), str(tmp_path / "big.out"), fmt],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    before_kb, after_kb, size, plain = (int(v) for v in proc.stdout.split())
    assert size == src.stat().st_size
    assert plain == (48 << 20) + (200 << 20)
    growth_mb = (after_kb - before_kb) / 1024
    assert growth_mb < 40, f"peak RSS grew by {growth_mb:.0f} MB for a 50 MB download"
    assert (tmp_path / "big.out").stat().st_size == (plain if fmt == "log" else size)
    assert time.monotonic() - started < 60


def _download_within(downloader: Downloader, task: DownloadTask, seconds: float) -> DownloadResult:
    """``download(task)``, failing the test (not hanging it) if it takes more than ``seconds``."""
    results: list[DownloadResult] = []
    worker = threading.Thread(target=lambda: results.append(downloader.download(task)))
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        downloader.cancel()  # unblock it (read1 returns each trickled piece) before failing
        worker.join(10)
        pytest.fail(f"the download was still running after {seconds}s")
    return results[0]


def test_a_trickling_host_is_abandoned_under_the_minimum_speed_then_fails(
    server: FaultServer, tmp_path: Path
) -> None:
    # 20 bytes/s, each piece well within the 2 s read timeout: only a speed rule can end it.
    task = _task(server, tmp_path, "slow.gz", _log_text(3000))
    server.trickle.add("slow.gz")
    config = replace(FAST, min_speed_bytes_per_second=1000, min_speed_seconds=0.5)
    started = time.monotonic()
    result = _download_within(Downloader(config=config), task, 15)
    assert isinstance(result.error, RetriesExceededError)
    assert "too slow" in str(result.error) and "minimum 1000 B/s over 0.5s" in str(result.error)
    assert result.attempts == FAST.retry.attempts
    assert time.monotonic() - started < 10
    # What trickled in was kept: every retry resumed where the last one stopped.
    assert len(server.ranges) == FAST.retry.attempts - 1
    assert "Signature" not in str(result.error)
    assert not task.destination.exists()
    _no_parts(tmp_path)


def test_an_attempt_longer_than_the_longest_allowed_is_abandoned(
    server: FaultServer, tmp_path: Path
) -> None:
    task = _task(server, tmp_path, "long.gz", _log_text(3000))
    server.trickle.add("long.gz")
    server.trickle_bytes_per_second = 2000  # fast enough for any minimum speed, but endless
    config = replace(FAST, min_speed_bytes_per_second=0, max_attempt_seconds=0.4)
    result = _download_within(Downloader(config=config), task, 15)
    assert isinstance(result.error, RetriesExceededError)
    assert "took longer than 0.4s" in str(result.error)
    _no_parts(tmp_path)


def test_a_slow_but_steady_link_is_not_abandoned(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "steady.gz", _log_text(40))
    server.trickle.add("steady.gz")
    server.trickle_bytes_per_second = 4000
    config = replace(FAST, min_speed_bytes_per_second=500, min_speed_seconds=0.2)
    result = _download_within(Downloader(config=config), task, 15)
    assert result.ok, result.error
    assert result.attempts == 1


def test_a_redirect_to_another_host_is_refused_and_never_sent_there(
    server: FaultServer, other_server: FaultServer, tmp_path: Path
) -> None:
    task = _task(server, tmp_path, "r.gz", _log_text(20))
    other_server.files["r.gz"] = server.files["r.gz"]
    query = "?Expires=9999999999&OSSAccessKeyId=AK&Signature=sig"
    server.redirects["r.gz"] = other_server.url("r.gz", query)
    result = Downloader(config=FAST).download(task)
    assert isinstance(result.error, RedirectRefusedError)
    message = str(result.error)
    assert f"redirects to http://127.0.0.1:{other_server.port}, another host" in message
    assert "Signature=" not in message and "OSSAccessKeyId" not in message
    assert other_server.targets == []  # not one request, with or without the signature
    assert server.requests["r.gz"] == 1  # permanent: not retried
    assert not task.destination.exists()
    _no_parts(tmp_path)


def test_a_scheme_change_is_another_host_too(server: FaultServer, tmp_path: Path) -> None:
    task = _task(server, tmp_path, "s.gz", _log_text(20))
    server.redirects["s.gz"] = f"https://127.0.0.1:{server.port}/s.gz?Signature=sig"
    result = Downloader(config=FAST).download(task)
    assert isinstance(result.error, RedirectRefusedError)


def test_a_same_host_redirect_is_followed_a_bounded_number_of_times(
    server: FaultServer, tmp_path: Path
) -> None:
    task = _task(server, tmp_path, "old.gz", _log_text(20))
    server.files["new.gz"] = server.files["old.gz"]
    query = "?Expires=9999999999&OSSAccessKeyId=AK&Signature=sig"
    server.redirects["old.gz"] = "/new.gz" + query  # relative: resolved against the URL
    result = Downloader(config=FAST).download(task)
    assert result.ok, result.error
    assert task.destination.read_bytes() == _log_text(20)
    assert server.targets == ["/old.gz" + query, "/new.gz" + query]

    loop = _task(server, tmp_path, "loop.gz", _log_text(5))
    server.redirects["loop.gz"] = server.url("loop.gz", query)
    result = Downloader(config=FAST).download(loop)
    assert isinstance(result.error, RetriesExceededError)
    assert f"more than {MAX_REDIRECTS} redirects" in str(result.error)
    assert server.requests["loop.gz"] == FAST.retry.attempts * (MAX_REDIRECTS + 1)
