"""Compact a settled domain-day's per-source Parquet files into one (or a few ~128 MB) files.

One file per source log gives engines the small-files problem (100 domains x 24 files a day is
876,000 files a year). Once a day is settled (``compact_settle`` after its +08:00 end, so late
files have had time to arrive), ``compact_dataset`` rewrites the partition's rows into
``compacted-g<generation>-<digest>-<part>of<parts>.parquet`` files whose metadata lists the
sources they hold (see ``cdnlogs.datafiles`` for the names and the reader rule).

The swap, locally: the new files are written into a hidden sibling directory
``domain=<d>/.date=<day>.compact-<tag>/`` (no glob of the dataset matches it), which is then
exchanged with ``date=<day>/`` in one ``renameat2(RENAME_EXCHANGE)``: every reader that lists
the partition sees the old files or the new ones. Where the kernel or file system cannot
exchange, the new files are renamed into the partition first and the old ones removed after,
and the reader rule keeps cdnlogs' own readers exact in between (engines that only glob may see
both for that moment; docs/engines.md).

Per-source idempotence is kept: the ledger's ``compactions`` table (and each compacted file's
metadata) knows which sources, with which sha256, the partition's generation holds, so ingest
does not ingest them again; a late or re-ingested source writes its own per-source file as
usual, and the next compaction of that day folds it in (a new generation).

:func:`compact_archive` and :func:`run_compact` (``cdnlogs compact``: then publishing) take the
archive lock themselves; :func:`compact_dataset` and :func:`compact_locked` are for a caller
that holds it (``ingest --compact``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cdnlogs.config import Settings
from cdnlogs.datafiles import (
    SOURCES_KEY,
    Choice,
    CompactedName,
    choose_files,
    file_stem,
)
from cdnlogs.dataset import LOG_COLUMNS, quote_sql, source_stem
from cdnlogs.errors import CdnLogsError
from cdnlogs.ingest.ingester import DEFAULT_ROW_GROUP_SIZE
from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import CompactionRecord, Manifest
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.timeutil import parse_duration

if TYPE_CHECKING:
    from cdnlogs.publish import PublishSummary

log = logging.getLogger(__name__)

#: How long after a +08:00 day ends before it is compacted (late files have arrived by then).
DEFAULT_SETTLE = "2d"
#: The size compacted files are cut at (DuckDB's FILE_SIZE_BYTES; a part may be a little over).
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
#: The name a staging directory starts with: ``.date=<day>.compact-<tag>``.
STAGING_MARK = ".compact-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@dataclass(frozen=True)
class CompactOptions:
    """What to compact and how.

    :param settle: a day is compacted this long after its +08:00 end.
    :param domains: only these domains (all when empty).
    :param target_bytes: the size compacted files are cut at.
    :param exchange: swap the partition directory atomically where the OS can (tests turn it
        off to exercise the in-place order that the store also uses).
    """

    settle: timedelta = timedelta(days=2)
    domains: tuple[str, ...] = ()
    target_bytes: int = DEFAULT_TARGET_BYTES
    threads: int = 2
    memory_limit: str = "512MB"
    exchange: bool = True


@dataclass(frozen=True)
class PartitionCompaction:
    """One partition compacted."""

    domain: str
    day: str
    generation: int
    files: list[str]
    sources: int
    rows: int
    replaced: int


@dataclass
class CompactSummary:
    """The outcome of one ``compact`` run."""

    compacted: list[PartitionCompaction] = field(default_factory=list)
    #: Partitions not settled yet (left as they are).
    unsettled: int = 0
    #: Partitions already compacted with nothing new.
    current: int = 0
    #: Left-over files removed (superseded or covered files of an interrupted run).
    cleaned: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def is_settled(day: date, *, now: datetime, settle: timedelta) -> bool:
    """True once ``settle`` has passed since the end of the +08:00 ``day``."""
    end = datetime.combine(day + timedelta(days=1), day_time(0), tzinfo=PROVIDER_TZ)
    return now >= end + settle


@dataclass
class CompactRun:
    """What :func:`run_compact` did: the compaction, and the publish after it."""

    summary: CompactSummary
    published: PublishSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """``compact --json``: the compaction's dict, with ``publish`` when it ran."""
        data = self.summary.to_dict()
        if self.published is not None:
            data["publish"] = self.published.to_dict()
        return data


