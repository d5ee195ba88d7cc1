"""Publish the local dataset to its ``s3://`` URL: upload what changed, delete what was replaced.

Ingest (and compaction, and dataset retention) work on the local dataset, the working copy;
``publish_dataset`` then makes the store hold the same files under the same relative keys
(``domain=<d>/date=<day>/<name>.parquet``, ``_rejects/domain=<d>/<stem>.parquet``), which are
deterministic, so a rerun after any failure puts the same keys again.

Order, so that cdnlogs' readers (``datafiles.choose_files``) stay exact on the store at every
moment: every new or changed file is uploaded first (a compacted generation counts only once
all its parts are listed), and only then are the keys deleted whose local file is gone (the
per-source files a compaction replaced, superseded generations, days aged out by ``--keep``).
Engines that only glob may count a compacted day twice between the two steps (see
docs/engines.md).

Ledger: each key is recorded before its upload (``uploaded = 0``) and again once the store has
verified the bytes (``uploaded = 1``), so a crash at any point leaves nothing recorded as
published that is not stored, and no key this worker put is forgotten: a key recorded but not
verified is uploaded again if its file is still local, and deleted otherwise. Only keys in this
ledger are ever deleted, so shards publishing their own domains to one dataset URL never touch
each other's files (each key has exactly one writer).

The caller holds the archive lock.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdnlogs.dataset import REJECTS_DIR
from cdnlogs.manifest import Manifest, PublishedFile

if TYPE_CHECKING:
    from cdnlogs.config import Settings
    from cdnlogs.store import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class PublishSummary:
    """The outcome of one publish."""

    url: str
    uploaded: int = 0
    uploaded_bytes: int = 0
    deleted: int = 0
    unchanged: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def local_files(root: Path) -> dict[str, PublishedFile]:
    """The dataset's data and rejects files under ``root``, by key relative to it."""
    found: dict[str, PublishedFile] = {}
    for pattern in ("domain=*/date=*/*.parquet", f"{REJECTS_DIR}/domain=*/*.parquet"):
        for path in root.glob(pattern):
            if path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            key = path.relative_to(root).as_posix()
            found[key] = PublishedFile(key, stat.st_size, stat.st_mtime_ns)
    return found


def publish_dataset(root: Path, store: ObjectStore, manifest: Manifest) -> PublishSummary:
    """Make ``store`` hold the local dataset at ``root`` (see the module docstring)."""
    started = time.monotonic()
    url = str(store.url)
    summary = PublishSummary(url=url)
    local = local_files(Path(root))
    recorded = manifest.published(url)
    todo = [
        f
        for key, f in sorted(local.items())
        if (r := recorded.get(key)) is None
        or not r.uploaded
        or (r.size, r.mtime_ns) != (f.size, f.mtime_ns)
    ]
    summary.unchanged = len(local) - len(todo)
    if todo:
        store.check()  # a missing bucket or denied access fails once, before any intent
        manifest.record_published(
            url, [PublishedFile(f.key, f.size, f.mtime_ns, uploaded=False) for f in todo]
        )
    for item in todo:
        store.put_file(Path(root) / item.key, item.key)
        manifest.record_published(url, [item])
        summary.uploaded += 1
        summary.uploaded_bytes += item.size
    gone = sorted(key for key in recorded if key not in local)
    for key in gone:
        store.delete(key)
    if gone:
        manifest.forget_published(url, gone)
    summary.deleted = len(gone)
    summary.seconds = time.monotonic() - started
    log.info("published %s: %d uploaded, %d deleted", url, summary.uploaded, summary.deleted)
    return summary


def publish_archive_dataset(settings: Settings) -> PublishSummary | None:
    """Publish ``settings``' local dataset to its ``s3://`` URL, if it has one."""
    url = settings.dataset_url
    if url is None:
        return None
    from cdnlogs.store import open_store

    store = open_store(settings, url)
    with Manifest.open(settings.state_dir) as manifest:
        return publish_dataset(settings.dataset_dir, store, manifest)
