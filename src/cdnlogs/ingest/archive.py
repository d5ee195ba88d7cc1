"""Ingest the whole archive: every downloaded file the ledger says is not in the dataset."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cdnlogs.config import Settings
from cdnlogs.dataset import partition_date, partition_dir, prune_dataset, source_stem
from cdnlogs.errors import CdnLogsError, is_interrupt
from cdnlogs.ingest.ingester import FileIngest, Ingester, IngestOptions
from cdnlogs.ingest.workers import run_on_workers
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.timeutil import parse_duration

if TYPE_CHECKING:
    from datetime import datetime

    from cdnlogs.manifest import FileRecord


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
            parquet = (
                partition_dir(root, record.domain, day) / f"{source_stem(record.log_name)}.parquet"
            )
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
