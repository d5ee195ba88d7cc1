"""Lines per second of the simulator's log generators, against formatting alone in the same run.

``loggen.generate_lines`` feeds the demo, the tests and the simulator's files; its target is
200 k lines/s. ``busylog.generate_busy_lines`` feeds the ingest and report benchmarks. The
baseline is ``loggen.format_line`` with fixed fields, the floor every generated line pays: the
ratio says what drawing the fields costs on top, whatever the machine's speed.

    .venv/bin/python bench/loggen_bench.py              # 200 000 lines each, best of 3
    .venv/bin/python bench/loggen_bench.py --lines 50000
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from cdnlogs.simulator.busylog import generate_busy_lines
from cdnlogs.simulator.loggen import format_line, generate_lines

HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)
DOMAIN = "bench.example.com"


def formatted_only(count: int) -> Iterable[str]:
    """``count`` lines of fixed fields: the formatting every generated line costs."""
    for _ in range(count):
        yield format_line(
            "[1/Mar/2024:10:00:00", "203.0.113.7", "-", 120, "-", "GET",
            f"https://{DOMAIN}/index.html", 200, 300, 18000, "HIT", "curl/8.5.0",
            "text/html", "https",
        )  # fmt: skip


def best_rate(make: Callable[[], Iterable[str]], count: int, repeat: int) -> float:
    """Best lines per second of ``repeat`` runs over ``make()``'s lines."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = sum(1 for _ in make())
        best = max(best, n / (time.perf_counter() - start))
        assert n == count
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.lines, args.repeat
    list(generate_busy_lines(DOMAIN, HOUR, 1, 1))  # busylog builds its pools on first use
    baseline = best_rate(lambda: formatted_only(n), n, repeat)
    print(f"{'generator':<24} {'lines/s':>12} {'x the cost of formatting':>26}")
    print(f"{'format_line alone':<24} {baseline:12,.0f} {1.0:26.2f}")
    for name, generate in (
        ("loggen.generate_lines", generate_lines),
        ("busylog (busy domain)", generate_busy_lines),
    ):
        rate = best_rate(functools.partial(generate, DOMAIN, HOUR, n, 2), n, repeat)
        print(f"{name:<24} {rate:12,.0f} {baseline / rate:26.2f}")


if __name__ == "__main__":
    main()
