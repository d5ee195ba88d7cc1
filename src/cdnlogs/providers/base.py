"""The Provider protocol: what the rest of cdnlogs needs from a CDN's API."""

from __future__ import annotations

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
