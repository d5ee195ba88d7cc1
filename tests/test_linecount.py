"""count_lines: the line count the ingest holds DuckDB's rows and rejects against."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from cdnlogs import linecount
from cdnlogs.linecount import LineCount, LineCounter, count_lines


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", LineCount(0, 0)),
        (b"a\n", LineCount(1, 0)),
        (b"a", LineCount(1, 0)),  # a last line without a newline still counts
        (b"a\nb", LineCount(2, 0)),
        (b"\n", LineCount(1, 1)),
        (b"\n\na\n\n\nb", LineCount(6, 4)),  # runs of empty lines, at the start too
        (b"a\n   \nb\n", LineCount(3, 0)),  # spaces are not empty: the CSV reader rejects them
        (b"a\r\nb\r\n", LineCount(2, 0)),
    ],
)
def test_counts_lines_and_empty_lines(tmp_path: Path, data: bytes, expected: LineCount) -> None:
    plain = tmp_path / "x.log"
    plain.write_bytes(data)
    packed = tmp_path / "x.gz"
    packed.write_bytes(gzip.compress(data))
    assert count_lines(plain) == expected
    assert count_lines(packed) == expected
    assert expected.nonempty == expected.lines - expected.empty


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_chunk_edges_do_not_change_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    data = b"\nab\n\n\ncd\n\nef"
    (tmp_path / "x.log").write_bytes(data)
    monkeypatch.setattr(linecount, "_CHUNK", chunk)
    lines = data.split(b"\n")
    assert count_lines(tmp_path / "x.log") == LineCount(len(lines), lines.count(b""))


def test_truncated_gzip_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"a\n" * 10_000)[:-20])
    with pytest.raises(EOFError):
        count_lines(path)


@pytest.mark.parametrize("data", [b"", b"a", b"a\n", b"\n\na\n\n\nb", b"x\ny\nz", b"\r\n\r\n"])
@pytest.mark.parametrize("size", [1, 2, 7])
def test_sync_counter_over_any_chunking_counts_the_same_lines(
    tmp_path: Path, data: bytes, size: int
) -> None:
    counter = LineCounter()
    for start in range(0, len(data), size):
        counter.feed(data[start : start + size])
    (tmp_path / "x.log").write_bytes(data)
    assert counter.result() == count_lines(tmp_path / "x.log").lines
