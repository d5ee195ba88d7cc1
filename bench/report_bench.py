"""Benchmark of `cdnlogs report` with the client panels vs before them and vs GoAccess.

Side by side in one run, on busy lines (``simulator.busylog``: 2 M lines have 461 k distinct
clients, 2,338 User-Agents):

1. ``cdnlogs ingest`` of one N-line ``.gz``, without and with the report's rollups and
   lookups (``report_rollups``: built at the end of the run), alternating, fresh each time.
2. The report over those N rows: the whole ``cdnlogs report --json`` right after that ingest
   (what a user runs first), the report before the panels (``analyze.py`` at BASELINE, loaded
   from git), now grouping the rows directly (no rollups), now cold (``_dims`` and
   ``_rollups`` removed first: what a report pays when ingest did not build them) and warm.
3. GoAccess (geolocation off: it needs a MaxMind key) on the same N plain lines.
4. N x COPIES rows (the same file ingested under other names): the same reports, and GoAccess
   re-reading N x COPIES lines (measured at N and scaled, unless --goaccess-all).

    .venv/bin/python bench/report_bench.py [--lines 2000000] [--copies 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).parent))

import ingest_bench as ib
from cdnlogs import analyze as now
from cdnlogs.dataset import connect
from cdnlogs.dims import DIMS_DIR, DimensionStore
from cdnlogs.rollup import ROLLUP_DIR, RollupStore

#: The commit whose analyze.py is the "before" column (the report without the panels).
BASELINE = "75b455c"


def baseline(work: Path) -> ModuleType:
    """``cdnlogs.analyze`` as it was at BASELINE, imported from a copy."""
    path = work / "analyze_baseline.py"
    text = subprocess.run(
        ["git", "show", f"{BASELINE}:src/cdnlogs/analyze.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("analyze_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def timed(label: str, rows: int, func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"  {label:<44} {seconds:7.2f} s  {rows / seconds / 1e6:6.2f} M rows/s", flush=True)
    return seconds


def reports(dataset: Path, rows: int, before: ModuleType) -> dict[str, float]:
    """Time every report variant over ``dataset``; dimensions and rollups start absent."""
    shutil.rmtree(dataset / DIMS_DIR, ignore_errors=True)
    shutil.rmtree(dataset / ROLLUP_DIR, ignore_errors=True)
    con = connect(dataset)
    before.analyze(con, before.Filters())  # warm the page cache, as a second run would
    out = {
        "before": timed(
            "report before the panels", rows, lambda: before.analyze(con, before.Filters())
        ),
        "direct": timed(
            "now, rows grouped directly (no rollups)",
            rows,
            lambda: now.analyze(con, now.Filters()),
        ),
        "cold": timed(
            "now, cold (builds _dims and _rollups)",
            rows,
            lambda: now.analyze(con, now.Filters(), DimensionStore(dataset), RollupStore(dataset)),
        ),
        "warm": timed(
            "now, warm",
            rows,
            lambda: now.analyze(con, now.Filters(), DimensionStore(dataset), RollupStore(dataset)),
        ),
    }
    out["warm"] = min(
        out["warm"],
        timed(
            "now, warm (again)",
            rows,
            lambda: now.analyze(con, now.Filters(), DimensionStore(dataset), RollupStore(dataset)),
        ),
    )
    con.close()
    start = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "cdnlogs"),
            "report",
            "--dataset",
            str(dataset),
            "--json",
        ],
        check=True,
        capture_output=True,
    )
    out["cli"] = time.perf_counter() - start
    print(f"  {'`cdnlogs report --json`, warm, whole command':<44} {out['cli']:7.2f} s")
    return out


def ingest(cdnlogs: str, out: Path, *, rollups: bool) -> tuple[float, int, float]:
    """``cdnlogs ingest`` of what ``out``'s ledger lists: (wall seconds, peak RSS, CPU s)."""
    env = {**os.environ, "CDNLOGS_REPORT_ROLLUPS": "true" if rollups else "false"}
    wall, rss, _ = ib.run_child([cdnlogs, "ingest", "--out", str(out), "--json"], env=env)
    return wall, rss, ib.LAST_CPU


