"""The one row filter of ``report`` and ``export``: domains and a UTC window on the dataset.

``where_sql`` gives the WHERE clause both use. Besides the exact bounds on ``ts`` it adds terms
on the ``date`` partition column, which only let DuckDB skip whole ``date=`` directories: a
partition's date is the log's local (+08:00) day, and offsets reach +-14 h, so those terms keep
a day of margin and never exclude a matching row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta


def where_sql(
    domains: Sequence[str], since: datetime | None, until: datetime | None
) -> tuple[str, list[object]]:
    """`` WHERE ...`` (or ``""``) and its parameters for ``domains`` and ``since <= ts < until``."""
    terms: list[str] = []
    params: list[object] = []
    if domains:
        terms.append(f"domain IN ({', '.join('?' for _ in domains)})")
        params.extend(domains)
    if since is not None:
        terms.append("date >= ?")
        params.append(since.astimezone(UTC).date() - timedelta(days=1))
        terms.append("ts >= ?")
        params.append(since)
    if until is not None:
        terms.append("date <= ?")
        params.append(until.astimezone(UTC).date() + timedelta(days=1))
        terms.append("ts < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(terms)) if terms else "", params
