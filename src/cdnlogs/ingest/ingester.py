"""The Ingester: one source file into its partition file(s), fast path first, checked.

Each source file is parsed by the fast path (``cdnlogs.ingest.fastpath``: DuckDB's CSV reader
splitting on spaces and quotes, typed columns, ``store_rejects``) in ONE streaming pass that
validates and writes Parquet. The lines it rejects are re-parsed by the reference parser
(``cdnlogs.ingest.reference``) into the small ``.reparsed.parquet`` file; a line neither can
parse is kept in the rejects file with its line number and the reason. A file with a row that
fails validation, or that DuckDB cannot read at all, is parsed by the reference parser instead,
whole. So every non-blank line of a source ends up as exactly one row or one reject.

Files are written under a temporary name and renamed, so re-ingesting a source replaces exactly
its own rows and a crash never leaves a half-written file in the dataset.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from cdnlogs.config import DEFAULT_INGEST_JOBS
from cdnlogs.dataset import (
    DEFAULT_THREADS,
    LOG_COLUMNS,
    REJECT_COLUMNS,
    REPARSED_SUFFIX,
    columns_sql,
    partition_dir,
    quote_sql,
    rejects_path,
    source_stem,
)
from cdnlogs.errors import CdnLogsError, ParseError
from cdnlogs.ingest.fastpath import KIND_ODD, KIND_ROW, parse_sql, read_lines_sql
from cdnlogs.ingest.lines import (
    decoded,
    find_lines,
    has_carriage_return,
    strip_carriage_returns,
)
from cdnlogs.ingest.reference import iter_raw_lines, record_row, select_from_json
from cdnlogs.linecount import LineCount, count_lines
from cdnlogs.logformat import LogRecord, anonymize_ip, parse_line

log = logging.getLogger(__name__)

#: ... and for ingest, lower: DuckDB fills what it is given, and the one-scanner re-copy
#: (see Ingester._fast_copy_counted) of a 4 M-line file peaked at 850 MB RSS with 768 MB,
#: 602 MB with 512 MB; the normal copy runs as fast with 512 MB (5.3 s per 2 M busy lines).
INGEST_MEMORY_LIMIT = "512MB"
#: Files ingested at once (4 files of 2 M busy lines: 17.5 s instead of 21.0 s one at a time
#: on the 2-core bench machine).
DEFAULT_JOBS = DEFAULT_INGEST_JOBS
#: Rows per Parquet row group (DuckDB's default is 122,880).
DEFAULT_ROW_GROUP_SIZE = 122_880
#: The dataset's scratch directory: one ``<id>/`` per running Ingester.
SCRATCH_DIR = ".tmp"
#: How often (in lines) the reference parser checks whether it was asked to stop.
_STOP_CHECK_LINES = 10_000

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Canonical dotted quads only: anything else goes through ipaddress, like the reference.
_IPV4_PATTERN = rf"^({_OCTET}\.){{3}}{_OCTET}$"


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: privacy transforms and DuckDB's resources.

    :param anonymize_ip: truncate client and proxy IPs (IPv4 to /24, IPv6 to /48).
    :param drop_query: store no query strings (``query`` is NULL).
    :param threads: DuckDB worker threads.
    :param memory_limit: DuckDB's memory limit (it spills to disk beyond it).
    :param row_group_size: rows per Parquet row group.
    :param jobs: source files ingested at once (each on its own connection to one database,
        so ``threads`` and ``memory_limit`` are shared, not multiplied).
    """

    anonymize_ip: bool = False
    drop_query: bool = False
    threads: int = DEFAULT_THREADS
    memory_limit: str = INGEST_MEMORY_LIMIT
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE
    jobs: int = DEFAULT_JOBS


@dataclass(frozen=True)
class FileIngest:
    """What ingesting one source file produced."""

    domain: str
    log_name: str
    parquet: Path
    rows: int
    rejects: int
    #: Lines the fast path rejected and the reference parser read.
    reparsed: int
    #: True when the whole file went through the reference parser.
    slow_path: bool
    seconds: float
    #: True when rows and rejects fell short of the file's lines and it was copied again on one
    #: scanner (see ``Ingester._fast_copy_counted``).
    recopied: bool = False


#: One rejected line: source file, line number, decoded text, reason, the line's bytes.
Reject = tuple[str, int, str, str, bytes]


