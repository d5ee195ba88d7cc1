"""Answers from the Parquet dataset: DuckDB queries that fill result dataclasses (numbers only).

``analyze(con, filters)`` is the one entry point. ``con`` is a DuckDB connection with a ``logs``
relation (the dataset contract: one row per request, ``ts`` a UTC ``TIMESTAMPTZ``) and, when the
dataset has rejected lines, a ``rejects`` relation with a ``domain`` column. The reporters in
``cdnlogs.report`` render the ``Report`` this returns and never run SQL themselves.

Definitions the numbers follow (also in ``docs/report.md``):

* The window is ``since <= ts < until`` (either bound optional), in UTC.
* Hit ratio: requests (or response bytes) whose ``cache_status`` is ``HIT``, over all requests
  (or all response bytes) in the window. A line without a cache status counts as not a hit.
* Errors are responses with status >= 400; the error rate is errors over requests.
* Response-time percentiles are exact ``quantile_cont`` (linear interpolation between the two
  nearest ranks, the same as ``statistics.quantiles(method="inclusive")``) over the lines that
  have a response time.
* Bandwidth: a request's response bytes count at its logged second. ``avg_mbps`` of an hour is
  ``bytes * 8 / 3600 / 1e6``; ``peak_mbps`` is the busiest 5-minute bucket inside the hour
  (``bytes * 8 / 300 / 1e6``), the granularity CDN consoles and 95th-percentile billing use.

The queries scan the dataset a handful of times (totals, tops, hours, domains, error codes),
each reading only the columns it needs, and let DuckDB aggregate: no per-row Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

#: How many rows each top table keeps unless told otherwise.
DEFAULT_TOP = 10
#: Width of the buckets a "peak" bandwidth is the busiest of.
PEAK_BUCKET_SECONDS = 300
#: The top tables, by the ``logs`` column they group on.
TOP_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("urls", "path"),
    ("clients", "client_ip"),
    ("referers", "referer"),
    ("user_agents", "user_agent"),
    ("content_types", "content_type"),
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


@dataclass(frozen=True)
class Filters:
    """Which rows a report covers.

    :param domains: only these domains (empty: every domain).
    :param since: first instant included (aware datetime), or ``None``.
    :param until: first instant excluded (aware datetime), or ``None``.
    :param top: how many rows each top table keeps.
    """

    domains: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    top: int = DEFAULT_TOP

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.top < 1:
            raise ValueError("top must be at least 1")


@dataclass(frozen=True)
class Totals:
    """Requests, response bytes and unique client IPs in the window, and rejected lines."""

    requests: int
    bytes: int
    unique_clients: int
    rejected_lines: int
    first_ts: datetime | None
    last_ts: datetime | None


@dataclass(frozen=True)
class HitRatio:
    """Cache hits over all requests, by count and by response bytes (``None`` when empty)."""

    hit_requests: int
    hit_bytes: int
    by_requests: float | None
    by_bytes: float | None


@dataclass(frozen=True)
class StatusClass:
    """One status class (``2xx``...; ``other`` for a missing or odd status)."""

    label: str
    requests: int
    share: float


@dataclass(frozen=True)
class ErrorCode:
    """One status >= 400 and how many requests got it."""

    status: int
    requests: int
    share: float


@dataclass(frozen=True)
class TopItem:
    """One row of a top table; ``key`` is ``None`` for lines without a value (``-``)."""

    key: str | None
    requests: int
    bytes: int


@dataclass(frozen=True)
class Latency:
    """Response-time percentiles in milliseconds over the lines that have one."""

    samples: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class HourRow:
    """One UTC hour: traffic, bandwidth and errors (hours without traffic are zeros)."""

    hour: datetime
    requests: int
    bytes: int
    avg_mbps: float
    peak_mbps: float
    errors: int
    error_rate: float | None


@dataclass(frozen=True)
class DomainRow:
    """One domain's share of the window."""

    domain: str
    requests: int
    bytes: int
    unique_clients: int
    hit_ratio_requests: float | None
    hit_ratio_bytes: float | None
    error_rate: float | None
    rejected_lines: int


