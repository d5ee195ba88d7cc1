"""Exactness of the ingest on hostile files: the dataset is the reference parser's, row for row.

Files larger than DuckDB's 8,000,000-byte scanner range, built from random mixes of the shapes
real traffic carries (raw quotes in any quoted field, an odd number of them, 12/13/14+ fields,
empty lines, CRLF, NUL and control bytes, bytes that are not UTF-8, a very long line), placed
anywhere, including right across a range boundary.
"""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdnlogs.dataset import LOG_COLUMNS, connect, quote_sql, rejects_path
from cdnlogs.errors import ParseError
from cdnlogs.ingest import Ingester
from cdnlogs.ingest.fastpath import MAX_LINE_BYTES
from cdnlogs.ingest.reference import record_row
from cdnlogs.logformat import parse_line
from cdnlogs.simulator.loggen import generate_lines

DOMAIN = "a.example.com"
NAME = "a.example.com_2024_03_01_100000_110000.log"
RANGE = 8_000_000
BASE = '[1/Mar/2024:10:00:{s:02d} +0800] 1.2.3.4 - 5 "{ref}" "GET /p?q=1" 200 1 2 HIT "{ua}" "t/h"'

#: Hostile shapes, as bytes (one physical line each, without its newline).
SHAPES: list[bytes] = [
    BASE.format(s=1, ref='https://q.example/s?q="union select"', ua="x").encode(),
    BASE.format(s=2, ref="-", ua='Mozilla/5.0 (compatible; "Scanner" v2)').encode(),
    BASE.format(s=3, ref='a" "b', ua='c" "d').encode() + b" https",
    BASE.format(s=4, ref="-", ua='ends in ""').encode() + b" https",
    BASE.format(s=5, ref='"', ua="x").encode() + b" quic",
    BASE.format(s=6, ref="-", ua="u").encode(),  # 12 fields
    BASE.format(s=7, ref="-", ua="u").encode() + b" https extra1 extra2",  # 14+
    BASE.format(s=8, ref="-", ua="u").encode() + b' "https"',  # quoted protocol
    b"",  # an empty line
    BASE.format(s=9, ref="-", ua="u").encode() + b" https\r",  # CRLF
    BASE.format(s=10, ref="-", ua="nul\x00 and \x07 bell").encode() + b" https",
    BASE.format(s=11, ref="-", ua="u").encode().replace(b"1.2.3.4", b"1.2.\x01.4"),
    BASE.format(s=12, ref="-", ua="caf\xe9").encode("latin-1") + b" https",  # not UTF-8
    BASE.format(s=13, ref="-", ua="\u00e9\u4e2d").encode() + b" https",  # UTF-8, not ASCII
    BASE.format(s=14, ref="-", ua="u").encode().replace(b" 5 ", b" 007 "),
    BASE.format(s=15, ref="-", ua="a\rb").encode(),  # a carriage return inside
    b"   ",
    b"not a log line at all",
    BASE.format(s=16, ref="-", ua="x" * 300_000).encode(),  # a long line
]


def _clean_lines(count: int) -> list[bytes]:
    hour = datetime(2024, 3, 1, 2, tzinfo=UTC)
    return [line.encode() for line in generate_lines(DOMAIN, hour, count, 3)]


CLEAN = _clean_lines(40_000)


def _build(picks: list[tuple[int, int]], tail: int) -> bytes:
    """~8.5 MB of clean lines with the shapes inserted: (shape, where) with where in
    0..999 meaning a place in the file, 1000+ meaning just before the ``where-1000``-th byte
    offset past the 8 MB boundary (so the shape straddles it)."""
    lines = list(CLEAN)
    size = sum(len(line) + 1 for line in lines)
    copies = RANGE // size + 1
    lines = lines * copies + lines[:tail]
    offsets: list[int] = []
    total = 0
    for line in lines:
        offsets.append(total)
        total += len(line) + 1
    inserts: list[tuple[int, bytes]] = []
    for shape, where in picks:
        if where < 1000:
            index = where * len(lines) // 1000
        else:  # the line holding byte RANGE - (where - 1000), so the shape follows it closely
            target = RANGE - (where - 1000)
            index = next(i for i, off in enumerate(offsets) if off > target)
        inserts.append((index, SHAPES[shape]))
    for index, text in sorted(inserts, key=lambda item: -item[0]):
        lines.insert(index, text)
    return b"\n".join(lines) + b"\n"


