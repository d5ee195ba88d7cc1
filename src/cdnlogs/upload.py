"""The store side of a sync (``--store``): uploads, local copies, ledger snapshots.

The ledger, the lock and the staging area (the archive directory) stay local. A downloaded file
is verified in place first (:mod:`cdnlogs.transfer`), then :class:`Uploader` puts it to its
deterministic key (``prefix/<layout path>``) and verifies the object
(:meth:`cdnlogs.store.ObjectStore.put_file`); only then does ``sync`` record the row ``done``
with its ``store_url``. A crash between the upload and the record leaves a pending row and an
object the next run overwrites with the same bytes: nothing counted that is not stored, nothing
doubled.

After each run the ledger is copied (SQLite's online backup) to
``prefix/.cdnlogs/ledgers/<shard>.sqlite3``: each shard writes only its own key. ``status
--from-store`` reads them all; a worker whose disk is new (a Kubernetes pod) restores its
shard's ledger from there before its first run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cdnlogs.errors import CdnLogsError, StoreError
from cdnlogs.manifest import MANIFEST_NAME, FileRecord, Manifest, Status
from cdnlogs.shard import Shard
from cdnlogs.storage import fsync_dir, resolve_inside
from cdnlogs.store import ObjectStore, StoredObject

if TYPE_CHECKING:
    from cdnlogs.config import Settings

log = logging.getLogger(__name__)

#: Where ledger snapshots live under the store prefix (mirrors ``OUT/.cdnlogs``).
LEDGERS_DIR = ".cdnlogs/ledgers"
#: The snapshot name of an unsharded run.
UNSHARDED = "all"


@dataclass(frozen=True)
class UploadResult:
    """One upload: the caller's tag, and the verified object or why it failed."""

    tag: Any
    relative: PurePosixPath
    stored: StoredObject | None = None
    error: CdnLogsError | None = None

    @property
    def ok(self) -> bool:
        """True when the object is in the store and verified."""
        return self.error is None


class Uploader:
    """Upload files on a bounded thread pool; results come back to the calling thread.

    ``submit`` blocks while ``workers * 2`` uploads are in flight (the local staging area holds
    the files meanwhile), and returns the results that completed; ``drain`` waits for the rest.
    """

    def __init__(self, store: ObjectStore, workers: int) -> None:
        self.store = store
        self._limit = max(workers, 1) * 2
        self._pool = ThreadPoolExecutor(
            max_workers=max(workers, 1), thread_name_prefix="cdnlogs-up"
        )
        self._pending: set[Future[UploadResult]] = set()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc: object) -> None:
        # On an error or Ctrl-C the queued uploads are dropped; their rows stay pending.
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _put(self, local: Path, relative: PurePosixPath, tag: Any) -> UploadResult:
        try:
            return UploadResult(tag, relative, stored=self.store.put_file(local, relative))
        except CdnLogsError as exc:
            return UploadResult(tag, relative, error=exc)
        except OSError as exc:  # the local file vanished or cannot be read
            error = StoreError(f"cannot upload {relative}: {exc.strerror or exc}")
            return UploadResult(tag, relative, error=error)

    def submit(self, local: Path, relative: PurePosixPath, tag: Any) -> list[UploadResult]:
        """Queue one upload; return the uploads that finished meanwhile."""
        self._pending.add(self._pool.submit(self._put, local, relative, tag))
        finished: list[UploadResult] = []
        while len(self._pending) >= self._limit:
            done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
            finished += [f.result() for f in done]
        done = {f for f in self._pending if f.done()}
        self._pending -= done
        return finished + [f.result() for f in done]

    def drain(self) -> Iterator[UploadResult]:
        """Every upload still in flight, as each completes."""
        while self._pending:
            done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


# -- rows done before the store was configured ------------------------------------------------


def upload_unstored(
    manifest: Manifest,
    store: ObjectStore,
    out_dir: Path,
    domains: list[str],
    *,
    workers: int,
    check: Callable[[Path, FileRecord], str | None],
) -> tuple[list[FileRecord], list[tuple[FileRecord, str]]]:
    """Upload done files that have a local copy but no object yet (an archive given --store).

    ``check`` re-verifies the local file first (``housekeeping.check_file``): a bad one goes
    back to pending. Returns the rows uploaded and the (row, reason) of those that were not.
    """
    rows = [
        r
        for d in domains
        for r in manifest.records(domain=d, status=Status.DONE)
        if r.store_url is None and r.local_copy
    ]
    problems: list[tuple[FileRecord, str]] = []
    uploaded: list[FileRecord] = []

    def record(result: UploadResult) -> None:
        row: FileRecord = result.tag
        if result.stored is None:
            problems.append((row, str(result.error)))
            return
        manifest.mark_stored(
            row.domain, row.log_name, store_url=result.stored.url, store_etag=result.stored.etag
        )
        uploaded.append(row)

    with Uploader(store, workers) as uploader:
        for row in rows:
            assert row.local_path is not None
            reason = check(out_dir, row)
            if reason is not None:
                manifest.mark_pending(row.domain, row.log_name, f"before upload: {reason}")
                problems.append((row, reason))
                continue
            path = resolve_inside(out_dir, row.local_path)
            for result in uploader.submit(path, PurePosixPath(row.local_path), row):
                record(result)
        for result in uploader.drain():
            record(result)
    return uploaded, problems