@dataclass(frozen=True)
class Report:
    """Everything the reporters show, as plain numbers; ``to_dict()`` is JSON-serialisable."""

    filters: Filters
    totals: Totals
    hit_ratio: HitRatio
    status_classes: list[StatusClass]
    top_errors: list[ErrorCode]
    tops: dict[str, list[TopItem]]
    latency: Latency
    hours: list[HourRow]
    domains: list[DomainRow]
    peak_mbps: float = 0.0
    peak_hour: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when no request falls in the window."""
        return self.totals.requests == 0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: datetimes as ``...Z`` strings, ratios as floats."""
        data = _jsonable(asdict(self))
        data["empty"] = self.empty
        assert isinstance(data, dict)
        return data


def analyze(con: duckdb.DuckDBPyConnection, filters: Filters) -> Report:
    """Compute every number of the report for ``filters`` over the ``logs`` relation of ``con``."""
    if not _has_relation(con, "logs"):
        return _empty_report(filters, rejected=0, note="the dataset has no rows yet")
    where, params = _where(filters)
    rejected_by_domain = _rejected(con, filters)
    rejected = sum(rejected_by_domain.values())
    totals, hit, classes, latency = _totals(con, where, params, rejected)
    if totals.requests == 0:
        # A cheap probe (one row group at most) tells "nothing ingested" from "empty window".
        anything = con.execute("SELECT 1 FROM logs LIMIT 1").fetchone() is not None
        note = "no requests in the window" if anything else "the dataset has no rows yet"
        return _empty_report(filters, rejected=rejected, note=note)
    hours = _hours(con, where, params)
    peak = max(hours, key=lambda row: row.peak_mbps)
    return Report(
        filters=filters,
        totals=totals,
        hit_ratio=hit,
        status_classes=classes,
        top_errors=_top_errors(con, where, params, filters.top, totals.requests),
        tops=_tops(con, where, params, filters.top),
        latency=latency,
        hours=hours,
        domains=_domains(con, where, params, rejected_by_domain),
        peak_mbps=peak.peak_mbps,
        peak_hour=peak.hour,
    )


# --- queries -------------------------------------------------------------------------------


def _where(filters: Filters) -> tuple[str, list[object]]:
    """A WHERE clause and its parameters; the ``date`` terms only let DuckDB skip partitions."""
    terms: list[str] = []
    params: list[object] = []
    if filters.domains:
        terms.append(f"domain IN ({', '.join('?' for _ in filters.domains)})")
        params.extend(filters.domains)
    # The partition date may be the UTC date or the log's local date (offsets reach +-14 h),
    # so the pruning terms keep a day of margin; the exact bound is on ts.
    if filters.since is not None:
        terms.append("date >= ?")
        params.append(_partition_date(filters.since) - timedelta(days=1))
        terms.append("ts >= ?")
        params.append(filters.since)
    if filters.until is not None:
        terms.append("date <= ?")
        params.append(_partition_date(filters.until) + timedelta(days=1))
        terms.append("ts < ?")
        params.append(filters.until)
    return (" WHERE " + " AND ".join(terms)) if terms else "", params


def _partition_date(value: datetime) -> date:
    return value.astimezone(UTC).date()


def _totals(
    con: duckdb.DuckDBPyConnection, where: str, params: list[object], rejected: int
) -> tuple[Totals, HitRatio, list[StatusClass], Latency]:
    class_sums = ", ".join(
        f"count(*) FILTER (WHERE status >= {n * 100} AND status < {n * 100 + 100})"
        for n in range(1, 6)
    )
    row = con.execute(
        f"""
        SELECT count(*), coalesce(sum(response_bytes), 0)::BIGINT, count(DISTINCT client_ip),
               count(*) FILTER (WHERE cache_status = 'HIT'),
               coalesce(sum(response_bytes) FILTER (WHERE cache_status = 'HIT'), 0)::BIGINT,
               {class_sums},
               count(response_time_ms),
               quantile_cont(response_time_ms, [0.5, 0.95, 0.99]),
               timezone('UTC', min(ts)), timezone('UTC', max(ts))
        FROM logs{where}
        """,
        params,
    ).fetchone()
    assert row is not None
    requests, nbytes, clients, hit_requests, hit_bytes = (int(v) for v in row[:5])
    per_class = [int(v) for v in row[5:10]]
    per_class.append(requests - sum(per_class))
    samples, quantiles, first, last = int(row[10]), row[11], row[12], row[13]
    totals = Totals(
        requests=requests,
        bytes=nbytes,
        unique_clients=clients,
        rejected_lines=rejected,
        first_ts=_utc(first),
        last_ts=_utc(last),
    )
    hit = HitRatio(
        hit_requests=hit_requests,
        hit_bytes=hit_bytes,
        by_requests=_ratio(hit_requests, requests),
        by_bytes=_ratio(hit_bytes, nbytes),
    )
    classes = [
        StatusClass(label=label, requests=count, share=_ratio(count, requests) or 0.0)
        for label, count in zip(STATUS_CLASSES, per_class, strict=True)
    ]
    p50, p95, p99 = (float(v) for v in quantiles) if quantiles else (None, None, None)
    latency = Latency(samples=samples, p50_ms=p50, p95_ms=p95, p99_ms=p99)
    return totals, hit, classes, latency


