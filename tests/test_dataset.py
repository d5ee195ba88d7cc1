"""Ingest into the Parquet dataset: fast path == reference parser, rejects, idempotency, privacy."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdnlogs.config import Settings
from cdnlogs.dataset import LOG_COLUMNS, connect, prune_dataset
from cdnlogs.errors import ParseError
from cdnlogs.export import ExportFilter, export_logs
from cdnlogs.ingest import Ingester, IngestOptions, ingest_archive, iter_lines
from cdnlogs.ingest import ingester as ingester_module
from cdnlogs.linecount import LineCount, count_lines
from cdnlogs.logformat import LogRecord, anonymize_ip, parse_line, to_clf
from cdnlogs.manifest import Manifest
from cdnlogs.models import LogFile
from cdnlogs.simulator.loggen import generate_lines

DOMAIN = "a.example.com"
HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)  # 10:00 in +08:00
NAME = "a.example.com_2024_03_01_100000_110000.gz"

# Hand-written edge cases, mixed with generated lines below.
ODD_LINES = [
    # 12 fields (no protocol) in a 13-field file: the fast path rejects it, the reference reads it
    '[1/Mar/2024:10:00:01 +0800] 1.2.3.4 - 5 "-" "GET /twelve" 200 1 2 HIT "UA" "text/html"',
    # unescaped quotes inside the User-Agent and the Referer
    '[1/Mar/2024:10:00:02 +0800] 1.2.3.4 - 5 "https://x/?q="a b"" "GET /q" 200 1 2 HIT "u" "t/h"'
    " http",
    '[1/Mar/2024:10:00:03 +0800] 1.2.3.4 - 5 "-" "GET /q" 200 1 2 HIT "say "hi" now" "t/h" http',
    # '" "' inside the User-Agent: one CSV column too many
    '[1/Mar/2024:10:00:04 +0800] 1.2.3.4 - 5 "-" "GET /q" 200 1 2 HIT "a" "b" "t/h" https',
    # extra trailing fields
    '[1/Mar/2024:10:00:05 +0800] 1.2.3.4 - 5 "-" "GET /q" 200 1 2 HIT "u" "t/h" https x "y z"',
    # backslashes are plain characters
    '[1/Mar/2024:10:00:06 +0800] 1.2.3.4 - 5 "-" "GET /a\\b" 200 1 2 HIT "u\\q\\\\" "t/h" quic',
    # IPv6 and a negative offset, dashes everywhere
    '[29/Feb/2024:20:30:07 -0530] 2001:db8:1:2::9 - - "-" "-" - - - - "-" "-" -',
    # a leading zero: parse_line reads it, the SQL does not vouch for it (re-parsed)
    '[1/Mar/2024:10:00:10 +0800] 1.2.3.4 - 007 "-" "GET /z" 200 1 2 HIT "u" "t/h" https',
    # lines neither parser can read: garbage, and a bad date (the CSV reader rejects both)
    "this is not a log line",
    '[31/Feb/2024:10:00:08 +0800] 1.2.3.4 - 5 "-" "GET /q" 200 1 2 HIT "u" "t/h" https',
    '[1/Mar/2024:10:00:09 +0800] 1.2.3.4 - 5 "-" "GET /q" 200 1 2 HIT "u" "t/h" https "x" y',
]
BAD_LINES = 2


def _write(path: Path, lines: list[str], *, gz: bool) -> Path:
    data = "".join(f"{line}\n" for line in lines).encode()
    if gz:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def _mixed_lines(count: int = 3000, seed: int = 7) -> list[str]:
    lines = list(generate_lines(DOMAIN, HOUR, count, seed))
    for i, odd in enumerate(ODD_LINES):
        lines.insert(1 + i * (count // len(ODD_LINES)), odd)
    return lines


def _rows(con: duckdb.DuckDBPyConnection, where: str = "") -> list[tuple[Any, ...]]:
    names = ", ".join(name for name, _ in LOG_COLUMNS)
    return con.execute(f"SELECT {names} FROM logs {where} ORDER BY ALL").fetchall()


def _expected(record: LogRecord, source: str) -> tuple[Any, ...]:
    return (
        record.ts,
        record.utc_offset_minutes,
        record.client_ip,
        record.proxy_ip,
        record.response_time_ms,
        record.referer,
        record.method,
        record.scheme,
        record.host,
        record.path,
        record.query,
        record.status,
        record.request_bytes,
        record.response_bytes,
        record.cache_status,
        record.user_agent,
        record.content_type,
        record.protocol,
        source,
    )


def _reference(lines: list[str], source: str) -> tuple[list[tuple[Any, ...]], list[int]]:
    rows, bad = [], []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(_expected(parse_line(line), source))
        except ParseError:
            bad.append(number)
    return sorted(rows, key=_sort_key), bad


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v) for v in row)


@pytest.mark.parametrize("gz", [True, False])
def test_fast_path_equals_reference_parser(tmp_path: Path, gz: bool) -> None:
    lines = _mixed_lines()
    source = _write(tmp_path / ("src.gz" if gz else "src.log"), lines, gz=gz)
    root = tmp_path / "ds"
    with Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path, "the generated lines must go through the fast path"
    # Only the lines the SQL cannot vouch for (unparseable ones here) reach the reference parser.
    assert result.reparsed <= BAD_LINES + 1
    expected, bad = _reference(lines, NAME)
    assert len(bad) == BAD_LINES
    assert result.rows + result.rejects == len(lines)
    assert (result.rows, result.rejects) == (len(expected), BAD_LINES)
    assert result.parquet == root / f"domain={DOMAIN}" / "date=2024-03-01" / (
        "a.example.com_2024_03_01_100000_110000.parquet"
    )
    con = connect(root)
    assert sorted(_rows(con), key=_sort_key) == expected
    rejects = con.execute(
        "SELECT source_file, line_number, line, reason, domain FROM rejects ORDER BY line_number"
    ).fetchall()
    assert [r[1] for r in rejects] == bad
    assert all(r[0] == NAME and r[4] == DOMAIN and r[3] for r in rejects)
    assert [r[2] for r in rejects] == [lines[n - 1] for n in bad]


def test_carriage_returns_stay_on_the_fast_path(tmp_path: Path) -> None:
    # DuckDB's line reader would split a line at a carriage return: the file is copied without
    # the ones before a newline, and a line with one inside goes to the reference parser.
    lines = _mixed_lines(400)
    lines[5] = lines[5].replace("GET", "G\rET", 1)
    data = "".join(f"{line}\r\n" if i % 7 == 0 else f"{line}\n" for i, line in enumerate(lines))
    source = tmp_path / "mixed.log"
    source.write_bytes(data.encode())
    root = tmp_path / "ds"
    with Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path
    assert result.reparsed == BAD_LINES + 2  # and the 007 line, and the one with a \r inside
    expected, bad = _reference(lines, NAME)
    assert (result.rows, result.rejects) == (len(expected), len(bad))
    assert sorted(_rows(connect(root)), key=_sort_key) == expected


@pytest.mark.parametrize(
    "odd",
    [
        '[1/Mar/2024:10:00:00 +0800] 1.2.3.4 - +5 "-" "GET /x" 200 1_000 5.0 HIT "u" "t/h" https',
        '[1/Mar/2024:10:00:00 +0800] 1.2.3.4 - 5 "-" "GET /x" OK 1 2 HIT "u" "t/h" https',
    ],
)
def test_number_spellings_duckdb_would_accept_do_not_slip_through(tmp_path: Path, odd: str) -> None:
    # Numbers are read as text and checked; a line that fails goes to the reference parser
    # (only that line: the rest of the file stays on the fast path).
    lines = list(generate_lines(DOMAIN, HOUR, 200, 1))
    lines.append(odd)
    source = _write(tmp_path / "n.log", lines, gz=False)
    root = tmp_path / "ds"
    with Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path and result.reparsed == 1
    expected, bad = _reference(lines, NAME)
    assert bad == [len(lines)]  # the reference parser refuses "+5"; so must the dataset
    assert (result.rows, result.rejects) == (len(expected), 1)
    assert sorted(_rows(connect(root)), key=_sort_key) == expected


#: DuckDB's CSV scanner range (cdnlogs.linecount explains the fault these tests pin down).
SCANNER_RANGE = 8_000_000
SCANNER_LINE = (
    '[1/Mar/2024:10:36:54 +0800] 165.179.130.240 - 882 "https://a.example.com/a.webp" '
    '"POST https://a.example.com/img/a.jpg" 200 879 58330 HIT '
    '"Mozilla/5.0 (compatible; "Scanner" v2)" "image/jpeg" https'
)


def _lines_with_quoted_line_across(starts: list[int], total: int) -> list[str]:
    """Plain generated lines, with SCANNER_LINE starting exactly at each byte offset in starts."""
    plain = (
        line
        for line in generate_lines(DOMAIN, HOUR, total // 150, 11)
        if line.count('"') == 8  # no raw quotes: SCANNER_LINE is the only odd line
    )
    filler = (
        '[1/Mar/2024:10:36:54 +0800] 1.2.3.4 - 5 "-" "GET https://a.example.com/{}" 200 1 2 HIT'
        ' "u" "t/h" https'
    )
    lines: list[str] = []
    size = 0
    for start in [*starts, total]:
        while size < start - 1000:
            line = next(plain)
            lines.append(line)
            size += len(line) + 1
        if start == total:
            break
        pad = start - size - 1 - len(filler.format(""))  # the filler line ends right at start
        lines.append(filler.format("p" * pad))
        size += len(lines[-1]) + 1
        assert size == start
        lines.append(SCANNER_LINE)
        size += len(SCANNER_LINE) + 1
    return lines


def test_no_line_is_lost_when_a_scanner_range_starts_inside_a_quoted_line(tmp_path: Path) -> None:
    """DuckDB drops a whole 8 MB range, silently, when it starts before a raw quote in a line.

    The ingest counts the lines and reads the file again on one scanner when they fall short.
    """
    starts = [SCANNER_RANGE - 120, 2 * SCANNER_RANGE - 60]
    lines = _lines_with_quoted_line_across(starts, int(2.4 * SCANNER_RANGE))
    source = _write(tmp_path / "big.gz", lines, gz=True)
    root = tmp_path / "ds"
    with Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert (result.rows, result.rejects) == (len(lines), 0)
    con = connect(root)
    assert con.execute("SELECT count(*) FROM logs").fetchone() == (len(lines),)
    scanner = con.execute("SELECT count(*) FROM logs WHERE user_agent LIKE '%\"Scanner\"%'")
    assert scanner.fetchone() == (2,)


def test_a_shortfall_is_read_again_on_one_scanner_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate DuckDB losing rows in its parallel copy: the one-scanner copy replaces it."""
    settings = Settings(out_dir=tmp_path / "out")
    lines = _mixed_lines(400)
    name = _add_file(settings.out_dir, DOMAIN, HOUR, lines, fmt="gz")
    real = ingester_module.Ingester._fast_copy_once
    calls: list[bool] = []

    def lossy(
        self: Ingester,
        source: Path,
        log_name: str,
        target: Path,
        maybe_more: Callable[[int], bool],
        *,
        already: int = 0,
        parallel: bool = True,
    ) -> tuple[int, set[int], Counter[str]]:
        calls.append(parallel)
        rows, numbers, odd = real(
            self, source, log_name, target, maybe_more, already=already, parallel=parallel
        )
        return (rows - 7 if parallel else rows), numbers, odd

    monkeypatch.setattr(ingester_module.Ingester, "_fast_copy_once", lossy)
    summary = ingest_archive(settings, now=NOW)
    assert calls == [True, False]
    assert (summary.files, summary.recopied_files, summary.slow_files) == (1, 1, 0)
    expected, bad = _reference(lines, name)
    assert (summary.rows, summary.rejects) == (len(expected), len(bad))
    assert sorted(_rows(connect(settings.dataset_dir)), key=_sort_key) == expected


