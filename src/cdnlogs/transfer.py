"""The download engine: signed URLs to verified local files on a bounded thread pool.

A :class:`Downloader` takes :class:`DownloadTask` values (a URL, a destination path and the
expected size) and turns each into exactly one verified file, or into a failed
:class:`DownloadResult` with the reason. It knows nothing about providers or the ledger
(``sync`` composes those); progress goes to a :class:`TransferCallbacks` object, never to a UI.
[boto/s3transfer]

Per file, in one pass over the network stream:

* the raw body is read with ``decode_content=False`` so the bytes are exactly what the log host
  stored; their count must equal the listed LogSize and their sha256 is computed on the way;
* the gzip stream is checked and inflated by ``cdnlogs.gzipcheck`` (the rules ``adopt`` uses
  too: several members, zero padding, a bounded output size per call so memory does not grow
  with the file, a cap on the plain size; every member's CRC and length);
* the output (the plain text for ``log``, the untouched gzip bytes for ``gz``) goes to
  ``<name>.<random>.part`` in the destination directory, which is fsynced, renamed over the final
  name with ``os.replace`` and followed by an fsync of the directory. On any failure the ``.part``
  file is removed, so a file under its final name is always complete and verified.

Retries (exponential backoff with full jitter, :class:`cdnlogs.retry.RetryPolicy`) cover
connection errors, timeouts, 5xx/429, truncated bodies, corrupt gzip and too-slow transfers. A
truncated body is resumed with ``Range`` when the host answers 206 with a matching
``Content-Range``; otherwise the download restarts from byte zero. A 403 or an ``Expires=`` in
the past is a :class:`~cdnlogs.errors.UrlExpiredError` (the caller re-lists for a fresh URL); a
404 is retried only ``not_found_attempts`` times before
:class:`~cdnlogs.errors.RemoteNotFoundError`.

Slow links: the read timeout only bounds the wait for *one* packet, so a host sending a few
bytes a second would keep a download (and the archive lock) forever. The body is read with
``read1`` (whatever has arrived, never "wait until a full chunk"), and an attempt is abandoned
when it stays under ``min_speed_bytes_per_second`` for ``min_speed_seconds`` or lasts longer
than ``max_attempt_seconds`` (curl's ``--speed-limit``/``--speed-time`` and ``--max-time``); it
is retried like a cut-off body, resuming with ``Range``.

Redirects: a signed URL is only ever sent to the origin (scheme, host, port) it was issued
for. A redirect to the same origin is followed (at most ``MAX_REDIRECTS``); one to another
origin fails the file with :class:`~cdnlogs.errors.RedirectRefusedError` without a request
there (see docs/sync.md for why not "follow without the query").

:meth:`Downloader.cancel` (Ctrl-C, SIGTERM) also shuts down the sockets of the bodies being
read and of the requests waiting for headers (:class:`CancellableAdapter`), so a stalled transfer
stops at once instead of after its read timeout.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cdnlogs.checksum import PlainChecksum
from cdnlogs.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_DOWNLOAD_ATTEMPTS,
    DEFAULT_DOWNLOAD_MAX_SECONDS,
    DEFAULT_DOWNLOAD_MIN_SPEED_BYTES_PER_SECOND,
    DEFAULT_DOWNLOAD_MIN_SPEED_SECONDS,
    DEFAULT_READ_TIMEOUT_SECONDS,
)
from cdnlogs.errors import (
    IncompleteDownloadError,
    RedirectRefusedError,
    RemoteNotFoundError,
    RetriesExceededError,
    TransferError,
    UrlExpiredError,
)
from cdnlogs.gzipcheck import INFLATE_PIECE_BYTES, MAX_INFLATED_BYTES, GzipStreamVerifier
from cdnlogs.linecount import LineCounter
from cdnlogs.redact import redact_url
from cdnlogs.retry import RetryPolicy
from cdnlogs.signedurl import origin_text, url_expires_at, url_origin
from cdnlogs.storage import fsync_dir

_FADV_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)

log = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB

DEFAULT_MAX_WORKERS = DEFAULT_CONCURRENCY
DEFAULT_CHUNK_SIZE = 1 * MiB
#: Largest piece of plain text inflated per call (the verifier's, shared with adopt).
DEFAULT_INFLATE_OUTPUT_SIZE = INFLATE_PIECE_BYTES
#: Start writeback of a ``.part`` file every this many bytes (see ``_Partial.write``).
DEFAULT_WRITEBACK_BYTES = 16 * MiB
DEFAULT_NOT_FOUND_ATTEMPTS = 2
#: Same-origin redirects followed per request (a loop fails the attempt after these).
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Tasks accepted beyond the running ones; keeps a 100k-file listing from becoming memory.
DEFAULT_QUEUE_SIZE = 16
DEFAULT_RETRY_POLICY = RetryPolicy(
    attempts=DEFAULT_DOWNLOAD_ATTEMPTS,
    base_delay_seconds=0.5,
    max_delay_seconds=10.0,
    max_elapsed_seconds=300.0,
)

# Only these are transient; anything else is a bug or a permanent condition. [s3transfer]
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class TransferConfig:
    """Tunables of the downloader, with unit-bearing defaults."""

    max_workers: int = DEFAULT_MAX_WORKERS
    chunk_size: int = DEFAULT_CHUNK_SIZE
    inflate_output_size: int = DEFAULT_INFLATE_OUTPUT_SIZE
    #: A download inflating to more plain text than this is refused (see ``cdnlogs.gzipcheck``).
    max_inflated_bytes: int = MAX_INFLATED_BYTES
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    not_found_attempts: int = DEFAULT_NOT_FOUND_ATTEMPTS
    queue_size: int = DEFAULT_QUEUE_SIZE
    #: An attempt averaging less than this over ``min_speed_seconds`` is abandoned (0: off).
    min_speed_bytes_per_second: float = DEFAULT_DOWNLOAD_MIN_SPEED_BYTES_PER_SECOND
    min_speed_seconds: float = DEFAULT_DOWNLOAD_MIN_SPEED_SECONDS
    #: Longest one attempt may take, headers and body (0: no bound).
    max_attempt_seconds: float = DEFAULT_DOWNLOAD_MAX_SECONDS


@dataclass(frozen=True)
class DownloadTask:
    """One file to fetch.

    :param url: the signed URL (a secret: only its redacted form appears in messages).
    :param destination: the final local path; its directory is created if missing.
    :param expected_size: the listed LogSize; ``None`` trusts ``Content-Length``.
    :param keep_gzip: store the verified gzip bytes as they came instead of the plain text.
    :param key: an opaque tag the caller uses to match results (e.g. ``(domain, log_name)``).
    """

    url: str
    destination: Path
    expected_size: int | None
    keep_gzip: bool = False
    key: Any = None


@dataclass(frozen=True)
class DownloadResult:
    """What became of one task. ``error`` is ``None`` when the file is in place and verified."""

    task: DownloadTask
    error: TransferError | None = None
    #: Bytes received from the host (the gzip size) and their sha256.
    size: int = 0
    sha256: str | None = None
    #: Size and checksum (``crc32:...``, see cdnlogs.checksum) of the decompressed text.
    plain_size: int = 0
    plain_checksum: str | None = None
    #: The text's lines (the ingest holds DuckDB's rows and rejects against them).
    plain_lines: int | None = None
    attempts: int = 0
    #: How many times a broken transfer was continued with ``Range`` / started over.
    resumes: int = 0
    restarts: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the file is in place and verified."""
        return self.error is None


