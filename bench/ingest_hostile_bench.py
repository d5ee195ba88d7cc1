"""Benchmark: the ingest on clean and hostile busy logs vs an expert's DuckDB one-liner.

Not a test. Run ``.venv/bin/python bench/ingest_hostile_bench.py [--lines 1000000]``.

Side by side in one run, on the same files (``.log`` and ``.gz``): ``Ingester.ingest_file``
on busy lines (``simulator.busylog``, which already carries ~0.5% raw quotes), the same with
~0.5% more hostile shapes (``simulator.busylog.hostile_lines``), and the one-liner the issue
quotes (CSV split with quotes, ``ignore_errors``: it loses or mangles the odd lines). Requests
and bytes of the dataset are compared with the reference parser's.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from cdnlogs.dataset import connect
from cdnlogs.errors import ParseError
from cdnlogs.ingest import Ingester
from cdnlogs.logformat import parse_line
from cdnlogs.simulator.busylog import generate_busy_lines, hostile_lines

HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)
NAME = "bench.example.com_2024_03_01_100000_110000.gz"


def one_liner(path: Path, out: Path) -> float:
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(15)) + "}"
    con = duckdb.connect(config={"threads": 2})
    started = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{path}', delim=' ', quote='\"', escape='', "
        f"header=false, auto_detect=false, columns={columns}, null_padding=true, "
        f"ignore_errors=true, max_line_size=2097152, "
        f"strict_mode=false)) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
    )
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def ingest(path: Path, root: Path) -> tuple[float, int, int, int]:
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    with Ingester(root) as ingester:
        result = ingester.ingest_file(path, domain="d", log_name=NAME, day=date(2024, 3, 1))
    seconds = time.perf_counter() - started
    con = connect(root)
    row = con.execute("SELECT count(*), sum(response_bytes) FROM logs").fetchone()
    con.close()
    assert row is not None and not result.slow_path
    return seconds, int(row[0]), int(row[1] or 0), result.reparsed


def reference(path: Path) -> tuple[int, int]:
    requests = nbytes = 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = parse_line(raw.decode("utf-8", errors="replace"))
            except ParseError:
                continue
            requests += 1
            nbytes += record.response_bytes or 0
    return requests, nbytes


def small_files(count: int, work: Path, *, rollups: bool = False) -> float:
    """``count`` files of 3 lines (100 domains x hours) in an archive, then one ingest.

    ``rollups``: the setting ``report_rollups`` (the report's rollups built at the end of the
    ingest, on by default); returns the ingest's seconds.
    """
    from datetime import timedelta

    from cdnlogs.config import Settings
    from cdnlogs.ingest import ingest_archive
    from cdnlogs.manifest import Manifest
    from cdnlogs.models import LogFile
    from cdnlogs.simulator.loggen import generate_lines

    settings = Settings(out_dir=work / f"small-{rollups}", report_rollups=rollups)
    listed, done = [], []
    for i in range(count):
        domain = f"d{i % 100:03d}.example.com"
        hour = HOUR - timedelta(hours=i // 100)
        local = hour + timedelta(hours=8)
        name = f"{domain}_{local:%Y_%m_%d_%H}0000_{(local + timedelta(hours=1)):%H}0000.gz"
        rel = f"{domain}/{local:%Y/%m/%d}/{name.removesuffix('.gz')}.log"
        path = settings.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in generate_lines(domain, hour, 3, i)))
        listed.append(LogFile(domain, name, "http://x/" + name, 1, hour, hour + timedelta(hours=1)))
        done.append((domain, name, rel))
    with Manifest.open(settings.state_dir) as manifest:
        manifest.record_listed(listed)
        for domain, name, rel in done:
            manifest.mark_done(
                domain, name, sha256="0" * 64, plain_size=3, local_path=rel, fmt="log"
            )
    started = time.perf_counter()
    cpu = _cpu()
    if os.environ.get("PROFILE"):
        import cProfile

        with cProfile.Profile() as prof:
            summary = ingest_archive(settings, now=HOUR + timedelta(days=1))
        prof.print_stats("cumulative")
    else:
        summary = ingest_archive(settings, now=HOUR + timedelta(days=1))
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu
    print(
        f"small files, report_rollups={str(rollups).lower()}: {summary.files:,} files of 3 "
        f"lines, {summary.rows:,} rows in "
        f"{seconds:.2f}s = {summary.files / seconds:,.0f} files/s (goal: 7,200 in < 8 s); "
        f"{cpu:.2f} cpu-s = {cpu / summary.files * 1000:.2f} cpu-ms a file; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return seconds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--small-files", type=int, default=7200)
    parser.add_argument("--only-small", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cdnlogs-hostile-"))
    try:
        without = small_files(args.small_files, work)
        with_rollups = small_files(args.small_files, work, rollups=True)
        print(f"small files: report_rollups=true takes {with_rollups / without:.2f}x the time")
        if args.only_small:
            return
        clean = work / "clean.log"
        hostile = work / "hostile.log"
        with clean.open("w") as out:
            for line in generate_busy_lines("bench.example.com", HOUR, args.lines, 1):
                out.write(line + "\n")
        with hostile.open("wb") as out:
            for raw in hostile_lines(generate_busy_lines("bench.example.com", HOUR, args.lines, 1)):
                out.write(raw + b"\n")
        for plain in (clean, hostile):
            with plain.open("rb") as src, gzip.open(plain.with_suffix(".log.gz"), "wb", 6) as dst:
                shutil.copyfileobj(src, dst)
        print(f"{args.lines:,} busy lines; clean {clean.stat().st_size / 1e6:.0f} MB plain")
        rates: dict[str, float] = {}
        for label, path in (
            ("clean .log", clean),
            ("clean .gz", clean.with_suffix(".log.gz")),
            ("hostile .log", hostile),
            ("hostile .gz", hostile.with_suffix(".log.gz")),
        ):
            oneliner = one_liner(path, work / "one.parquet")
            seconds, rows, nbytes, reparsed = ingest(path, work / "ds")
            ref_rows, ref_bytes = reference(path if path.suffix == ".log" else path.with_suffix(""))
            same = "SAME" if (rows, nbytes) == (ref_rows, ref_bytes) else "DIFFERENT"
            rates[label] = args.lines / seconds
            print(
                f"{label:13} ingest {seconds:6.2f}s {args.lines / seconds:9,.0f} lines/s "
                f"({reparsed:,} re-parsed) | one-liner {oneliner:6.2f}s "
                f"{args.lines / oneliner:9,.0f} lines/s | ingest/one-liner "
                f"{oneliner / seconds:4.2f}x | rows+bytes vs reference parser: {same}"
            )
        for kind in (".log", ".gz"):
            print(f"hostile/clean {kind}: {rates['hostile ' + kind] / rates['clean ' + kind]:.2f}x")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process (generation included): {peak:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
