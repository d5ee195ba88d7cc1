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
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any, cast

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
from cdnlogs.ingest.fastpath import BAD_ROW_MARKER, fast_select, read_csv_sql
from cdnlogs.ingest.reference import iter_lines, record_row, select_from_json
from cdnlogs.linecount import LineCount, count_lines, open_source
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
#: How often (in lines) the reference parser checks whether it was asked to stop.
_STOP_CHECK_LINES = 10_000
#: Lines read to tell a 12-field file from a 13-field one.
SNIFF_LINES = 200

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
    :param inflate_gz: inflate a ``.gz`` to a scratch file first (threaded isal), so DuckDB
        splits the plain file across its threads. Off by default: on the 2-core bench machine
        it gained ~10% only when the page cache was warm, lost ~25% when cold, and was even
        over several files, while costing scratch space the size of the plain file.
    :param row_group_size: rows per Parquet row group.
    :param jobs: source files ingested at once (each on its own connection to one database,
        so ``threads`` and ``memory_limit`` are shared, not multiplied).
    """

    anonymize_ip: bool = False
    drop_query: bool = False
    threads: int = DEFAULT_THREADS
    memory_limit: str = INGEST_MEMORY_LIMIT
    inflate_gz: bool = False
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


# -- reading source files ---------------------------------------------------------------------


def _open_inflating(path: Path) -> IO[bytes]:
    """A ``.gz`` opened for reading with the inflating done on a second thread (isal).

    Inflating while the caller writes the bytes out overlaps the two: about twice as fast as
    one thread doing both.
    """
    try:
        from isal import igzip_threaded

        return cast(IO[bytes], igzip_threaded.open(path, "rb"))  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - isal is a dependency, kept optional
        return open_source(path)


def _sniff_columns(path: Path) -> int:
    """How many CSV columns the file's lines split into: 14 with the protocol field, else 13.

    The bracketed time splits into two columns. Telling the two apart per file lets DuckDB reject
    a line with one column too many instead of shifting the content type into the protocol.
    """
    with_protocol = without = 0
    for _number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            record = parse_line(text)
        except ParseError:
            continue
        if record.protocol is None:
            without += 1
        else:
            with_protocol += 1
        if with_protocol + without >= SNIFF_LINES:
            break
    return 13 if without > with_protocol else 14


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
        self._tmp = self.root / ".tmp" / uuid.uuid4().hex[:12]
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
        rejects: list[tuple[str, int, str, str]] = []
        slow = recopied = False
        reparsed = 0
        extra_rows = 0
        rejected: dict[int, str | None] = {}
        try:
            try:
                rows, rejected, recopied = self._fast_copy_counted(
                    source, log_name, main_tmp, tag, lines
                )
            except duckdb.InterruptException:
                # Ctrl-C (or interrupt()) stopped the copy: not a reason to read the file slowly.
                raise KeyboardInterrupt from None
            except duckdb.Error as exc:
                reason = "a row failed validation" if BAD_ROW_MARKER in str(exc) else str(exc)
                log.info("%s: reading with the reference parser (%s)", log_name, reason)
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
                parsed = self._reparse(source, log_name, rejected, fallback, rejects)
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
    ) -> tuple[int, dict[int, str | None], bool]:
        """The fast path, checked: every line of ``source`` must come out as a row or a reject.

        Returns the rows, the rejected lines, and whether the one-scanner copy was needed.

        ``known`` is the line count sync took; without one, a second thread counts the lines
        while DuckDB copies. Each non-empty line gives at most one row or reject, so
        ``rows + rejects == known`` proves nothing was lost; otherwise the file is counted here
        (empty lines are skipped by the reader and account for a difference). If rows and
        rejects still fall short (DuckDB's parallel scanner can drop a whole range without a
        word, see ``cdnlogs.linecount``), the copy runs again with one scanner; if that falls
        short too, ``_LinesUnaccounted`` sends the file to the reference parser.
        """
        counting = None if known is not None else self._counter.submit(count_lines, source)
        rows, rejected = self._fast_copy_once(source, log_name, target, tag, parallel=True)
        if counting is None and rows + len(rejected) == known:
            return rows, rejected, False
        expected = _counted(counting or self._counter.submit(count_lines, source))
        if rows + len(rejected) == expected.nonempty:
            return rows, rejected, False
        log.warning(
            "%s: the CSV reader accounted for %d of %d lines; reading it again on one thread",
            log_name,
            rows + len(rejected),
            expected.nonempty,
        )
        rows, rejected = self._fast_copy_once(source, log_name, target, tag, parallel=False)
        if rows + len(rejected) == expected.nonempty:
            return rows, rejected, True
        raise _LinesUnaccounted(_shortfall(rows + len(rejected), expected))

    def _fast_copy_once(
        self, source: Path, log_name: str, target: Path, tag: str, *, parallel: bool
    ) -> tuple[int, dict[int, str | None]]:
        """One fast-path copy to ``target``: (rows written, rejected line number -> text)."""
        try:
            rows = self._fast_copy(source, log_name, target, tag, parallel=parallel)
            return rows, self._fast_rejects()
        finally:
            self._clear_rejects()

    def _fast_copy(
        self, source: Path, log_name: str, target: Path, tag: str, *, parallel: bool = True
    ) -> int:
        """The fast path: one COPY from the CSV reader to ``target``; return the row count.

        A ``.gz`` is first inflated to a scratch file with isal when ``inflate_gz`` is set:
        DuckDB reads a compressed file on one thread, a plain one on all of them.
        """
        ncols = _sniff_columns(source)
        plain: Path | None = None
        try:
            readable = source
            if source.suffix == ".gz" and self.options.inflate_gz:
                plain = self._tmp / f"{tag}.log"
                try:
                    with _open_inflating(source) as src, plain.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
                    readable = plain
                except (OSError, EOFError) as exc:  # no room, or a bad .gz: DuckDB reads it
                    log.info("%s: reading the .gz directly (%s)", log_name, exc)
                    plain.unlink(missing_ok=True)
                    plain = None
            if self.options.anonymize_ip:
                try:
                    self._build_ip_map(read_csv_sql(readable, ncols))
                finally:
                    self._clear_rejects()  # the copy below collects them again
            return self._copy(
                fast_select(readable, ncols, log_name, parallel=parallel), target, fast=True
            )
        finally:
            if plain is not None:
                plain.unlink(missing_ok=True)

    def _reparse(
        self,
        source: Path,
        log_name: str,
        rejected: dict[int, str | None],
        fallback: Path,
        rejects: list[tuple[str, int, str, str]],
    ) -> int:
        """Re-parse the CSV reader's rejected lines into ``fallback`` (JSON lines); count them."""
        lines = self._reject_lines(source, rejected)
        numbered = ((number, lines[number]) for number in sorted(lines))
        return self._parse_into(numbered, log_name, fallback, rejects)

    def _fast_rejects(self) -> dict[int, str | None]:
        """Line number -> the raw line DuckDB reported (None when it could not keep it)."""
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'"
        ).fetchone()
        if not exists or not exists[0]:
            return {}
        found: dict[int, str | None] = {}
        for number, error_type, csv_line in self.con.execute(
            "SELECT line, error_type, csv_line FROM reject_errors"
        ).fetchall():
            # An encoding error's csv_line has the bad bytes already replaced by DuckDB;
            # re-read those lines ourselves so both paths decode them the same way.
            keep = None if error_type == "INVALID ENCODING" else csv_line
            if number in found and found[number] is None:
                continue
            found[int(number)] = keep
        return found

    def _clear_rejects(self) -> None:
        self.con.execute("DROP TABLE IF EXISTS reject_errors")
        self.con.execute("DROP TABLE IF EXISTS reject_scans")

    def _reject_lines(self, source: Path, rejected: dict[int, str | None]) -> dict[int, str]:
        lines = {n: text for n, text in rejected.items() if text is not None}
        missing = {n for n, text in rejected.items() if text is None}
        if missing:
            last = max(missing)
            for number, text in iter_lines(source):
                if number in missing:
                    lines[number] = text
                if number >= last:
                    break
        return lines

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
        rejects: list[tuple[str, int, str, str]],
    ) -> int:
        numbered = ((number, text) for number, text in iter_lines(source) if text.strip())
        return self._parse_into(numbered, log_name, fallback, rejects)

    def _parse_into(
        self,
        numbered: Iterable[tuple[int, str]],
        log_name: str,
        fallback: Path,
        rejects: list[tuple[str, int, str, str]],
    ) -> int:
        """Parse ``(line number, text)`` pairs into ``fallback`` (JSON lines); count the rows.

        The reference parser reads each line; a line it cannot parse goes to ``rejects``.
        """
        rows = 0
        with fallback.open("w", encoding="utf-8") as out:
            # Counted here, not by line number: re-parsed lines are sparse (a multiple of
            # _STOP_CHECK_LINES may never come up), and blank lines leave gaps.
            for seen, (number, text) in enumerate(numbered, start=1):
                if seen % _STOP_CHECK_LINES == 0 and self._stopping.is_set():
                    raise KeyboardInterrupt  # interrupt() from another thread: stop here
                try:
                    record = parse_line(text)
                except ParseError as exc:
                    rejects.append((log_name, number, text, exc.message))
                    continue
                out.write(json.dumps(self._json_row(record, log_name)) + "\n")
                rows += 1
        return rows

    def _build_ip_map(self, csv_sql: str) -> None:
        """Map every address that is not plain IPv4 through ``anonymize_ip`` (table ``ipmap``).

        IPv4 is truncated in SQL; the rest (IPv6, odd values) is rare enough per file to look
        up once each in Python, which keeps one definition of the truncation. Finding them
        costs a scan of the two address columns (only with ``anonymize_ip``).
        """
        found = self.con.execute(
            "SELECT list(DISTINCT ip) FILTER (WHERE ip IS NOT NULL AND NOT "
            f"regexp_full_match(ip, '{_IPV4_PATTERN}')) "
            f"FROM (SELECT unnest([c2, c3]) AS ip FROM {csv_sql})"
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

    def _write_rejects(
        self, domain: str, stem: str, rejects: list[tuple[str, int, str, str]]
    ) -> None:
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
                "unnest($3::VARCHAR[]), unnest($4::VARCHAR[])",
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
