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

* PV is requests; UV (visitors) is distinct (client IP, User-Agent) pairs, a missing value
  counting as one value. Download speed is response bytes over response time (bytes per
  second) over the lines that have a response time.
* Places and client types come from ``cdnlogs.dims``: each distinct client IP and User-Agent is
  looked up once (ip2region, ua-parser) and joined with the per-visitor groups, not the rows.

Every panel is summed from grouped rows (``cdnlogs.rollup``): the per-file rollups ``ingest``
built, and the groups of the files the window cuts through, made with the same query. No row
reaches Python.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb

from cdnlogs.dataset import quote_sql
from cdnlogs.dims import IP_TABLE, UA_TABLE, DimensionStore
from cdnlogs.rollup import COLUMNS as ROLLUP_COLUMNS
from cdnlogs.rollup import PAIR_DIM, RollupStore, dim, group_sql, window_spans
from cdnlogs.timeutil import iso_utc
from cdnlogs.window import where_sql

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
    #: UV: distinct (client IP, User-Agent) pairs.
    visitors: int = 0
    #: Response bytes over response time (bytes/s), over the lines with a response time.
    speed_bytes_per_second: float | None = None


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
    #: UV: distinct (client IP, User-Agent) pairs in this domain.
    visitors: int = 0


@dataclass(frozen=True)
class LatencyBucket:
    """Requests whose response time falls in ``[low_ms, high_ms)`` (``high_ms`` None: no cap).

    The bucket with ``low_ms`` None counts the lines without a response time.
    """

    label: str
    low_ms: int | None
    high_ms: int | None
    requests: int
    share: float


@dataclass(frozen=True)
class GeoRow:
    """One province, ISP or country: traffic, hit ratio, errors and download speed."""

    key: str
    requests: int
    bytes: int
    hit_ratio_requests: float | None
    hit_ratio_bytes: float | None
    errors: int
    error_rate: float | None
    #: Response bytes over response time, in bytes per second, over lines with a time.
    speed_bytes_per_second: float | None
    #: UV: distinct (client IP, User-Agent) pairs whose IP is here.
    visitors: int = 0


@dataclass(frozen=True)
class ErrorItem:
    """One key (province, ISP, User-Agent, URL) by its error responses (status >= 400)."""

    key: str | None
    errors: int
    requests: int
    error_rate: float | None


@dataclass(frozen=True)
class ClientTypeRow:
    """One device class, browser or OS: requests, bytes and share of requests."""

    key: str
    requests: int
    bytes: int
    share: float


@dataclass(frozen=True)
class MinuteRow:
    """One UTC minute's traffic; ``mbps`` is ``bytes * 8 / 60 / 1e6``."""

    minute: datetime
    requests: int
    bytes: int
    mbps: float


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
    latency_buckets: list[LatencyBucket] = field(default_factory=list)
    #: ``province``, ``isp``, ``country``: lists of GeoRow by requests.
    geo: dict[str, list[GeoRow]] = field(default_factory=dict)
    #: ``province``, ``isp``, ``user_agent``: the keys with the most error responses.
    errors_by: dict[str, list[ErrorItem]] = field(default_factory=dict)
    error_urls: list[ErrorItem] = field(default_factory=list)
    #: ``device_class``, ``browser``, ``os``: lists of ClientTypeRow by requests.
    client_types: dict[str, list[ClientTypeRow]] = field(default_factory=dict)
    referer_domains: list[TopItem] = field(default_factory=list)
    minutes: list[MinuteRow] = field(default_factory=list)
    peak_minute: datetime | None = None
    peak_minute_mbps: float = 0.0
    #: Which IP database and User-Agent rules classified the clients.
    sources: dict[str, str] = field(default_factory=dict)

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


