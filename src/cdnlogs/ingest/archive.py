"""Ingest the whole archive: every downloaded file the ledger says is not in the dataset.

:func:`ingest_archive` is the ingest alone; :func:`run_ingest` is what ``cdnlogs ingest`` and
``sync --ingest`` run: the ingest, then compaction, publishing and dropping local copies as the
settings ask, all under one hold of the archive lock. Both take the lock themselves, so a
library caller gets the same guarantee as the CLI (and must not hold the lock already).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from cdnlogs.config import Settings
from cdnlogs.dataset import (
    REJECTS_DIR,
    partition_date,
    partition_dir,
    prune_dataset,
    source_stem,
)
from cdnlogs.errors import CdnLogsError, is_interrupt
from cdnlogs.ingest.bulk import SMALL_FILE_BYTES, SmallFile, batches, ingest_batch
from cdnlogs.ingest.ingester import SCRATCH_DIR, FileIngest, Ingester, IngestOptions
from cdnlogs.ingest.workers import run_on_workers
from cdnlogs.lock import ArchiveLock
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.shard import resolve_shard
from cdnlogs.timeutil import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from cdnlogs.compaction import CompactSummary
    from cdnlogs.manifest import FileRecord, Manifest
    from cdnlogs.publish import PublishSummary


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


@dataclass
class IngestRun:
    """What :func:`run_ingest` did: the ingest, and the compaction and publish it ran after."""

    summary: IngestSummary
    compacted: CompactSummary | None = None
    published: PublishSummary | None = None
    #: Local copies deleted after the ingest (``drop_local``).
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``ingest --json``: the ingest's dict, with ``compaction``/``publish`` when they ran."""
        data = self.summary.to_dict()
        if self.compacted is not None:
            data["compaction"] = self.compacted.to_dict()
        if self.published is not None:
            data["publish"] = self.published.to_dict()
        return data


def run_ingest(
    settings: Settings,
    *,
    now: datetime,
    callbacks: IngestCallbacks | None = None,
    drop_local: bool = False,
) -> IngestRun:
    """Ingest, then compact (``compact_after_ingest``) and publish (an ``s3://`` dataset).

    With ``drop_local`` (``sync --ingest`` with ``store_drop_local``), every ingested file's
    local copy that the store holds is deleted afterwards. With a store, the ledger's snapshot
    is uploaded again at the end: a sync's own snapshot predates the ingest and publish, and
    ``status --from-store`` and a new disk read it. One hold of the archive lock covers
    it all, so no sync, verify or prune runs in between.

    :raises LockedError: another process holds the archive lock.
    """
    with ArchiveLock(settings.state_dir, purpose="ingest"):
        run = IngestRun(_ingest_locked(settings, now=now, options=None, callbacks=callbacks))
        if settings.compact_after_ingest:
            from cdnlogs.compaction import compact_locked

            run.compacted = compact_locked(settings, now=now)
        if settings.dataset_url is not None:
            from cdnlogs.publish import publish_archive_dataset

            run.published = publish_archive_dataset(settings)
        if drop_local and settings.store and settings.store_drop_local:
            from cdnlogs.manifest import Manifest
            from cdnlogs.upload import drop_local_copies

            with Manifest.open(settings.state_dir) as manifest:
                run.dropped = drop_local_copies(manifest, settings.out_dir, only_ingested=True)
        if settings.store:
            from cdnlogs.upload import refresh_snapshot

            refresh_snapshot(settings)
    return run


def ingest_archive(
    settings: Settings,
    *,
    now: datetime,
    options: IngestOptions | None = None,
    callbacks: IngestCallbacks | None = None,
) -> IngestSummary:
    """Ingest every downloaded file the ledger says is not (or no longer) in the dataset.

    Records rows and rejects per file in the ledger, so running it again never double-counts;
    a re-downloaded file (new sha256) replaces its own rows. Then applies ``dataset_keep``.
    A file that cannot be read is listed in ``failed`` and the others go on.

    :raises LockedError: another process holds the archive lock (it is taken here).
    """
    with ArchiveLock(settings.state_dir, purpose="ingest"):
        return _ingest_locked(settings, now=now, options=options, callbacks=callbacks)