def test_rows_that_do_not_add_up_send_the_file_to_the_reference_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _mixed_lines(500)
    source = _write(tmp_path / "src.gz", lines, gz=True)
    real = count_lines  # what the ingester calls, replaced below
    # One line more than the file has: neither the parallel nor the one-scanner copy can match.
    monkeypatch.setattr(ingester_module, "count_lines", lambda p: LineCount(real(p).lines + 1, 0))
    root = tmp_path / "ds"
    with caplog.at_level("INFO", logger="cdnlogs"), Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert "reading it again on one thread" in caplog.text
    assert "account for" in caplog.text
    assert result.slow_path
    expected, bad = _reference(lines, NAME)
    assert (result.rows, result.rejects) == (len(expected), len(bad))
    assert sorted(_rows(connect(root)), key=_sort_key) == expected


def test_a_line_count_from_the_ledger_saves_counting_and_is_only_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _mixed_lines(300)
    source = _write(tmp_path / "src.gz", lines, gz=True)
    with_empty = _write(tmp_path / "empty.gz", [lines[0], "", *lines[1:50], "", ""], gz=True)
    real = count_lines  # what the ingester calls, replaced below
    counted: list[Path] = []

    def counting(path: Path) -> LineCount:
        counted.append(path)
        return real(path)

    monkeypatch.setattr(ingester_module, "count_lines", counting)
    day = date(2024, 3, 1)
    clean_lines = list(generate_lines(DOMAIN, HOUR, 200, 3))
    clean = _write(tmp_path / "clean.gz", clean_lines, gz=True)
    with Ingester(tmp_path / "ds") as ingester:
        # sync's count matches the rows: nothing lost, and the file is not counted again
        plain = ingester.ingest_file(
            clean, domain="c.example.com", log_name=NAME, day=day, lines=len(clean_lines)
        )
        assert counted == [] and plain.rows == len(clean_lines)
        # rows short of it (odd lines, or empty ones): the file's own count says whether odd
        # lines remain to be looked for (cheaper than reading the file again for none)
        good = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=day, lines=len(lines))
        assert counted == [source]
        # a count that does not match (the file changed since, say) is checked, never trusted
        off = ingester.ingest_file(
            source, domain=DOMAIN, log_name=NAME, day=day, lines=len(lines) + 3
        )
        assert counted == [source, source]
        # empty lines: the reader skips them, the count explains the difference
        empty = ingester.ingest_file(
            with_empty, domain="b.example.com", log_name=NAME, day=day, lines=len(lines[:50]) + 3
        )
        assert counted == [source, source, with_empty]
    for result in (good, off):
        assert not result.slow_path and result.rows + result.rejects == len(lines)
    assert not empty.slow_path and empty.rows + empty.rejects == 50