def compact_archive(
    settings: Settings, *, now: datetime, domains: tuple[str, ...] = ()
) -> CompactSummary:
    """Compact the settled days of ``settings``' local dataset.

    :raises LockedError: another process holds the archive lock (it is taken here).
    """
    with ArchiveLock(settings.state_dir, purpose="compact"):
        return compact_locked(settings, now=now, domains=domains)


def run_compact(settings: Settings, *, now: datetime, domains: tuple[str, ...] = ()) -> CompactRun:
    """``cdnlogs compact``: :func:`compact_archive`, then publish an ``s3://`` dataset, under
    one hold of the archive lock.

    :raises LockedError: another process holds the archive lock.
    """
    with ArchiveLock(settings.state_dir, purpose="compact"):
        run = CompactRun(compact_locked(settings, now=now, domains=domains))
        if settings.dataset_url is not None:
            from cdnlogs.publish import publish_archive_dataset

            run.published = publish_archive_dataset(settings)
    return run


def compact_locked(
    settings: Settings, *, now: datetime, domains: tuple[str, ...] = ()
) -> CompactSummary:
    """:func:`compact_archive`'s work, for a caller that holds the archive lock.

    With a dataset on a store, a new working copy first gets the published files it lacks
    (``publish.restore_working_copy``): a day compacted from only the files on this disk would
    be a generation that misses the rest of the day.
    """
    options = CompactOptions(settle=parse_duration(settings.compact_settle), domains=domains)
    with Manifest.open(settings.state_dir) as manifest:
        if settings.dataset_url is not None:
            from cdnlogs.publish import keep_cutoff, restore_working_copy
            from cdnlogs.store import open_store

            store = open_store(settings, settings.dataset_url)
            cutoff = keep_cutoff(settings, now)
            restore_working_copy(settings.dataset_dir, store, manifest, cutoff=cutoff)
        return compact_dataset(settings.dataset_dir, manifest, now=now, options=options)