def analyze(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    dims: DimensionStore | None = None,
    rollups: RollupStore | None = None,
) -> Report:
    """Compute every number of the report for ``filters`` over the ``logs`` relation of ``con``.

    :param dims: where the IP and User-Agent dimension tables are kept (default: in memory,
        looked up afresh; ``cdnlogs report`` passes the dataset's ``_dims``).
    :param rollups: the dataset's rollups (default: none, the rows are grouped directly;
        ``cdnlogs report`` passes the dataset's ``_rollups``). Both give the same numbers.
    """
    if not _has_relation(con, "logs"):
        return _empty_report(filters, rejected=0, note="the dataset has no rows yet")
    rejected_by_domain = _rejected(con, filters)
    rejected = sum(rejected_by_domain.values())
    _prepare(con, filters, rollups)
    try:
        return _analyze_groups(con, filters, dims, rejected, rejected_by_domain)
    finally:
        con.execute(f"DROP VIEW IF EXISTS {_G}")
        con.execute(f"DROP TABLE IF EXISTS {_CUT}")
        con.execute(f"DROP TABLE IF EXISTS {_V}")


def _analyze_groups(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    dims: DimensionStore | None,
    rejected: int,
    rejected_by_domain: dict[str, int],
) -> Report:
    totals, hit, classes, latency, buckets = _totals(con, rejected)
    if totals.requests == 0:
        # A cheap probe (one row group at most) tells "nothing ingested" from "empty window".
        anything = con.execute("SELECT 1 FROM logs LIMIT 1").fetchone() is not None
        note = "no requests in the window" if anything else "the dataset has no rows yet"
        return _empty_report(filters, rejected=rejected, note=note)
    # Files repeat visitors (one per hour they came back in): dedupe the hashes once, then
    # every UV (total, per domain, per place) counts this smaller table.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_V} AS
            SELECT DISTINCT domain, ip_hash, pair FROM {_G} WHERE dim = {PAIR_DIM}"""
    )
    domains = _domains(con, rejected_by_domain)
    totals = _with_distinct(con, totals, domains)
    store = dims if dims is not None else DimensionStore(None)
    store.ensure(
        con,
        f"SELECT client_ip FROM {_G} WHERE dim = {dim('client_ip')}",
        f"SELECT user_agent FROM {_G} WHERE dim = {dim('user_agent')}",
    )
    hours, minutes = _time_series(con)
    peak = max(hours, key=lambda row: row.peak_mbps)
    peak_min = max(minutes, key=lambda row: row.bytes)
    geo = _geo(con, max(filters.top, GEO_MIN_ROWS))
    return Report(
        filters=filters,
        totals=totals,
        hit_ratio=hit,
        status_classes=classes,
        top_errors=_top_errors(con, filters.top, totals.requests),
        tops=_tops(con, filters.top),
        latency=latency,
        hours=hours,
        domains=domains,
        peak_mbps=peak.peak_mbps,
        peak_hour=peak.hour,
        latency_buckets=buckets,
        geo=geo,
        errors_by={
            "province": _by_errors(geo["province"], filters.top),
            "isp": _by_errors(geo["isp"], filters.top),
            "user_agent": _ua_errors(con, filters.top),
        },
        error_urls=_error_urls(con, filters.top),
        client_types=_client_types(con, filters.top, totals.requests),
        referer_domains=_referer_domains(con, filters.top),
        minutes=minutes,
        peak_minute=peak_min.minute,
        peak_minute_mbps=peak_min.mbps,
        sources=store.sources(),
    )


# --- queries -------------------------------------------------------------------------------

#: The relation of grouped rows (see ``cdnlogs.rollup``) every panel is summed from.
_G = "_report_groups"
#: The groups of the rows the window cuts out of files only partly inside it.
_CUT = "_report_cut_groups"
#: The window's distinct visitors: (domain, hash of the IP, hash of IP + User-Agent).
_V = "_report_visitors"
#: Province and ISP panels keep at least this many rows (every province of China fits).
GEO_MIN_ROWS = 40
#: Latency bucket bounds in milliseconds (the last bucket is open-ended).
LATENCY_BOUNDS_MS = (0, 100, 300, 1000, 3000, 10_000)


def _prepare(con: duckdb.DuckDBPyConnection, filters: Filters, rollups: RollupStore | None) -> None:
    """Create the ``_report_groups`` view: the rollup rows of the window, whatever their source.

    Without rollups the window's rows are grouped directly. With them, a file whose rows all
    lie inside the window contributes its rollup, and the rows of a file the window cuts
    through, or of a file too small for a rollup (``rollup.MIN_ROLLUP_BYTES``), are grouped
    with the window's filter.
    """
    where, params = where_sql(filters.domains, filters.since, filters.until)
    if rollups is None:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_CUT} AS {group_sql('SELECT * FROM logs' + where)}",
            params,
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW {_G} AS SELECT * FROM {_CUT}")
        return
    first_day = last_day = None
    if filters.since is not None:
        first_day = (filters.since.astimezone(UTC).date() - timedelta(days=1)).isoformat()
    if filters.until is not None:
        last_day = (filters.until.astimezone(UTC).date() + timedelta(days=1)).isoformat()
    sources = []
    # A small file's rows are grouped here like a cut file's (it has no rollup to read).
    cut: list[Path] = []
    for source in rollups.sources(filters.domains, first_day, last_day):
        if rollups.worth_a_rollup(source):
            sources.append(source)
        else:
            cut.append(source.data)
    paths = rollups.ensure(con, sources)
    inside: list[Path] = []
    for source, path, (first, last) in zip(sources, paths, window_spans(con, paths), strict=True):
        if first is None or last is None:
            continue  # a file without rows
        if (filters.until is not None and first >= filters.until) or (
            filters.since is not None and last < filters.since
        ):
            continue
        if (filters.since is None or first >= filters.since) and (
            filters.until is None or last < filters.until
        ):
            inside.append(path)
        else:
            cut.append(source.data)
    empty = "SELECT " + ", ".join(f"NULL::{t} AS {n}" for n, t in ROLLUP_COLUMNS) + " WHERE false"
    cut_sql = empty
    if cut:
        files = "[" + ", ".join(quote_sql(str(p)) for p in cut) + "]"
        rows = f"SELECT * FROM read_parquet({files}, {_HIVE})"
        _, window = where_sql((), filters.since, filters.until)
        cut_sql = group_sql(rows + where_sql((), filters.since, filters.until)[0])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_CUT} AS {cut_sql}", window)
        cut_sql = f"SELECT * FROM {_CUT}"
    parts = [cut_sql]
    if inside:
        names = ", ".join(n for n, _ in ROLLUP_COLUMNS)
        files = "[" + ", ".join(quote_sql(str(p)) for p in inside) + "]"
        parts.append(f"SELECT {names} FROM read_parquet({files})")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_G} AS {' UNION ALL '.join(parts)}")


_HIVE = "hive_partitioning=true, hive_types={'domain': 'VARCHAR', 'date': 'DATE'}"


def _bucket_label(low: int, high: int | None) -> str:
    def ms(v: int) -> str:
        return f"{v // 1000} s" if v >= 1000 else f"{v} ms"

    return f">= {ms(low)}" if high is None else f"{ms(low)} - {ms(high)}"


def _totals(
    con: duckdb.DuckDBPyConnection, rejected: int
) -> tuple[Totals, HitRatio, list[StatusClass], Latency, list[LatencyBucket]]:
    row = con.execute(
        f"""SELECT coalesce(sum(n), 0)::BIGINT, coalesce(sum(b), 0)::BIGINT,
                   coalesce(sum(h), 0)::BIGINT, coalesce(sum(hb), 0)::BIGINT,
                   coalesce(sum(t), 0)::BIGINT, coalesce(sum(tb), 0)::BIGINT,
                   timezone('UTC', min(first_ts)), timezone('UTC', max(last_ts))
            FROM {_G} WHERE dim = 0"""
    ).fetchone()
    assert row is not None
    requests, nbytes, hit_requests, hit_bytes, time_ms, time_bytes = (int(v) for v in row[:6])
    by_status = con.execute(
        f"SELECT status, sum(n)::BIGINT FROM {_G} WHERE dim = {dim('status')} GROUP BY status"
    ).fetchall()
    per_class = [0] * 5
    for status, n in by_status:
        if status is not None and 100 <= status < 600:
            per_class[status // 100 - 1] += int(n)
    per_class.append(requests - sum(per_class))
    histogram = [
        (int(v), int(n))
        for v, n in con.execute(
            f"""SELECT response_time_ms, sum(n)::BIGINT FROM {_G}
                WHERE dim = {dim("response_time_ms")} AND response_time_ms IS NOT NULL
                GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    ]
    samples = sum(n for _, n in histogram)
    totals = Totals(
        requests=requests,
        bytes=nbytes,
        unique_clients=0,
        rejected_lines=rejected,
        first_ts=_utc(row[6]),
        last_ts=_utc(row[7]),
        speed_bytes_per_second=_speed(time_bytes, time_ms),
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
    p50, p95, p99 = (_quantile(histogram, samples, q) for q in (0.5, 0.95, 0.99))
    latency = Latency(samples=samples, p50_ms=p50, p95_ms=p95, p99_ms=p99)
    buckets = []
    for low, high in pairwise([*LATENCY_BOUNDS_MS, None]):
        assert low is not None
        n = sum(c for v, c in histogram if v >= low and (high is None or v < high))
        buckets.append(
            LatencyBucket(_bucket_label(low, high), low, high, n, _ratio(n, requests) or 0.0)
        )
    untimed = requests - samples
    buckets.append(
        LatencyBucket("no time logged", None, None, untimed, _ratio(untimed, requests) or 0.0)
    )
    return totals, hit, classes, latency, buckets


def _quantile(histogram: list[tuple[int, int]], total: int, q: float) -> float | None:
    """``quantile_cont`` over the values a (value, count) histogram stands for.

    Linear interpolation between the two nearest ranks, as DuckDB's ``quantile_cont`` and
    ``statistics.quantiles(method="inclusive")`` do: rank ``q * (total - 1)`` counted from 0.
    """
    if total == 0:
        return None
    position = q * (total - 1)
    low_rank = int(position)
    high_rank = min(low_rank + 1, total - 1)
    low = high = None
    seen = 0
    for value, count in histogram:
        seen += count
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            high = value
            break
    assert low is not None and high is not None
    return low + (high - low) * (position - low_rank)


def _with_distinct(
    con: duckdb.DuckDBPyConnection, totals: Totals, domains: list[DomainRow]
) -> Totals:
    """Unique client IPs and visitors of the whole window (one domain: that domain's)."""
    if len(domains) == 1:
        return replace(
            totals, unique_clients=domains[0].unique_clients, visitors=domains[0].visitors
        )
    row = con.execute(
        f"""SELECT (SELECT count(DISTINCT client_ip) FROM {_G}
                    WHERE dim = {dim("client_ip")}),
                   (SELECT count(DISTINCT pair) FROM {_V})"""
    ).fetchone()
    assert row is not None
    return replace(totals, unique_clients=int(row[0]), visitors=int(row[1]))


def _top_errors(con: duckdb.DuckDBPyConnection, top: int, requests: int) -> list[ErrorCode]:
    rows = con.execute(
        f"""SELECT status, sum(n)::BIGINT AS n FROM {_G}
            WHERE dim = {dim("status")} AND status >= 400
            GROUP BY status ORDER BY n DESC, status LIMIT {int(top)}"""
    ).fetchall()
    return [
        ErrorCode(status=int(s), requests=int(n), share=_ratio(int(n), requests) or 0.0)
        for s, n in rows
    ]


def _tops(con: duckdb.DuckDBPyConnection, top: int) -> dict[str, list[TopItem]]:
    tops: dict[str, list[TopItem]] = {}
    for name, column in TOP_DIMENSIONS:
        which = dim(column)
        rows = con.execute(
            f"""SELECT {column} AS k, sum(n)::BIGINT AS n, sum(b)::BIGINT AS b FROM {_G}
                WHERE dim = {which} GROUP BY k
                ORDER BY n DESC, b DESC, k ASC NULLS LAST LIMIT {int(top)}"""
        ).fetchall()
        tops[name] = [TopItem(key=k, requests=int(n), bytes=int(b)) for k, n, b in rows]
    return tops


def _time_series(con: duckdb.DuckDBPyConnection) -> tuple[list[HourRow], list[MinuteRow]]:
    rows = con.execute(
        f"""SELECT minute, sum(n)::BIGINT, sum(b)::BIGINT, sum(e)::BIGINT FROM {_G}
            WHERE dim = {dim("minute")} GROUP BY minute ORDER BY minute"""
    ).fetchall()
    per_minute = {int(m): (int(n), int(b), int(e)) for m, n, b, e in rows}
    first, last = int(rows[0][0]), int(rows[-1][0])
    slots: dict[int, int] = defaultdict(int)
    hours: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for m, (n, b, e) in per_minute.items():
        slots[m // (PEAK_BUCKET_SECONDS // 60)] += b
        acc = hours[m // 60]
        acc[0] += n
        acc[1] += b
        acc[2] += e
    slot_peak: dict[int, int] = defaultdict(int)
    per_slot_hour = 3600 // PEAK_BUCKET_SECONDS
    for slot, b in slots.items():
        hour = slot // per_slot_hour
        slot_peak[hour] = max(slot_peak[hour], b)
    hour_rows = []
    # Fill the hours (and minutes) without traffic so charts and tables show the gap as zero.
    for hour in range(first // 60, last // 60 + 1):
        n, b, e = hours.get(hour, (0, 0, 0))
        hour_rows.append(
            HourRow(
                hour=_epoch_minutes(hour * 60),
                requests=n,
                bytes=b,
                avg_mbps=b * 8 / 3600 / 1e6,
                peak_mbps=slot_peak.get(hour, 0) * 8 / PEAK_BUCKET_SECONDS / 1e6,
                errors=e,
                error_rate=_ratio(e, n),
            )
        )
    minute_rows = []
    for m in range(first, last + 1):
        n, b, _e = per_minute.get(m, (0, 0, 0))
        minute_rows.append(MinuteRow(_epoch_minutes(m), n, b, b * 8 / 60 / 1e6))
    return hour_rows, minute_rows


def _domains(con: duckdb.DuckDBPyConnection, rejected_by_domain: dict[str, int]) -> list[DomainRow]:
    rows = con.execute(
        f"""
        WITH t AS (
            SELECT domain, sum(n)::BIGINT AS n, sum(b)::BIGINT AS b, sum(h)::BIGINT AS h,
                   sum(hb)::BIGINT AS hb, sum(e)::BIGINT AS e
            FROM {_G} WHERE dim = 0 GROUP BY domain
        ), c AS (
            SELECT domain, count(DISTINCT client_ip) AS c FROM {_G}
            WHERE dim = {dim("client_ip")} GROUP BY domain
        ), v AS (
            SELECT domain, count(*) AS v FROM {_V} GROUP BY domain
        )
        SELECT domain, n, b, coalesce(c, 0), coalesce(v, 0), h, hb, e
        FROM t LEFT JOIN c USING (domain) LEFT JOIN v USING (domain)
        WHERE n > 0 ORDER BY n DESC, domain
        """
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
            visitors=int(v),
        )
        for d, n, b, c, v, hn, hb, e in rows
    ]


#: Labels for requests without a location: every request is counted under some key.
PRIVATE_LABEL = "(private/reserved)"
IPV6_LABEL = "(IPv6)"
UNKNOWN_LABEL = "(unknown)"
#: The province panel is China's provinces (as ip2region names them, Hong Kong, Macao and
#: Taiwan included); a place abroad is one key there (its country is in the country panel),
#: so the panel never mixes a country with provinces.
CHINA = "中国"
OUTSIDE_CHINA_LABEL = "(outside China)"
CHINA_UNKNOWN_LABEL = "(China, no province)"
_COUNTRY_KEY = f"""CASE d.ip_kind WHEN 'private' THEN '{PRIVATE_LABEL}'
    WHEN 'ipv6' THEN '{IPV6_LABEL}'
    WHEN 'public' THEN coalesce(d.country, '{UNKNOWN_LABEL}') ELSE '{UNKNOWN_LABEL}' END"""
_GEO_KEYS = (
    (
        "province",
        f"""CASE WHEN d.ip_kind = 'public' AND d.country = '{CHINA}'
                 THEN coalesce(d.province, '{CHINA_UNKNOWN_LABEL}')
            WHEN d.ip_kind = 'public' AND d.country IS NOT NULL THEN '{OUTSIDE_CHINA_LABEL}'
            ELSE {_COUNTRY_KEY} END""",
    ),
    (
        "isp",
        f"CASE WHEN d.ip_kind = 'public' THEN coalesce(d.isp, '{UNKNOWN_LABEL}')"
        f" ELSE {_COUNTRY_KEY} END",
    ),
    ("country", _COUNTRY_KEY),
)


def _geo(con: duckdb.DuckDBPyConnection, top: int) -> dict[str, list[GeoRow]]:
    # The join is over the per-IP groups, not the rows.
    keys = ", ".join(f"{expr} AS {name}" for name, expr in _GEO_KEYS)
    which = (
        "CASE "
        + " ".join(f"WHEN GROUPING({name}) = 0 THEN {i}" for i, (name, _) in enumerate(_GEO_KEYS))
        + " END"
    )
    key = (
        "CASE "
        + " ".join(f"WHEN GROUPING({name}) = 0 THEN {name}" for name, _ in _GEO_KEYS)
        + " END"
    )
    sets = ", ".join(f"({name})" for name, _ in _GEO_KEYS)
    # A visitor is one (IP, User-Agent) pair, so it has one place: UV per place is the sum
    # over its IPs of their distinct pairs, counted per IP hash first (one row each, not per
    # visitor, reaches the join with the places). hash(NULL) is one value: no IP, one group.
    rows = con.execute(
        f"""
        WITH ip AS (
            SELECT client_ip, hash(client_ip) AS ip_hash, sum(n) AS n, sum(b) AS b,
                   sum(h) AS h, sum(hb) AS hb, sum(e) AS e, sum(t) AS t, sum(tb) AS tb
            FROM {_G} WHERE dim = {dim("client_ip")} GROUP BY client_ip
        ), vis AS (
            SELECT ip_hash, count(DISTINCT pair) AS v FROM {_V} GROUP BY ip_hash
        ), j AS (
            SELECT ip.*, coalesce(vis.v, 0) AS v, {keys}
            FROM ip LEFT JOIN vis USING (ip_hash)
            LEFT JOIN {IP_TABLE} d ON d.client_ip = ip.client_ip
        )
        SELECT {which} AS w, {key} AS k, sum(n)::BIGINT AS n, sum(b)::BIGINT AS b,
               sum(h)::BIGINT, sum(hb)::BIGINT, sum(e)::BIGINT, sum(t)::BIGINT,
               sum(tb)::BIGINT, sum(v)::BIGINT
        FROM j GROUP BY GROUPING SETS ({sets})
        ORDER BY w, n DESC, b DESC, k
        """
    ).fetchall()
    geo: dict[str, list[GeoRow]] = {name: [] for name, _ in _GEO_KEYS}
    for w, k, n, b, h, hb, e, t, tb, v in rows:
        geo[_GEO_KEYS[int(w)][0]].append(
            GeoRow(
                key=str(k),
                requests=int(n),
                bytes=int(b),
                hit_ratio_requests=_ratio(int(h), int(n)),
                hit_ratio_bytes=_ratio(int(hb), int(b)),
                errors=int(e),
                error_rate=_ratio(int(e), int(n)),
                speed_bytes_per_second=_speed(int(tb), int(t)),
                visitors=int(v),
            )
        )
    # The errors panels pick from every row, so keep them whole until then.
    return geo


def _by_errors(rows: list[GeoRow], top: int) -> list[ErrorItem]:
    ranked = sorted((r for r in rows if r.errors), key=lambda r: (-r.errors, -r.requests, r.key))
    return [ErrorItem(r.key, r.errors, r.requests, r.error_rate) for r in ranked[:top]]


def _ua_errors(con: duckdb.DuckDBPyConnection, top: int) -> list[ErrorItem]:
    rows = con.execute(
        f"""SELECT user_agent AS k, sum(e)::BIGINT AS e, sum(n)::BIGINT AS n FROM {_G}
            WHERE dim = {dim("user_agent")} GROUP BY k HAVING sum(e) > 0
            ORDER BY e DESC, n DESC, k ASC NULLS LAST LIMIT {int(top)}"""
    ).fetchall()
    return [ErrorItem(k, int(e), int(n), _ratio(int(e), int(n))) for k, e, n in rows]


def _error_urls(con: duckdb.DuckDBPyConnection, top: int) -> list[ErrorItem]:
    rows = con.execute(
        f"""SELECT path AS k, sum(e)::BIGINT AS e, sum(n)::BIGINT AS n FROM {_G}
            WHERE dim = {dim("path")} GROUP BY k HAVING sum(e) > 0
            ORDER BY e DESC, n DESC, k ASC NULLS LAST LIMIT {int(top)}"""
    ).fetchall()
    return [ErrorItem(k, int(e), int(n), _ratio(int(e), int(n))) for k, e, n in rows]


_CLIENT_KEYS = (
    ("device_class", "coalesce(u.device_class, 'other')"),
    ("browser", f"coalesce(u.browser, '{UNKNOWN_LABEL}')"),
    ("os", f"coalesce(u.os, '{UNKNOWN_LABEL}')"),
)


def _client_types(
    con: duckdb.DuckDBPyConnection, top: int, requests: int
) -> dict[str, list[ClientTypeRow]]:
    keys = ", ".join(f"{expr} AS {name}" for name, expr in _CLIENT_KEYS)
    which = (
        "CASE "
        + " ".join(
            f"WHEN GROUPING({name}) = 0 THEN {i}" for i, (name, _) in enumerate(_CLIENT_KEYS)
        )
        + " END"
    )
    key = (
        "CASE "
        + " ".join(f"WHEN GROUPING({name}) = 0 THEN {name}" for name, _ in _CLIENT_KEYS)
        + " END"
    )
    rows = con.execute(
        f"""
        WITH j AS (
            SELECT g.*, {keys} FROM {_G} g LEFT JOIN {UA_TABLE} u USING (user_agent)
            WHERE g.dim = {dim("user_agent")}
        ), a AS (
            SELECT {which} AS w, {key} AS k, sum(n)::BIGINT AS n, sum(b)::BIGINT AS b
            FROM j GROUP BY GROUPING SETS ({", ".join(f"({name})" for name, _ in _CLIENT_KEYS)})
        )
        SELECT w, k, n, b FROM (
            SELECT *, row_number() OVER (PARTITION BY w ORDER BY n DESC, b DESC, k) AS r FROM a
        ) WHERE r <= {int(top)} ORDER BY w, r
        """
    ).fetchall()
    result: dict[str, list[ClientTypeRow]] = {name: [] for name, _ in _CLIENT_KEYS}
    for w, k, n, b in rows:
        result[_CLIENT_KEYS[int(w)][0]].append(
            ClientTypeRow(str(k), int(n), int(b), _ratio(int(n), requests) or 0.0)
        )
    return result


#: The host of an absolute URL (userinfo and port dropped); anything else has no domain.
_REFERER_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^\]]*\]|[^/?#:]+)"
NOT_A_URL_LABEL = "(not a URL)"


def _referer_domains(con: duckdb.DuckDBPyConnection, top: int) -> list[TopItem]:
    rows = con.execute(
        f"""
        SELECT CASE WHEN referer IS NULL THEN NULL
                    ELSE coalesce(nullif(lower(regexp_extract(referer, ?, 1)), ''), ?) END AS k,
               sum(n)::BIGINT AS n, sum(b)::BIGINT AS b
        FROM {_G} WHERE dim = {dim("referer")} GROUP BY k
        ORDER BY n DESC, b DESC, k ASC NULLS LAST LIMIT {int(top)}
        """,
        [_REFERER_HOST, NOT_A_URL_LABEL],
    ).fetchall()
    return [TopItem(key=k, requests=int(n), bytes=int(b)) for k, n, b in rows]


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
        geo={"province": [], "isp": [], "country": []},
        errors_by={"province": [], "isp": [], "user_agent": []},
        client_types={"device_class": [], "browser": [], "os": []},
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _speed(nbytes: int, milliseconds: int) -> float | None:
    """Bytes per second, or ``None`` when no time was logged."""
    return nbytes * 1000 / milliseconds if milliseconds else None


def _epoch_minutes(minutes: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
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
    where, params = where_sql(filters.domains, filters.since, filters.until)
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
