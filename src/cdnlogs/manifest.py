"""The SQLite ledger of every remote log file: the one module with ledger SQL.

One row per remote file keyed by ``(domain, log_name)``. The ledger is the archive's memory:
a row becomes ``done`` only after its file is written, verified, fsynced and renamed (the
caller's job), and a ``pruned`` or ``rejected`` row is never fetched again, because
:meth:`Manifest.record_listed` never touches such rows.

Durability: WAL journal, ``synchronous=FULL`` and one transaction per state change, so a
process killed at any moment leaves every committed row intact and nothing half-written.
Datetimes are stored as ISO-8601 UTC text (``2026-11-27T17:00:00Z``), which sorts correctly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from cdnlogs.errors import ManifestError, SchemaVersionError
from cdnlogs.models import LogFile
from cdnlogs.storage import check_directory_path, make_directory

MANIFEST_NAME = "manifest.sqlite3"

# Schema history (bump SCHEMA_VERSION and add an upgrade step to _UPGRADES for each change):
#   1  files (incl. plain_checksum and the ingest columns), runs, schema_version.
#   2  files.plain_lines: the text's line count, taken by sync while inflating.
#   3  files.store_url, store_etag, local_dropped_at: the file's object in the store (--store)
#      and when its local copy was deleted after upload.
SCHEMA_VERSION = 3

#: ``PRAGMA application_id`` of a cdnlogs ledger ("cdnl"), so a foreign SQLite file is refused.
APPLICATION_ID = 0x63646E6C

#: How long a writer waits for another connection's transaction before giving up.
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE files (
    domain           TEXT NOT NULL,
    log_name         TEXT NOT NULL,
    hour_start       TEXT NOT NULL,
    hour_end         TEXT NOT NULL,
    remote_size      INTEGER,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'done', 'failed', 'pruned', 'rejected')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sha256           TEXT,
    plain_size       INTEGER,
    plain_checksum     TEXT,
    local_path       TEXT,
    format           TEXT,
    first_seen       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    done_at          TEXT,
    ingested_rows    INTEGER,
    ingested_rejects INTEGER,
    ingested_sha256  TEXT,
    ingested_at      TEXT,
    plain_lines      INTEGER,
    store_url        TEXT,
    store_etag       TEXT,
    local_dropped_at TEXT,
    PRIMARY KEY (domain, log_name)
);
CREATE INDEX files_by_hour ON files (domain, hour_start);
CREATE INDEX files_by_status ON files (status);
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    domain       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    ok           INTEGER NOT NULL,
    summary_json TEXT NOT NULL
);
CREATE INDEX runs_by_domain ON runs (domain, finished_at);
"""

#: What each schema version adds to the one before (run by _upgrade, oldest first).
_UPGRADES: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE files ADD COLUMN plain_lines INTEGER",),
    3: (
        "ALTER TABLE files ADD COLUMN store_url TEXT",
        "ALTER TABLE files ADD COLUMN store_etag TEXT",
        "ALTER TABLE files ADD COLUMN local_dropped_at TEXT",
    ),
}

#: The dataset's tables, added without a schema version bump: an older cdnlogs ignores tables it
#: does not know, and ``CREATE TABLE IF NOT EXISTS`` adds them when a newer one opens the ledger.
#: ``compactions``: one row per compacted partition (its current generation, the files it is
#: made of and the sources, LogName -> sha256, it holds). ``published``: each dataset file put
#: to a store: recorded with ``uploaded = 0`` before the upload (so a crash leaves the key
#: known, to be deleted or put again) and ``uploaded = 1`` only after the store verified it.
_DATASET_TABLES = """
CREATE TABLE IF NOT EXISTS compactions (
    dataset      TEXT NOT NULL,
    domain       TEXT NOT NULL,
    day          TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    files_json   TEXT NOT NULL,
    sources_json TEXT NOT NULL,
    rows         INTEGER NOT NULL,
    compacted_at TEXT NOT NULL,
    PRIMARY KEY (dataset, domain, day)
);
CREATE TABLE IF NOT EXISTS published (
    store        TEXT NOT NULL,
    key          TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    uploaded     INTEGER NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (store, key)
);
"""

