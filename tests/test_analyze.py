"""analyze(): golden numbers on a fixed dataset, computed independently in plain Python."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdnlogs.analyze import Filters, Report, analyze
from cdnlogs.dataset import LOG_COLUMNS, connect, partition_date
from cdnlogs.errors import ParseError
from cdnlogs.ingest import Ingester
from cdnlogs.logformat import parse_line
from cdnlogs.simulator.loggen import generate_lines

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
HOSTILE_UA = '<script>alert("ua")</script> [bold]x[/bold] \x1b[31mred'
# The dataset contract, as the ingest side writes it.
COLUMNS = LOG_COLUMNS


@dataclass
class Row:
    """One request as the dataset stores it, plus its partition domain."""

    domain: str
    values: dict[str, Any]


def make_rows(seed: int = 7, count: int = 1500) -> list[Row]:
    """A deterministic mix of requests over two domains and five hours (hour 3 left empty)."""
    rng = random.Random(seed)
    paths = [f"/static/{i}.js" for i in range(25)] + ["/", "/index.html", "/api/v1/items"]
    agents = ["Mozilla/5.0 (X11)", "curl/8.5.0", "Go-http-client/1.1", HOSTILE_UA, None]
    statuses = [200] * 30 + [206, 301, 304, 304, 403, 404, 404, 404, 500, 502, 503, 199]
    rows = []
    for n in range(count):
        domain = "a.example.com" if rng.random() < 0.65 else "b.example.com"
        hour = rng.choice([0, 0, 1, 1, 1, 2, 4])
        ts = T0 + timedelta(hours=hour, seconds=rng.randrange(3600), microseconds=0)
        stem = f"{domain}_{ts:%Y_%m_%d}_{hour:02d}00_{hour + 1:02d}00"
        values = {
            "ts": ts,
            "utc_offset_minutes": 480,
            "client_ip": f"10.0.{rng.randrange(3)}.{int(rng.paretovariate(1.2)) % 60}",
            "proxy_ip": None,
            "response_time_ms": None if n % 37 == 0 else rng.randrange(0, 4000),
            "referer": rng.choice([None, None, "https://ref.example/", "https://x.example/p"]),
            "method": "GET",
            "scheme": "https",
            "host": domain,
            "path": paths[min(int(rng.paretovariate(0.9)) - 1, len(paths) - 1)],
            "query": None,
            "status": rng.choice(statuses),
            "request_bytes": rng.randrange(100, 900),
            "response_bytes": rng.randrange(0, 200_000),
            "cache_status": rng.choice(["HIT", "HIT", "HIT", "MISS", None]),
            "user_agent": rng.choice(agents),
            "content_type": rng.choice(["text/html", "application/javascript", None]),
            "protocol": "https",
            "source_file": stem + ".gz",
        }
        rows.append(Row(domain, values))
    return rows


def write_dataset(root: Path, rows: list[Row], rejects: dict[str, int] | None = None) -> None:
    """Write rows as the dataset contract lays them out: one zstd Parquet per source file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        date = row.values["ts"].astimezone(UTC).date().isoformat()
        stem = row.values["source_file"].removesuffix(".gz")
        groups[(row.domain, date, stem)].append(row)
    schema = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    for (domain, date, stem), members in groups.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE part ({schema})")
        con.executemany(
            f"INSERT INTO part VALUES ({', '.join('?' for _ in COLUMNS)})",
            [[r.values[name] for name, _ in COLUMNS] for r in members],
        )
        out = root / f"domain={domain}" / f"date={date}"
        out.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY part TO '{out / (stem + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)"
        )
    for domain, n in (rejects or {}).items():
        out = root / "_rejects" / f"domain={domain}"
        out.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"""COPY (SELECT 'x.gz' AS source_file, i::BIGINT AS line_number,
                             'garbage' AS line, 'unparsable' AS reason FROM range({n}) t(i))
                TO '{out / "x.parquet"}' (FORMAT parquet, COMPRESSION zstd)"""
        )
    con.close()


def open_dataset(root: Path) -> duckdb.DuckDBPyConnection:
    """The dataset module's connection: ``logs`` and ``rejects`` views over ``root``."""
    return connect(root)


# --- the oracle: plain Python over the same rows ---------------------------------------------


