"""The SQLite ledger of every remote log file: the one module with ledger SQL.

(Interface fixed; bodies are filled in by the sync issue.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from cdnlogs.models import LogFile

MANIFEST_NAME = "manifest.sqlite3"


class Status(StrEnum):
    """Where one remote file stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    PRUNED = "pruned"
    REJECTED = "rejected"


@dataclass(frozen=True)
class FileRecord:
    """One ledger row. ``local_path`` is relative to the output directory."""

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


@dataclass(frozen=True)
class RunRecord:
    """One sync run, for `status`'s "last successful sync"."""

    domain: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    summary_json: str


class Manifest:
    """The ledger at ``state_dir/manifest.sqlite3`` (WAL, synchronous=FULL, versioned schema)."""

    @classmethod
    def open(cls, state_dir: Path, *, create: bool = True) -> Manifest:
        """Open (and with ``create``, create) the ledger; SchemaVersionError if too new."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Manifest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, domain: str, log_name: str) -> FileRecord | None:
        raise NotImplementedError

    def records(self, domain: str | None = None, status: Status | None = None) -> list[FileRecord]:
        """Rows ordered by (domain, hour_start, log_name)."""
        raise NotImplementedError

    def domains(self) -> list[str]:
        raise NotImplementedError

    def record_listed(self, files: Iterable[LogFile]) -> None:
        """Insert unseen files as pending; refresh hour/size of pending and failed rows.

        Never changes a done, pruned or rejected row.
        """
        raise NotImplementedError

    def mark_done(
        self,
        domain: str,
        log_name: str,
        *,
        sha256: str,
        plain_size: int,
        local_path: str,
        fmt: str,
    ) -> None:
        raise NotImplementedError

    def mark_failed(self, domain: str, log_name: str, error: str) -> None:
        """Record a failed attempt (attempts += 1, last_error = error)."""
        raise NotImplementedError

    def mark_rejected(self, domain: str, log_name: str, reason: str) -> None:
        raise NotImplementedError

    def mark_pruned(self, domain: str, log_name: str) -> None:
        raise NotImplementedError

    def mark_pending(self, domain: str, log_name: str, reason: str) -> None:
        """Send a done file back to pending (verify found it missing or corrupt)."""
        raise NotImplementedError

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
    ) -> bool:
        """Record a file found on disk as done; False if the ledger already knew it."""
        raise NotImplementedError

    def record_run(self, run: RunRecord) -> None:
        raise NotImplementedError

    def last_successful_run(self, domain: str) -> RunRecord | None:
        raise NotImplementedError

    def files_to_ingest(self) -> list[FileRecord]:
        """Done rows never ingested, or whose sha256 changed since they were ingested."""
        raise NotImplementedError

    def mark_ingested(self, domain: str, log_name: str, *, rows: int, rejects: int) -> None:
        """Record that the row's current file (its sha256) is in the dataset with ``rows`` rows."""
        raise NotImplementedError
