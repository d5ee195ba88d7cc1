"""Plain data passed between the layers: domains, remote log files, listings.

This module imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

#: The provider names files and stamps log lines in Beijing time.
PROVIDER_TZ = timezone(timedelta(hours=8), name="UTC+08:00")


@dataclass(frozen=True)
class Domain:
    """One accelerated domain of the account."""

    name: str
    status: str | None = None
    cdn_type: str | None = None


@dataclass(frozen=True)
class LogFile:
    """One remote offline-log file as the provider lists it.

    ``name`` is the provider's LogName and is untrusted: check it before using it on disk.
    ``url`` is the full signed download URL (scheme included): it is a secret, never log it
    unredacted. ``start``/``end`` are timezone-aware UTC datetimes of the hour covered.
    """

    domain: str
    name: str
    url: str
    size: int
    start: datetime
    end: datetime

    @property
    def local_start(self) -> datetime:
        """Start of the hour in the provider's +08:00 time, as the file name spells it."""
        return self.start.astimezone(PROVIDER_TZ)


@dataclass
class Listing:
    """Every log file of one domain in a time range, de-duplicated by LogName."""

    domain: str
    start: datetime
    end: datetime
    files: list[LogFile] = field(default_factory=list)
    #: The requested start was older than the provider keeps and was moved to this value.
    clamped_from: datetime | None = None
    pages: int = 0
    request_ids: list[str] = field(default_factory=list)
    #: Entries returned more than once across pages (counted once in ``files``).
    duplicates: int = 0

    @property
    def total_bytes(self) -> int:
        """Sum of LogSize over the listed files."""
        return sum(f.size for f in self.files)