def _ingest_locked(
    settings: Settings,
    *,
    now: datetime,
    options: IngestOptions | None,
    callbacks: IngestCallbacks | None,
) -> IngestSummary:
    """:func:`ingest_archive`'s work; the caller holds the archive lock."""
    from cdnlogs.compaction import compacted_sources
    from cdnlogs.manifest import Manifest, Status

    started = time.monotonic()
    started_wall = time.time()
    opts = options or IngestOptions(
        anonymize_ip=settings.anonymize_ip,
        drop_query=settings.drop_query,
        jobs=settings.ingest_jobs,
    )
    summary = IngestSummary()
    root = settings.dataset_dir
    keep = parse_duration(settings.dataset_keep) if settings.dataset_keep else None
    oldest = (now - keep).astimezone(PROVIDER_TZ).date() if keep is not None else None
    shard = resolve_shard(settings)
    with Manifest.open(settings.state_dir) as manifest:
        # A shard ingests its own domains; a file whose local copy was dropped after its
        # upload (store_drop_local) is not on this disk to read.
        todo = [
            r
            for r in manifest.files_to_ingest()
            if r.local_copy and (shard is None or shard.owns(r.domain))
        ]
        queued = {(r.domain, r.log_name) for r in todo}
        compacted = compacted_sources(manifest, root)  # in a compacted file, not their own
        # A done file whose Parquet file is missing from this dataset (a new --dataset, or a
        # deleted one) is ingested again, unless --keep has aged its day out on purpose.
        for record in manifest.records(status=Status.DONE):
            if (record.domain, record.log_name) in queued or not record.local_copy:
                continue
            if shard is not None and not shard.owns(record.domain):
                continue
            day = partition_date(record.log_name, record.hour_start)
            if oldest is not None and day < oldest:
                continue
            parquet = (
                partition_dir(root, record.domain, day) / f"{source_stem(record.log_name)}.parquet"
            )
            if not parquet.exists() and (record.domain, record.log_name) not in compacted:
                todo.append(record)
        remove_stale_scratch(root)
        if callbacks is not None:
            callbacks.on_planned(len(todo), sum(_size(settings.out_dir, r) for r in todo))

        def note(rec: FileRecord, result: FileIngest | str) -> None:
            if isinstance(result, str):
                summary.failed.append((rec.domain, rec.log_name, result))
            else:
                summary.files += 1
                summary.rows += result.rows
                summary.rejects += result.rejects
                summary.reparsed += result.reparsed
                summary.slow_files += int(result.slow_path)
                summary.recopied_files += int(result.recopied)
            if callbacks is not None:
                callbacks.on_file(
                    _size(settings.out_dir, rec), 0 if isinstance(result, str) else result.rows
                )

        if todo:
            with Ingester(root, opts) as ingester:
                todo = _ingest_small_files(ingester, todo, settings.out_dir, manifest, note, opts)
                for rec, result in run_on_workers(
                    todo,
                    partial(_ingest_record, out_dir=settings.out_dir),
                    make_worker=ingester.worker,
                    jobs=opts.jobs,
                ):
                    if not isinstance(result, str):
                        manifest.mark_ingested(
                            rec.domain, rec.log_name, rows=result.rows, rejects=result.rejects
                        )
                    note(rec, result)
    if keep is not None:
        removed = prune_dataset(root, keep=keep, now=now)
        summary.removed_partitions = [str(p.relative_to(root)) for p in removed]
    if settings.report_rollups:
        from cdnlogs.rollup import prepare_reports

        # The report's groups of the files written now, in one pass after them (not in the
        # fast path): the first report reads rollups like every later one.
        prepare_reports(root, settings.geoip_db, written_since=started_wall - 1.0)
    summary.seconds = time.monotonic() - started
    return summary