def _top_errors(
    con: duckdb.DuckDBPyConnection, where: str, params: list[object], top: int, requests: int
) -> list[ErrorCode]:
    status_filter = (where + " AND " if where else " WHERE ") + "status >= 400"
    rows = con.execute(
        f"""
        SELECT status, count(*) AS n FROM logs{status_filter}
        GROUP BY status ORDER BY n DESC, status LIMIT {int(top)}
        """,
        params,
    ).fetchall()
    return [
        ErrorCode(status=int(s), requests=int(n), share=_ratio(int(n), requests) or 0.0)
        for s, n in rows
    ]


def _tops(
    con: duckdb.DuckDBPyConnection, where: str, params: list[object], top: int
) -> dict[str, list[TopItem]]:
    # One scan for every top table: GROUPING SETS builds each dimension's groups side by side,
    # and a window keeps the first `top` of each. GROUPING(col) tells a real NULL key ("-" in
    # the log) apart from the NULL that means "not grouped on this column".
    columns = [column for _, column in TOP_DIMENSIONS]
    sets = ", ".join(f"({c})" for c in columns)
    which = "CASE " + " ".join(f"WHEN GROUPING({c}) = 0 THEN {i}" for i, c in enumerate(columns))
    key = "CASE " + " ".join(f"WHEN GROUPING({c}) = 0 THEN {c}" for c in columns)
    rows = con.execute(
        f"""
        WITH g AS (
            SELECT {which} END AS dim, {key} END AS k,
                   count(*) AS n, coalesce(sum(response_bytes), 0)::BIGINT AS b
            FROM logs{where}
            GROUP BY GROUPING SETS ({sets})
        ), r AS (
            SELECT *, row_number() OVER (
                PARTITION BY dim ORDER BY n DESC, b DESC, k ASC NULLS LAST) AS rank
            FROM g
        )
        SELECT dim, k, n, b FROM r WHERE rank <= {int(top)} ORDER BY dim, rank
        """,
        params,
    ).fetchall()
    tops: dict[str, list[TopItem]] = {name: [] for name, _ in TOP_DIMENSIONS}
    for dim, k, n, b in rows:
        name = TOP_DIMENSIONS[int(dim)][0]
        tops[name].append(TopItem(key=k, requests=int(n), bytes=int(b)))
    return tops


def _hours(con: duckdb.DuckDBPyConnection, where: str, params: list[object]) -> list[HourRow]:
    # Bucket into 5-minute slots first, then roll up to hours, so one pass gives both the
    # hour's mean rate and its busiest slot. Integer arithmetic on epoch microseconds is UTC by
    # construction (no session time zone involved) and about twice as fast as time_bucket().
    slot_us = PEAK_BUCKET_SECONDS * 1_000_000
    slots_per_hour = 3600 // PEAK_BUCKET_SECONDS
    rows = con.execute(
        f"""
        WITH slots AS (
            SELECT epoch_us(ts) // {slot_us} AS slot,
                   count(*) AS n, coalesce(sum(response_bytes), 0)::BIGINT AS b,
                   count(*) FILTER (WHERE status >= 400) AS e
            FROM logs{where}
            GROUP BY slot
        )
        SELECT make_timestamp((slot // {slots_per_hour}) * 3600000000) AS hour,
               sum(n)::BIGINT, sum(b)::BIGINT, max(b)::BIGINT, sum(e)::BIGINT
        FROM slots GROUP BY hour ORDER BY hour
        """,
        params,
    ).fetchall()
    by_hour = {row[0]: row[1:] for row in rows}
    result = []
    # Fill the hours without traffic so charts and tables show the gap as zero.
    hour = rows[0][0]
    while hour <= rows[-1][0]:
        n, b, slot_max, e = by_hour.get(hour, (0, 0, 0, 0))
        result.append(
            HourRow(
                hour=hour.replace(tzinfo=UTC),
                requests=int(n),
                bytes=int(b),
                avg_mbps=int(b) * 8 / 3600 / 1e6,
                peak_mbps=int(slot_max) * 8 / PEAK_BUCKET_SECONDS / 1e6,
                errors=int(e),
                error_rate=_ratio(int(e), int(n)),
            )
        )
        hour += timedelta(hours=1)
    return result


