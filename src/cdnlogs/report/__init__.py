"""Reporters for an ``analyze.Report``: a terminal summary (``text``) and one HTML file (``html``).

Both reporters take the same ``Report`` and format its numbers with the helpers here, so a
number reads the same in the terminal and in the HTML file. Reporters never run SQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cdnlogs.analyze import Report

#: Titles of the top tables, keyed like ``Report.tops``; the second item heads the key column.
TOP_TITLES: dict[str, tuple[str, str]] = {
    "urls": ("Top URLs", "path"),
    "clients": ("Top client IPs", "client IP"),
    "referers": ("Top referers", "referer"),
    "user_agents": ("Top user agents", "user agent"),
    "content_types": ("Top content types", "content type"),
}
#: What a top table shows for lines that had ``-`` in that field.
MISSING_KEY = "(none)"
# C0/C1 controls (terminal escapes), and the invisible or reordering Unicode marks (bidi
# overrides) that could make a hostile URL read as something else.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def visible(value: str) -> str:
    """Show control characters as ``\\x1b`` so log text cannot act on a terminal or hide."""
    return _CONTROL_RE.sub(_escape_char, value)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def fmt_int(value: int) -> str:
    """``1234567`` -> ``1,234,567``."""
    return f"{value:,}"


def fmt_bytes(value: int) -> str:
    """Decimal units, as CDN bills: ``1234567`` -> ``1.23 MB``."""
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(size) < 1000 or unit == "PB":
            return f"{value} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def fmt_ratio(value: float | None) -> str:
    """A ratio as a percentage with one decimal, or ``-`` when undefined."""
    return "-" if value is None else f"{value * 100:.1f}%"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with one decimal, or ``-``."""
    return "-" if value is None else f"{value:,.1f} ms"


def fmt_mbps(value: float) -> str:
    """Megabits per second with three decimals."""
    return f"{value:,.3f} Mbps"


def fmt_time(value: datetime | None) -> str:
    """``2026-11-01 13:00Z`` (UTC, minutes), or ``-``."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def fmt_key(value: str | None) -> str:
    """A top-table key, control characters made visible; a ``-`` in the log shows as ``(none)``."""
    return MISSING_KEY if value is None else visible(value)


def window_text(report: Report) -> str:
    """The filters in words: domains and the half-open time window."""
    f = report.filters
    domains = ", ".join(f.domains) if f.domains else "all domains"
    since = fmt_time(f.since) if f.since else "the beginning"
    until = fmt_time(f.until) if f.until else "the end"
    return f"{domains}, from {since} until {until} (exclusive)"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """The headline figures as (label, formatted value) pairs, shared by every reporter."""
    t, hit, lat = report.totals, report.hit_ratio, report.latency
    peak = "-"
    if report.peak_hour is not None:
        peak = f"{fmt_mbps(report.peak_mbps)} in the hour {fmt_time(report.peak_hour)}"
    return [
        ("Requests", fmt_int(t.requests)),
        ("Response bytes", fmt_bytes(t.bytes)),
        ("Unique client IPs", fmt_int(t.unique_clients)),
        ("Rejected lines", fmt_int(t.rejected_lines)),
        ("First request", fmt_time(t.first_ts)),
        ("Last request", fmt_time(t.last_ts)),
        ("Hit ratio (requests)", fmt_ratio(hit.by_requests)),
        ("Hit ratio (bytes)", fmt_ratio(hit.by_bytes)),
        ("Response time p50", fmt_ms(lat.p50_ms)),
        ("Response time p95", fmt_ms(lat.p95_ms)),
        ("Response time p99", fmt_ms(lat.p99_ms)),
        ("Peak bandwidth (5-min)", peak),
    ]


def empty_message(report: Report) -> str:
    """What to tell the user when there is nothing to report."""
    reason = "; ".join(report.notes) or "no requests"
    return f"Nothing to report for {window_text(report)}: {reason}."


__all__ = [
    "MISSING_KEY",
    "TOP_TITLES",
    "empty_message",
    "fmt_bytes",
    "fmt_int",
    "fmt_key",
    "fmt_mbps",
    "fmt_ms",
    "fmt_ratio",
    "fmt_time",
    "summary_rows",
    "visible",
    "window_text",
]
