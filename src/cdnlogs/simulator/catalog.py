"""The simulator's files: which log files exist, their names, and their (lazily made) bytes.

Names follow the provider: ``<domain>_<YYYY>_<MM>_<DD>_<HHMMSS>_<HHMMSS>[_<n>].gz`` with the
times in +08:00, while ``start``/``end`` are UTC. About ``split_fraction`` of the hours are
split into 2-3 files with a ``_<n>`` suffix, chosen deterministically from the seed.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from cdnlogs.simulator.loggen import generate_lines, gzip_lines

_TZ8 = timezone(timedelta(hours=8))
HOUR = timedelta(hours=1)


def log_name(domain: str, start: datetime, part: int | None = None) -> str:
    """The provider's LogName for the hour starting at ``start`` (UTC), with an optional part."""
    local = start.astimezone(_TZ8)
    end = local + HOUR
    suffix = f"_{part}" if part is not None else ""
    return f"{domain}_{local:%Y_%m_%d}_{local:%H%M%S}_{end:%H%M%S}{suffix}.gz"


def local_day(start: datetime) -> str:
    """The ``YYYY_MM_DD`` folder of a file: the +08:00 calendar day its name uses."""
    return f"{start.astimezone(_TZ8):%Y_%m_%d}"


def _file_seed(seed: int, name: str) -> int:
    """A stable per-file seed (not ``hash()``, which changes between processes)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(eq=False)
class SimFile:
    """One simulated remote log file.

    ``gz`` holds the exact bytes served (made on first access and cached), or ``None`` when the
    file is backed by ``path`` on disk (so a benchmark can serve a 1 GB file without RAM).
    """

    domain: str
    name: str
    start: datetime
    end: datetime
    _gz: bytes | None = field(default=None, repr=False)
    path: Path | None = None
    published: bool = True
    line_count: int = 0
    seed: int = 0
    explicit_lines: tuple[str, ...] | None = field(default=None, repr=False)
    #: The lines the provider's monitoring counted when they differ from the served ones (a
    #: truncated file); ``None``: the served lines.
    provider_lines: tuple[str, ...] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def gz(self) -> bytes | None:
        """The gzip bytes served for this file; ``None`` for a disk-backed file."""
        if self.path is not None:
            return None
        with self._lock:
            if self._gz is None:
                lines = (
                    self.explicit_lines
                    if self.explicit_lines is not None
                    else generate_lines(self.domain, self.start, self.line_count, self.seed)
                )
                self._gz = gzip_lines(lines)
            return self._gz

    def read_bytes(self) -> bytes:
        """The bytes served, from memory or from ``path``."""
        if self.path is not None:
            return self.path.read_bytes()
        data = self.gz
        assert data is not None
        return data

    @property
    def size(self) -> int:
        """LogSize: the number of gzip bytes served."""
        if self.path is not None:
            return self.path.stat().st_size
        data = self.gz
        assert data is not None
        return len(data)

    @property
    def day(self) -> str:
        """The ``YYYY_MM_DD`` folder (+08:00 day) of the LogPath."""
        return local_day(self.start)


class Catalog:
    """Every file of every domain, generated from the seed; thread-safe."""

    def __init__(
        self,
        domains: Sequence[str],
        *,
        now: datetime,
        days: int,
        seed: int,
        lines_per_file: int,
        split_fraction: float = 0.1,
    ) -> None:
        self.seed = seed
        self.lines_per_file = lines_per_file
        self._lock = threading.Lock()
        self._by_domain: dict[str, list[SimFile]] = {d: [] for d in domains}
        self._by_name: dict[str, SimFile] = {}
        last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        hours = [last - HOUR * i for i in range(days * 24, 0, -1)]
        for domain in domains:
            for start in hours:
                rng = random.Random(_file_seed(seed, f"split:{domain}:{start.isoformat()}"))
                parts = 1 if rng.random() >= split_fraction else rng.choice((2, 3))
                if parts == 1:
                    self._add(domain, start, log_name(domain, start), lines_per_file)
                else:
                    each = max(1, lines_per_file // parts)
                    for part in range(1, parts + 1):
                        self._add(domain, start, log_name(domain, start, part), each)

    def _add(self, domain: str, start: datetime, name: str, count: int) -> SimFile:
        sim_file = SimFile(
            domain, name, start, start + HOUR, line_count=count, seed=_file_seed(self.seed, name)
        )
        self._by_domain.setdefault(domain, []).append(sim_file)
        self._by_name[name] = sim_file
        return sim_file

    @property
    def domains(self) -> list[str]:
        """Domain names, in configuration order (plus any added later)."""
        with self._lock:
            return list(self._by_domain)

    def files(self, domain: str) -> list[SimFile]:
        """Every file of ``domain`` (published or not), in hour order then name."""
        with self._lock:
            return sorted(self._by_domain.get(domain, []), key=lambda f: (f.start, f.name))

    def get(self, name: str) -> SimFile | None:
        """The file called ``name``, if any."""
        with self._lock:
            return self._by_name.get(name)

    def add(
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
        """Add (or replace) a file; ``lines`` is a line count or the exact lines."""
        start = start.astimezone(UTC)
        name = name or log_name(domain, start)
        explicit = None if lines is None or isinstance(lines, int) else tuple(lines)
        count = lines if isinstance(lines, int) else self.lines_per_file
        sim_file = SimFile(
            domain,
            name,
            start,
            start + HOUR,
            _gz=gz,
            path=path,
            published=published,
            line_count=count,
            seed=_file_seed(self.seed, name),
            explicit_lines=explicit,
        )
        with self._lock:
            old = self._by_name.pop(name, None)
            if old is not None:
                self._by_domain[old.domain].remove(old)
            self._by_domain.setdefault(domain, []).append(sim_file)
            self._by_name[name] = sim_file
        return sim_file

    def truncate(self, name: str, keep_lines: int) -> SimFile:
        """Serve only the first ``keep_lines`` lines of ``name`` from now on (valid gzip, LogSize
        to match), while the provider's counts keep every line it served."""
        with self._lock:
            old = self._by_name.get(name)
        if old is None:
            raise KeyError(name)
        lines = tuple(gzip.decompress(old.read_bytes()).decode("utf-8").splitlines())
        new = self.add(
            old.domain, old.start, name=name, lines=lines[:keep_lines], published=old.published
        )
        new.provider_lines = old.provider_lines if old.provider_lines is not None else lines
        return new

    def publish(self, name: str) -> SimFile:
        """Make a late file visible in listings from now on."""
        with self._lock:
            sim_file = self._by_name.get(name)
            if sim_file is None:
                raise KeyError(name)
            sim_file.published = True
            return sim_file
