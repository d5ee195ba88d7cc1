"""The simulator: one threaded HTTP/1.1 server with the API at ``/`` and the log host.

``Simulator`` owns the catalog, the fault switches and the counters, and serves them from
background threads until ``stop()``. Responses that fit go out in one write (headers and body
together), because a keep-alive client otherwise stalls ~44 ms per call on Nagle + delayed ACK.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cdnlogs.simulator import loghost
from cdnlogs.simulator.api import ApiHandler, ApiRequest, ApiState
from cdnlogs.simulator.catalog import Catalog, SimFile
from cdnlogs.simulator.faults import Faults
from cdnlogs.simulator.monitoring import (
    DEFAULT_LAG_SECONDS,
    DEFAULT_TRAFFIC_FACTOR,
    DEFAULT_TRAFFIC_NOISE,
    Monitoring,
)

DEFAULT_DOMAINS = ("a.example.com", "b.example.com")
DEFAULT_ACCESS_KEY_ID = "LTAI5tSimulatorDemoKey"
#: A fixed, public demo secret: the simulator is not a security boundary.
DEFAULT_ACCESS_KEY_SECRET = "SimulatorDemoSecretNotForProduction"
DEFAULT_URL_LIFETIME_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes a simulator; the same config and seed give the same files."""

    domains: Sequence[str] = DEFAULT_DOMAINS
    #: Days of complete hours before ``now`` that have files.
    days: int = 2
    seed: int = 1
    host: str = "127.0.0.1"
    #: 0 picks a free port.
    port: int = 0
    #: Lines per hour (split hours share them between their parts).
    lines_per_file: int = 200
    #: The simulated current time (aware); ``None`` means the real clock.
    now: datetime | None = None
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET
    #: When set, every API call must carry this STS token.
    security_token: str | None = None
    #: The numeric account id in LogPath URLs.
    uid: str = "1234567890123456"
    oss_access_key_id: str = "LTAI5tSimulatorOssKey"
    url_lifetime_seconds: float = DEFAULT_URL_LIFETIME_SECONDS
    timestamp_window_seconds: float = 900.0
    #: Fraction of hours split into 2-3 files with a ``_<n>`` suffix.
    split_fraction: float = 0.1
    #: Host written into LogPath values (default: ``host``, or 127.0.0.1 for a wildcard bind).
    public_host: str | None = None
    #: The monitoring series: traffic = factor x logged response bytes x (1 +- noise) ...
    traffic_factor: float = DEFAULT_TRAFFIC_FACTOR
    traffic_noise: float = DEFAULT_TRAFFIC_NOISE
    #: ... and each request counted this long after its logged time (hour-boundary spill).
    monitoring_lag_seconds: float = DEFAULT_LAG_SECONDS


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # An idle keep-alive connection is closed after this long, so threads do not pile up.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sockets_lock:
                self.server.open_sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line (URLs carry signatures)."""

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        sim = self.server.sim
        if parts.path.startswith(loghost.PATH_PREFIX) and self.command in ("GET", "HEAD"):
            self._serve_log(parts.path, parts.query)
            return
        if parts.path in ("", "/"):
            query = _parse_query(parts.query)
            request = ApiRequest(self.command, parts.path or "/", query, self._header_list(), body)
            status, headers, payload = sim._api.handle(request)
            self._send(status, headers, payload)
            return
        self._send(404, {"Content-Type": "text/plain"}, b"not found\n")

    def _header_list(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers.items()]

    def _head_bytes(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append("Server: cdnlogs-simulator")
        lines.append(f"Date: {self.date_time_string()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        headers = {**headers, "Content-Length": str(len(body))}
        payload = b"" if self.command == "HEAD" else body
        self.wfile.write(self._head_bytes(status, headers) + payload)

    def _serve_log(self, path: str, query: str) -> None:
        sim = self.server.sim
        reply = loghost.plan(sim._host, path, query, self.headers.get("Range"))
        if reply.latency > 0:
            threading.Event().wait(reply.latency)
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.sim_file is None:
            self._send(reply.status, reply.headers, reply.body)
            return
        head = self._head_bytes(reply.status, reply.headers)
        if self.command == "HEAD":
            self.wfile.write(head)
            return
        name = reply.sim_file.name
        # Counted before the last byte leaves, so a client that has the whole body always
        # sees the count; taken back if the send fails.
        counted = reply.complete and not (reply.truncate or reply.stall)
        if counted:
            self._count(name, +1)
        try:
            loghost.send_file_body(self.connection, reply, head, self.wfile.write)
        except OSError:
            if counted:
                self._count(name, -1)
            raise
        if reply.truncate or reply.stall:
            self.close_connection = True
            with contextlib.suppress(OSError):  # a stalled client may have hung up already
                self.connection.shutdown(socket.SHUT_RDWR)

    def _count(self, name: str, delta: int) -> None:
        host = self.server.sim._host
        with host.counter_lock:
            host.downloads[name] += delta
            if host.downloads[name] <= 0:
                del host.downloads[name]


def _parse_query(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


class Simulator:
    """A local stand-in for the Aliyun CDN API and its OSS log host.

    Use it as a context manager, or call ``start()``/``stop()``. See ``docs/simulator.md``.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._fixed_now = self.config.now.astimezone(UTC) if self.config.now else None
        self.faults = Faults()
        self.catalog = Catalog(
            list(self.config.domains),
            now=self.now(),
            days=self.config.days,
            seed=self.config.seed,
            lines_per_file=self.config.lines_per_file,
            split_fraction=self.config.split_fraction,
        )
        self._host = loghost.HostState(
            catalog=self.catalog,
            faults=self.faults,
            uid=self.config.uid,
            oss_access_key_id=self.config.oss_access_key_id,
            oss_secret=f"oss:{self.config.access_key_secret}",
            url_lifetime_seconds=self.config.url_lifetime_seconds,
        )
        self.monitoring = Monitoring(
            self.catalog,
            seed=self.config.seed,
            factor=self.config.traffic_factor,
            noise=self.config.traffic_noise,
            lag_seconds=self.config.monitoring_lag_seconds,
        )
        self._api = ApiHandler(
            ApiState(
                access_key_id=self.config.access_key_id,
                access_key_secret=self.config.access_key_secret,
                security_token=self.config.security_token,
                catalog=self.catalog,
                faults=self.faults,
                log_path=self.log_path,
                now=self.now,
                monitoring=self.monitoring,
                timestamp_window_seconds=self.config.timestamp_window_seconds,
            )
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server((self.config.host, self.config.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="cdnlogs-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and credentials ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def netloc(self) -> str:
        """``HOST:PORT`` as clients should reach it (the SDK's ``endpoint`` value)."""
        host = self.config.public_host or self.config.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT``: the API is at ``/``, log files under ``/v1.l1cache/``."""
        return f"http://{self.netloc}"

    @property
    def access_key_id(self) -> str:
        """The AccessKey id the API accepts."""
        return self.config.access_key_id

    @property
    def access_key_secret(self) -> str:
        """The AccessKey secret the API verifies signatures with."""
        return self.config.access_key_secret

    @property
    def domains(self) -> list[str]:
        """The account's domains."""
        return self.catalog.domains

    def now(self) -> datetime:
        """The simulated current time (aware UTC)."""
        return self._fixed_now or datetime.now(UTC)

    # -- files -----------------------------------------------------------------------------

    def files(self, domain: str, *, published_only: bool = False) -> list[SimFile]:
        """The files of ``domain`` in hour order (unpublished ones too unless asked not to)."""
        files = self.catalog.files(domain)
        return [f for f in files if f.published] if published_only else files

    def file(self, name: str) -> SimFile:
        """The file called ``name``; KeyError if there is none."""
        sim_file = self.catalog.get(name)
        if sim_file is None:
            raise KeyError(name)
        return sim_file

    def add_file(
        self,
        domain: str,
        start: datetime,
        *,
        name: str | None = None,
        lines: int | Sequence[str] | None = None,
        published: bool = True,
        path: Path | None = None,
        gz: bytes | None = None,
    ) -> SimFile:
        """Add a file (a late one with ``published=False``); replaces one of the same name.

        ``lines`` is a line count or the exact lines; ``path`` serves a file from disk; ``gz``
        serves exactly these bytes (even if they are not valid gzip).
        """
        return self.catalog.add(
            domain, start, name=name, lines=lines, published=published, path=path, gz=gz
        )

    def publish(self, name: str) -> SimFile:
        """A late file appears in listings from now on."""
        return self.catalog.publish(name)

    def truncate_file(self, name: str, keep_lines: int) -> SimFile:
        """Serve only the first ``keep_lines`` lines of ``name`` (a complete, valid gzip with
        the LogSize to match), while the monitoring series still counts every line: the
        provider served those requests, the log lost them."""
        return self.catalog.truncate(name, keep_lines)

    def hide_file(self, name: str) -> None:
        """Leave ``name`` out of listings from now on; the monitoring series still counts it."""
        self.file(name)  # KeyError for a name the catalog does not have
        self.faults.hidden.add(name)

    def log_path(self, sim_file: SimFile) -> str:
        """The scheme-less signed LogPath the API lists for ``sim_file``."""
        return self._host.signed_path(sim_file, self.netloc)

    def url(self, sim_file: SimFile) -> str:
        """The full signed ``http://`` download URL of ``sim_file``."""
        return f"http://{self.log_path(sim_file)}"

    # -- counters --------------------------------------------------------------------------

    @property
    def downloads(self) -> Counter[str]:
        """Complete file bodies served, by LogName (200, or a 206 that reaches the end)."""
        return self._host.downloads

    @property
    def api_calls(self) -> Counter[str]:
        """API calls answered, by Action (any outcome)."""
        return self._api.state.api_calls

    @property
    def api_styles(self) -> Counter[tuple[str, str]]:
        """API calls answered, by ``(signature, version)``: ``("ACS3", "2018-05-10")`` etc."""
        return self._api.state.api_styles

    def reset_counters(self) -> None:
        """Zero ``downloads``, ``api_calls`` and ``api_styles``."""
        with self._host.counter_lock:
            self._host.downloads.clear()
        with self._api.state.counter_lock:
            self._api.state.api_calls.clear()
            self._api.state.api_styles.clear()