_FILE_COLUMNS = (
    "domain, log_name, hour_start, hour_end, remote_size, status, attempts, last_error, sha256, "
    "plain_size, local_path, format, first_seen, updated_at, done_at, ingested_rows, "
    "ingested_rejects, ingested_sha256, ingested_at, plain_checksum, plain_lines, store_url, "
    "store_etag, local_dropped_at"
)
_ORDER = "ORDER BY domain, hour_start, log_name"


class Status(StrEnum):
    """Where one remote file stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    PRUNED = "pruned"
    REJECTED = "rejected"


@dataclass(frozen=True)
class CompactionRecord:
    """One compacted partition: its generation's files and the sources they hold."""

    dataset: str
    domain: str
    day: date
    generation: int
    files: tuple[str, ...]
    #: LogName -> the sha256 of the downloaded file whose rows it holds (None if unknown).
    sources: dict[str, str | None]
    rows: int
    compacted_at: datetime


@dataclass(frozen=True)
class PublishedFile:
    """A dataset file put to a store: its path under the dataset URL, the local file's size
    and mtime at upload (a file rewritten in place has a new mtime), and whether the upload
    was verified (False: it was about to be uploaded when the run stopped)."""

    key: str
    size: int
    mtime_ns: int
    uploaded: bool = True


@dataclass(frozen=True)
class FileRecord:
    """One ledger row. ``local_path`` is relative to the output directory.

    ``sha256`` is of the downloaded gzip bytes (for an adopted plain file, whose gzip is gone,
    of the plain file). ``plain_checksum``/``plain_size`` describe the decompressed text, which
    is what a ``log``-format archive keeps on disk. ``attempts`` counts failed attempts.
    """

    domain: str
    log_name: str
    hour_start: datetime
    hour_end: datetime
    remote_size: int | None
    status: Status
    attempts: int
    last_error: str | None
    sha256: str | None
    plain_size: int | None
    local_path: str | None
    format: str | None
    first_seen: datetime
    updated_at: datetime
    done_at: datetime | None
    ingested_rows: int | None
    ingested_rejects: int | None
    ingested_sha256: str | None
    ingested_at: datetime | None
    plain_checksum: str | None = None
    #: Lines of the text as sync counted them (None: not counted, e.g. an adopted file).
    plain_lines: int | None = None
    #: The object key (in the store's bucket) holding this file, set when sync uploaded it.
    store_url: str | None = None
    store_etag: str | None = None
    #: When the local copy was deleted after the upload (the store holds the only copy).
    local_dropped_at: datetime | None = None

    @property
    def local_copy(self) -> bool:
        """True when the archive directory should hold this file (it was not dropped)."""
        return self.local_path is not None and self.local_dropped_at is None


@dataclass(frozen=True)
class RunRecord:
    """One sync run, for `status`'s "last successful sync"."""

    domain: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    summary_json: str