class TransferCallbacks(Protocol):
    """Progress subscriber. ``on_progress`` may be called from worker threads."""

    def on_queued(self, task: DownloadTask) -> None:
        """The task was accepted by the downloader."""

    def on_progress(self, task: DownloadTask, nbytes: int) -> None:
        """``nbytes`` more bytes arrived (negative when a restart discards bytes)."""

    def on_done(self, result: DownloadResult) -> None:
        """The task finished, well or badly (called on the thread consuming results)."""


class NullCallbacks:
    """A subscriber that ignores everything."""

    def on_queued(self, task: DownloadTask) -> None:
        """Ignore."""

    def on_progress(self, task: DownloadTask, nbytes: int) -> None:
        """Ignore."""

    def on_done(self, result: DownloadResult) -> None:
        """Ignore."""


@dataclass
class _Partial:
    """A file being received: the open ``.part`` file and everything needed to resume it."""

    part_path: Path
    handle: IO[bytes]
    max_output: int
    max_inflated: int = MAX_INFLATED_BYTES
    received: int = 0
    plain_size: int = 0
    writeback_bytes: int = DEFAULT_WRITEBACK_BYTES
    unflushed: int = 0
    #: Continuations accepted with 206, and restarts from byte zero after bytes had arrived.
    resumes: int = 0
    restarts: int = 0
    gz_hash: Any = field(default_factory=hashlib.sha256)
    plain_hash: PlainChecksum = field(default_factory=PlainChecksum)
    lines: LineCounter = field(default_factory=LineCounter)
    verifier: GzipStreamVerifier = field(init=False)

    def __post_init__(self) -> None:
        self.verifier = GzipStreamVerifier(self.max_output, self.max_inflated)

    def write(self, data: bytes) -> None:
        """Append to the ``.part`` file, handing full stretches to the disk as we go."""
        self.handle.write(data)
        self.unflushed += len(data)
        if self.unflushed >= self.writeback_bytes and _FADV_DONTNEED is not None:
            # Plain text arrives ~10x faster than the gzip bytes: left alone it piles up as
            # dirty pages and the final fsync stalls this worker for seconds. Asking the kernel
            # to start writeback now (DONTNEED starts it without waiting) spreads the disk work
            # over the download and keeps the page cache from filling with logs we won't reread.
            self.handle.flush()
            os.posix_fadvise(self.handle.fileno(), 0, 0, _FADV_DONTNEED)
            self.unflushed = 0

    def reset(self) -> int:
        """Throw away what was received (the stream must start over); return the bytes lost."""
        lost = self.received
        if lost:
            self.restarts += 1
        self.handle.seek(0)
        self.handle.truncate()
        self.unflushed = 0
        self.received = 0
        self.plain_size = 0
        self.gz_hash = hashlib.sha256()
        self.plain_hash = PlainChecksum()
        self.lines = LineCounter()
        self.verifier = GzipStreamVerifier(self.max_output, self.max_inflated)
        return lost

    def discard(self) -> None:
        """Close and remove the ``.part`` file."""
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.part_path.unlink()


