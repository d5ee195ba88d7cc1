"""Reporters for an ``analyze.Report``: a terminal summary (``text``) and one HTML file (``html``).

Both reporters take the same ``Report`` and format its numbers with the helpers here, so a
number reads the same in the terminal and in the HTML file. Reporters never run SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cdnlogs.analyze import ErrorItem, GeoRow, Report

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


def fmt_speed(value: float | None) -> str:
    """A download speed in decimal bytes per second (``1.23 MB/s``), or ``-``."""
    return "-" if value is None else f"{fmt_bytes(round(value))}/s"


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
    peak_minute = "-"
    if report.peak_minute is not None:
        peak_minute = f"{fmt_mbps(report.peak_minute_mbps)} at {fmt_time(report.peak_minute)}"
    errors = sum(c.requests for c in report.status_classes if c.label in ("4xx", "5xx"))
    error_rate = errors / t.requests if t.requests else None
    return [
        ("Requests", fmt_int(t.requests)),
        ("Visitors (UV: IP + User-Agent)", fmt_int(t.visitors)),
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
        ("Peak minute", peak_minute),
        ("Download speed (bytes / time)", fmt_speed(t.speed_bytes_per_second)),
        ("Error rate", fmt_ratio(error_rate)),
    ]


@dataclass(frozen=True)
class Panel:
    """One table of the client panels, already formatted: both reporters show these strings.

    The first ``key_columns`` cells hold text from the logs or the databases (escaped by the
    reporter, control characters already made visible).
    """

    ident: str
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    key_columns: int = 1


_GEO_TITLES = {"province": "province", "isp": "ISP", "country": "country"}
_CLIENT_TITLES = {"device_class": "device class", "browser": "browser", "os": "operating system"}
#: The busiest minutes listed (the whole per-minute series is in --json and the HTML chart).
BUSIEST_MINUTES = 10


def _geo_panel(name: str, rows: list[GeoRow], title: str) -> Panel:
    headers = ("requests", "UV", "bytes", "hit (req)", "hit (bytes)", "errors")
    return Panel(
        ident=f"geo-{name}",
        title=title,
        headers=(_GEO_TITLES[name], *headers, "error rate", "speed"),
        rows=[
            (
                visible(r.key),
                fmt_int(r.requests),
                fmt_int(r.visitors),
                fmt_bytes(r.bytes),
                fmt_ratio(r.hit_ratio_requests),
                fmt_ratio(r.hit_ratio_bytes),
                fmt_int(r.errors),
                fmt_ratio(r.error_rate),
                fmt_speed(r.speed_bytes_per_second),
            )
            for r in rows
        ],
    )


def _error_panel(ident: str, title: str, key: str, items: list[ErrorItem]) -> Panel:
    return Panel(
        ident=ident,
        title=title,
        headers=(key, "errors", "requests", "error rate"),
        rows=[
            (fmt_key(i.key), fmt_int(i.errors), fmt_int(i.requests), fmt_ratio(i.error_rate))
            for i in items
        ],
    )


def client_panels(report: Report) -> list[Panel]:
    """The panels of places, client types, errors, latency, referers and busiest minutes."""
    top = report.filters.top
    errors = report.errors_by
    panels = [
        _geo_panel("province", report.geo.get("province", []), "Per province"),
        _geo_panel("isp", report.geo.get("isp", []), "Per ISP"),
        _geo_panel("country", report.geo.get("country", [])[:top], "Top countries"),
        _error_panel(
            "errors-province", "Errors by province", "province", errors.get("province", [])
        ),
        _error_panel("errors-isp", "Errors by ISP", "ISP", errors.get("isp", [])),
        _error_panel(
            "errors-ua", "Errors by user agent", "user agent", errors.get("user_agent", [])
        ),
        _error_panel("error-urls", "Top error URLs", "path", report.error_urls),
        Panel(
            ident="latency-buckets",
            title="Response time distribution",
            headers=("response time", "requests", "share"),
            rows=[
                (b.label, fmt_int(b.requests), fmt_ratio(b.share)) for b in report.latency_buckets
            ],
        ),
    ]
    for name, label in _CLIENT_TITLES.items():
        panels.append(
            Panel(
                ident=f"clients-{name}",
                title=f"Client types: {label}",
                headers=(label, "requests", "share", "bytes"),
                rows=[
                    (
                        visible(r.key),
                        fmt_int(r.requests),
                        fmt_ratio(r.share),
                        fmt_bytes(r.bytes),
                    )
                    for r in report.client_types.get(name, [])
                ],
            )
        )
    panels.append(
        Panel(
            ident="referer-domains",
            title="Top referer domains",
            headers=("referer domain", "requests", "bytes"),
            rows=[
                (fmt_key(i.key), fmt_int(i.requests), fmt_bytes(i.bytes))
                for i in report.referer_domains
            ],
        )
    )
    busiest = sorted(report.minutes, key=lambda m: (-m.bytes, m.minute))[:BUSIEST_MINUTES]
    panels.append(
        Panel(
            ident="busiest-minutes",
            title="Busiest minutes (UTC)",
            headers=("minute", "Mbps", "bytes", "requests"),
            rows=[
                (fmt_time(m.minute), fmt_mbps(m.mbps), fmt_bytes(m.bytes), fmt_int(m.requests))
                for m in busiest
            ],
        )
    )
    return panels


def empty_message(report: Report) -> str:
    """What to tell the user when there is nothing to report."""
    reason = "; ".join(report.notes) or "no requests"
    return f"Nothing to report for {window_text(report)}: {reason}."


__all__ = [
    "MISSING_KEY",
    "TOP_TITLES",
    "Panel",
    "client_panels",
    "empty_message",
    "fmt_bytes",
    "fmt_int",
    "fmt_key",
    "fmt_mbps",
    "fmt_ms",
    "fmt_ratio",
    "fmt_speed",
    "fmt_time",
    "summary_rows",
    "visible",
    "window_text",
]
