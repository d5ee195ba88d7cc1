"""Benchmark: how fast the simulator makes log lines (it used to be a timed test).

Not a test. The simulator generates each hourly file when it is first downloaded, so the
generator must outrun the downloader or a simulated sync measures the generator. This makes
the same number of lines with both generators and compresses them once, side by side in one
run, and prints lines/s and the ratios: generator / gzip (how much faster lines are made than
the log host compresses them; above 1 means the generator is not the bottleneck) and
``generate_lines`` / ``generate_busy_lines``.

    .venv/bin/python bench/generator_bench.py [--lines 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from cdnlogs.simulator.busylog import generate_busy_lines
from cdnlogs.simulator.loggen import generate_lines, gzip_lines

HOUR = datetime(2026, 3, 10, 4, tzinfo=UTC)


def best_rate(count: int, repeat: int, run: Callable[[], Iterable[object]]) -> float:
    """Lines per second of the fastest of ``repeat`` runs (the least disturbed by other load)."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _item in run():
            pass
        seconds.append(time.perf_counter() - started)
    return count / min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.lines, args.repeat

    demo = best_rate(n, repeat, lambda: generate_lines("a.example.com", HOUR, n, 2))
    busy = best_rate(n, repeat, lambda: generate_busy_lines("a.example.com", HOUR, n, 2))
    lines = list(generate_lines("a.example.com", HOUR, n, 2))
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        gzip_lines(lines)
        seconds.append(time.perf_counter() - started)
    gzip_rate = n / min(seconds)

    print(f"{n:,} lines, best of {repeat}")
    print(f"  generate_lines       {demo:>12,.0f} lines/s")
    print(f"  generate_busy_lines  {busy:>12,.0f} lines/s")
    print(f"  gzip_lines (level 6) {gzip_rate:>12,.0f} lines/s")
    print(f"  generate_lines / gzip          {demo / gzip_rate:.2f}x")
    print(f"  generate_busy_lines / gzip     {busy / gzip_rate:.2f}x")
    print(f"  generate_lines / busy_lines    {demo / busy:.2f}x")
    print(f"  load average at the end: {_load()}")


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