def _reference(data: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[int, str, bytes]]]:
    rows, bad = [], []
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not raw:
            continue
        try:
            record = parse_line(text)
        except ParseError:
            bad.append((number, text, raw))
            continue
        row = record_row(record, NAME)
        rows.append((row.pop("ts_us"), *row.values()))
    return sorted(rows, key=_key), bad


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v) for v in row)


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    picks=st.lists(
        st.tuples(
            st.integers(0, len(SHAPES) - 1),
            st.one_of(st.integers(0, 999), st.integers(1000, 1600)),
        ),
        min_size=20,
        max_size=60,
    ),
    tail=st.integers(0, 5000),
)
def test_hostile_files_give_the_reference_parsers_rows(
    tmp_path_factory: Any, picks: list[tuple[int, int]], tail: int
) -> None:
    data = _build(picks, tail)
    assert len(data) > RANGE
    tmp = tmp_path_factory.mktemp("hostile")
    source = tmp / "src.log"
    source.write_bytes(data)
    root = tmp / "ds"
    with Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path, "only odd lines may take the slow path"
    assert result.reparsed <= len(picks)
    expected, bad = _reference(data)
    con = connect(root)
    names = ", ".join(f"{name}" for name, _ in LOG_COLUMNS[1:])
    got = con.execute(f"SELECT epoch_us(ts), {names} FROM logs").fetchall()
    assert (result.rows, result.rejects) == (len(expected), len(bad))
    assert sorted(got, key=_key) == expected
    rejects = con.execute("SELECT line_number, line, line_bytes FROM rejects ORDER BY 1").fetchall()
    assert rejects == bad
    con.close()


#: Lines the reference parser rejects, with bytes a decoded copy would not keep.
BAD_LINES = [
    b"not UTF-8 \xff\xfe\xe9 at all",
    b"a NUL \x00 in \x00 garbage",
    b"\xc3\x28 invalid \x00 both",
    b"crlf garbage\r",
    b"a carriage \r return inside",
    BASE.format(s=1, ref="-", ua="u").encode().replace(b"200", b"2\xff0"),
]


def _rejects_of(root: Any) -> list[tuple[int, str, bytes]]:
    con = connect(root)
    try:
        found = con.execute("SELECT line_number, line, line_bytes FROM rejects ORDER BY 1")
        return [(n, text, bytes(raw)) for n, text, raw in found.fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("suffix", [".log", ".gz"])
def test_a_reject_keeps_the_physical_lines_bytes_and_number(tmp_path: Path, suffix: str) -> None:
    """Fast path (clean lines around the bad ones) and slow path (a file DuckDB cannot read as
    lines at all): each reject is the line's bytes exactly, at its true line number."""
    lines = list(CLEAN[:500])
    for i, bad in enumerate(BAD_LINES):
        lines.insert(40 * i + 7, bad)
        lines.insert(40 * i + 8, b"")  # an empty line before the next: numbers stay true
    data = b"\n".join(lines) + b"\n"
    source = tmp_path / f"src{suffix}"
    source.write_bytes(gzip.compress(data) if suffix == ".gz" else data)
    expected = _reference(data)[1]
    assert len(expected) == len(BAD_LINES)
    with Ingester(tmp_path / "ds") as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path
    assert _rejects_of(tmp_path / "ds") == expected
    assert [raw for _, _, raw in expected] == BAD_LINES

    # A line longer than DuckDB's buffer: the parallel read drops it, the one-scanner re-copy
    # reports it, and the reference parser keeps it too.
    huge = b"x\xff" * (3 * MAX_LINE_BYTES)
    data = data + huge + b"\n"
    source.write_bytes(gzip.compress(data) if suffix == ".gz" else data)
    with Ingester(tmp_path / "ds2") as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
        assert _rejects_of(tmp_path / "ds2") == _reference(data)[1] == [*expected, bad_huge(data)]
        # The slow path (the whole file through the reference parser) keeps the bytes too.
        rejects: list[Any] = []
        ingester._slow_rows(source, NAME, tmp_path / "slow.jsonl", rejects)
    assert [(n, text, raw) for _, n, text, _, raw in rejects] == [*expected, bad_huge(data)]


def bad_huge(data: bytes) -> tuple[int, str, bytes]:
    lines = data.split(b"\n")
    return len(lines) - 1, lines[-2].decode("utf-8", errors="replace"), lines[-2]


def test_rejects_written_before_line_bytes_read_it_as_null(tmp_path: Path) -> None:
    """A dataset whose rejects files predate ``line_bytes`` still has a ``rejects`` view."""
    root = tmp_path / "ds"
    path = rejects_path(root, DOMAIN, "old")
    path.parent.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 'f.log' AS source_file, 3::BIGINT AS line_number, 'x' AS line, "
        f"'r' AS reason) TO {quote_sql(str(path))} (FORMAT parquet)"
    )
    con.close()
    assert _rejects_of_nullable(root) == [(3, "x", None)]


def _rejects_of_nullable(root: Any) -> list[tuple[Any, ...]]:
    con = connect(root)
    try:
        return con.execute("SELECT line_number, line, line_bytes FROM rejects").fetchall()
    finally:
        con.close()