def first_report(cdnlogs: str, dataset: Path) -> float:
    """The whole `cdnlogs report --json` a user runs right after `cdnlogs ingest`."""
    wall, _, _ = ib.run_child([cdnlogs, "report", "--dataset", str(dataset), "--json"])
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="ingests with and without")
    parser.add_argument("--work", type=Path, default=Path("bench/work/report"))
    parser.add_argument("--goaccess-all", action="store_true", help="run GoAccess on copies x N")
    parser.add_argument("--ingest-only", action="store_true", help="stop after the ingests")
    args = parser.parse_args()
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} cores")
    before = baseline(work)
    gz = work / f"source-busy-{args.lines}.gz"
    plain = work / f"source-busy-{args.lines}.log"
    if not gz.exists():
        start = time.perf_counter()
        ib.write_gz(gz, ib.generate_busy_lines(ib.DOMAIN, ib.HOUR, args.lines, 1))
        print(f"generated {args.lines:,} lines in {time.perf_counter() - start:.1f}s")
    if not plain.exists():
        subprocess.run(f"gzip -dc {gz} > {plain}", shell=True, check=True)
    cdnlogs = str(Path(sys.executable).parent / "cdnlogs")
    out = work / "archive"
    # Clean ingest with and without the report's rollups (built at the end of the run),
    # alternating, on a fresh archive each time; the last one (with) is kept.
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for with_rollups in (False, True):
            shutil.rmtree(out, ignore_errors=True)
            ib.add_source(out, f"{ib.DOMAIN}_2024_03_01_100000_110000.gz", gz)
            wall, rss, cpu = ingest(cdnlogs, out, rollups=with_rollups)
            walls[with_rollups].append(wall)
            cpus[with_rollups].append(cpu)
            label = "with rollups   " if with_rollups else "without rollups"
            print(
                f"ingest of {args.lines:,} lines, {label}: {wall:6.2f} s, "
                f"{args.lines / wall:,.0f} lines/s, {cpu:6.2f} cpu-s, peak RSS {rss / 1e6:.0f} MB, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    plain_ingest, full_ingest = min(walls[False]), min(walls[True])
    print(
        f"ingest, best of {args.repeats}: {plain_ingest:.2f} s without, {full_ingest:.2f} s with "
        f"rollups and lookups (+{(full_ingest / plain_ingest - 1) * 100:.1f}%; limit +10%)"
    )
    cpu_plain, cpu_full = min(cpus[False]), min(cpus[True])
    print(
        f"ingest CPU, best of {args.repeats}: {cpu_plain:.2f} s without, {cpu_full:.2f} s with "
        f"(+{(cpu_full / cpu_plain - 1) * 100:.1f}%)"
    )
    if args.ingest_only:
        return
    dataset = out / ".cdnlogs" / "dataset"
    print(f"report over {args.lines:,} rows:")
    small_first = first_report(cdnlogs, dataset)
    print(f"  {'`cdnlogs report --json` right after ingest':<44} {small_first:7.2f} s")
    small = reports(dataset, args.lines, before)
    small["first"] = small_first
    ga_wall, general = ib.goaccess(plain, work / "goaccess.json")
    ga_rate = args.lines / ga_wall
    print(
        f"goaccess on {args.lines:,} lines: {ga_wall:.2f} s, {ga_rate:,.0f} lines/s "
        f"({general['valid_requests']:,} valid), load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"ingest + first report: {full_ingest + small_first:.2f} s now vs "
        f"{plain_ingest + small['before']:.2f} s before the panels; GoAccess {ga_wall:.2f} s"
    )
    for name in ("before", "direct", "cold", "first", "warm"):
        print(f"  {name:>6}: {ga_wall / small[name]:6.1f}x GoAccess")

    names = [
        f"{ib.DOMAIN}_2024_03_01_{11 + i:02d}0000_{12 + i:02d}0000.gz"
        for i in range(args.copies - 1)
    ]
    for name in names:
        ib.add_source(out, name, gz)
    more, _, _ = ingest(cdnlogs, out, rollups=True)
    total = args.lines * args.copies
    print(f"ingest of {args.copies - 1} more copies (with rollups): {more:.2f} s")
    print(f"report over {total:,} rows:")
    big_first = first_report(cdnlogs, dataset)
    print(f"  {'`cdnlogs report --json` right after ingest':<44} {big_first:7.2f} s")
    big = reports(dataset, total, before)
    big["first"] = big_first
    if args.goaccess_all:
        big_plain = work / "goaccess-all.log"
        with big_plain.open("wb") as sink:
            for _ in range(args.copies):
                with plain.open("rb") as src:
                    shutil.copyfileobj(src, sink)
        ga_big, _ = ib.goaccess(big_plain, work / "goaccess-big.json")
        note = "measured"
    else:
        ga_big = ga_wall * args.copies
        note = f"measured at {args.lines:,} lines, scaled x{args.copies}"
    print(f"GoAccess re-reading {total:,} lines: {ga_big:.0f} s ({note})")
    for name in ("before", "direct", "cold", "first", "warm", "cli"):
        print(
            f"  {name:>6}: {big[name]:6.2f} s = {ga_big / big[name]:6.1f}x GoAccess (goal >= 100x)"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
