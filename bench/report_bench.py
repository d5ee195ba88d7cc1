"""Benchmark of `cdnlogs report` over a large dataset (not a timed test).

Writes N rows (default 10 million) straight into the dataset layout with DuckDB, in hourly
files for two domains over five days, then times ``analyze`` (the whole report), the terminal
and HTML renderings, and a filtered report, on the connection ``cdnlogs report`` uses. Prints
rows/s, peak RSS and the ratio to GoAccess re-reading the same number of lines at its measured
12.8 k lines/s (``shared/reference/performance-limits.md``).

    .venv/bin/python bench/report_bench.py [--rows 10000000] [--work bench/work/report]
"""

from __future__ import annotations

import argparse
import io
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from rich.console import Console

from cdnlogs.analyze import Filters, analyze
from cdnlogs.dataset import connect
from cdnlogs.report.html import render_html
from cdnlogs.report.text import render_text

GOACCESS_LINES_PER_SECOND = 12_800
DOMAINS = ("a.example.com", "b.example.com")
DAYS = 5


def generate(root: Path, total: int) -> None:
    """Write about ``total`` rows as hourly Parquet files, unless they are already there."""
    if any(root.glob("domain=*/date=*/*.parquet")):
        return
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    per_file = total // (len(DOMAINS) * DAYS * 24)
    # One block of random rows, reused for every hour: the report's work does not depend on
    # the values repeating, and generation stays a fraction of the benchmark's time.
    con.execute(
        f"""CREATE TABLE base AS SELECT
          (random() * 3599)::INT AS sec,
          '10.' || (random() * 20)::INT || '.' || (random() * 255)::INT || '.'
              || (pow(random(), 3) * 255)::INT AS client_ip,
          (pow(random(), 2) * 4000)::BIGINT AS rt,
          CASE WHEN random() < 0.5 THEN NULL
               ELSE 'https://ref' || (random() * 50)::INT || '.example/' END AS referer,
          '/static/' || (pow(random(), 4) * 50000)::INT || '.js' AS path,
          [200, 200, 200, 200, 200, 200, 206, 304, 404, 403, 500, 502][(random() * 11)::INT + 1]
              AS status,
          (random() * 900)::BIGINT AS reqb, (random() * 300000)::BIGINT AS respb,
          CASE WHEN random() < 0.8 THEN 'HIT' ELSE 'MISS' END AS cache,
          'Mozilla/5.0 agent ' || (pow(random(), 3) * 300)::INT AS ua,
          ['text/html', 'application/javascript', 'image/png'][(random() * 2)::INT + 1] AS ctype
        FROM range({per_file})"""
    )
    for domain in DOMAINS:
        for day in range(1, DAYS + 1):
            date = f"2026-11-{day:02d}"
            out = root / f"domain={domain}" / f"date={date}"
            out.mkdir(parents=True, exist_ok=True)
            for hour in range(24):
                stem = f"{domain}_{date.replace('-', '_')}_{hour:02d}0000_{(hour + 1) % 24:02d}0000"
                con.execute(
                    f"""COPY (SELECT
                        TIMESTAMPTZ '{date} {hour:02d}:00:00+00' + to_seconds(sec) AS ts,
                        480 AS utc_offset_minutes, client_ip, NULL::VARCHAR AS proxy_ip,
                        rt AS response_time_ms, referer, 'GET' AS method, 'https' AS scheme,
                        '{domain}' AS host, path, NULL::VARCHAR AS query,
                        status::INTEGER AS status, reqb AS request_bytes,
                        respb AS response_bytes, cache AS cache_status, ua AS user_agent,
                        ctype AS content_type, 'https' AS protocol,
                        '{stem}.gz' AS source_file FROM base)
                    TO '{out / (stem + ".parquet")}' (FORMAT parquet, COMPRESSION zstd)"""
                )
    con.close()


def timed(label: str, rows: int, func: object) -> float:
    """Run ``func`` once and print its time and rate."""
    assert callable(func)
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:7.2f} s  {rows / seconds / 1e6:6.2f} M rows/s")
    return seconds


def main() -> None:
    """Generate (once), then time the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench/work/report"))
    args = parser.parse_args()
    root = args.work / f"dataset-{args.rows}"
    start = time.perf_counter()
    generate(root, args.rows)
    print(f"dataset ready in {time.perf_counter() - start:.1f} s: {root}")

    con = connect(root)
    report = analyze(con, Filters())  # warm the file cache, as a second run would
    rows = report.totals.requests
    seconds = timed("analyze (everything)", rows, lambda: analyze(con, Filters()))
    timed("render text", rows, lambda: render_text(report, Console(file=io.StringIO())))
    timed("render html", rows, lambda: render_html(report))
    since = datetime(2026, 11, 3, tzinfo=UTC)
    one = Filters(domains=(DOMAINS[0],), since=since)
    filtered = analyze(con, one).totals.requests
    timed(f"analyze one domain, 3 days ({filtered:,})", filtered, lambda: analyze(con, one))
    goaccess = rows / GOACCESS_LINES_PER_SECOND
    print(
        f"rows: {rows:,}; GoAccess re-reading them: ~{goaccess:.0f} s; "
        f"ratio {goaccess / seconds:.0f}x"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
