"""The Provider protocol: what the rest of cdnlogs needs from a CDN's API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cdnlogs.models import Domain, Listing


class Provider(Protocol):
    """A source of offline-log listings. Implementations never touch files on disk."""

    #: How far back the provider keeps logs; older starts are clamped with a warning.
    retention_days: int

    def list_domains(self) -> list[Domain]:
        """Every domain of the account, across all pages."""
        ...

    def list_log_files(self, domain: str, start: datetime, end: datetime) -> Listing:
        """Every log file of ``domain`` whose hour lies in ``[start, end)``, across all pages.

        ``start``/``end`` are timezone-aware UTC. Duplicate LogNames across pages are
        counted once. A start older than ``retention_days`` is clamped and reported in
        ``Listing.clamped_from``.
        """
        ...


@dataclass
class HourlyCounts:
    """A domain's hourly monitoring numbers as the provider reports them (UTC hour starts).

    ``bytes`` is the traffic the provider counted (about 1.1x the logged response bytes);
    ``requests`` the requests in each hour. An hour without a data point is absent.
    """

    domain: str
    start: datetime
    end: datetime
    bytes: dict[datetime, float] = field(default_factory=dict)
    requests: dict[datetime, int] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)


class MonitoringProvider(Protocol):
    """A source of the provider's own hourly counts of a domain (what reconcile checks against)."""

    def hourly_counts(self, domain: str, start: datetime, end: datetime) -> HourlyCounts:
        """Traffic and requests of ``domain`` per UTC hour in ``[start, end)``, hour-aligned."""
        ...
