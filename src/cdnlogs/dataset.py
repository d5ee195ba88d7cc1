"""Ingest downloaded log files into the Parquet dataset with DuckDB, one Parquet file per source.

Layout (the contract ``analyze`` and users' own tools read; documented in docs/analysis.md)::

    <root>/domain=<domain>/date=<YYYY-MM-DD>/<source-stem>.parquet     one per source log file
    <root>/domain=<domain>/date=<YYYY-MM-DD>/<source-stem>.reparsed.parquet
                                  its lines the CSV reader rejected, read by the reference parser
                                  (only when there are any)
    <root>/_rejects/domain=<domain>/<source-stem>.parquet             its unparseable lines

Each source file is parsed by the fast path (DuckDB's CSV reader splitting on spaces and quotes,
typed columns, ``store_rejects``) in ONE streaming pass that validates and writes Parquet. The
lines it rejects are re-parsed by the reference parser (``cdnlogs.logformat``) into the small
``.reparsed.parquet`` file; a line neither can parse is kept in the rejects file with its line
number and the reason. A file with a row that fails validation, or that DuckDB cannot read at
all, is parsed by the reference parser instead, whole. So every non-blank line of a source
ends up as exactly one row or one reject.

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
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import duckdb

from cdnlogs.config import DEFAULT_INGEST_JOBS, Settings
from cdnlogs.errors import CdnLogsError, ParseError, is_interrupt
from cdnlogs.fastpath import BAD_ROW_MARKER, fast_select, quote_sql, read_csv_sql
from cdnlogs.linecount import LineCount, count_lines, open_source
from cdnlogs.logformat import LogRecord, anonymize_ip, parse_line
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.timeutil import parse_duration
from cdnlogs.workers import run_on_workers

if TYPE_CHECKING:
    from cdnlogs.manifest import FileRecord

log = logging.getLogger(__name__)

#: The dataset's columns, in file order, with their DuckDB (and Parquet) types.
LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "TIMESTAMPTZ"),
    ("utc_offset_minutes", "INTEGER"),
    ("client_ip", "VARCHAR"),
    ("proxy_ip", "VARCHAR"),
    ("response_time_ms", "BIGINT"),
    ("referer", "VARCHAR"),
    ("method", "VARCHAR"),
    ("scheme", "VARCHAR"),
    ("host", "VARCHAR"),
    ("path", "VARCHAR"),
    ("query", "VARCHAR"),
    ("status", "INTEGER"),
    ("request_bytes", "BIGINT"),
    ("response_bytes", "BIGINT"),
    ("cache_status", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("content_type", "VARCHAR"),
    ("protocol", "VARCHAR"),
    ("source_file", "VARCHAR"),
)
#: The rejects files' columns.
REJECT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_file", "VARCHAR"),
    ("line_number", "BIGINT"),
    ("line", "VARCHAR"),
    ("reason", "VARCHAR"),
)
#: The Hive partition columns the views add (they are not stored inside the files).
PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (("domain", "VARCHAR"), ("date", "DATE"))
REJECTS_DIR = "_rejects"
#: The name ending of the second, small file holding the rows the reference parser re-read.
REPARSED_SUFFIX = ".reparsed.parquet"
DEFAULT_THREADS = 2
#: DuckDB's memory limit for queries (report, query, export).
DEFAULT_MEMORY_LIMIT = "768MB"
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


@dataclass
class IngestSummary:
    """The outcome of one ``ingest`` run."""

    files: int = 0
    rows: int = 0
    rejects: int = 0
    reparsed: int = 0
    slow_files: int = 0
    recopied_files: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    removed_partitions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``failed`` as objects with domain, log_name, error)."""
        data = asdict(self)
        data["failed"] = [{"domain": d, "log_name": n, "error": e} for d, n, e in self.failed]
        return data