class IngestCallbacks(Protocol):
    """Progress of an ``ingest_archive`` run (the CLI draws a progress bar from it)."""

    def on_planned(self, files: int, nbytes: int) -> None:
        """``files`` source files of ``nbytes`` bytes (on disk) are to be ingested."""

    def on_file(self, nbytes: int, rows: int) -> None:
        """One more file is done (or failed): its size on disk and its rows."""


def _size(out_dir: Path, record: FileRecord) -> int:
    if record.local_path is None:
        return 0
    try:
        return (out_dir / record.local_path).stat().st_size
    except OSError:
        return 0


def _ingest_small_files(
    ingester: Ingester,
    todo: list[FileRecord],
    out_dir: Path,
    manifest: Manifest,
    note: Callable[[FileRecord, FileIngest | str], None],
    opts: IngestOptions,
) -> list[FileRecord]:
    """Ingest the small files of ``todo`` in batches (see ``.bulk``); return the others.

    Batches run on ``opts.jobs`` connections at once: DuckDB writes a partitioned COPY's
    small files on one thread, so a second batch in flight keeps the second core busy. The
    ledger is written here, in this thread, one transaction per batch.
    """
    if opts.anonymize_ip:  # the IPv6 map is per file in the Ingester; keep one path for it
        return todo
    small: list[tuple[FileRecord, SmallFile]] = []
    rest: list[FileRecord] = []
    for rec in todo:
        if (
            rec.local_path is not None
            and not rec.local_path.endswith(".gz")
            and 0 < _size(out_dir, rec) <= SMALL_FILE_BYTES
        ):
            item = SmallFile(
                source=out_dir / rec.local_path,
                domain=rec.domain,
                log_name=rec.log_name,
                day=partition_date(rec.log_name, rec.hour_start),
                lines=rec.plain_lines,
            )
            small.append((rec, item))
        else:
            rest.append(rec)
    if len(small) < 2:
        return todo
    records = {id(item): rec for rec, item in small}
    for _, (done, back) in run_on_workers(
        batches([item for _, item in small], parts=opts.jobs),
        _batch_or_halves,
        make_worker=ingester.worker,
        jobs=opts.jobs,
    ):
        manifest.mark_ingested_many([(i.domain, i.log_name, r.rows, r.rejects) for i, r in done])
        for item, result in done:
            note(records[id(item)], result)
        rest.extend(records[id(item)] for item in back)
    return rest


def _batch_or_halves(
    ingester: Ingester, batch: list[SmallFile]
) -> tuple[list[tuple[SmallFile, FileIngest]], list[SmallFile]]:
    """``ingest_batch``; a batch DuckDB cannot read as a whole (a carriage return, a broken
    .gz) is split in halves, down to single files, which go the per-file way."""
    if len(batch) == 1:
        return [], batch
    try:
        return ingest_batch(ingester, batch)
    except (duckdb.InvalidInputException, duckdb.IOException, duckdb.ConversionException) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        middle = len(batch) // 2
        done_a, back_a = _batch_or_halves(ingester, batch[:middle])
        done_b, back_b = _batch_or_halves(ingester, batch[middle:])
        return done_a + done_b, back_a + back_b


def remove_stale_scratch(root: Path) -> list[Path]:
    """Remove what a killed ingest left: ``.tmp/<id>/`` and ``.<name>.<id>.tmp`` files.

    Only safe under the archive lock (``ingest_archive`` holds it): no other ingest
    can be running, so every scratch file in the dataset belongs to one that died.
    """
    removed: list[Path] = []
    scratch = root / SCRATCH_DIR
    if scratch.is_dir():
        for child in scratch.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child)
    for pattern in ("domain=*/date=*/.*.tmp", f"{REJECTS_DIR}/domain=*/.*.tmp"):
        for path in root.glob(pattern):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
