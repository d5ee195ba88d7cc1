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

The working copy is the one that published. Its marker file ``.cdnlogs-published.json`` (at the
dataset root; no glob of the data matches it) lists the URLs it has published to, so a recorded
key missing locally there means the file was replaced or aged out on purpose, and its key is
deleted. A working copy without the URL in its marker while the ledger records keys there is a
new disk (a pod whose ledger came back from its snapshot, a re-created ``--out``): its missing
files were never deleted, they are simply not on this disk, and deleting their keys would wipe
the dataset on the store. :func:`restore_working_copy` downloads them first (``publish`` and
``compact`` call it), so compaction sees every file of a day and publish deletes nothing it did
not replace.

The caller holds the archive lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdnlogs.dataset import REJECTS_DIR
from cdnlogs.errors import StoreError
from cdnlogs.manifest import Manifest, PublishedFile
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.storage import fsync_dir
from cdnlogs.timeutil import parse_duration

if TYPE_CHECKING:
    from cdnlogs.config import Settings
    from cdnlogs.store import ObjectStore

log = logging.getLogger(__name__)

#: At the dataset root: the URLs this working copy has published to (see the module docstring).
MARKER_NAME = ".cdnlogs-published.json"


@dataclass
class PublishSummary:
    """The outcome of one publish."""

    url: str
    uploaded: int = 0
    uploaded_bytes: int = 0
    deleted: int = 0
    unchanged: int = 0
    #: Files downloaded into a new working copy before publishing (restore_working_copy).
    restored: int = 0
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


def _published_urls(root: Path) -> set[str]:
    try:
        data = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{root / MARKER_NAME} is unreadable ({exc}); remove it to restore"
        ) from exc
    return {str(u) for u in data.get("published_to", [])} if isinstance(data, dict) else set()


def _mark_published(root: Path, url: str) -> None:
    urls = _published_urls(root)
    if url in urls:
        return
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"published_to": sorted(urls | {url})}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=MARKER_NAME, suffix=".part", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, root / MARKER_NAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(root)


def keep_cutoff(settings: Settings, now: datetime) -> date | None:
    """The first +08:00 day ``dataset_keep`` keeps (``prune_dataset``'s rule), or None."""
    if not settings.dataset_keep:
        return None
    return (now - parse_duration(settings.dataset_keep)).astimezone(PROVIDER_TZ).date()


def _aged_out(key: str, cutoff: date | None) -> bool:
    """True for a ``domain=<d>/date=<day>/...`` key of a day before ``cutoff``."""
    parts = key.split("/")
    if cutoff is None or len(parts) < 3 or not parts[1].startswith("date="):
        return False
    try:
        return date.fromisoformat(parts[1].removeprefix("date=")) < cutoff
    except ValueError:
        return False


def restore_working_copy(
    root: Path, store: ObjectStore, manifest: Manifest, *, cutoff: date | None = None
) -> int:
    """Download the recorded keys a new working copy lacks; return how many were downloaded.

    Nothing to do when ``root`` is the working copy that published (its marker names the URL).
    Otherwise every key the ledger records under the URL and ``root`` lacks is fetched (a key
    the store does not hold is forgotten, with a warning if it was verified), recorded with
    the local file's stat so it is not uploaded again, and the URL is added to the marker.
    Days before ``cutoff`` (aged out by ``dataset_keep``) are not fetched: the publish that
    follows deletes their keys, as it would have on the disk that published them.
    """
    root = Path(root)
    url = str(store.url)
    if url in _published_urls(root):
        return 0
    recorded = manifest.published(url)
    missing = sorted(
        key for key in recorded if not (root / key).is_file() and not _aged_out(key, cutoff)
    )
    restored = 0
    if missing:
        store.check()
        log.info("%s: %d published file(s) not in %s; downloading", url, len(missing), root)
    for key in missing:
        item = recorded[key]
        stored = store.head(key)
        if stored is None:
            # An upload that never reached the store, or a key deleted behind cdnlogs' back:
            # nothing to restore or to delete.
            if item.uploaded:
                log.warning("%s is recorded as published but is not in the store", key)
            manifest.forget_published(url, [key])
            continue
        if item.uploaded and stored.size != item.size:
            raise StoreError(
                f"{store.url.url(key)} holds {stored.size} bytes, the ledger recorded {item.size}"
            )
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + target.name, suffix=".part", dir=target.parent)
        os.close(fd)
        try:
            store.get_file(key, Path(tmp))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        stat = target.stat()
        manifest.record_published(
            url, [PublishedFile(key, stat.st_size, stat.st_mtime_ns, uploaded=item.uploaded)]
        )
        restored += 1
    for directory in sorted({(root / key).parent for key in missing}):
        if directory.is_dir():
            fsync_dir(directory)
    _mark_published(root, url)
    return restored


def publish_dataset(
    root: Path, store: ObjectStore, manifest: Manifest, *, cutoff: date | None = None
) -> PublishSummary:
    """Make ``store`` hold the local dataset at ``root`` (see the module docstring); ``cutoff``
    is the first day ``dataset_keep`` keeps (for :func:`restore_working_copy`)."""
    started = time.monotonic()
    url = str(store.url)
    summary = PublishSummary(url=url)
    summary.restored = restore_working_copy(Path(root), store, manifest, cutoff=cutoff)
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
    cutoff = keep_cutoff(settings, datetime.now(UTC))
    with Manifest.open(settings.state_dir) as manifest:
        return publish_dataset(settings.dataset_dir, store, manifest, cutoff=cutoff)