def _columns_sql(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns)


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


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a .log or .gz file (1-based).

    Bytes that are not UTF-8 become U+FFFD, as they do in the fast path's rejects.
    """
    with open_source(path) as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.decode("utf-8", errors="replace").rstrip("\r\n")


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


# -- the dataset --------------------------------------------------------------------------


def partition_dir(root: Path, domain: str, day: date) -> Path:
    """``<root>/domain=<domain>/date=<YYYY-MM-DD>``."""
    return root / f"domain={domain}" / f"date={day.isoformat()}"


def rejects_path(root: Path, domain: str, stem: str) -> Path:
    """``<root>/_rejects/domain=<domain>/<stem>.parquet``."""
    return root / REJECTS_DIR / f"domain={domain}" / f"{stem}.parquet"


def _record_row(record: LogRecord, source_file: str) -> dict[str, Any]:
    ts = record.ts
    return {
        "ts_us": int(ts.timestamp()) * 1_000_000 + ts.microsecond,
        "utc_offset_minutes": record.utc_offset_minutes,
        "client_ip": record.client_ip,
        "proxy_ip": record.proxy_ip,
        "response_time_ms": record.response_time_ms,
        "referer": record.referer,
        "method": record.method,
        "scheme": record.scheme,
        "host": record.host,
        "path": record.path,
        "query": record.query,
        "status": record.status,
        "request_bytes": record.request_bytes,
        "response_bytes": record.response_bytes,
        "cache_status": record.cache_status,
        "user_agent": record.user_agent,
        "content_type": record.content_type,
        "protocol": record.protocol,
        "source_file": source_file,
    }


def _json_columns_sql() -> str:
    kinds = dict(LOG_COLUMNS)
    kinds.pop("ts")
    items = ["'ts_us': 'BIGINT'"] + [f"'{k}': '{v}'" for k, v in kinds.items()]
    return "{" + ", ".join(items) + "}"


def _select_from_json(path: Path) -> str:
    names = ", ".join(name for name, _ in LOG_COLUMNS[1:])
    return (
        f"SELECT make_timestamp(ts_us) AT TIME ZONE 'UTC' AS ts, {names} "
        f"FROM read_json({quote_sql(str(path))}, format='newline_delimited', "
        f"columns={_json_columns_sql()})"
    )


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
        stem = _stem(log_name)
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
                rows = self._copy(_select_from_json(fallback), main_tmp, fast=False)
                if rows != parsed:
                    raise CdnLogsError(f"{log_name}: wrote {rows} rows, parsed {parsed}")
            elif rejected:
                reparsed = len(rejected)
                parsed = self._reparse(source, log_name, rejected, fallback, rejects)
                if parsed:
                    extra_rows = self._copy(_select_from_json(fallback), extra_tmp, fast=False)
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
        row = _record_row(record, log_name)
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
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE rej ({_columns_sql(REJECT_COLUMNS)})")
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


def _stem(log_name: str) -> str:
    """The LogName without ``.gz`` / ``.log``: the Parquet file's name."""
    for suffix in (".gz", ".log"):
        if log_name.endswith(suffix):
            return log_name[: -len(suffix)]
    return log_name


# -- the whole archive --------------------------------------------------------------------------


def partition_date(log_name: str, hour_start: datetime) -> date:
    """The provider's +08:00 date of a source file: from its LogName, else from its hour."""
    from cdnlogs.storage import parse_log_name

    parsed = parse_log_name(log_name)
    if parsed is not None:
        return parsed.local_start.date()
    return hour_start.astimezone(PROVIDER_TZ).date()


def ingest_archive(
    settings: Settings,
    *,
    now: datetime,
    options: IngestOptions | None = None,
) -> IngestSummary:
    """Ingest every downloaded file the ledger says is not (or no longer) in the dataset.

    Records rows and rejects per file in the ledger, so running it again never double-counts;
    a re-downloaded file (new sha256) replaces its own rows. Then applies ``dataset_keep``.
    The caller holds the archive lock (``sync --ingest`` already does).
    A file that cannot be read is listed in ``failed`` and the others go on.
    """
    from cdnlogs.manifest import Manifest, Status

    started = time.monotonic()
    opts = options or IngestOptions(
        anonymize_ip=settings.anonymize_ip,
        drop_query=settings.drop_query,
        jobs=settings.ingest_jobs,
    )
    summary = IngestSummary()
    root = settings.dataset_dir
    keep = parse_duration(settings.dataset_keep) if settings.dataset_keep else None
    oldest = (now - keep).astimezone(PROVIDER_TZ).date() if keep is not None else None
    with Manifest.open(settings.state_dir) as manifest:
        todo = manifest.files_to_ingest()
        queued = {(r.domain, r.log_name) for r in todo}
        # A done file whose Parquet file is missing from this dataset (a new --dataset, or a
        # deleted one) is ingested again, unless --keep has aged its day out on purpose.
        for record in manifest.records(status=Status.DONE):
            if (record.domain, record.log_name) in queued or record.local_path is None:
                continue
            day = partition_date(record.log_name, record.hour_start)
            if oldest is not None and day < oldest:
                continue
            parquet = partition_dir(root, record.domain, day) / f"{_stem(record.log_name)}.parquet"
            if not parquet.exists():
                todo.append(record)
        if todo:
            with Ingester(root, opts) as ingester:
                for record, result in run_on_workers(
                    todo,
                    partial(_ingest_record, out_dir=settings.out_dir),
                    make_worker=ingester.worker,
                    jobs=opts.jobs,
                ):
                    if isinstance(result, str):
                        summary.failed.append((record.domain, record.log_name, result))
                        continue
                    manifest.mark_ingested(
                        record.domain, record.log_name, rows=result.rows, rejects=result.rejects
                    )
                    summary.files += 1
                    summary.rows += result.rows
                    summary.rejects += result.rejects
                    summary.reparsed += result.reparsed
                    summary.slow_files += int(result.slow_path)
                    summary.recopied_files += int(result.recopied)
    if keep is not None:
        removed = prune_dataset(root, keep=keep, now=now)
        summary.removed_partitions = [str(p.relative_to(root)) for p in removed]
    summary.seconds = time.monotonic() - started
    return summary