def expected(rows: list[Row], top: int = 10) -> dict[str, Any]:
    """Every headline number of the report, without DuckDB."""
    vals = [r.values for r in rows]
    n = len(vals)
    nbytes = sum(v["response_bytes"] or 0 for v in vals)
    hits = [v for v in vals if v["cache_status"] == "HIT"]
    classes = Counter(
        f"{v['status'] // 100}xx" if 100 <= (v["status"] or 0) < 600 else "other" for v in vals
    )
    errors = Counter(v["status"] for v in vals if (v["status"] or 0) >= 400)
    times = sorted(v["response_time_ms"] for v in vals if v["response_time_ms"] is not None)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    hours: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for v in vals:
        hours[v["ts"].replace(minute=0, second=0, microsecond=0)].append(v)
    per_hour = {}
    for hour, members in hours.items():
        slots: Counter[int] = Counter()
        for v in members:
            slots[v["ts"].minute // 5] += v["response_bytes"] or 0
        per_hour[hour] = (
            len(members),
            sum(v["response_bytes"] or 0 for v in members),
            max(slots.values()) * 8 / 300 / 1e6,
            sum(1 for v in members if (v["status"] or 0) >= 400),
        )
    return {
        "requests": n,
        "bytes": nbytes,
        "clients": len({v["client_ip"] for v in vals} - {None}),
        "hit_requests": len(hits) / n,
        "hit_bytes": sum(v["response_bytes"] or 0 for v in hits) / nbytes,
        "classes": dict(classes),
        "errors": sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
        "p": (cuts[49], cuts[94], cuts[98]),
        "hours": per_hour,
        "urls": top_of(vals, "path", top),
        "clients_top": top_of(vals, "client_ip", top),
        "agents": top_of(vals, "user_agent", top),
        "referers": top_of(vals, "referer", top),
        "domains": Counter(r.domain for r in rows),
    }


def top_of(vals: list[dict[str, Any]], column: str, top: int) -> list[tuple[Any, int, int]]:
    """Top keys by requests, then bytes, then key (a missing key last)."""
    count: Counter[Any] = Counter()
    size: Counter[Any] = Counter()
    for v in vals:
        count[v[column]] += 1
        size[v[column]] += v["response_bytes"] or 0
    order = sorted(count, key=lambda k: (-count[k], -size[k], k is None, k or ""))
    return [(k, count[k], size[k]) for k in order[:top]]


def check(report: Report, exp: dict[str, Any]) -> None:
    """Assert the report matches the oracle."""
    t = report.totals
    assert (t.requests, t.bytes, t.unique_clients) == (
        exp["requests"],
        exp["bytes"],
        exp["clients"],
    )
    assert report.hit_ratio.by_requests == pytest.approx(exp["hit_requests"])
    assert report.hit_ratio.by_bytes == pytest.approx(exp["hit_bytes"])
    got_classes = {c.label: c.requests for c in report.status_classes if c.requests}
    assert got_classes == exp["classes"]
    assert [(e.status, e.requests) for e in report.top_errors] == exp["errors"]
    lat = report.latency
    assert (lat.p50_ms, lat.p95_ms, lat.p99_ms) == pytest.approx(exp["p"])
    for name, key in (("urls", "urls"), ("clients", "clients_top"), ("user_agents", "agents")):
        got = [(i.key, i.requests, i.bytes) for i in report.tops[name]]
        assert got == exp[key], name
    assert [(i.key, i.requests, i.bytes) for i in report.tops["referers"]] == exp["referers"]
    nonzero = {
        h.hour: (h.requests, h.bytes, h.peak_mbps, h.errors) for h in report.hours if h.requests
    }
    assert nonzero.keys() == exp["hours"].keys()
    for hour, (n, b, peak, e) in exp["hours"].items():
        assert nonzero[hour][:2] == (n, b)
        assert nonzero[hour][2] == pytest.approx(peak)
        assert nonzero[hour][3] == e
    assert {d.domain: d.requests for d in report.domains} == dict(exp["domains"])


# --- the real pipeline: generated Aliyun lines -> ingest -> dataset --------------------------

ODD_LINES = [
    # A user agent with unescaped quotes and markup: the fast path rejects it, the reference
    # parser takes it.
    '[1/Nov/2026:09:10:11 +0800] 10.9.9.9 - 12 "-" "GET https://a.example.com/x?y=1" 200 100 '
    '2000 HIT "<script>alert("ua")</script> [bold]x[/bold]" "text/html" https',
    "this is not a log line at all",
    '[1/Nov/2026:09:59:59 +0800] 10.9.9.8 - - "-" "GET https://a.example.com/" - - - - "-" "-"',
]


def ingest_generated(root: Path) -> tuple[list[Row], int]:
    """Ingest simulator lines (plus odd ones) for two domains and three hours; return the oracle.

    The oracle is the reference parser over the very same lines; a line it refuses is a reject.
    """
    rows: list[Row] = []
    rejects = 0
    src = root.parent / (root.name + "-src")
    src.mkdir()
    with Ingester(root) as ingester:
        for domain in ("a.example.com", "b.example.com"):
            for hour in range(3):
                start = T0 + timedelta(hours=hour)
                lines = list(generate_lines(domain, start, 400, seed=5))
                if domain == "a.example.com" and hour == 1:
                    lines += ODD_LINES
                local = start.astimezone(timezone(timedelta(hours=8)))
                name = f"{domain}_{local:%Y_%m_%d_%H%M%S}_{local + timedelta(hours=1):%H%M%S}.gz"
                path = src / name.replace(".gz", ".log")
                path.write_text("\n".join(lines) + "\n", encoding="utf-8")
                ingester.ingest_file(
                    path, domain=domain, log_name=name, day=partition_date(name, start)
                )
                for line in lines:
                    try:
                        record = parse_line(line)
                    except ParseError:
                        rejects += 1
                        continue
                    values = {name: getattr(record, name) for name, _ in COLUMNS[:-1]}
                    rows.append(Row(domain, values))
    return rows, rejects


def test_golden_numbers_through_the_real_ingest(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    rows, rejects = ingest_generated(root)
    assert rejects >= 1
    report = analyze(open_dataset(root), Filters())
    check(report, expected(rows))
    assert report.totals.rejected_lines == rejects
    assert report.totals.requests == len(rows) == 6 * 400 + len(ODD_LINES) - rejects
    assert '<script>alert("ua")</script> [bold]x[/bold]' in {
        i.key for i in analyze(open_dataset(root), Filters(top=1000)).tops["user_agents"]
    }
    since = T0 + timedelta(hours=1)
    report = analyze(open_dataset(root), Filters(domains=("a.example.com",), since=since))
    subset = [r for r in rows if r.domain == "a.example.com" and r.values["ts"] >= since]
    check(report, expected(subset))


# --- tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    root = tmp_path_factory.mktemp("dataset")
    rows = make_rows()
    write_dataset(root, rows, rejects={"a.example.com": 3, "b.example.com": 2})
    return root, rows


def test_golden_numbers_match_plain_python(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    report = analyze(open_dataset(root), Filters())
    check(report, expected(rows))
    assert report.totals.rejected_lines == 5
    assert {d.domain: d.rejected_lines for d in report.domains} == {
        "a.example.com": 3,
        "b.example.com": 2,
    }


def test_hours_are_filled_and_bandwidth_defined(dataset: tuple[Path, list[Row]]) -> None:
    root, _ = dataset
    report = analyze(open_dataset(root), Filters())
    assert [h.hour for h in report.hours] == [T0 + timedelta(hours=i) for i in range(5)]
    gap = report.hours[3]
    assert (gap.requests, gap.bytes, gap.peak_mbps, gap.error_rate) == (0, 0, 0.0, None)
    for h in report.hours:
        assert h.avg_mbps == pytest.approx(h.bytes * 8 / 3600 / 1e6)
        # The busiest 5-minute slot can never be slower than the hour's mean.
        assert h.peak_mbps >= h.avg_mbps
    assert report.peak_mbps == max(h.peak_mbps for h in report.hours)
    assert report.peak_hour in {h.hour for h in report.hours if h.peak_mbps == report.peak_mbps}


def test_filter_by_domain(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    report = analyze(open_dataset(root), Filters(domains=("b.example.com",)))
    check(report, expected([r for r in rows if r.domain == "b.example.com"]))
    assert report.totals.rejected_lines == 2
    assert [d.domain for d in report.domains] == ["b.example.com"]


def test_filter_by_time_window_is_half_open(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    since, until = T0 + timedelta(hours=1, minutes=30), T0 + timedelta(hours=2, minutes=15)
    report = analyze(open_dataset(root), Filters(since=since, until=until, top=5))
    check(report, expected([r for r in rows if since <= r.values["ts"] < until], top=5))
    assert all(len(items) <= 5 for items in report.tops.values())


def test_filter_with_offset_aware_bounds(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    since = datetime(2026, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))  # 01:00 UTC
    report = analyze(open_dataset(root), Filters(since=since))
    assert report.totals.requests == sum(
        1 for r in rows if r.values["ts"] >= T0 + timedelta(hours=1)
    )


def test_to_dict_is_json(dataset: tuple[Path, list[Row]]) -> None:
    root, _ = dataset
    report = analyze(open_dataset(root), Filters(domains=("a.example.com",)))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["totals"]["requests"] == report.totals.requests
    assert data["hours"][0]["hour"] == "2026-11-01T00:00:00Z"
    assert data["filters"]["domains"] == ["a.example.com"]
    assert data["empty"] is False
    assert HOSTILE_UA in {i["key"] for i in data["tops"]["user_agents"]}


def test_empty_dataset_and_empty_window(tmp_path: Path, dataset: tuple[Path, list[Row]]) -> None:
    report = analyze(open_dataset(tmp_path), Filters())
    assert report.empty and report.notes == ["the dataset has no rows yet"]
    assert report.totals.requests == 0 and report.hours == []
    json.dumps(report.to_dict())

    root, _ = dataset
    far = T0 + timedelta(days=30)
    report = analyze(open_dataset(root), Filters(since=far))
    assert report.empty and report.notes == ["no requests in the window"]
    assert report.totals.rejected_lines == 5
    report = analyze(open_dataset(root), Filters(domains=("nope.example.com",)))
    assert report.empty and report.totals.rejected_lines == 0


def test_filters_reject_naive_times() -> None:
    with pytest.raises(ValueError):
        Filters(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        Filters(top=0)
