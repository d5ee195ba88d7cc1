"""Parsing of user-given times (ISO-8601 or relative like ``36h``), windows, hour arithmetic.

Pure functions: the caller passes ``now``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cdnlogs.errors import UsageError

_RELATIVE_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse ``90m``, ``36h``, ``7d`` or ``2w`` into a timedelta."""
    match = _RELATIVE_RE.match(text)
    if not match:
        raise UsageError(f"not a duration: {text!r} (use a number and one of s, m, h, d, w)")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


def parse_when(text: str, *, now: datetime) -> datetime:
    """Parse a WHEN value: relative to ``now`` (``36h`` means 36 hours ago) or ISO-8601.

    A naive ISO time is taken as UTC. The result is timezone-aware UTC.
    """
    if _RELATIVE_RE.match(text):
        return (now - parse_duration(text)).astimezone(UTC)
    if text.strip().lower() == "now":
        return now.astimezone(UTC)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (use ISO-8601 like 2026-11-01T00:00:00Z, or 36h, 7d)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def resolve_window(
    since: str | None, until: str | None, *, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    """The ``[since, until)`` window of a command's ``--since``/``--until``, in aware UTC.

    ``until`` defaults to ``now``; ``since`` to ``now - default`` (the look-back for ``sync``
    and ``reconcile``, the last 24 hours for ``list``), whatever ``until`` is: the default
    window is always "the last <default>", as the docs say, so ``--until`` alone only cuts it
    short. An empty window is a UsageError.
    """
    end = parse_when(until, now=now) if until else now.astimezone(UTC)
    start = parse_when(since, now=now) if since else (now - default).astimezone(UTC)
    if start >= end:
        raise UsageError(
            f"the window is empty: --since {iso_utc(start)} is not before --until {iso_utc(end)}"
        )
    return start, end


def floor_hour(value: datetime) -> datetime:
    """Truncate to the start of the hour."""
    return value.replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    """The start of the next hour, unless ``value`` is already on one."""
    floor = floor_hour(value)
    return floor if floor == value else floor + timedelta(hours=1)


def iso_utc(value: datetime) -> str:
    """Format as the provider wants: ``yyyy-MM-ddTHH:mm:ssZ`` in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_provider_time(text: str | int | None) -> datetime | None:
    """Parse a provider timestamp: ISO-8601 (with or without seconds) or epoch seconds."""
    if text is None or text == "":
        return None
    raw = str(text).strip()
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw), tz=UTC)
    raw = raw.replace("Z", "+00:00")
    # Some samples omit seconds ("2019-09-11T15:03Z"); fromisoformat accepts that form.
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Every hour start in ``[floor(start), end)``."""
    hours = []
    current = floor_hour(start)
    while current < end:
        hours.append(current)
        current += timedelta(hours=1)
    return hours
