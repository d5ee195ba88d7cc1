"""Benchmark: `report` over a dataset on a store (moto on 127.0.0.1) vs the same dataset on disk.

Writes N rows (default 10 million) in report_bench's layout (hourly per-source files, two
domains, five days), publishes it to an in-process moto S3 server through cdnlogs' publish
path, and times, side by side on the same rows: the whole report (``analyze``), a count, and a
one-domain one-day count (partition pruning), local vs store, per-source files and then again
after ``compact`` (one file per domain-day). moto is Python in this process, so the ratio is
the figure to read, not the absolute store speed.

    .venv/bin/python bench/dataset_store_bench.py [--rows 10000000] [--work bench/work/store]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import boto3
import duckdb
from moto.server import ThreadedMotoServer

from cdnlogs.analyze import Filters, analyze
from cdnlogs.compaction import CompactOptions, compact_dataset
from cdnlogs.config import Settings
from cdnlogs.dataset import RemoteDataset, connect
from cdnlogs.manifest import Manifest
from cdnlogs.publish import publish_dataset
from cdnlogs.store import open_store

BUCKET = "bench"
#: Two domains over five days of hourly files (the layout report_bench used to write).
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


def timed(func: Callable[[], object], repeat: int = 2) -> float:
    """The best of ``repeat`` runs (the first warms caches, as a second report would)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def measure(label: str, local: Path, remote: RemoteDataset) -> None:
    """Print local vs store seconds and the ratio for three queries."""
    files = len(list(local.glob("domain=*/date=*/*.parquet")))
    print(f"\n{label}: {files} files")
    print(f"{'query':<32} {'local s':>8} {'store s':>8} {'ratio':>7}")
    one_day = (
        "SELECT count(*) FROM logs WHERE domain = 'a.example.com' AND date = DATE '2026-11-03'"
    )
    for name, run in (
        ("report (analyze, everything)", lambda con: analyze(con, Filters())),
        ("count(*)", lambda con: con.execute("SELECT count(*) FROM logs").fetchall()),
        ("one domain-day count (pruned)", lambda con: con.execute(one_day).fetchall()),
    ):
        times = []
        for root in (local, remote):
            start = time.perf_counter()
            con = connect(root)
            opened = time.perf_counter() - start
            times.append(opened + timed(lambda con=con, run=run: run(con)))
            con.close()
        print(f"{name:<32} {times[0]:8.2f} {times[1]:8.2f} {times[1] / times[0]:6.1f}x")
    start = time.perf_counter()
    connect(remote).close()
    print(f"{'(open: list + views, store)':<32} {'':>8} {time.perf_counter() - start:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench/work/store"))
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    root = (args.work / f"dataset-{args.rows}").absolute()
    if any(root.glob("domain=*/date=*/compacted-*.parquet")):
        shutil.rmtree(root)  # a run before compacted it: start from per-source files again
    start = time.perf_counter()
    generate(root, args.rows)
    print(f"dataset ready in {time.perf_counter() - start:.1f} s: {root}")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
            Bucket=BUCKET
        )
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        settings = Settings(
            dataset=f"s3://{BUCKET}/ds", store_endpoint=endpoint, store_region="us-east-1"
        )
        store = open_store(settings, settings.dataset_url)
        remote = RemoteDataset(store)
        state = Path(tempfile.mkdtemp(prefix="cdnlogs-bench-state-"))
        with Manifest.open(state) as manifest:
            start = time.perf_counter()
            summary = publish_dataset(root, store, manifest)
            seconds = time.perf_counter() - start
            print(
                f"published {summary.uploaded} files, {summary.uploaded_bytes / 1e6:.0f} MB "
                f"in {seconds:.1f} s"
            )
            measure("per-source files", root, remote)
            start = time.perf_counter()
            done = compact_dataset(
                root, manifest, now=datetime.now(UTC), options=CompactOptions(domains=DOMAINS)
            )
            publish_dataset(root, store, manifest)
            print(
                f"\ncompacted {len(done.compacted)} days and published in "
                f"{time.perf_counter() - start:.1f} s"
            )
            measure("compacted", root, remote)
        shutil.rmtree(state, ignore_errors=True)
    finally:
        server.stop()
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