def compact_dataset(
    root: Path,
    manifest: Manifest,
    *,
    now: datetime,
    options: CompactOptions | None = None,
) -> CompactSummary:
    """Compact every settled partition of the local dataset at ``root`` that has new files.

    A partition is compacted when it has per-source files (never compacted, a late source, or
    a re-ingested one); one whose newest generation already holds everything is left alone,
    apart from removing left-over files an interrupted run did not get to.
    """
    opts = options or CompactOptions()
    started = time.monotonic()
    summary = CompactSummary()
    root = Path(root).absolute()
    _remove_staging(root)
    con = duckdb.connect(config={"threads": opts.threads})
    try:
        con.execute(f"SET memory_limit = {quote_sql(opts.memory_limit)}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        for part in sorted(root.glob("domain=*/date=*")):
            domain = part.parent.name.removeprefix("domain=")
            try:
                day = date.fromisoformat(part.name.removeprefix("date="))
            except ValueError:
                continue
            if not part.is_dir() or (opts.domains and domain not in opts.domains):
                continue
            if not is_settled(day, now=now, settle=opts.settle):
                summary.unsettled += 1
                continue
            names = [p.name for p in part.iterdir() if p.is_file()]
            choice = choose_files(names, partial(held_stems, con, str(part)))
            fresh = [*choice.per_source, *_reingested(con, manifest, part, domain, choice)]
            if not fresh:
                summary.current += 1
                summary.cleaned += _clean(con, manifest, root, part, domain, day, choice, now=now)
                continue
            done = _compact_partition(
                con, manifest, root, part, domain, day, names, choice, fresh, opts, now=now
            )
            summary.compacted.append(done)
    finally:
        con.close()
    summary.seconds = time.monotonic() - started
    return summary


def _reingested(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, part: Path, domain: str, choice: Choice
) -> list[str]:
    """Covered per-source files that are newer than the compacted rows of their source.

    A covered file is either left over (its rows are in the compacted file: the sha256 the
    compacted file recorded is the ledger's) or a re-ingested source (the ledger's ingested
    sha256 differs): the second kind is compacted again, the first removed.
    """
    if not choice.compacted or not choice.covered:
        return []
    held = {
        source_stem(n): (n, sha) for n, sha in read_sources(con, part / choice.compacted[0]).items()
    }
    found = []
    for name in choice.stale:
        stem = file_stem(name)
        if stem is None or stem not in held:
            continue
        log_name, sha = held[stem]
        record = manifest.get(domain, log_name)
        if record is not None and record.ingested_sha256 not in (None, sha):
            found.append(name)
    return found


def _clean(
    con: duckdb.DuckDBPyConnection,
    manifest: Manifest,
    root: Path,
    part: Path,
    domain: str,
    day: date,
    choice: Choice,
    *,
    now: datetime,
) -> int:
    """Remove a compacted partition's stale files; record its generation if the ledger lacks it
    (a run stopped between the swap and the ledger record)."""
    if choice.compacted:
        winner = CompactedName.parse(choice.compacted[0])
        recorded = manifest.compactions(str(root)).get((domain, day))
        if winner is not None and (recorded is None or recorded.generation != winner.generation):
            files = _sql_list(str(part / n) for n in choice.compacted)
            manifest.record_compaction(
                CompactionRecord(
                    dataset=str(root),
                    domain=domain,
                    day=day,
                    generation=winner.generation,
                    files=choice.compacted,
                    sources=read_sources(con, part / choice.compacted[0]),
                    rows=_count(con, f"SELECT * FROM read_parquet({files})"),
                    compacted_at=now.astimezone(UTC),
                )
            )
    for name in choice.stale:
        (part / name).unlink(missing_ok=True)
    return len(choice.stale)


def held_stems(con: duckdb.DuckDBPyConnection, partition: str, name: str) -> list[str]:
    """The source stems the compacted file ``partition/name`` holds (``partition`` may be a
    local directory or a URL a registered file system serves)."""
    return [source_stem(n) for n in read_sources(con, f"{partition}/{name}")]


def read_sources(con: duckdb.DuckDBPyConnection, path: Path | str) -> dict[str, str | None]:
    """The sources (LogName -> sha256) a compacted file's metadata says it holds."""
    row = con.execute(
        "SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?",
        [str(path), SOURCES_KEY],
    ).fetchone()
    if row is None:
        raise CdnLogsError(f"{path}: a compacted file without its {SOURCES_KEY} metadata")
    sources = json.loads(row[0])
    if not isinstance(sources, dict):
        raise CdnLogsError(f"{path}: {SOURCES_KEY} is not an object")
    return {str(k): (None if v is None else str(v)) for k, v in sources.items()}


def _compact_partition(
    con: duckdb.DuckDBPyConnection,
    manifest: Manifest,
    root: Path,
    part: Path,
    domain: str,
    day: date,
    names: list[str],
    choice: Choice,
    fresh: list[str],
    opts: CompactOptions,
    *,
    now: datetime,
) -> PartitionCompaction:
    columns = ", ".join(name for name, _ in LOG_COLUMNS)
    per_source = _sql_list(str(part / n) for n in fresh)
    new_names = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT source_file FROM read_parquet({per_source})"
        ).fetchall()
    ]
    sources: dict[str, str | None] = {}
    rows_sql = f"SELECT {columns} FROM read_parquet({per_source})"
    if choice.compacted:
        kept = {
            name: sha
            for name, sha in read_sources(con, part / choice.compacted[0]).items()
            if name not in new_names
        }
        sources.update(kept)
        compacted = _sql_list(str(part / n) for n in choice.compacted)
        # A re-ingested source's rows come from its new per-source file, not the old compacted.
        rows_sql = (
            f"SELECT {columns} FROM read_parquet({compacted}) "
            f"WHERE NOT list_contains({_sql_list(new_names)}::VARCHAR[], source_file)"
            f" UNION ALL {rows_sql}"
        )
    for log_name in new_names:
        record = manifest.get(domain, log_name)
        sources[log_name] = record.ingested_sha256 if record is not None else None
    expected = _count(con, rows_sql)
    generation = 1 + max(
        (p.generation for n in names if (p := CompactedName.parse(n)) is not None), default=0
    )
    digest = hashlib.sha256(json.dumps(sorted(sources.items())).encode()).hexdigest()[:12]
    staging = part.parent / f".{part.name}{STAGING_MARK}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        files = _write_parts(con, rows_sql, staging, generation, digest, sources, expected, opts)
        replaced = [n for n in names if n in choice.read or n in choice.stale]
        if not (opts.exchange and _exchange(staging, part)):
            _swap_in_place(staging, part, files, replaced)
        _fsync_dir(part.parent)
        manifest.record_compaction(
            CompactionRecord(
                dataset=str(root),
                domain=domain,
                day=day,
                generation=generation,
                files=tuple(files),
                sources=sources,
                rows=expected,
                compacted_at=now.astimezone(UTC),
            )
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("compacted %s/%s: %d file(s) into %d", domain, day, len(replaced), len(files))
    return PartitionCompaction(
        domain=domain,
        day=day.isoformat(),
        generation=generation,
        files=files,
        sources=len(sources),
        rows=expected,
        replaced=len(replaced),
    )


def _write_parts(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    staging: Path,
    generation: int,
    digest: str,
    sources: dict[str, str | None],
    expected: int,
    opts: CompactOptions,
) -> list[str]:
    """COPY the rows into ``staging`` cut at ``target_bytes``; name the parts; check the count."""
    out = staging / "out"
    metadata = quote_sql(json.dumps(sources, sort_keys=True))
    result = con.execute(
        f"COPY ({rows_sql}) TO {quote_sql(str(out))} (FORMAT parquet, COMPRESSION zstd, "
        f"ROW_GROUP_SIZE {DEFAULT_ROW_GROUP_SIZE}, FILE_SIZE_BYTES {opts.target_bytes}, "
        f"FILENAME_PATTERN 'part-{{i}}', KV_METADATA {{{SOURCES_KEY}: {metadata}}})"
    ).fetchone()
    written = int(result[0]) if result else 0
    if written != expected:
        raise CdnLogsError(f"{staging.parent}: compaction wrote {written} rows of {expected}")
    parts = sorted(out.glob("part-*.parquet"), key=lambda p: int(p.stem.removeprefix("part-")))
    if not parts:  # no rows at all: still one (empty) file that says what it holds
        con.execute(
            f"COPY (SELECT * FROM ({rows_sql}) LIMIT 0) TO {quote_sql(str(out / 'part-0.parquet'))}"
            f" (FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{SOURCES_KEY}: {metadata}}})"
        )
        parts = [out / "part-0.parquet"]
    files = []
    for index, path in enumerate(parts):
        name = CompactedName(generation, digest, index, len(parts)).filename
        _fsync(path)
        os.replace(path, staging / name)
        files.append(name)
    out.rmdir()
    _fsync_dir(staging)
    return files


def _swap_in_place(staging: Path, part: Path, files: list[str], replaced: list[str]) -> None:
    """Add the new generation (its last part completes it), then remove what it replaced."""
    for name in files:
        os.replace(staging / name, part / name)
    _fsync_dir(part)
    for name in replaced:
        (part / name).unlink(missing_ok=True)


def _exchange(new: Path, old: Path) -> bool:
    """Swap two directories in one step (Linux renameat2); False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(old), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, f"cannot swap {new} and {old}: {os.strerror(code)}")


def _remove_staging(root: Path) -> None:
    """Remove staging directories an interrupted run left (before or after its swap, both are
    safe to drop: either the new files never became visible, or they are the old ones)."""
    for staging in root.glob(f"domain=*/.date=*{STAGING_MARK}*"):
        shutil.rmtree(staging, ignore_errors=True)


def _count(con: duckdb.DuckDBPyConnection, rows_sql: str) -> int:
    row = con.execute(f"SELECT count(*) FROM ({rows_sql})").fetchone()
    return int(row[0]) if row else 0


def _sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(quote_sql(v) for v in values) + "]"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Some file systems cannot fsync a directory; the renames are still in order.
    with contextlib.suppress(OSError):
        _fsync(path)


def compacted_sources(manifest: Manifest, root: Path) -> set[tuple[str, str]]:
    """(domain, LogName) of every source a compacted file of ``root`` holds, per the ledger.

    Ingest takes these as present although their per-source file is gone. A partition whose
    compacted files are missing (a deleted dataset) does not count.
    """
    root = Path(root).absolute()
    found: set[tuple[str, str]] = set()
    for (domain, day), record in manifest.compactions(str(root)).items():
        part = root / f"domain={domain}" / f"date={day.isoformat()}"
        if all((part / name).is_file() for name in record.files):
            found.update((domain, log_name) for log_name in record.sources)
    return found


__all__ = [
    "DEFAULT_SETTLE",
    "CompactOptions",
    "CompactRun",
    "CompactSummary",
    "compact_archive",
    "compact_dataset",
    "compact_locked",
    "compacted_sources",
    "is_settled",
    "read_sources",
]