def test_empty_dataset_has_typed_views(tmp_path: Path) -> None:
    con = connect(tmp_path / "nothing")
    assert con.execute("SELECT count(*) FROM logs").fetchone() == (0,)
    types = dict((r[0], r[1]) for r in con.execute("DESCRIBE logs").fetchall())
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert (types["domain"], types["date"]) == ("VARCHAR", "DATE")
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)


# -- the archive, through the ledger ----------------------------------------------------------


def _add_file(out: Path, domain: str, hour: datetime, lines: list[str], *, fmt: str = "log") -> str:
    local = hour.astimezone(UTC) + timedelta(hours=8)
    name = f"{domain}_{local:%Y_%m_%d_%H}0000_{(local + timedelta(hours=1)):%H}0000.gz"
    stem = name.removesuffix(".gz")
    rel = f"{domain}/{local:%Y/%m/%d}/{stem}.{fmt}"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, lines, gz=fmt == "gz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with Manifest.open(out / ".cdnlogs") as manifest:
        log_file = LogFile(domain, name, "http://x/" + name, 1, hour, hour + timedelta(hours=1))
        manifest.record_listed([log_file])
        manifest.mark_done(
            domain, name, sha256=digest, plain_size=len(lines), local_path=rel, fmt=fmt
        )
    return name


