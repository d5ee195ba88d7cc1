"""Fault switches that tests flip while the simulator runs.

Counters (``*_next``) fire on the next N matching requests and decrement as they fire; a
per-file switch (``faults.for_file(name)``) fires before the global one. Reads and decrements
happen under one lock, so concurrent downloads never consume a fault twice.

Example::

    sim.faults.throttle_next = 2                    # the next two API calls are throttled
    sim.faults.for_file(name).truncate_next = 1     # the next download of `name` is cut short
    sim.faults.missing.add(name)                    # `name` is listed but stays 404 forever
    sim.faults.hidden.add(name)                     # `name` is never listed (nor served), yet
                                                    # the provider's counts include its requests
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: Counter names a log-host request can consume, in the order they are checked.
FILE_COUNTERS = ("drop_next", "status_5xx_next", "truncate_next", "corrupt_next", "stall_next")


@dataclass
class FileFaults:
    """Log-host switches for one file (or, on ``Faults``, for every file)."""

    #: Answer 503 (OSS ``ServiceUnavailable``) this many times.
    status_5xx_next: int = 0
    #: Send the full Content-Length header, then close after part of the body.
    truncate_next: int = 0
    #: Send the full length with a damaged gzip trailer, so the CRC check fails.
    corrupt_next: int = 0
    #: Close the connection without any response.
    drop_next: int = 0
    #: Send the headers and half the body, then nothing (until the client hangs up).
    stall_next: int = 0
    #: Seconds to wait before the first byte of the response (``None``: use the global value).
    first_byte_latency_seconds: float | None = None
    #: Per-connection body rate cap in bytes/s (``None``: use the global value); a few bytes/s
    #: makes a trickle (pieces of rate/20 bytes, at least one).
    bandwidth_bytes_per_second: float | None = None


@dataclass
class Faults(FileFaults):
    """Every switch of the simulator; thread-safe counters that decrement as they fire."""

    #: API: answer ``Throttling.User`` this many times, with ``throttle_status`` (400 or 429).
    throttle_next: int = 0
    throttle_status: int = 400
    #: API: answer ``ServiceUnavailable`` (503) this many times.
    api_5xx_next: int = 0
    #: API: answer the error ``api_error_code`` this many times (any code of ``api.ERRORS``).
    api_error_next: int = 0
    api_error_code: str = "InternalError"
    #: The HTTP status of that forced error (None: the code's documented status). 200 mimics
    #: gateways that put an error ``Code`` inside a successful response.
    api_error_status: int | None = None
    #: LogPath URLs listed while this is set carry an ``Expires`` in the past.
    expire_urls: bool = False
    #: Names that are listed but stay 404 ``NoSuchKey`` forever.
    missing: set[str] = field(default_factory=set)
    #: Names left out of every listing (and 404 on the log host) although the provider's
    #: monitoring counted their requests: the lost log file that ``reconcile`` must find.
    hidden: set[str] = field(default_factory=set)
    #: Honour ``Range: bytes=N-`` with 206; when False, always answer 200 with the whole file.
    range_support: bool = True
    _per_file: dict[str, FileFaults] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def for_file(self, name: str) -> FileFaults:
        """The switches of one file (created on first use)."""
        with self._lock:
            return self._per_file.setdefault(name, FileFaults())

    def force_api_error(self, code: str, times: int = 1, status: int | None = None) -> None:
        """Make the next ``times`` API calls fail with ``code`` (and HTTP ``status``)."""
        with self._lock:
            self.api_error_code = code
            self.api_error_next = times
            self.api_error_status = status

    def take(self, counter: str, name: str | None = None) -> bool:
        """Consume one firing of ``counter`` (per-file first, then global); True if it fired."""
        with self._lock:
            targets: list[FileFaults] = []
            if name is not None and name in self._per_file:
                targets.append(self._per_file[name])
            targets.append(self)
            for target in targets:
                left = getattr(target, counter)
                if left > 0:
                    setattr(target, counter, left - 1)
                    return True
            return False

    def latency_for(self, name: str) -> float:
        """First-byte latency in seconds for a download of ``name``."""
        with self._lock:
            own = self._per_file.get(name)
        if own is not None and own.first_byte_latency_seconds is not None:
            return own.first_byte_latency_seconds
        return self.first_byte_latency_seconds or 0.0

    def bandwidth_for(self, name: str) -> float | None:
        """Body rate cap in bytes/s for a download of ``name`` (``None``: unlimited)."""
        with self._lock:
            own = self._per_file.get(name)
        if own is not None and own.bandwidth_bytes_per_second is not None:
            return own.bandwidth_bytes_per_second
        return self.bandwidth_bytes_per_second

    def clear(self) -> None:
        """Turn every switch off."""
        with self._lock:
            fresh = Faults()
            for name in (
                *FILE_COUNTERS,
                "first_byte_latency_seconds",
                "bandwidth_bytes_per_second",
                "throttle_next",
                "throttle_status",
                "api_5xx_next",
                "api_error_next",
                "api_error_code",
                "api_error_status",
                "expire_urls",
                "range_support",
            ):
                setattr(self, name, getattr(fresh, name))
            self.missing.clear()
            self.hidden.clear()
            self._per_file.clear()