def _ingest_record(ingester: Ingester, record: FileRecord, *, out_dir: Path) -> FileIngest | str:
    """Ingest one ledger record's file; a file that cannot be read gives the reason instead."""
    if record.local_path is None:
        return "no local path"
    try:
        return ingester.ingest_file(
            out_dir / record.local_path,
            domain=record.domain,
            log_name=record.log_name,
            day=partition_date(record.log_name, record.hour_start),
            lines=record.plain_lines,
        )
    except (duckdb.InterruptException, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None  # Ctrl-C is not a file that failed
        raise
    except (CdnLogsError, OSError, duckdb.Error) as exc:
        return str(exc)


def prune_dataset(root: Path, *, keep: timedelta, now: datetime) -> list[Path]:
    """Delete ``date=`` partitions whose whole +08:00 day ended before ``now - keep``.

    Returns the removed directories. Rejects files are kept (they are small and say what was
    lost); the raw archive and the ledger are not touched.
    """
    cutoff = (now - keep).astimezone(PROVIDER_TZ).date()
    removed: list[Path] = []
    for part in sorted(root.glob("domain=*/date=*")):
        try:
            day = date.fromisoformat(part.name.removeprefix("date="))
        except ValueError:
            continue
        if day < cutoff:
            shutil.rmtree(part)
            removed.append(part)
    return removed


# -- reading the dataset ----------------------------------------------------------------------


def _has_files(pattern_root: Path, pattern: str) -> bool:
    return next(iter(pattern_root.glob(pattern)), None) is not None


def _empty_view(columns: tuple[tuple[str, str], ...]) -> str:
    return (
        "SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in columns) + " WHERE false"
    )


def create_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)create the ``logs`` and ``rejects`` views over the dataset at ``root``.

    Both have the partition columns ``domain VARCHAR`` and (``logs`` only) ``date DATE``, and
    are empty typed views while the dataset has no files.
    """
    root = Path(root).absolute()
    hive = "hive_partitioning=true, hive_types={'domain': 'VARCHAR', 'date': 'DATE'}"
    if _has_files(root, "domain=*/date=*/*.parquet"):
        glob = quote_sql(str(root / "domain=*" / "date=*" / "*.parquet"))
        names = ", ".join(name for name, _ in LOG_COLUMNS + PARTITION_COLUMNS)
        logs = f"SELECT {names} FROM read_parquet({glob}, {hive})"
    else:
        logs = _empty_view(LOG_COLUMNS + PARTITION_COLUMNS)
    if _has_files(root, f"{REJECTS_DIR}/domain=*/*.parquet"):
        glob = quote_sql(str(root / REJECTS_DIR / "domain=*" / "*.parquet"))
        names = ", ".join(name for name, _ in REJECT_COLUMNS)
        rejects = (
            f"SELECT {names}, domain FROM read_parquet({glob}, hive_partitioning=true, "
            "hive_types={'domain': 'VARCHAR'})"
        )
    else:
        rejects = _empty_view((*REJECT_COLUMNS, ("domain", "VARCHAR")))
    con.execute(f"CREATE OR REPLACE VIEW logs AS {logs}")
    con.execute(f"CREATE OR REPLACE VIEW rejects AS {rejects}")


def connect(
    root: Path,
    *,
    threads: int = DEFAULT_THREADS,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``logs`` and ``rejects`` views over ``root``.

    The session time zone is UTC, so ``ts`` prints and truncates in UTC.
    """
    con = duckdb.connect(config={"threads": threads})
    try:
        con.execute(f"SET memory_limit = {quote_sql(memory_limit)}")
        con.execute("SET TimeZone = 'UTC'")
        create_views(con, root)
    except BaseException:
        con.close()
        raise
    return con
