"""busylog: the benchmark's lines are valid Aliyun lines with a busy domain's cardinality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdnlogs.logformat import parse_line
from cdnlogs.simulator.busylog import generate_busy_lines
from cdnlogs.simulator.loggen import generate_lines

HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)
COUNT = 20_000


def test_busy_lines_parse_and_have_many_distinct_keys() -> None:
    lines = list(generate_busy_lines("busy.example.com", HOUR, COUNT, 1))
    records = [parse_line(line) for line in lines]  # raises on any line it cannot read

    assert len(records) == COUNT
    assert all(HOUR <= r.ts < HOUR + timedelta(hours=1) for r in records)
    assert all(r.host == "busy.example.com" for r in records)
    clients = {r.client_ip for r in records}
    urls = {(r.path, r.query) for r in records}
    agents = {r.user_agent for r in records}
    referers = {r.referer for r in records}
    # The demo generator's pools cap these at a few hundred; a busy hour has far more.
    demo = [parse_line(line) for line in generate_lines("busy.example.com", HOUR, COUNT, 1)]
    assert len({r.client_ip for r in demo}) < 1_000 < len(clients)
    assert len(clients) > COUNT // 2
    assert len(urls) > COUNT // 2
    assert len(agents) > 500
    assert len(referers) > 1_000
    assert any(r.client_ip and ":" in r.client_ip for r in records)  # some IPv6
    assert any(r.user_agent and '"' in r.user_agent for r in records)  # raw quotes, as in loggen


def test_busy_lines_are_deterministic_per_seed() -> None:
    first = list(generate_busy_lines("busy.example.com", HOUR, 500, 7))
    assert first == list(generate_busy_lines("busy.example.com", HOUR, 500, 7))
    assert first != list(generate_busy_lines("busy.example.com", HOUR, 500, 8))