def _counts(settings: Settings) -> dict[tuple[str, str], int]:
    con = connect(settings.dataset_dir)
    rows = con.execute("SELECT domain, source_file, count(*) FROM logs GROUP BY ALL").fetchall()
    return {(d, s): n for d, s, n in rows}


NOW = datetime(2024, 3, 2, tzinfo=UTC)


def test_ingest_twice_late_file_and_replaced_file(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    first = _add_file(settings.out_dir, DOMAIN, HOUR, list(generate_lines(DOMAIN, HOUR, 300, 1)))
    other = _add_file(
        settings.out_dir,
        "b.example.com",
        HOUR,
        list(generate_lines("b.example.com", HOUR, 200, 1)),
        fmt="gz",
    )
    summary = ingest_archive(settings, now=NOW)
    assert (summary.files, summary.rows, summary.failed) == (2, 500, [])
    assert _counts(settings) == {(DOMAIN, first): 300, ("b.example.com", other): 200}

    again = ingest_archive(settings, now=NOW)
    assert (again.files, again.rows) == (0, 0)
    assert _counts(settings) == {(DOMAIN, first): 300, ("b.example.com", other): 200}

    late_hour = HOUR - timedelta(hours=5)
    late = _add_file(
        settings.out_dir, DOMAIN, late_hour, list(generate_lines(DOMAIN, late_hour, 50, 2))
    )
    summary = ingest_archive(settings, now=NOW)
    assert (summary.files, summary.rows) == (1, 50)
    assert _counts(settings)[(DOMAIN, late)] == 50
    assert _counts(settings)[(DOMAIN, first)] == 300

    # The first file is downloaded again with different content: its rows are replaced.
    replaced = _add_file(
        settings.out_dir,
        DOMAIN,
        HOUR,
        [*generate_lines(DOMAIN, HOUR, 120, 9), "broken line"],
    )
    assert replaced == first
    summary = ingest_archive(settings, now=NOW)
    assert (summary.files, summary.rows, summary.rejects) == (1, 120, 1)
    assert _counts(settings) == {
        (DOMAIN, first): 120,
        (DOMAIN, late): 50,
        ("b.example.com", other): 200,
    }
    with Manifest.open(settings.state_dir) as manifest:
        record = manifest.get(DOMAIN, first)
        assert record is not None
        assert (record.ingested_rows, record.ingested_rejects) == (120, 1)
    con = connect(settings.dataset_dir)
    assert con.execute("SELECT line_number, line FROM rejects").fetchall() == [(121, "broken line")]
    # Pruning the raw file does not touch its rows.
    with Manifest.open(settings.state_dir) as manifest:
        manifest.mark_pruned(DOMAIN, late)
    (settings.out_dir / "a.example.com").rename(tmp_path / "gone")
    assert ingest_archive(settings, now=NOW).files == 0
    assert _counts(settings)[(DOMAIN, late)] == 50


def test_deleted_dataset_is_rebuilt_within_keep(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    name = _add_file(settings.out_dir, DOMAIN, HOUR, list(generate_lines(DOMAIN, HOUR, 40, 1)))
    old_hour = HOUR - timedelta(days=30)
    old = _add_file(
        settings.out_dir, DOMAIN, old_hour, list(generate_lines(DOMAIN, old_hour, 20, 1))
    )
    assert ingest_archive(settings, now=NOW).rows == 60
    shutil.rmtree(settings.dataset_dir)
    settings.dataset_keep = "7d"
    summary = ingest_archive(settings, now=NOW)
    assert (summary.files, summary.rows) == (1, 40)
    assert _counts(settings) == {(DOMAIN, name): 40}
    assert old not in {n for _, n in _counts(settings)}


def test_missing_source_is_reported_and_others_go_on(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    gone = _add_file(settings.out_dir, DOMAIN, HOUR, list(generate_lines(DOMAIN, HOUR, 10, 1)))
    kept = _add_file(
        settings.out_dir, "b.example.com", HOUR, list(generate_lines("b.example.com", HOUR, 10, 1))
    )
    shutil.rmtree(settings.out_dir / DOMAIN)
    summary = ingest_archive(settings, now=NOW)
    assert summary.files == 1 and [f[1] for f in summary.failed] == [gone]
    assert _counts(settings) == {("b.example.com", kept): 10}


def test_anonymize_ip_and_drop_query(tmp_path: Path) -> None:
    lines = list(generate_lines(DOMAIN, HOUR, 400, 3))
    settings = Settings(out_dir=tmp_path / "out", anonymize_ip=True, drop_query=True)
    _add_file(settings.out_dir, DOMAIN, HOUR, lines)
    summary = ingest_archive(settings, now=NOW)
    assert summary.slow_files == 0, "anonymizing must not push files off the fast path"
    con = connect(settings.dataset_dir)
    got = con.execute("SELECT client_ip, proxy_ip, query FROM logs").fetchall()
    records = [parse_line(line) for line in lines]
    assert sorted(got, key=_sort_key) == sorted(
        [(anonymize_ip(r.client_ip), anonymize_ip(r.proxy_ip), None) for r in records],
        key=_sort_key,
    )
    assert any(":" in (ip or "") for ip, _, _ in got), "the sample must hold IPv6 clients"
    assert all(ip is None or ip.endswith((".0", "::")) for ip, _, _ in got)
    assert any(r.query for r in records)


def test_keep_prunes_old_partitions_only(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for day in ("2024-02-01", "2024-02-25", "2024-03-01"):
        part = root / f"domain={DOMAIN}" / f"date={day}"
        part.mkdir(parents=True)
        (part / "x.parquet").write_bytes(b"")
    removed = prune_dataset(root, keep=timedelta(days=7), now=NOW)
    assert [p.name for p in removed] == ["date=2024-02-01"]
    assert sorted(p.name for p in (root / f"domain={DOMAIN}").iterdir()) == [
        "date=2024-02-25",
        "date=2024-03-01",
    ]
    settings = Settings(out_dir=tmp_path / "out", dataset=root, dataset_keep="1d")
    summary = ingest_archive(settings, now=NOW)
    assert summary.removed_partitions == [f"domain={DOMAIN}/date=2024-02-25"]


# -- export -----------------------------------------------------------------------------------


@pytest.fixture
def small_dataset(tmp_path: Path) -> tuple[Path, list[str]]:
    lines = _mixed_lines(600, seed=11)
    root = tmp_path / "ds"
    with Ingester(root, IngestOptions()) as ingester:
        ingester.ingest_file(
            _write(tmp_path / "a.log", lines, gz=False),
            domain=DOMAIN,
            log_name=NAME,
            day=date(2024, 3, 1),
        )
    return root, lines


def test_export_clf_matches_to_clf(small_dataset: tuple[Path, list[str]]) -> None:
    root, lines = small_dataset
    sink = io.BytesIO()
    count = export_logs(connect(root), "clf", sink)
    expected = []
    for line in lines:
        try:
            expected.append(to_clf(parse_line(line)))
        except ParseError:
            continue
    assert count == len(expected)
    assert sorted(sink.getvalue().decode().splitlines()) == sorted(expected)


def test_export_formats_and_filters(small_dataset: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, _ = small_dataset
    con = connect(root)
    total = con.execute("SELECT count(*) FROM logs").fetchone()
    since = datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    half = con.execute("SELECT count(*) FROM logs WHERE ts >= ?", [since]).fetchone()
    assert total is not None and half is not None and 0 < half[0] < total[0]
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"e.{fmt}"
        assert export_logs(con, fmt, out, ExportFilter(since=since)) == half[0]
        reader = {"csv": "read_csv", "jsonl": "read_json", "parquet": "read_parquet"}[fmt]
        check = duckdb.connect()
        got = check.execute(f"SELECT count(*), min(status) FROM {reader}('{out}')").fetchone()
        assert got is not None and got[0] == half[0]
    assert export_logs(con, "csv", tmp_path / "none.csv", ExportFilter(domains=("x",))) == 0


def test_goaccess_reads_the_clf_export(
    small_dataset: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, _ = small_dataset
    clf = tmp_path / "access.log"
    count = export_logs(connect(root), "clf", clf)
    report = tmp_path / "report.json"
    subprocess.run(
        [
            "goaccess",
            str(clf),
            "--log-format=COMBINED",
            "--no-global-config",
            "-o",
            str(report),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    general = json.loads(report.read_text())["general"]
    # GoAccess refuses a line without a client address or status (our "-" everywhere case).
    con = connect(root)
    row = con.execute(
        "SELECT count(*) FILTER (WHERE client_ip IS NULL OR status IS NULL),"
        " sum(response_bytes) FILTER (WHERE client_ip IS NOT NULL AND status IS NOT NULL)"
        " FROM logs"
    ).fetchone()
    assert row is not None and row[0] == 1
    assert general["total_requests"] == count
    assert general["failed_requests"] == row[0]
    assert general["valid_requests"] == count - row[0]
    assert general["bandwidth"] == row[1]


# -- one pass, the re-parsed rows' file, .gz inflating ----------------------------------------


def test_gz_gives_the_reference_rows(tmp_path: Path) -> None:
    lines = _mixed_lines(2000, seed=5)
    source = _write(tmp_path / "src.gz", lines, gz=True)
    root = tmp_path / "ds"
    with Ingester(root) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path
    expected, bad = _reference(lines, NAME)
    assert (result.rows, result.rejects) == (len(expected), len(bad))
    assert result.rows + result.rejects == len(lines)
    assert sorted(_rows(connect(root)), key=_sort_key) == expected


def test_reparsed_rows_file_is_replaced_with_its_source(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    part = root / f"domain={DOMAIN}" / "date=2024-03-01"
    stem = NAME.removesuffix(".gz")
    mixed = _mixed_lines(500, seed=3)
    with Ingester(root) as ingester:
        first = ingester.ingest_file(
            _write(tmp_path / "a.log", mixed, gz=False),
            domain=DOMAIN,
            log_name=NAME,
            day=date(2024, 3, 1),
        )
    assert first.reparsed > 0
    assert sorted(p.name for p in part.iterdir()) == [
        f"{stem}.parquet",
        f"{stem}.reparsed.parquet",
    ]
    expected, _ = _reference(mixed, NAME)
    assert sorted(_rows(connect(root)), key=_sort_key) == expected
    # Downloaded again without any line the CSV reader rejects: both files are replaced, and
    # the stale re-parsed rows are gone.
    clean = [line for line in generate_lines(DOMAIN, HOUR, 300, 4) if line.count('"') == 8]
    with Ingester(root) as ingester:
        second = ingester.ingest_file(
            _write(tmp_path / "b.log", clean, gz=False),
            domain=DOMAIN,
            log_name=NAME,
            day=date(2024, 3, 1),
        )
    assert (second.rows, second.rejects, second.reparsed) == (len(clean), 0, 0)
    assert sorted(p.name for p in part.iterdir()) == [f"{stem}.parquet"]
    assert sorted(_rows(connect(root)), key=_sort_key) == _reference(clean, NAME)[0]
    assert connect(root).execute("SELECT count(*) FROM rejects").fetchone() == (0,)


def test_anonymize_applies_to_fast_and_reparsed_rows(tmp_path: Path) -> None:
    lines = _mixed_lines(800, seed=9)
    # A quote in the User-Agent sends an IPv6 client's line to the reference parser.
    lines.append(
        '[1/Mar/2024:10:00:10 +0800] 2001:db8:77:1::5 - 5 "-" "GET /q" 200 1 2 HIT '
        '"say "hi"" "t/h" http'
    )
    source = _write(tmp_path / "src.gz", lines, gz=True)
    root = tmp_path / "ds"
    with Ingester(root, IngestOptions(anonymize_ip=True, drop_query=True)) as ingester:
        result = ingester.ingest_file(source, domain=DOMAIN, log_name=NAME, day=date(2024, 3, 1))
    assert not result.slow_path and result.reparsed > 0
    got = connect(root).execute("SELECT client_ip, proxy_ip, query FROM logs").fetchall()
    records = []
    for line in lines:
        try:
            records.append(parse_line(line))
        except ParseError:
            continue
    assert sorted(got, key=_sort_key) == sorted(
        [(anonymize_ip(r.client_ip), anonymize_ip(r.proxy_ip), None) for r in records],
        key=_sort_key,
    )
    assert ("2001:db8:77::", None, None) in got


def test_truncated_gz_is_a_failed_file_not_a_crash(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    name = _add_file(
        settings.out_dir, DOMAIN, HOUR, list(generate_lines(DOMAIN, HOUR, 3000, 1)), fmt="gz"
    )
    kept = _add_file(
        settings.out_dir, "b.example.com", HOUR, list(generate_lines("b.example.com", HOUR, 10, 1))
    )
    gz = next((settings.out_dir / DOMAIN).rglob("*.gz"))
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    summary = ingest_archive(settings, now=NOW)
    assert [f[1] for f in summary.failed] == [name]
    assert _counts(settings) == {("b.example.com", kept): 10}


def test_parallel_ingest_writes_what_one_file_at_a_time_writes(tmp_path: Path) -> None:
    """--jobs N: same rows, rejects and ledger as one file at a time, whatever the mix of paths."""
    one = Settings(out_dir=tmp_path / "one")
    names = []
    for i in range(6):
        hour = HOUR - timedelta(hours=i)
        domain = DOMAIN if i % 2 else "b.example.com"
        lines = list(generate_lines(domain, hour, 400 + 50 * i, i))
        if i == 1:
            lines[10:10] = ODD_LINES  # re-parsed lines and rejects
        if i == 4:  # a number the fast path cannot vouch for: only that line goes slow
            lines.append(
                '[1/Mar/2024:10:00:01 +0800] 1.2.3.4 - +5 "-" "GET /x" 200 1 2 HIT "u" "t/h" https'
            )
        names.append(_add_file(one.out_dir, domain, hour, lines, fmt="gz" if i % 3 else "log"))
    shutil.copytree(one.out_dir, tmp_path / "many")
    many = Settings(out_dir=tmp_path / "many")

    serial = ingest_archive(one, now=NOW, options=IngestOptions(jobs=1))
    parallel = ingest_archive(many, now=NOW, options=IngestOptions(jobs=3))

    # the reference parser refuses the '+5' too: one more reject
    assert serial.slow_files == 0 and serial.reparsed > 0 and serial.rejects == BAD_LINES + 1
    assert (parallel.files, parallel.rows, parallel.rejects, parallel.reparsed) == (
        serial.files,
        serial.rows,
        serial.rejects,
        serial.reparsed,
    )
    assert parallel.slow_files == serial.slow_files and parallel.failed == []
    a, b = connect(one.dataset_dir), connect(many.dataset_dir)
    assert _rows(b) == _rows(a)
    reject_sql = "SELECT source_file, line_number, line FROM rejects ORDER BY ALL"
    assert b.execute(reject_sql).fetchall() == a.execute(reject_sql).fetchall()
    with Manifest.open(one.state_dir) as m1, Manifest.open(many.state_dir) as m2:
        for domain, name in _counts(one):
            r1, r2 = m1.get(domain, name), m2.get(domain, name)
            assert r1 is not None and r2 is not None
            assert (r2.ingested_rows, r2.ingested_rejects) == (
                r1.ingested_rows,
                r1.ingested_rejects,
            )
    assert len(_counts(many)) == len(names)
    assert not any((many.dataset_dir / ".tmp").iterdir())  # every worker removed its scratch


def test_an_interrupted_ingester_stops_the_reference_parser_within_a_bound(tmp_path: Path) -> None:
    """interrupt() from another thread reaches a parse in progress, also over sparse line numbers
    (the re-parsed lines of a file are a scattered few)."""
    line = next(generate_lines(DOMAIN, HOUR, 1, 1))
    fed: list[int] = []

    def sparse() -> Iterator[tuple[int, bytes]]:
        for i in range(50_000):
            fed.append(i)
            yield 7 * i + 3, line.encode()  # first a multiple of 10,000 at i = 8,571

    with Ingester(tmp_path / "ds") as ingester:
        ingester.interrupt()
        with pytest.raises(KeyboardInterrupt):
            ingester._parse_into(sparse(), NAME, tmp_path / "out.jsonl", [])
    assert len(fed) == ingester_module._STOP_CHECK_LINES


def test_scratch_of_a_killed_ingest_is_removed_by_the_next_one(tmp_path: Path) -> None:
    """A real ingest process killed with SIGKILL leaves scratch files; the next ingest (under
    the archive lock, so no other can be running) removes them and ingests everything."""
    import os
    import signal
    import sys
    import time

    settings = Settings(out_dir=tmp_path / "out")
    lines = list(generate_lines(DOMAIN, HOUR, 150_000, 1))
    name = _add_file(settings.out_dir, DOMAIN, HOUR, lines, fmt="log")
    root = settings.dataset_dir
    (tmp_path / "none.toml").write_text("")
    env = {**os.environ, "CDNLOGS_CONFIG": str(tmp_path / "none.toml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdnlogs", "ingest", "--out", str(settings.out_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(root.glob("domain=*/date=*/.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the ingest ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    leftovers = list(root.glob("domain=*/date=*/.*.tmp")) + list((root / ".tmp").iterdir())
    assert leftovers, "the killed ingest left scratch behind"
    summary = ingest_archive(settings, now=NOW)
    assert summary.files == 1 and summary.rows == len(lines)
    assert not list(root.glob("domain=*/date=*/.*.tmp"))
    assert not list((root / ".tmp").iterdir())
    assert _counts(settings) == {(DOMAIN, name): len(lines)}


def test_small_files_in_one_pass_match_one_at_a_time(tmp_path: Path) -> None:
    """Small plain files go through one batch; odd ones (raw quotes the SQL reads, a bad line,
    CRLF, not UTF-8, a .gz) still give the reference parser's rows, per file in the ledger."""
    settings = Settings(out_dir=tmp_path / "out")
    expected: dict[tuple[str, str], int] = {}
    for i in range(40):
        domain = f"d{i % 4}.example.com"
        hour = HOUR - timedelta(hours=i // 4)
        lines = list(generate_lines(domain, hour, 3, i))
        if i == 5:
            lines.append(ODD_LINES[1])  # raw quotes: vouched for in the batch
        if i == 6:
            lines.append("this is not a log line")  # handed back: one reject
        name = _add_file(settings.out_dir, domain, hour, lines, fmt="gz" if i == 7 else "log")
        expected[(domain, name)] = sum(1 for line in lines if line != "this is not a log line")
    crlf = next((settings.out_dir / "d0.example.com").rglob("*.log"))
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))
    latin = next((settings.out_dir / "d1.example.com").rglob("*.log"))
    latin.write_bytes(latin.read_bytes().replace(b"Mozilla", b"Moz\xe9lla", 1))
    summary = ingest_archive(settings, now=NOW)
    assert summary.failed == [] and summary.files == 40
    assert summary.rejects == 1
    assert _counts(settings) == expected
    with Manifest.open(settings.state_dir) as manifest:
        recorded = {(r.domain, r.log_name): r.ingested_rows for r in manifest.records()}
    assert recorded == expected
    # Row for row what the reference parser reads from the files as they are on disk.
    want: list[tuple[Any, ...]] = []
    with Manifest.open(settings.state_dir) as manifest:
        for rec in manifest.records():
            assert rec.local_path is not None
            for _, text in iter_lines(settings.out_dir / rec.local_path):
                try:
                    want.append(_expected(parse_line(text), rec.log_name))
                except ParseError:
                    continue
    assert sorted(_rows(connect(settings.dataset_dir)), key=_sort_key) == sorted(
        want, key=_sort_key
    )
    again = ingest_archive(settings, now=NOW)
    assert again.files == 0
