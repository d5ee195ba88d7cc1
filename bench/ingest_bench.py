"""Benchmark: `cdnlogs ingest` and `report` vs GoAccess on the same generated Aliyun logs.

Not a test. Run ``.venv/bin/python bench/ingest_bench.py [--lines 2000000] [--copies 5]``.

1. Generate N lines into one ``.gz`` (and a plain copy for GoAccess, which then skips the
   gunzip we do ourselves: the comparison favours GoAccess). ``--profile busy`` (the default)
   draws them from ``simulator.busylog``, with a busy domain's numbers of distinct clients,
   URLs, agents and referers; ``--profile demo`` from ``loggen``'s small pools, on which
   GoAccess runs ~4x faster than on real traffic (its cost grows with the distinct keys).
2. `cdnlogs ingest` from the ``.gz`` in a child process, ``--repeat`` times from scratch (the
   machine is shared, so the median is reported, and the best): wall time, lines/s, CPU
   seconds, peak RSS.
3. GoAccess (Debian package) with a matching --log-format on the same lines: wall time, and
   the requests and bytes it counted, next to the dataset's.
4. The report's queries (``cdnlogs.analyze``) over the dataset, then over ``copies`` x N rows
   (the file ingested again under other names, ``--jobs 1`` and then the default ``--jobs 2``,
   side by side) vs GoAccess re-reading the logs (measured at N, scaled linearly to copies x N
   unless --goaccess-all).

``--side-by-side`` instead runs the issue-11 table in one run: clean (``busylog``, which
already carries ~0.5% raw quotes) and hostile (``busylog.hostile_lines``: ~0.5% more odd
shapes, 1 MB lines) profiles, each from ``.log`` and from ``.gz``, every cell measured the
same way (a child process, start-up included, peak RSS from ``wait4``): ``cdnlogs ingest``
(with the line count sync records), the expert's DuckDB one-liner the issue quotes, and
GoAccess on the plain text; plus requests and bytes of the dataset against the reference
parser (``logformat.parse_line`` over every physical line).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cdnlogs.analyze import Filters, analyze
from cdnlogs.dataset import connect
from cdnlogs.linecount import count_lines
from cdnlogs.manifest import Manifest
from cdnlogs.models import LogFile
from cdnlogs.simulator.busylog import generate_busy_lines
from cdnlogs.simulator.loggen import generate_lines, write_gz

DOMAIN = "bench.example.com"
HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)
#: GoAccess's rate in ../shared/reference/performance-limits.md (the issue's 40x is against it).
REFERENCE_GOACCESS_RATE = 12_800
#: CPU seconds (user + system) of the last child run_child waited for.
LAST_CPU = 0.0
GOACCESS_FORMAT = '[%d:%t %^] %h %^ %L "%R" "%m %U" %s %^ %b %^ "%u" "%^" %^'


def run_child(cmd: list[str], **kwargs: Any) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """Run ``cmd``; return (wall seconds, peak RSS bytes of this child alone, result).

    ``wait4`` gives the child's own resource usage (RUSAGE_CHILDREN would be the maximum over
    every child so far, GoAccess included). Sets ``LAST_CPU`` to its user + system seconds.
    """
    global LAST_CPU
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(
            cmd, proc.returncode, out.read().decode(), err.read().decode()
        )
    LAST_CPU = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {result.stderr[-2000:]}")
    return wall, usage.ru_maxrss * 1024, result


@functools.cache
def line_count(gz: Path) -> int:
    """The count sync keeps in the ledger for a file it downloaded (taken while inflating)."""
    return count_lines(gz).lines


def add_source(out: Path, name: str, gz: Path) -> None:
    """Put ``gz`` into the archive as a done file named ``name`` (as `sync --format gz` would,
    with the line count sync records)."""
    rel = f"{DOMAIN}/2024/03/01/{name}"
    dest = out / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        os.link(gz, dest) if gz.stat().st_dev == dest.parent.stat().st_dev else shutil.copy(
            gz, dest
        )
    digest = hashlib.sha256(name.encode()).hexdigest()  # unique per name; ingest only compares
    with Manifest.open(out / ".cdnlogs") as manifest:
        manifest.record_listed(
            [LogFile(DOMAIN, name, "http://x/" + name, 1, HOUR, HOUR + timedelta(hours=1))]
        )
        manifest.mark_done(
            DOMAIN,
            name,
            sha256=digest,
            plain_size=0,
            local_path=rel,
            fmt="gz",
            lines=line_count(gz),
        )


def goaccess(plain: Path, report: Path) -> tuple[float, dict[str, Any]]:
    """Run GoAccess on ``plain``; return (seconds, its JSON "general" section)."""
    cmd = [
        "goaccess",
        str(plain),
        f"--log-format={GOACCESS_FORMAT}",
        "--date-format=%d/%b/%Y",
        "--time-format=%T",
        "--no-global-config",
        "-o",
        str(report),
    ]
    wall, rss, _ = run_child(cmd)
    print(f"goaccess peak RSS {rss / 1e6:.0f} MB, {LAST_CPU:.1f} cpu-s")
    return wall, json.loads(report.read_text())["general"]


def timed_report(dataset: Path) -> tuple[float, int]:
    con = connect(dataset)
    started = time.perf_counter()
    result = analyze(con, Filters())
    seconds = time.perf_counter() - started
    con.close()
    return seconds, result.totals.requests


ONE_LINER = """
import duckdb, sys
columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(15)) + "}"
con = duckdb.connect()
con.execute(
    f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', delim=' ', quote='\\"', escape='', "
    f"header=false, auto_detect=false, columns={columns}, null_padding=true, "
    "ignore_errors=true, max_line_size=2097152, strict_mode=false)) "
    f"TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)"
)
"""


def reference_totals(plain: Path) -> tuple[int, int]:
    """Requests and response bytes the reference parser reads from ``plain``, line by line."""
    from cdnlogs.errors import ParseError
    from cdnlogs.logformat import parse_line

    requests = nbytes = 0
    with plain.open("rb") as handle:
        for raw in handle:
            try:
                record = parse_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            except ParseError:
                continue
            requests += 1
            nbytes += record.response_bytes or 0
    return requests, nbytes


def side_by_side(args: argparse.Namespace, work: Path) -> None:
    """The issue-11 table: see the module docstring."""
    from cdnlogs.simulator.busylog import hostile_lines

    cdnlogs = str(Path(sys.executable).parent / "cdnlogs")
    rates: dict[tuple[str, str], float] = {}
    rows_out = []
    for profile in ("clean", "hostile"):
        plain = work / f"{profile}-{args.lines}.log"
        gz = plain.with_suffix(".log.gz")
        if not plain.exists():
            busy = generate_busy_lines(DOMAIN, HOUR, args.lines, 1)
            with plain.open("wb") as sink:
                source = (
                    hostile_lines(busy)
                    if profile == "hostile"
                    else (line.encode() for line in busy)
                )
                for raw in source:
                    sink.write(raw + b"\n")
            subprocess.run(f"gzip -6 -c {plain} > {gz}", shell=True, check=True)
        lines = count_lines(plain).lines
        want = reference_totals(plain)
        ga_wall, ga_rss, _ = run_child(
            [
                "goaccess",
                str(plain),
                f"--log-format={GOACCESS_FORMAT}",
                "--date-format=%d/%b/%Y",
                "--time-format=%T",
                "--no-global-config",
                "-o",
                str(work / "goaccess.json"),
            ]
        )
        ga_rate = lines / ga_wall
        ga_cpu = LAST_CPU
        for source in (plain, gz):
            kind = source.suffix
            out = work / "archive"
            shutil.rmtree(out, ignore_errors=True)
            name = f"{DOMAIN}_2024_03_01_100000_110000.gz"
            rel = f"{DOMAIN}/2024/03/01/{name if kind == '.gz' else name[:-3] + '.log'}"
            (out / rel).parent.mkdir(parents=True)
            os.link(source, out / rel)
            with Manifest.open(out / ".cdnlogs") as manifest:
                manifest.record_listed(
                    [LogFile(DOMAIN, name, "http://x/" + name, 1, HOUR, HOUR + timedelta(hours=1))]
                )
                manifest.mark_done(
                    DOMAIN,
                    name,
                    sha256="0" * 64,
                    plain_size=plain.stat().st_size,
                    local_path=rel,
                    fmt=kind.lstrip("."),
                    lines=lines,
                )
            wall, rss, res = run_child([cdnlogs, "ingest", "--out", str(out), "--json"])
            cpu = LAST_CPU
            summary = json.loads(res.stdout)
            con = connect(out / ".cdnlogs" / "dataset")
            got = con.execute("SELECT count(*), sum(response_bytes) FROM logs").fetchone()
            con.close()
            assert got is not None
            ol_wall, ol_rss, _ = run_child(
                [sys.executable, "-c", ONE_LINER, str(source), str(work / "one.parquet")]
            )
            ol_cpu = LAST_CPU
            rate = lines / wall
            rates[(profile, kind)] = rate
            same = "SAME" if (got[0], got[1] or 0) == want else f"DIFFERENT {got} vs {want}"
            rows_out.append(
                f"| {profile} {kind} | {rate:,.0f} ({wall:.2f} s, {cpu:.1f} cpu-s, "
                f"{rss / 1e6:.0f} MB) | {lines / ol_wall:,.0f} ({ol_wall:.2f} s, "
                f"{ol_cpu:.1f} cpu-s, {ol_rss / 1e6:.0f} MB) | {ga_rate:,.0f} ({ga_wall:.1f} s, "
                f"{ga_cpu:.1f} cpu-s, {ga_rss / 1e6:.0f} MB) "
                f"| {ol_wall / wall:.2f}x ({ol_cpu / cpu:.2f}x) | {rate / ga_rate:.1f}x "
                f"({ga_cpu / cpu:.1f}x) | "
                f"{summary['reparsed']:,} / {summary['rejects']:,} | {same} |"
            )
            print(rows_out[-1], flush=True)
    print(f"\n{args.lines:,} busy lines a file; load average {os.getloadavg()[0]:.1f}\n")
    print(
        "| file | ingest lines/s | one-liner lines/s | GoAccess lines/s (plain) | "
        "ingest / one-liner (by CPU) | ingest / GoAccess (by CPU) | re-parsed / rejects | "
        "requests+bytes vs reference |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows_out))
    for kind in (".log", ".gz"):
        print(f"hostile / clean {kind}: {rates[('hostile', kind)] / rates[('clean', kind)]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--copies", type=int, default=5, help="x N rows for the big report")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--goaccess-all", action="store_true", help="run GoAccess on copies x N")
    parser.add_argument(
        "--repeat", type=int, default=3, help="ingest the first file this many times (median)"
    )
    parser.add_argument(
        "--profile",
        choices=("busy", "demo"),
        default="busy",
        help="busy: a busy domain's cardinality (simulator.busylog); demo: loggen's small pools",
    )
    parser.add_argument(
        "--side-by-side", action="store_true", help="the issue-11 table (see the docstring)"
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cdnlogs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.side_by_side:
        side_by_side(args, work)
        return
    gz = work / f"source-{args.profile}-{args.lines}.gz"
    plain = work / f"source-{args.profile}-{args.lines}.log"
    if not gz.exists():
        t = time.perf_counter()
        generate = generate_busy_lines if args.profile == "busy" else generate_lines
        write_gz(gz, generate(DOMAIN, HOUR, args.lines, 1))
        print(f"generated {args.lines:,} lines in {time.perf_counter() - t:.1f}s -> {gz}")
    if not plain.exists():
        subprocess.run(f"gzip -dc {gz} > {plain}", shell=True, check=True)
    plain_mb = plain.stat().st_size / 1e6
    print(f"source: {gz.stat().st_size / 1e6:.0f} MB gzip, {plain_mb:.0f} MB plain")

    out = work / "archive"
    cdnlogs = str(Path(sys.executable).parent / "cdnlogs")
    walls = []
    for attempt in range(1, args.repeat + 1):
        # A fresh archive and dataset each time: every run ingests the file from scratch.
        shutil.rmtree(out, ignore_errors=True)
        add_source(out, f"{DOMAIN}_2024_03_01_100000_110000.gz", gz)
        wall, rss, res = run_child([cdnlogs, "ingest", "--out", str(out), "--json"])
        summary = json.loads(res.stdout)
        walls.append(wall)
        print(
            f"cdnlogs ingest (run {attempt}/{args.repeat}): {wall:.2f}s, "
            f"{args.lines / wall:,.0f} lines/s, {LAST_CPU:.1f} cpu-s, "
            f"peak RSS {rss / 1e6:.0f} MB, rows {summary['rows']:,}, "
            f"rejects {summary['rejects']:,}, re-parsed {summary['reparsed']:,}"
        )
    wall = statistics.median(walls)
    ingest_rate = args.lines / wall
    print(
        f"cdnlogs ingest: median {wall:.2f}s = {ingest_rate:,.0f} lines/s, "
        f"best {min(walls):.2f}s = {args.lines / min(walls):,.0f} lines/s "
        f"({args.repeat} runs, incl. start-up)"
    )

    ga_wall, general = goaccess(plain, work / "goaccess.json")
    ga_rate = args.lines / ga_wall
    dataset = out / ".cdnlogs" / "dataset"
    con = connect(dataset)
    row = con.execute("SELECT count(*), sum(response_bytes) FROM logs").fetchone()
    # GoAccess refuses the lines with a raw quote inside the Referer (about 0.25%; it copes
    # with one in the User-Agent); the dataset keeps them. Over the other rows both must agree.
    plain_rows = con.execute(
        "SELECT count(*), sum(response_bytes) FROM logs"
        " WHERE NOT contains(coalesce(referer, ''), '\"')"
    ).fetchone()
    con.close()
    assert row is not None and plain_rows is not None
    print(
        f"goaccess:       {ga_wall:.2f}s, {ga_rate:,.0f} lines/s; it counted "
        f"{general['total_requests']:,} requests ({general['failed_requests']:,} failed), "
        f"{general['bandwidth']:,} bytes; dataset: {row[0]:,} rows, {row[1]:,} bytes"
    )
    same = general["valid_requests"] == plain_rows[0] and general["bandwidth"] == plain_rows[1]
    print(
        f"rows without a raw quote in the Referer: {plain_rows[0]:,} rows, "
        f"{plain_rows[1]:,} bytes; "
        f"GoAccess valid: {general['valid_requests']:,} requests, {general['bandwidth']:,} bytes"
        f" -> {'SAME' if same else 'DIFFERENT'}"
    )
    print(
        f"ingest speed-up vs GoAccess here: {ingest_rate / ga_rate:.1f}x (median), "
        f"{args.lines / min(walls) / ga_rate:.1f}x (best); vs the reference GoAccess "
        f"{REFERENCE_GOACCESS_RATE:,} lines/s: {ingest_rate / REFERENCE_GOACCESS_RATE:.1f}x "
        f"(median), {args.lines / min(walls) / REFERENCE_GOACCESS_RATE:.1f}x (best) (goal >= 40x)"
    )

    con = connect(dataset)
    distinct = con.execute(
        "SELECT count(DISTINCT client_ip), count(DISTINCT path), "
        "count(DISTINCT path || coalesce('?' || query, '')), count(DISTINCT user_agent), "
        "count(DISTINCT referer) FROM logs"
    ).fetchone()
    con.close()
    assert distinct is not None
    print(
        f"data ({args.profile}): {distinct[0]:,} distinct clients, {distinct[1]:,} paths, "
        f"{distinct[2]:,} URLs with query, {distinct[3]:,} user agents, {distinct[4]:,} referers"
    )

    rep_small, n_small = timed_report(dataset)
    print(f"report over {n_small:,} rows: {rep_small:.2f}s ({ga_wall / rep_small:.0f}x GoAccess)")
    # More files: one at a time (--jobs 1) vs the default two at once, side by side, each
    # from the same starting point (only the first copy ingested).
    names = [
        f"{DOMAIN}_2024_03_01_{10 + i:02d}0000_{11 + i:02d}0000.gz" for i in range(1, args.copies)
    ]
    more_rates = {}
    for jobs in (1, 2):
        for name in names:
            part = dataset / f"domain={DOMAIN}" / "date=2024-03-01"
            (part / name.replace(".gz", ".parquet")).unlink(missing_ok=True)
            add_source(out, name, gz)
        with Manifest.open(out / ".cdnlogs") as manifest:
            for name in names:
                manifest.mark_done(
                    DOMAIN,
                    name,
                    sha256=hashlib.sha256(f"{name}{jobs}".encode()).hexdigest(),
                    plain_size=0,
                    local_path=f"{DOMAIN}/2024/03/01/{name}",
                    fmt="gz",
                    lines=line_count(gz),
                )
        wall2, rss2, res2 = run_child(
            [cdnlogs, "ingest", "--out", str(out), "--json", "--jobs", str(jobs)]
        )
        more = json.loads(res2.stdout)
        assert more["files"] == len(names), more
        more_rates[jobs] = more["rows"] / wall2
        print(
            f"ingest of {len(names)} more copies, --jobs {jobs}: {wall2:.2f}s, "
            f"{more_rates[jobs]:,.0f} lines/s, {LAST_CPU:.1f} cpu-s, "
            f"peak RSS {rss2 / 1e6:.0f} MB"
        )
    print(
        f"--jobs 2 vs --jobs 1: {more_rates[2] / more_rates[1]:.2f}x; --jobs 2 vs GoAccess here: "
        f"{more_rates[2] / ga_rate:.1f}x, vs the reference GoAccess: "
        f"{more_rates[2] / REFERENCE_GOACCESS_RATE:.1f}x"
    )
    rep_big, n_big = timed_report(dataset)
    if args.goaccess_all:
        big_plain = work / "big.log"
        with big_plain.open("wb") as sink:
            for _ in range(args.copies):
                with plain.open("rb") as src:
                    shutil.copyfileobj(src, sink, 1 << 20)
        ga_big, _ = goaccess(big_plain, work / "goaccess-big.json")
        note = "measured"
    else:
        ga_big = ga_wall * args.copies
        note = f"GoAccess at N scaled x{args.copies}"
    print(
        f"report over {n_big:,} rows: {rep_big:.2f}s vs GoAccess re-reading {ga_big:.0f}s "
        f"({note}): {ga_big / rep_big:.0f}x (goal >= 100x)"
    )
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