def to_text(value: datetime) -> str:
    """Store a datetime as ISO UTC text; a naive value is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.astimezone(UTC).microsecond:06d}"
    return text + "Z"


def from_text(text: str) -> datetime:
    """Read back a datetime written by :func:`to_text` (aware UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else from_text(text)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Manifest:
    """The ledger at ``state_dir/manifest.sqlite3`` (WAL, synchronous=FULL, versioned schema).

    Safe to share between threads (one call at a time: every method holds a lock), though
    the sync engine calls it from its main thread only. Use it as a context manager or call
    :meth:`close`; an unclosed connection leaks a file handle.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Wrap an open, checked connection; use :meth:`open` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._clock = clock
        self.path = path

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        create: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> Manifest:
        """Open (and with ``create``, create) the ledger; SchemaVersionError if too new.

        :param state_dir: ``OUT/.cdnlogs``; created when ``create`` is true.
        :param create: false to require an existing ledger (ManifestError otherwise).
        :param clock: returns "now" for the row timestamps (tests pin it).
        """
        path = Path(state_dir) / MANIFEST_NAME
        if os.path.lexists(path) and not path.is_file():
            # Something is there and it is broken: never "no ledger, run sync first".
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise ManifestError(
                f"the ledger {path} is {kind}, not an SQLite file",
                hint="move it away (nothing was deleted) and restore the ledger from a backup, "
                "or run `cdnlogs adopt` on the archive to rebuild it from the files",
            )
        if not create and not path.exists():
            check_directory_path(path.parent)  # --out below a regular file says so
            raise ManifestError(
                f"no archive ledger at {path}",
                hint="run `cdnlogs sync` (or `cdnlogs adopt`) with this --out first",
            )
        if create:
            make_directory(path.parent)
        try:
            conn = sqlite3.connect(
                str(path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit: transactions are explicit (_transaction)
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise ledger_error(path, exc, doing="open") from exc
        try:
            _configure(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, clock=clock or _utcnow)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ManifestError(f"the ledger {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing half-way with "database is locked" on its first write.
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.commit()  # in the try: a full disk often shows first here, at the WAL write
            except sqlite3.Error as exc:
                _rollback(conn)
                raise ledger_error(self.path, exc) from exc
            except BaseException:
                _rollback(conn)
                raise

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise ledger_error(self.path, exc) from exc

    def _now(self) -> str:
        return to_text(self._clock())

    def _update_row(
        self,
        conn: sqlite3.Connection,
        domain: str,
        log_name: str,
        sql: str,
        params: tuple[Any, ...],
    ) -> None:
        cursor = conn.execute(
            f"UPDATE files SET {sql} WHERE domain = ? AND log_name = ?", (*params, domain, log_name)
        )
        if cursor.rowcount != 1:
            raise ManifestError(f"the ledger has no row for {domain}/{log_name}")

    # -- reading ----------------------------------------------------------------------------

    def get(self, domain: str, log_name: str) -> FileRecord | None:
        """The row of one remote file, or None if the ledger never saw it."""
        rows = self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE domain = ? AND log_name = ?",
            (domain, log_name),
        )
        return _record(rows[0]) if rows else None

    def records(self, domain: str | None = None, status: Status | None = None) -> list[FileRecord]:
        """Rows ordered by (domain, hour_start, log_name)."""
        where, params = _filters(domain=domain, status=status)
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files {where} {_ORDER}", params)
        return [_record(row) for row in rows]

    def domains(self) -> list[str]:
        """Every domain with at least one row or run, sorted."""
        rows = self._query("SELECT domain FROM files UNION SELECT domain FROM runs ORDER BY 1")
        return [row[0] for row in rows]

    def status_counts(self, domain: str | None = None) -> dict[str, dict[Status, int]]:
        """``{domain: {status: count}}`` without loading the rows."""
        where, params = _filters(domain=domain)
        rows = self._query(
            f"SELECT domain, status, COUNT(*) FROM files {where} GROUP BY domain, status",
            params,
        )
        counts: dict[str, dict[Status, int]] = {}
        for dom, status, count in rows:
            counts.setdefault(dom, {})[Status(status)] = count
        return counts

    # -- state changes (one transaction each) --------------------------------------------------

    def record_listed(self, files: Iterable[LogFile]) -> None:
        """Insert unseen files as pending; refresh hour/size of pending and failed rows.

        Never changes a done, pruned or rejected row.
        """
        now = self._now()
        rows = [
            (f.domain, f.name, to_text(f.start), to_text(f.end), f.size, now, now) for f in files
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO files (domain, log_name, hour_start, hour_end, remote_size, status,"
                " first_seen, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)"
                " ON CONFLICT (domain, log_name) DO UPDATE SET"
                " hour_start = excluded.hour_start, hour_end = excluded.hour_end,"
                " remote_size = excluded.remote_size, updated_at = excluded.updated_at"
                " WHERE files.status IN ('pending', 'failed')"
                " AND (files.hour_start, files.hour_end, files.remote_size)"
                " IS NOT (excluded.hour_start, excluded.hour_end, excluded.remote_size)",
                rows,
            )

    def mark_done(
        self,
        domain: str,
        log_name: str,
        *,
        sha256: str,
        plain_size: int,
        local_path: str,
        fmt: str,
        plain_checksum: str | None = None,
        lines: int | None = None,
        store_url: str | None = None,
        store_etag: str | None = None,
    ) -> None:
        """Record a file written, verified, fsynced and renamed into place.

        :param sha256: of the downloaded gzip bytes.
        :param plain_size: bytes of the decompressed text.
        :param local_path: relative to the output directory, POSIX separators.
        :param fmt: ``log`` or ``gz``: what ``local_path`` holds.
        :param plain_checksum: of the decompressed text; `verify` checks a ``log`` file with it.
        :param lines: the text's line count (the ingest checks its rows against it).
        :param store_url: the object the file was uploaded to and verified in (``--store``).
        """
        now = self._now()
        with self._transaction() as conn:
            self._update_row(
                conn,
                domain,
                log_name,
                "status = 'done', sha256 = ?, plain_size = ?, plain_checksum = ?, local_path = ?,"
                " format = ?, last_error = NULL, done_at = ?, updated_at = ?, plain_lines = ?,"
                " store_url = ?, store_etag = ?, local_dropped_at = NULL",
                (
                    sha256,
                    plain_size,
                    plain_checksum,
                    local_path,
                    fmt,
                    now,
                    now,
                    lines,
                    store_url,
                    store_etag,
                ),
            )

    def mark_stored(
        self, domain: str, log_name: str, *, store_url: str, store_etag: str | None
    ) -> None:
        """Record that a done file's verified copy is now in the store at ``store_url``."""
        with self._transaction() as conn:
            self._update_row(
                conn,
                domain,
                log_name,
                "store_url = ?, store_etag = ?, updated_at = ?",
                (store_url, store_etag, self._now()),
            )

    def mark_local_dropped(self, domain: str, log_name: str) -> None:
        """Record that a stored file's local copy was deleted (the store keeps it)."""
        self.mark_local_dropped_many([(domain, log_name)])

    def mark_local_dropped_many(self, keys: Iterable[tuple[str, str]]) -> None:
        """:meth:`mark_local_dropped` for many ``(domain, log_name)`` in one transaction."""
        now = self._now()
        with self._transaction() as conn:
            for domain, log_name in keys:
                self._update_row(
                    conn,
                    domain,
                    log_name,
                    "local_dropped_at = ?, updated_at = ?",
                    (now, now),
                )

    def snapshot(self, destination: Path) -> None:
        """Write a consistent copy of the ledger to ``destination`` (SQLite's online backup)."""
        with self._lock:
            conn = self._db()
            try:
                target = sqlite3.connect(str(destination))
                try:
                    conn.backup(target)
                    # A single file, no -wal beside it: the copy is read elsewhere as it is.
                    target.execute("PRAGMA journal_mode = DELETE")
                finally:
                    target.close()
            except sqlite3.Error as exc:
                raise ManifestError(f"cannot snapshot the ledger {self.path}: {exc}") from exc

    def mark_failed(self, domain: str, log_name: str, error: str) -> None:
        """Record a failed attempt (attempts += 1, last_error = error)."""
        with self._transaction() as conn:
            self._update_row(
                conn,
                domain,
                log_name,
                "status = 'failed', attempts = attempts + 1, last_error = ?, updated_at = ?",
                (error, self._now()),
            )

    def mark_rejected(self, domain: str, log_name: str, reason: str) -> None:
        """Record a file that will never be fetched (an unsafe LogName); ``reason`` says why."""
        with self._transaction() as conn:
            self._update_row(
                conn,
                domain,
                log_name,
                "status = 'rejected', last_error = ?, updated_at = ?",
                (reason, self._now()),
            )

    def mark_pruned(self, domain: str, log_name: str) -> None:
        """Record that the local file was deleted by retention; it is never fetched again."""
        with self._transaction() as conn:
            self._update_row(
                conn, domain, log_name, "status = 'pruned', updated_at = ?", (self._now(),)
            )

    def mark_pending(self, domain: str, log_name: str, reason: str) -> None:
        """Send a done file back to pending (verify found it missing or corrupt)."""
        # The file facts are cleared: they described a file that is no longer trustworthy.
        # The ingest columns stay, so re-fetching identical bytes does not re-ingest them.
        with self._transaction() as conn:
            self._update_row(
                conn,
                domain,
                log_name,
                "status = 'pending', last_error = ?, sha256 = NULL, plain_size = NULL,"
                " plain_checksum = NULL, local_path = NULL, format = NULL, done_at = NULL,"
                " plain_lines = NULL, store_url = NULL, store_etag = NULL,"
                " local_dropped_at = NULL, updated_at = ?",
                (reason, self._now()),
            )

    def record_adopted(
        self,
        domain: str,
        log_name: str,
        *,
        hour_start: datetime,
        hour_end: datetime,
        sha256: str,
        plain_size: int,
        local_path: str,
        fmt: str,
        plain_checksum: str | None = None,
        lines: int | None = None,
    ) -> bool:
        """Record a file found on disk as done; False if the ledger already knew it.

        A pending or failed row (listed, not yet fetched) is completed by the adopted file;
        a done, pruned or rejected row is left alone.
        """
        now = self._now()
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO files (domain, log_name, hour_start, hour_end, status, sha256,"
                " plain_size, plain_checksum, local_path, format, first_seen, updated_at, done_at,"
                " plain_lines) VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (domain, log_name) DO UPDATE SET status = 'done',"
                " sha256 = excluded.sha256, plain_size = excluded.plain_size,"
                " plain_checksum = excluded.plain_checksum, local_path = excluded.local_path,"
                " format = excluded.format, last_error = NULL, done_at = excluded.done_at,"
                " updated_at = excluded.updated_at, plain_lines = excluded.plain_lines"
                " WHERE files.status IN ('pending', 'failed')",
                (
                    domain,
                    log_name,
                    to_text(hour_start),
                    to_text(hour_end),
                    sha256,
                    plain_size,
                    plain_checksum,
                    local_path,
                    fmt,
                    now,
                    now,
                    now,
                    lines,
                ),
            )
            return cursor.rowcount == 1

    def record_run(self, run: RunRecord) -> None:
        """Append one sync run."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (domain, started_at, finished_at, ok, summary_json)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    run.domain,
                    to_text(run.started_at),
                    to_text(run.finished_at),
                    int(run.ok),
                    run.summary_json,
                ),
            )

    def last_successful_run(self, domain: str) -> RunRecord | None:
        """The most recent run of ``domain`` that finished with every file in place."""
        rows = self._query(
            "SELECT domain, started_at, finished_at, ok, summary_json FROM runs"
            " WHERE domain = ? AND ok = 1 ORDER BY finished_at DESC, id DESC LIMIT 1",
            (domain,),
        )
        if not rows:
            return None
        dom, started, finished, ok, summary = rows[0]
        return RunRecord(dom, from_text(started), from_text(finished), bool(ok), summary)

    def run_totals(self) -> dict[str, tuple[int, int]]:
        """Per domain, the files and gzip bytes every recorded sync run fetched (for counters).

        Summed from the run rows' summaries, so the figures only grow (Prometheus counters);
        a run stopped before it recorded itself is not counted.
        """
        rows = self._query(
            "SELECT domain,"
            " COALESCE(SUM(json_extract(summary_json, '$.fetched')), 0),"
            " COALESCE(SUM(json_extract(summary_json, '$.bytes')), 0)"
            " FROM runs GROUP BY domain ORDER BY domain"
        )
        return {str(domain): (int(files), int(nbytes)) for domain, files, nbytes in rows}

    def files_to_ingest(self) -> list[FileRecord]:
        """Done rows never ingested, or whose sha256 changed since they were ingested."""
        rows = self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'done'"
            f" AND ingested_sha256 IS NOT sha256 {_ORDER}"
        )
        return [_record(row) for row in rows]

    def mark_ingested(self, domain: str, log_name: str, *, rows: int, rejects: int) -> None:
        """Record that the row's current file (its sha256) is in the dataset with ``rows`` rows."""
        with self._transaction() as conn:
            self._update_row(
                conn,
                domain,
                log_name,
                "ingested_rows = ?, ingested_rejects = ?, ingested_sha256 = sha256,"
                " ingested_at = ?",
                (rows, rejects, self._now()),
            )

    def mark_ingested_many(self, items: Iterable[tuple[str, str, int, int]]) -> None:
        """``mark_ingested`` for many ``(domain, log_name, rows, rejects)`` in one transaction
        (a batch of small files: one commit instead of one per file)."""
        with self._transaction() as conn:
            now = self._now()
            for domain, log_name, rows, rejects in items:
                self._update_row(
                    conn,
                    domain,
                    log_name,
                    "ingested_rows = ?, ingested_sha256 = sha256, ingested_rejects = ?,"
                    " ingested_at = ?",
                    (rows, rejects, now),
                )

    # -- the dataset: compactions and uploads ----------------------------------------------

    def record_compaction(self, record: CompactionRecord) -> None:
        """Record (or replace) the current compacted generation of one partition."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO compactions (dataset, domain, day, generation,"
                " files_json, sources_json, rows, compacted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.dataset,
                    record.domain,
                    record.day.isoformat(),
                    record.generation,
                    json.dumps(list(record.files)),
                    json.dumps(record.sources, sort_keys=True),
                    record.rows,
                    to_text(record.compacted_at),
                ),
            )

    def compactions(self, dataset: str) -> dict[tuple[str, date], CompactionRecord]:
        """The compacted partitions of ``dataset`` (its root as recorded), by (domain, day)."""
        rows = self._query(
            "SELECT dataset, domain, day, generation, files_json, sources_json, rows,"
            " compacted_at FROM compactions WHERE dataset = ? ORDER BY domain, day",
            (dataset,),
        )
        found: dict[tuple[str, date], CompactionRecord] = {}
        for ds, domain, day, generation, files, sources, count, at in rows:
            record = CompactionRecord(
                dataset=ds,
                domain=domain,
                day=date.fromisoformat(day),
                generation=generation,
                files=tuple(json.loads(files)),
                sources=json.loads(sources),
                rows=count,
                compacted_at=from_text(at),
            )
            found[(record.domain, record.day)] = record
        return found

    def forget_compaction(self, dataset: str, domain: str, day: date) -> None:
        """Drop a partition's compaction row (its day was removed by dataset retention)."""
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM compactions WHERE dataset = ? AND domain = ? AND day = ?",
                (dataset, domain, day.isoformat()),
            )

    def published(self, store: str) -> dict[str, PublishedFile]:
        """The dataset files recorded as put (or about to be) under ``store``, by key."""
        rows = self._query(
            "SELECT key, size, mtime_ns, uploaded FROM published WHERE store = ?", (store,)
        )
        return {k: PublishedFile(k, size, mtime, bool(up)) for k, size, mtime, up in rows}

    def record_published(self, store: str, files: Iterable[PublishedFile]) -> None:
        """Record puts: with ``uploaded`` False before the upload, True once it is verified."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO published (store, key, size, mtime_ns, uploaded,"
                " published_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(store, f.key, f.size, f.mtime_ns, int(f.uploaded), self._now()) for f in files],
            )

    def forget_published(self, store: str, keys: Iterable[str]) -> None:
        """Drop keys deleted from the store (call after the delete succeeded)."""
        with self._transaction() as conn:
            conn.executemany(
                "DELETE FROM published WHERE store = ? AND key = ?", [(store, k) for k in keys]
            )


def _filters(
    *, domain: str | None = None, status: Status | None = None
) -> tuple[str, tuple[str, ...]]:
    clauses: list[str] = []
    params: list[str] = []
    if domain is not None:
        clauses.append("domain = ?")
        params.append(domain)
    if status is not None:
        clauses.append("status = ?")
        params.append(Status(status).value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _record(row: tuple[Any, ...]) -> FileRecord:
    return FileRecord(
        domain=row[0],
        log_name=row[1],
        hour_start=from_text(row[2]),
        hour_end=from_text(row[3]),
        remote_size=row[4],
        status=Status(row[5]),
        attempts=row[6],
        last_error=row[7],
        sha256=row[8],
        plain_size=row[9],
        local_path=row[10],
        format=row[11],
        first_seen=from_text(row[12]),
        updated_at=from_text(row[13]),
        done_at=_opt_time(row[14]),
        ingested_rows=row[15],
        ingested_rejects=row[16],
        ingested_sha256=row[17],
        ingested_at=_opt_time(row[18]),
        plain_checksum=row[19],
        plain_lines=row[20],
        store_url=row[21],
        store_etag=row[22],
        local_dropped_at=_opt_time(row[23]),
    )


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    """Set the durable pragmas and create or check the schema."""
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # The first statement that reads the file: a non-SQLite file fails here.
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ManifestError(f"cannot turn on WAL for the ledger {path} (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            # Not executescript(): it COMMITs first, and the schema must appear atomically.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.commit()
            _add_dataset_tables(conn, path)
            return
        if app_id != APPLICATION_ID or "schema_version" not in tables:
            raise ManifestError(
                f"{path} is an SQLite file but not a cdnlogs ledger",
                hint="move it away, or point --out at the archive it belongs to",
            )
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] if row else None
    except sqlite3.DatabaseError as exc:
        _rollback(conn)
        if _is_write_failure(exc):  # a full disk is not a damaged ledger
            raise ledger_error(path, exc) from exc
        raise ManifestError(
            f"the ledger {path} is unreadable: {exc}",
            hint="restore it from a backup, or move it away and run `cdnlogs adopt` on the archive",
        ) from exc
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise SchemaVersionError(
            f"the ledger {path} has schema version {version}, "
            f"this cdnlogs understands up to {SCHEMA_VERSION}",
            hint="upgrade cdnlogs (pip install -U cdnlogs) to use this archive",
        )
    if version < SCHEMA_VERSION:
        _upgrade(conn, path)
    _add_dataset_tables(conn, path)


def _add_dataset_tables(conn: sqlite3.Connection, path: Path) -> None:
    try:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if {"compactions", "published"} <= tables:
            return
        conn.execute("BEGIN IMMEDIATE")
        for statement in _DATASET_TABLES.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.commit()
    except sqlite3.DatabaseError as exc:
        if conn.in_transaction:
            conn.rollback()
        raise ManifestError(f"cannot add the dataset tables to the ledger {path}: {exc}") from exc


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring an older ledger to SCHEMA_VERSION in one transaction (columns are only added)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Read again under the write lock: another process may have upgraded it meanwhile.
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        for target in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _UPGRADES[target]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
        conn.commit()
    except sqlite3.DatabaseError as exc:
        _rollback(conn)
        if _is_write_failure(exc):
            raise ledger_error(path, exc) from exc
        raise ManifestError(
            f"cannot upgrade the ledger {path} to schema version {SCHEMA_VERSION}: {exc}"
        ) from exc


# SQLite's primary result codes (the low byte of an extended code) that mean "could not write".
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_write_failure(exc: BaseException) -> bool:
    return _primary_code(exc) in (_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_READONLY)


def ledger_error(path: Path, exc: BaseException, *, doing: str = "write") -> ManifestError:
    """The one translation of an SQLite (or OS) failure on the ledger into a ManifestError.

    A full disk, a file size limit or a read-only filesystem is named as such with what to do
    about it: the ledger itself is fine, and every row committed before is kept.
    """
    code = _primary_code(exc)
    where = path.parent
    if code == _SQLITE_FULL:
        return ManifestError(
            f"cannot write the ledger {path}: no space left ({exc})",
            hint=f"free space on the filesystem of {where} (df {where}) and run the command "
            "again; every file recorded so far is kept",
        )
    if code == _SQLITE_IOERR:
        return ManifestError(
            f"cannot write the ledger {path}: {exc} (a full disk, a file size limit or a "
            "failing disk)",
            hint=f"check the free space (df {where}), the file size limit (ulimit -f) and the "
            "kernel log, then run the command again; every file recorded so far is kept",
        )
    if code == _SQLITE_READONLY:
        return ManifestError(
            f"cannot write the ledger {path}: {exc}",
            hint=f"make {path} and {where} writable, or mount the filesystem read-write",
        )
    if code == _SQLITE_CANTOPEN or isinstance(exc, OSError):
        return ManifestError(
            f"cannot {doing} the ledger {path}: {exc}",
            hint=f"check that {path} is a file, and that you may read and write it and {where}",
        )
    return ManifestError(f"ledger {path}: {exc}")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a rollback that fails too (disk gone) is moot."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.rollback()