class Ingester:
    """One DuckDB connection that ingests source files into a dataset root, one at a time.

    :param root: the dataset root.
    :param options: privacy and resource options.
    :param share: another ingester whose database this one uses (a second connection to it,
        with its own temp tables, for ingesting another file at the same time). Threads,
        memory limit and spill directory are the database's, so they stay ``share``'s.
    """

    def __init__(
        self, root: Path, options: IngestOptions | None = None, *, share: Ingester | None = None
    ) -> None:
        self.root = Path(root)
        self.options = options or IngestOptions()
        # A private scratch directory, so two ingesters never remove each other's files.
        self._tmp = self.root / SCRATCH_DIR / uuid.uuid4().hex[:12]
        self._tmp.mkdir(parents=True, exist_ok=True)
        self.con: duckdb.DuckDBPyConnection
        if share is not None:
            self.con = share.con.cursor()
        else:
            self.con = duckdb.connect(config={"threads": self.options.threads})
            self.con.execute(f"SET memory_limit = {quote_sql(self.options.memory_limit)}")
            self.con.execute(f"SET temp_directory = {quote_sql(str(self._tmp / 'duckdb'))}")
            # Row order inside a file carries no meaning; not keeping it lets COPY stream.
            self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("SET TimeZone = 'UTC'")
        # Counts a source's lines while DuckDB copies it (see _fast_copy_counted).
        self._counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdnlogs-count")
        self._stopping = threading.Event()

    @property
    def scratch(self) -> Path:
        """This ingester's private scratch directory (removed on close)."""
        return self._tmp

    def worker(self) -> Ingester:
        """A second ingester on this one's database (for another thread)."""
        return Ingester(self.root, self.options, share=self)

    def interrupt(self) -> None:
        """Stop the file in progress, from another thread (Ctrl-C while ``--jobs`` > 1).

        Aborts the running DuckDB statement, and makes the reference parser stop within
        ``_STOP_CHECK_LINES`` lines; the file's temporary outputs are removed as on any error.
        """
        self._stopping.set()
        self.con.interrupt()

    def close(self) -> None:
        """Close the connection and remove the scratch directory."""
        self._counter.shutdown(wait=True, cancel_futures=True)
        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Ingester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest_file(
        self,
        source: Path,
        *,
        domain: str,
        log_name: str,
        day: date,
        lines: int | None = None,
    ) -> FileIngest:
        """Parse ``source`` (a .log or .gz) into its partition file(s); replace earlier ones.

        One streaming pass: DuckDB's CSV reader feeds a ``COPY ... TO`` Parquet, validating
        every row on the way (a suspect row aborts the copy and the file is read by the
        reference parser instead). The lines the CSV reader rejected are known once the copy
        has consumed the input; they are re-parsed by the reference parser into a second,
        small file ``<stem>.reparsed.parquet`` next to ``<stem>.parquet`` (only when there are
        such rows), so the big file is never rewritten.

        :param source: the downloaded file.
        :param domain: the domain (partition ``domain=``).
        :param log_name: the provider's LogName (stored in ``source_file``).
        :param day: the provider's +08:00 date of the file (partition ``date=``).
        :param lines: the source's line count if known (sync keeps it in the ledger); without
            it the lines are counted while DuckDB copies.
        """
        started = time.monotonic()
        if not source.is_file():
            raise CdnLogsError(f"source file {source} is missing")
        stem = source_stem(log_name)
        part = partition_dir(self.root, domain, day)
        final = part / f"{stem}.parquet"
        extra = part / f"{stem}{REPARSED_SUFFIX}"
        part.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:12]
        fallback = self._tmp / f"{stem}.{tag}.jsonl"
        main_tmp = part / f".{final.name}.{tag}.tmp"
        extra_tmp = part / f".{extra.name}.{tag}.tmp"
        rejects: list[Reject] = []
        slow = recopied = False
        reparsed = 0
        extra_rows = 0
        rejected: dict[int, bytes] = {}
        try:
            try:
                rows, rejected, recopied = self._fast_copy_counted(
                    source, log_name, main_tmp, tag, lines
                )
            except duckdb.InterruptException:
                # Ctrl-C (or interrupt()) stopped the copy: not a reason to read the file slowly.
                raise KeyboardInterrupt from None
            except duckdb.Error as exc:
                log.info("%s: reading with the reference parser (%s)", log_name, exc)
                slow = True
            except _LinesUnaccounted as exc:
                log.warning("%s: reading with the reference parser (%s)", log_name, exc)
                slow = True
            if slow:
                try:
                    parsed = self._slow_rows(source, log_name, fallback, rejects)
                except EOFError as exc:  # a truncated .gz
                    raise CdnLogsError(f"{log_name}: {exc}") from None
                rows = self._copy(select_from_json(fallback), main_tmp, fast=False)
                if rows != parsed:
                    raise CdnLogsError(f"{log_name}: wrote {rows} rows, parsed {parsed}")
            elif rejected:
                reparsed = len(rejected)
                numbered = ((number, rejected[number]) for number in sorted(rejected))
                parsed = self._parse_into(numbered, log_name, fallback, rejects)
                if parsed:
                    extra_rows = self._copy(select_from_json(fallback), extra_tmp, fast=False)
                    if extra_rows != parsed:
                        raise CdnLogsError(
                            f"{log_name}: wrote {extra_rows} re-parsed rows, parsed {parsed}"
                        )
            # Replace the old files: the stale re-parsed file goes first, so a crash in between
            # can only leave rows missing (the ledger has not recorded the file yet, so the
            # next run ingests it again), never counted twice.
            extra.unlink(missing_ok=True)
            _fsync(main_tmp)
            os.replace(main_tmp, final)
            if extra_rows:
                _fsync(extra_tmp)
                os.replace(extra_tmp, extra)
        finally:
            fallback.unlink(missing_ok=True)
            main_tmp.unlink(missing_ok=True)
            extra_tmp.unlink(missing_ok=True)
        self._write_rejects(domain, stem, rejects)
        return FileIngest(
            domain=domain,
            log_name=log_name,
            parquet=final,
            rows=rows + extra_rows,
            rejects=len(rejects),
            reparsed=reparsed,
            slow_path=slow,
            recopied=recopied,
            seconds=time.monotonic() - started,
        )

    def _fast_copy_counted(
        self, source: Path, log_name: str, target: Path, tag: str, known: int | None
    ) -> tuple[int, dict[int, bytes], bool]:
        """The fast path, checked: every line of ``source`` must come out as a row or a reject.

        Returns the rows written to ``target``, the lines left to the reference parser (line
        number -> the line's bytes), and whether the one-scanner copy was needed.

        ``known`` is the line count sync took; without one, a second thread counts the lines
        while DuckDB copies. Each non-empty line gives exactly one row, reported line or odd
        line, so ``rows + reported + odd == non-empty lines`` proves nothing was lost or split.
        If it does not hold (DuckDB's parallel scanner has dropped ranges in the past, see
        ``cdnlogs.linecount``), the copy runs again with one scanner; if that falls short
        too, ``_LinesUnaccounted`` sends the file to the reference parser.
        """
        counting = None if known is not None else self._counter.submit(count_lines, source)
        expected: LineCount | None = None

        def nonempty() -> int:
            nonlocal expected
            if expected is None:
                expected = _counted(counting or self._counter.submit(count_lines, source))
            return expected.nonempty

        def complete(found: int) -> bool:
            # sync's count includes empty lines, so only equality with it proves anything;
            # short of it, the file's own count of non-empty lines decides.
            return (counting is None and found == known) or found == nonempty()

        def maybe_more(found: int) -> bool:
            # Whether odd lines may remain. Equal to sync's count: none. Short of it, the file's
            # own count of non-empty lines decides (sync counts empty lines too, and a file
            # holding some would otherwise be read a second time for odd lines it does not
            # have: 5 of 11 CPU-s on 1 M hostile lines; counting costs ~0.3).
            if counting is None and found == known:
                return False
            return found != nonempty()

        readable, aside = source, {}
        try:
            # A carriage return: DuckDB would stop (strict mode) or split the line there (see
            # .lines), so such a file is read from a copy without them. A plain file is looked
            # at first (memchr speed, stops at the first one): a copy that fails half-way
            # costs more. A .gz is not inflated just to look: the failing copy tells.
            if source.suffix != ".gz" and has_carriage_return(source):
                readable = self._tmp / f"{tag}.log"
                aside = strip_carriage_returns(source, readable)
            try:
                rows, numbers, odd = self._fast_copy_once(
                    readable, log_name, target, maybe_more, already=len(aside)
                )
            except duckdb.InvalidInputException as exc:
                if "invalid state" not in str(exc) or readable != source:
                    raise
                readable = self._tmp / f"{tag}.log"
                aside = strip_carriage_returns(source, readable)
                rows, numbers, odd = self._fast_copy_once(
                    readable, log_name, target, maybe_more, already=len(aside)
                )
            accounted = rows + len(numbers) + sum(odd.values()) + len(aside)
            recopied = False
            if not complete(accounted):
                log.warning(
                    "%s: the fast path accounted for %d of %d lines; reading it again on one "
                    "thread",
                    log_name,
                    accounted,
                    nonempty(),
                )
                rows, numbers, odd = self._fast_copy_once(
                    readable, log_name, target, maybe_more, already=len(aside), parallel=False
                )
                accounted = rows + len(numbers) + sum(odd.values()) + len(aside)
                if not complete(accounted):
                    assert expected is not None
                    raise _LinesUnaccounted(_shortfall(accounted, expected))
                recopied = True
            slow_lines = dict(aside)
            if numbers or odd:
                found = find_lines(source, numbers, odd)
                if found.missing_numbers or found.missing_texts:
                    raise _LinesUnaccounted(
                        f"{found.missing_numbers} reported and {found.missing_texts} odd "
                        "lines could not be found in the file"
                    )
                slow_lines.update(found.lines)
            return rows, slow_lines, recopied
        finally:
            if readable != source:
                readable.unlink(missing_ok=True)

    def _fast_copy_once(
        self,
        source: Path,
        log_name: str,
        target: Path,
        maybe_more: Callable[[int], bool],
        *,
        already: int = 0,
        parallel: bool = True,
    ) -> tuple[int, set[int], Counter[str]]:
        """One fast-path copy to ``target``.

        Returns the rows written, the line numbers DuckDB's reader reported (not UTF-8, too
        long, holding the delimiter), and the odd lines' texts (lines the SQL could not vouch
        for: read again, only when the count says there are any).
        """
        sql = parse_sql(read_lines_sql(source, parallel=parallel), log_name)
        try:
            if self.options.anonymize_ip:
                self._build_ip_map(sql)
                self.clear_rejects()  # the copy below collects them again
            rows = self._copy(
                f"SELECT * EXCLUDE (kind) FROM ({sql}) WHERE kind = '{KIND_ROW}'", target, fast=True
            )
            numbers = self._reported_lines()
        finally:
            self.clear_rejects()
        odd: Counter[str] = Counter()
        if maybe_more(rows + len(numbers) + already):
            try:
                for (text,) in self.con.execute(
                    f"SELECT user_agent FROM ({sql}) WHERE kind = '{KIND_ODD}'"
                ).fetchall():
                    odd[text] += 1
            finally:
                self.clear_rejects()
        return rows, numbers, odd

    def _reported_lines(self) -> set[int]:
        """The line numbers DuckDB's reader reported in ``reject_errors``."""
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'"
        ).fetchone()
        if not exists or not exists[0]:
            return set()
        return {
            int(n)
            for (n,) in self.con.execute("SELECT DISTINCT line FROM reject_errors").fetchall()
        }

    def clear_rejects(self) -> None:
        """Drop DuckDB's ``reject_errors`` / ``reject_scans`` (each read adds to them)."""
        self.con.execute("DROP TABLE IF EXISTS reject_errors")
        self.con.execute("DROP TABLE IF EXISTS reject_scans")

    def _json_row(self, record: LogRecord, log_name: str) -> dict[str, Any]:
        row = record_row(record, log_name)
        if self.options.anonymize_ip:
            row["client_ip"] = anonymize_ip(record.client_ip)
            row["proxy_ip"] = anonymize_ip(record.proxy_ip)
        return row

    def _slow_rows(
        self,
        source: Path,
        log_name: str,
        fallback: Path,
        rejects: list[Reject],
    ) -> int:
        numbered = ((n, raw) for n, raw in iter_raw_lines(source) if decoded(raw).strip())
        return self._parse_into(numbered, log_name, fallback, rejects)

    def _parse_into(
        self,
        numbered: Iterable[tuple[int, bytes]],
        log_name: str,
        fallback: Path,
        rejects: list[Reject],
    ) -> int:
        """Parse ``(line number, bytes)`` pairs into ``fallback`` (JSON lines); count the rows.

        The reference parser reads each line (decoded); a line it cannot parse goes to
        ``rejects`` with its bytes as they are in the file.
        """
        rows = 0
        with fallback.open("w", encoding="utf-8") as out:
            # Counted here, not by line number: re-parsed lines are sparse (a multiple of
            # _STOP_CHECK_LINES may never come up), and blank lines leave gaps.
            for seen, (number, raw) in enumerate(numbered, start=1):
                if seen % _STOP_CHECK_LINES == 0 and self._stopping.is_set():
                    raise KeyboardInterrupt  # interrupt() from another thread: stop here
                text = decoded(raw)
                try:
                    record = parse_line(text)
                except ParseError as exc:
                    rejects.append((log_name, number, text, exc.message, raw))
                    continue
                out.write(json.dumps(self._json_row(record, log_name)) + "\n")
                rows += 1
        return rows

    def _build_ip_map(self, parse: str) -> None:
        """Map every address that is not plain IPv4 through ``anonymize_ip`` (table ``ipmap``).

        IPv4 is truncated in SQL; the rest (IPv6, odd values) is rare enough per file to look
        up once each in Python, which keeps one definition of the truncation. Finding them
        costs a scan of the file (only with ``anonymize_ip``).
        """
        found = self.con.execute(
            "SELECT list(DISTINCT ip) FILTER (WHERE ip IS NOT NULL AND NOT "
            f"regexp_full_match(ip, '{_IPV4_PATTERN}')) "
            f"FROM (SELECT unnest([client_ip, proxy_ip]) AS ip FROM ({parse}) "
            f"WHERE kind = '{KIND_ROW}')"
        ).fetchall()
        keys = sorted(found[0][0] or []) if found else []
        self.con.execute("CREATE OR REPLACE TEMP TABLE ipmap (ip VARCHAR, anon VARCHAR)")
        if keys:
            self.con.execute(
                "INSERT INTO ipmap SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[])",
                [keys, [anonymize_ip(k) for k in keys]],
            )

    def _copy(self, rows_sql: str, target: Path, *, fast: bool) -> int:
        """COPY ``rows_sql`` (the dataset's columns) to the Parquet file ``target``; count rows.

        Applies ``drop_query``, and ``anonymize_ip`` to the fast path's rows (IPv4 in SQL, the
        rest through the ``ipmap`` table); rows from the reference parser arrive anonymized.
        """
        names = []
        for name, _ in LOG_COLUMNS:
            if name in ("client_ip", "proxy_ip") and self.options.anonymize_ip and fast:
                names.append(
                    f"CASE WHEN regexp_full_match({name}, '{_IPV4_PATTERN}') "
                    f"THEN regexp_replace({name}, '[0-9]+$', '0') "
                    f"ELSE (SELECT anon FROM ipmap WHERE ipmap.ip = src.{name}) END AS {name}"
                )
            elif name == "query" and self.options.drop_query:
                names.append("NULL::VARCHAR AS query")
            else:
                names.append(name)
        columns = ", ".join(names)
        result = self.con.execute(
            f"COPY (SELECT {columns} FROM ({rows_sql}) AS src) TO {quote_sql(str(target))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {self.options.row_group_size})"
        ).fetchone()
        return int(result[0]) if result else 0

    def _write_rejects(self, domain: str, stem: str, rejects: list[Reject]) -> None:
        path = rejects_path(self.root, domain, stem)
        if not rejects:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE rej ({columns_sql(REJECT_COLUMNS)})")
        try:
            columns = list(zip(*rejects, strict=True))
            self.con.execute(
                "INSERT INTO rej SELECT unnest($1::VARCHAR[]), unnest($2::BIGINT[]), "
                "unnest($3::VARCHAR[]), unnest($4::VARCHAR[]), unnest($5::BLOB[])",
                [list(c) for c in columns],
            )
            self.con.execute(
                f"COPY rej TO {quote_sql(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
            )
            _fsync(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
            self.con.execute("DROP TABLE IF EXISTS rej")


class _LinesUnaccounted(Exception):
    """The fast path's rows and rejects do not add up to the file's lines."""


def _counted(counting: Future[LineCount]) -> LineCount:
    """The counting thread's result; a file it cannot read goes to the reference parser."""
    try:
        return counting.result()
    except (OSError, EOFError, zlib.error) as exc:
        raise _LinesUnaccounted(f"could not count its lines: {exc}") from None


def _shortfall(found: int, expected: LineCount) -> str:
    return f"rows and rejects account for {found} of its {expected.nonempty} lines"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