class _RetryableStatusError(TransferError):
    """A 5xx or 429 from the log host."""


class _TruncatedError(IncompleteDownloadError):
    """The body ended early; what arrived is good and may be resumed with Range."""


class _CancelledError(TransferError):
    """The downloader was cancelled while this file was in flight."""


class _TooSlowError(_TruncatedError):
    """Under the minimum speed, or over the longest attempt: keep what arrived, resume."""


def make_session(config: TransferConfig | None = None) -> requests.Session:
    """A requests Session whose connection pool fits ``config.max_workers`` threads."""
    config = config or TransferConfig()
    session = requests.Session()
    adapter = CancellableAdapter(pool_connections=4, pool_maxsize=max(config.max_workers, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # The log host must send the stored bytes, never a re-encoded body.
    session.headers["Accept-Encoding"] = "identity"
    return session


class CancellableAdapter(HTTPAdapter):
    """An HTTPAdapter that keeps (weakly) the socket of every connection it opens.

    So :meth:`shutdown_sockets` can wake every thread blocked on one, whether it waits for the
    response headers or for the next piece of a body: a blocked ``recv`` returns at once when
    its socket is shut down, which neither closing the response nor a timeout change does.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.poolmanager.pool_classes_by_scheme = _tracking_pools(self.sockets)

    def shutdown_sockets(self) -> None:
        """Shut down every open connection of this adapter (idle ones included)."""
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)


def _tracking_pools(
    sockets: weakref.WeakSet[socket.socket],
) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose connections add their socket to ``sockets`` on connect."""

    class Connection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class TlsConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = TlsConnection

    return {"http": Pool, "https": TlsPool}


def remove_stale_parts(destination: Path) -> int:
    """Delete ``<name>.*.part`` left next to ``destination`` by a killed run; return the count."""
    pattern = glob.escape(str(destination)) + ".*.part"
    removed = 0
    for stale in glob.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
            removed += 1
    return removed


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes START-END/TOTAL`` -> (start, end, total or None), or None if unparsable."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    first, _, last = span.partition("-")
    try:
        return int(first), int(last), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


class Downloader:
    """Fetch DownloadTasks on a bounded thread pool; see the module docstring for the rules.

    :param session: a requests Session (see :func:`make_session`); shared by the workers.
    :param config: tunables (a test passes a fast retry policy rather than a fake sleep: the
        wait between retries is on the cancel event, so :meth:`cancel` cuts it short).
    :param wall_clock: Unix time, to check ``Expires=`` before a request.
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        config: TransferConfig | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or TransferConfig()
        self.session = session or make_session(self.config)
        self._wall_clock = wall_clock
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop: running downloads give up at once, queued ones never start.

        A worker blocked in a read (a stalled host, response headers that do not come) is
        woken by shutting its socket down (sessions from :func:`make_session`; with another
        session it stops at its next chunk or read timeout).
        """
        self._cancelled.set()
        for adapter in self.session.adapters.values():
            if isinstance(adapter, CancellableAdapter):
                adapter.shutdown_sockets()

    # -- many files ---------------------------------------------------------------------------

    def map(
        self,
        tasks: Iterable[DownloadTask],
        callbacks: TransferCallbacks | None = None,
    ) -> Iterator[DownloadResult]:
        """Download ``tasks`` concurrently and yield each result as it completes.

        ``tasks`` is consumed lazily: at most ``max_workers + queue_size`` tasks are in
        flight, so a huge listing does not become memory. ``on_done`` runs on the thread
        iterating this generator, so the caller may record results there (e.g. in SQLite).
        Closing the generator early cancels the rest and waits for the running ones.
        """
        callbacks = callbacks or NullCallbacks()
        limit = max(self.config.max_workers, 1) + max(self.config.queue_size, 0)
        pool = ThreadPoolExecutor(
            max_workers=max(self.config.max_workers, 1), thread_name_prefix="cdnlogs-dl"
        )
        pending: set[Future[DownloadResult]] = set()
        try:
            for task in tasks:
                callbacks.on_queued(task)
                pending.add(pool.submit(self.download, task, callbacks))
                while len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from self._collect(done, callbacks)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from self._collect(done, callbacks)
        finally:
            if pending:
                # Interrupted (Ctrl-C, an error in the consumer): let running workers stop
                # at their next chunk and remove their .part files before we return.
                self.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _collect(
        done: Iterable[Future[DownloadResult]], callbacks: TransferCallbacks
    ) -> Iterator[DownloadResult]:
        for future in done:
            result = future.result()
            callbacks.on_done(result)
            yield result

    # -- one file -----------------------------------------------------------------------------

    def download(
        self, task: DownloadTask, callbacks: TransferCallbacks | None = None
    ) -> DownloadResult:
        """Fetch one task with retries; never raises a TransferError, returns it in the result."""
        callbacks = callbacks or NullCallbacks()
        started = time.monotonic()
        attempts = 0
        partial: _Partial | None = None
        try:
            if self._cancelled.is_set():
                raise _CancelledError("cancelled before it started")
            task.destination.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_parts(task.destination)
            partial = self._open_part(task.destination)
            delays = self.config.retry.delays()
            not_found = 0
            while True:
                attempts += 1
                try:
                    self._attempt(task, partial, callbacks)
                    break
                except (UrlExpiredError, _CancelledError, RedirectRefusedError):
                    raise
                except RemoteNotFoundError as exc:
                    not_found += 1
                    last: TransferError = exc
                    if not_found >= self.config.not_found_attempts:
                        raise
                except _TruncatedError as exc:
                    last = exc  # keep what arrived: the next attempt resumes with Range
                except IncompleteDownloadError as exc:
                    last = exc
                    callbacks.on_progress(task, -partial.reset())
                except _RetryableStatusError as exc:
                    last = exc
                except _NETWORK_ERRORS as exc:
                    last = IncompleteDownloadError(
                        f"connection failed after {partial.received} bytes: {type(exc).__name__}"
                    )
                if self._cancelled.is_set():  # the failure may be cancel() closing the socket
                    raise _CancelledError("cancelled")
                delay = next(delays, None)
                if delay is None:
                    raise RetriesExceededError(
                        f"gave up after {attempts} attempts: {last}", last_exception=last
                    )
                log.info(
                    "retrying %s in %.2fs (attempt %d): %s",
                    redact_url(task.url),
                    delay,
                    attempts + 1,
                    last,
                )
                if self._cancelled.wait(delay):
                    raise _CancelledError("cancelled")
            self._commit(partial, task.destination)
            return DownloadResult(
                task=task,
                size=partial.received,
                sha256=partial.gz_hash.hexdigest(),
                plain_size=partial.plain_size,
                plain_checksum=partial.plain_hash.hexdigest(),
                plain_lines=partial.lines.result(),
                attempts=attempts,
                resumes=partial.resumes,
                restarts=partial.restarts,
                seconds=time.monotonic() - started,
            )
        except TransferError as exc:
            if partial is not None:
                partial.discard()
            return DownloadResult(
                task=task,
                error=exc,
                attempts=attempts,
                resumes=partial.resumes if partial else 0,
                restarts=partial.restarts if partial else 0,
                seconds=time.monotonic() - started,
            )
        except OSError as exc:
            # Local disk trouble (full, read-only, permissions): permanent for this file.
            if partial is not None:
                partial.discard()
            error = TransferError(f"cannot write {task.destination.name}: {exc.strerror or exc}")
            return DownloadResult(
                task=task, error=error, attempts=attempts, seconds=time.monotonic() - started
            )
        except BaseException:
            if partial is not None:
                partial.discard()
            raise

    def _open_part(self, destination: Path) -> _Partial:
        part = destination.with_name(f"{destination.name}.{secrets.token_hex(6)}.part")
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        handle = os.fdopen(fd, "w+b")
        return _Partial(
            part_path=part,
            handle=handle,
            max_output=self.config.inflate_output_size,
            max_inflated=self.config.max_inflated_bytes,
        )

    @staticmethod
    def _commit(partial: _Partial, destination: Path) -> None:
        # Order matters for crash safety: data durable, then the name, then the directory
        # entry. Only after this returns may the caller record the file as done.
        partial.handle.flush()
        os.fsync(partial.handle.fileno())
        partial.handle.close()
        os.replace(partial.part_path, destination)
        fsync_dir(destination.parent)

    def _attempt(self, task: DownloadTask, partial: _Partial, callbacks: TransferCallbacks) -> None:
        """One HTTP request, resuming ``partial`` when it holds bytes; raise on any failure."""
        started = time.monotonic()
        expires = url_expires_at(task.url)
        if expires is not None and expires <= self._wall_clock():
            raise UrlExpiredError(f"signed URL expired: {redact_url(task.url)}")
        headers = {"Range": f"bytes={partial.received}-"} if partial.received else {}
        with self._get(task, headers) as resp:
            self._check_status(task, resp)
            expected = task.expected_size
            if partial.received and resp.status_code == 206:
                span = _parse_content_range(resp.headers.get("Content-Range"))
                total_ok = span is not None and (
                    expected is None or span[2] is None or span[2] == expected
                )
                if span is None or span[0] != partial.received or not total_ok:
                    # Not the range we asked for: trust nothing and start over next attempt.
                    raise IncompleteDownloadError("the host answered a different byte range")
                partial.resumes += 1
            elif partial.received:
                # 200 to a Range request: the host sends the whole file; start over with it.
                callbacks.on_progress(task, -partial.reset())
            if expected is None and resp.status_code == 200:
                length = resp.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
            self._receive(task, resp, partial, expected, callbacks, started)

    def _get(self, task: DownloadTask, headers: dict[str, str]) -> requests.Response:
        """GET ``task.url``, following same-origin redirects only (see the module docstring)."""
        timeout = (self.config.connect_timeout_seconds, self.config.read_timeout_seconds)
        origin = url_origin(task.url)
        url = task.url
        for _ in range(MAX_REDIRECTS + 1):
            resp = self.session.get(
                url, headers=headers, stream=True, timeout=timeout, allow_redirects=False
            )
            location = resp.headers.get("Location")
            if resp.status_code not in _REDIRECT_STATUSES or not location:
                return resp
            resp.close()
            target = urljoin(url, location)
            if url_origin(target) != origin:
                raise RedirectRefusedError(
                    f"HTTP {resp.status_code} for {redact_url(task.url)} redirects to "
                    f"{origin_text(target)}, another host: refused, a signed URL is only "
                    f"sent to the host it was issued for ({origin_text(task.url)})",
                    hint="the log host or a proxy in front of it is misconfigured",
                )
            log.debug("following a same-host redirect for %s", redact_url(task.url))
            url = target
        raise IncompleteDownloadError(
            f"more than {MAX_REDIRECTS} redirects for {redact_url(task.url)}"
        )

    def _check_status(self, task: DownloadTask, resp: requests.Response) -> None:
        status = resp.status_code
        if status in (200, 206):
            return
        where = redact_url(task.url)
        if status == 403:
            raise UrlExpiredError(f"HTTP 403 for {where} (signed URL expired or refused)")
        if status == 404:
            raise RemoteNotFoundError(f"HTTP 404 for {where}")
        if status == 416:
            raise IncompleteDownloadError(f"HTTP 416 for {where}: range not satisfiable")
        if status >= 500 or status == 429:
            raise _RetryableStatusError(f"HTTP {status} for {where}")
        raise TransferError(f"HTTP {status} for {where}")

    def _receive(
        self,
        task: DownloadTask,
        resp: requests.Response,
        partial: _Partial,
        expected: int | None,
        callbacks: TransferCallbacks,
        started: float,
    ) -> None:
        raw = resp.raw
        chunk_size = self.config.chunk_size
        pace = _Pace(self.config, task.destination.name, started)
        while True:
            if self._cancelled.is_set():
                raise _CancelledError("cancelled")
            # read1: what has arrived (up to chunk_size), so a trickle cannot hold a read for
            # as long as a whole chunk takes to arrive; the pace is checked between reads.
            chunk = raw.read1(chunk_size, decode_content=False)
            if not chunk:
                break
            pace.check(len(chunk))
            partial.received += len(chunk)
            if expected is not None and partial.received > expected:
                raise IncompleteDownloadError(
                    f"more bytes than the listed size {expected} for {task.destination.name}"
                )
            partial.gz_hash.update(chunk)
            if task.keep_gzip:
                partial.write(chunk)
            for piece in partial.verifier.feed(chunk):
                partial.plain_size += len(piece)
                partial.plain_hash.update(piece)
                partial.lines.feed(piece)
                if not task.keep_gzip:
                    partial.write(piece)
            callbacks.on_progress(task, len(chunk))
        if expected is not None and partial.received < expected:
            raise _TruncatedError(
                f"body ended after {partial.received} of {expected} bytes "
                f"for {task.destination.name}"
            )
        partial.verifier.finish()


class _Pace:
    """The slow-link rules of one attempt: a minimum speed over a window, a longest duration."""

    def __init__(self, config: TransferConfig, name: str, started: float) -> None:
        self._min_speed = config.min_speed_bytes_per_second
        self._window = config.min_speed_seconds
        self._max_seconds = config.max_attempt_seconds
        self._name = name
        self._started = started
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def check(self, nbytes: int) -> None:
        """Count ``nbytes`` just received; raise _TooSlowError when a rule is broken."""
        now = time.monotonic()
        if self._max_seconds and now - self._started > self._max_seconds:
            raise _TooSlowError(
                f"the attempt took longer than {self._max_seconds:g}s for {self._name}"
            )
        self._window_bytes += nbytes
        elapsed = now - self._window_start
        if not self._min_speed or elapsed < self._window:
            return
        if self._window_bytes < self._min_speed * elapsed:
            raise _TooSlowError(
                f"too slow: {self._window_bytes} bytes in {elapsed:.1f}s for {self._name} "
                f"(minimum {self._min_speed:g} B/s over {self._window:g}s)"
            )
        self._window_start, self._window_bytes = now, 0
