"""The simulated provider's own counts: traffic and requests per interval, from the logs it serves.

The provider counts every request it served, whether or not its log file is listed or complete,
so the numbers come from the lines each file *should* hold (``SimFile.provider_lines``, which a
truncated file keeps). Like the real service:

* traffic is ``factor`` (1.1) x the logged response bytes, times ``1 + noise`` with a small
  deterministic noise per domain and interval (TCP/IP overhead varies);
* requests are counted exactly, but ``lag_seconds`` after the logged time, so a request logged
  in the last seconds of an hour is counted in the next one (the hour-boundary spill);
* intervals are UTC and start at multiples of the interval, while file names are +08:00.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cdnlogs.errors import ParseError
from cdnlogs.logformat import parse_line
from cdnlogs.simulator.catalog import Catalog, SimFile

DEFAULT_TRAFFIC_FACTOR = 1.1
DEFAULT_TRAFFIC_NOISE = 0.01
DEFAULT_LAG_SECONDS = 20.0


@dataclass(frozen=True)
class Point:
    """One interval of one domain: its UTC start, requests and counted traffic in bytes."""

    start: datetime
    requests: int
    traffic: float


def _lines_of(sim_file: SimFile) -> Iterable[str]:
    if sim_file.provider_lines is not None:
        return sim_file.provider_lines
    try:
        text = gzip.decompress(sim_file.read_bytes()).decode("utf-8", "replace")
    except (OSError, EOFError, zlib.error):
        return []  # bytes a test made unreadable on purpose: nothing the provider can count
    return text.splitlines()


class Monitoring:
    """Per-interval counts of the catalog's domains; each file is read once, then cached."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        seed: int,
        factor: float = DEFAULT_TRAFFIC_FACTOR,
        noise: float = DEFAULT_TRAFFIC_NOISE,
        lag_seconds: float = DEFAULT_LAG_SECONDS,
    ) -> None:
        self.catalog = catalog
        self.seed = seed
        self.factor = factor
        self.noise = noise
        self.lag = timedelta(seconds=lag_seconds)
        self._lock = threading.Lock()
        # id(SimFile) -> (file, [(counted time UTC, response bytes)]); a replaced file is a
        # new object, so its entry is simply not used again.
        self._cache: dict[int, tuple[SimFile, list[tuple[datetime, int]]]] = {}

    def _requests(self, sim_file: SimFile) -> list[tuple[datetime, int]]:
        with self._lock:
            cached = self._cache.get(id(sim_file))
            if cached is not None and cached[0] is sim_file:
                return cached[1]
        out: list[tuple[datetime, int]] = []
        for line in _lines_of(sim_file):
            try:
                record = parse_line(line)
            except ParseError:
                continue
            out.append((record.time.astimezone(UTC) + self.lag, record.response_bytes or 0))
        with self._lock:
            self._cache[id(sim_file)] = (sim_file, out)
        return out

    def series(
        self, domain: str, start: datetime, end: datetime, interval: timedelta
    ) -> list[Point]:
        """Every interval of ``domain`` from ``start`` (aligned down) up to ``end``, zeros too."""
        step = interval.total_seconds()
        first = datetime.fromtimestamp(start.timestamp() // step * step, tz=UTC)
        buckets: dict[datetime, list[int]] = {}
        current = first
        while current < end:
            buckets[current] = [0, 0]
            current += interval
        for sim_file in self.catalog.files(domain):
            if sim_file.end + self.lag <= first or sim_file.start >= end:
                continue
            for when, nbytes in self._requests(sim_file):
                key = datetime.fromtimestamp(when.timestamp() // step * step, tz=UTC)
                bucket = buckets.get(key)
                if bucket is not None:
                    bucket[0] += 1
                    bucket[1] += nbytes
        return [
            Point(key, requests, self._traffic(domain, key, nbytes))
            for key, (requests, nbytes) in buckets.items()
        ]

    def _traffic(self, domain: str, start: datetime, nbytes: int) -> float:
        digest = hashlib.sha256(f"{self.seed}:{domain}:{start.isoformat()}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        return nbytes * self.factor * (1 + rng.uniform(-self.noise, self.noise))