def _domains(
    con: duckdb.DuckDBPyConnection,
    where: str,
    params: list[object],
    rejected_by_domain: dict[str, int],
) -> list[DomainRow]:
    rows = con.execute(
        f"""
        SELECT domain, count(*) AS n, coalesce(sum(response_bytes), 0)::BIGINT AS b,
               count(DISTINCT client_ip),
               count(*) FILTER (WHERE cache_status = 'HIT'),
               coalesce(sum(response_bytes) FILTER (WHERE cache_status = 'HIT'), 0)::BIGINT,
               count(*) FILTER (WHERE status >= 400)
        FROM logs{where}
        GROUP BY domain ORDER BY n DESC, domain
        """,
        params,
    ).fetchall()
    return [
        DomainRow(
            domain=str(d),
            requests=int(n),
            bytes=int(b),
            unique_clients=int(c),
            hit_ratio_requests=_ratio(int(hn), int(n)),
            hit_ratio_bytes=_ratio(int(hb), int(b)),
            error_rate=_ratio(int(e), int(n)),
            rejected_lines=rejected_by_domain.get(str(d), 0),
        )
        for d, n, b, c, hn, hb, e in rows
    ]


def _rejected(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, int]:
    """Rejected lines per domain (a reject has no trusted time: only the domain filter applies)."""
    if not _has_relation(con, "rejects"):
        return {}
    where = ""
    params: list[object] = []
    if filters.domains:
        where = f" WHERE domain IN ({', '.join('?' for _ in filters.domains)})"
        params = list(filters.domains)
    rows = con.execute(
        f"SELECT domain, count(*) FROM rejects{where} GROUP BY domain", params
    ).fetchall()
    return {str(d): int(n) for d, n in rows}


# --- helpers -------------------------------------------------------------------------------


def _has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]
    ).fetchone()
    if row is not None and row[0]:
        return True
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchone()
    return row is not None and bool(row[0])


def _empty_report(filters: Filters, *, rejected: int, note: str) -> Report:
    return Report(
        filters=filters,
        totals=Totals(0, 0, 0, rejected, None, None),
        hit_ratio=HitRatio(0, 0, None, None),
        status_classes=[StatusClass(label, 0, 0.0) for label in STATUS_CLASSES],
        top_errors=[],
        tops={name: [] for name, _ in TOP_DIMENSIONS},
        latency=Latency(0, None, None, None),
        hours=[],
        domains=[],
        notes=[note],
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --- per-hour counts for reconcile --------------------------------------------------------


@dataclass(frozen=True)
class LoggedHour:
    """What the dataset holds for one domain and UTC hour (by each line's own time)."""

    domain: str
    hour: datetime
    requests: int
    bytes: int


def hourly_logged(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[LoggedHour]:
    """Rows and response bytes per domain and UTC hour of the lines' times, hours with rows only."""
    where, params = _where(filters)
    rows = con.execute(
        f"""
        SELECT domain, epoch_us(ts) // 3600000000 AS hour, count(*)::BIGINT,
               coalesce(sum(response_bytes), 0)::BIGINT
        FROM logs{where}
        GROUP BY domain, hour ORDER BY domain, hour
        """,
        params,
    ).fetchall()
    return [
        LoggedHour(
            domain=str(domain),
            hour=datetime.fromtimestamp(int(hour) * 3600, tz=UTC),
            requests=int(requests),
            bytes=int(nbytes),
        )
        for domain, hour, requests, nbytes in rows
    ]