# -- local copies ----------------------------------------------------------------------------


def drop_local_copies(
    manifest: Manifest,
    out_dir: Path,
    *,
    domains: list[str] | None = None,
    only_ingested: bool = False,
) -> int:
    """Delete the local copy of every done file the store holds; return how many were deleted.

    The row is marked first and the file deleted after: a crash in between leaves a file the
    ledger calls dropped (harmless; the next drop pass does not see it), never a row that
    expects a local file which is gone. With ``only_ingested``, files not yet in the dataset
    keep their copy (``sync --ingest`` drops after the ingest).
    """
    chosen: list[tuple[FileRecord, Path]] = []
    for domain in domains if domains is not None else manifest.domains():
        for row in manifest.records(domain=domain, status=Status.DONE):
            if row.store_url is None or not row.local_copy:
                continue
            if only_ingested and row.ingested_sha256 != row.sha256:
                continue
            assert row.local_path is not None
            try:
                chosen.append((row, resolve_inside(out_dir, row.local_path)))
            except CdnLogsError as exc:
                log.warning("not dropping %s: %s", row.local_path, exc)
    # One transaction for the rows, then the files, then each directory fsynced once.
    manifest.mark_local_dropped_many((row.domain, row.log_name) for row, _ in chosen)
    directories: set[Path] = set()
    for _row, path in chosen:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            directories.add(path.parent)
    for directory in sorted(directories):
        fsync_dir(directory)
    return len(chosen)


# -- ledger snapshots ------------------------------------------------------------------------


def snapshot_key(shard: Shard | None) -> str:
    """The snapshot's key under the store prefix, e.g. ``.cdnlogs/ledgers/shard-0-of-4.sqlite3``."""
    return f"{LEDGERS_DIR}/{shard.name if shard else UNSHARDED}.sqlite3"


def upload_snapshot(manifest: Manifest, store: ObjectStore, shard: Shard | None) -> StoredObject:
    """Copy the ledger as it is now to the shard's snapshot key (this shard is its one writer)."""
    with tempfile.TemporaryDirectory(prefix="cdnlogs-ledger-") as tmp:
        copy = Path(tmp) / MANIFEST_NAME
        manifest.snapshot(copy)
        return store.put_file(copy, snapshot_key(shard))


def refresh_snapshot(settings: Settings) -> StoredObject:
    """Upload the shard's snapshot again after work that followed the sync (``sync --ingest``:
    ingest, compaction, publish, dropped copies), so a new disk restores all of it."""
    from cdnlogs.shard import resolve_shard
    from cdnlogs.store import open_store

    store = open_store(settings)
    with Manifest.open(settings.state_dir, create=False) as manifest:
        return upload_snapshot(manifest, store, resolve_shard(settings))


def restore_snapshot(
    store: ObjectStore, state_dir: Path, out_dir: Path, shard: Shard | None
) -> bool:
    """Put the shard's snapshot in place as the local ledger when there is none; True if done.

    Its rows' local copies are not on this disk: they are marked dropped, so ``verify`` and
    ``prune`` look at the store for them.
    """
    if (state_dir / MANIFEST_NAME).exists() or store.head(snapshot_key(shard)) is None:
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=MANIFEST_NAME + ".", suffix=".part", dir=state_dir)
    os.close(fd)
    try:
        store.get_file(snapshot_key(shard), Path(tmp))
        os.replace(tmp, state_dir / MANIFEST_NAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(state_dir)
    with Manifest.open(state_dir, create=False) as manifest:
        manifest.mark_local_dropped_many(
            (row.domain, row.log_name)
            for row in manifest.records(status=Status.DONE)
            if row.local_copy
            and row.store_url is not None
            and not (out_dir / str(row.local_path)).exists()
        )
    log.info("restored the ledger from %s", store.url.url(snapshot_key(shard)))
    return True


def fetch_snapshots(store: ObjectStore, directory: Path) -> list[tuple[str, Path]]:
    """Download every shard's snapshot into ``directory``; (name, local ledger dir) each."""
    found: list[tuple[str, Path]] = []
    base = store.url.key(LEDGERS_DIR) + "/"
    for obj in store.list(LEDGERS_DIR):
        name = obj.key[len(base) :]
        if "/" in name or not name.endswith(".sqlite3"):
            continue
        label = name.removesuffix(".sqlite3")
        target = directory / label
        target.mkdir(parents=True)
        store.get_file(f"{LEDGERS_DIR}/{name}", target / MANIFEST_NAME)
        found.append((label, target))
    return found
