"""The library behind ``status``, ``verify``, ``prune`` and ``adopt``: numbers, no printing.

Each ``*_archive``/``adopt_files`` function takes an open :class:`~cdnlogs.manifest.Manifest`
and the output directory and returns a result dataclass the CLI renders as a table or JSON;
their caller holds the archive lock (``sync`` calls :func:`prune_archive` under its own lock
when the ``retention`` setting is set). :func:`run_verify`, :func:`run_prune` and
:func:`run_adopt` are the commands' entry points: from the settings, they take the archive lock
and open the ledger themselves, as :class:`cdnlogs.sync.SyncRun` does, so a library caller gets
the same guarantee as the CLI.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdnlogs.checksum import PlainChecksum, plain_checksum_file
from cdnlogs.errors import CdnLogsError, IncompleteDownloadError, UsageError
from cdnlogs.gzipcheck import MAX_INFLATED_BYTES, GzipStreamVerifier
from cdnlogs.linecount import LineCounter
from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import FileRecord, Manifest, Status
from cdnlogs.storage import (
    HASH_CHUNK,
    LayoutFields,
    check_domain,
    check_log_name,
    fsync_dir,
    parse_log_name,
    relative_path,
    resolve_inside,
    sha256_file,
)
from cdnlogs.timeutil import floor_hour, hours_between, iso_utc

if TYPE_CHECKING:  # s3fs is imported only when a store is opened
    from cdnlogs.config import Settings
    from cdnlogs.manifest import RunRecord
    from cdnlogs.store import ObjectStore

#: Called once per file checked, so a CLI can show progress.
ProgressCallback = Callable[[FileRecord], None]

# -- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourRange:
    """Consecutive hours ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> int:
        """How many hours the range spans."""
        return int((self.end - self.start) / timedelta(hours=1))


@dataclass
class DomainStatus:
    """One domain's line in ``cdnlogs status``."""

    domain: str
    counts: dict[Status, int]
    #: Bytes the done files take on disk, from the ledger (plain size or download size).
    bytes_stored: int
    #: Distinct hours with a done or pruned file, over the whole ledger.
    hours_covered: int
    first_hour: datetime | None
    last_hour: datetime | None
    window_start: datetime
    window_end: datetime
    #: Hours of the window with no done or pruned file, as ranges.
    gaps: list[HourRange]
    last_sync: datetime | None
    #: Done files whose verified copy is in the object store, and those only there.
    in_store: int = 0
    store_only: int = 0

    @property
    def missing_hours(self) -> int:
        """How many hours of the window have no file yet."""
        return sum(gap.hours for gap in self.gaps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: times as ISO UTC text, counts by status name."""
        return {
            "domain": self.domain,
            "counts": {status.value: self.counts.get(status, 0) for status in Status},
            "bytes": self.bytes_stored,
            "hours_covered": self.hours_covered,
            "first_hour": _iso(self.first_hour),
            "last_hour": _iso(self.last_hour),
            "missing_hours": self.missing_hours,
            "gaps": [
                {"start": _iso(g.start), "end": _iso(g.end), "hours": g.hours} for g in self.gaps
            ],
            "last_sync": _iso(self.last_sync),
            "in_store": self.in_store,
            "store_only": self.store_only,
        }


def status_to_dict(
    out_dir: Path, start: datetime, end: datetime, rows: Sequence[DomainStatus]
) -> dict[str, Any]:
    """``status --json``: the archive, the window and every domain's :class:`DomainStatus`."""
    return {
        "out": str(out_dir),
        "window": {"start": _iso(start), "end": _iso(end)},
        "domains": [d.to_dict() for d in rows],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def status_window(
    *, now: datetime, since: datetime | None, lookback: timedelta
) -> tuple[datetime, datetime]:
    """The hours status checks: from ``since`` (or now - lookback) to the last full hour."""
    end = floor_hour(now)
    start = floor_hour(since if since is not None else now - lookback)
    return min(start, end), end


#: How far a file got, for merging ledgers: the furthest state wins.
_STATUS_RANK = {Status.DONE: 4, Status.PRUNED: 3, Status.REJECTED: 2, Status.FAILED: 1}


class MergedLedgers:
    """Several ledgers (every shard's snapshot) read as one, for ``status``.

    A file in more than one (domains re-sharded, an old unsharded snapshot) counts once, with
    its furthest state: done, then pruned, rejected, failed, pending; the newest row breaks a tie.
    """

    def __init__(self, manifests: Sequence[Manifest]) -> None:
        self.manifests = list(manifests)

    def domains(self) -> list[str]:
        """Every domain of any ledger, sorted."""
        return sorted({d for m in self.manifests for d in m.domains()})

    def records(self, domain: str | None = None) -> list[FileRecord]:
        """The merged rows of ``domain`` ordered like Manifest.records."""
        best: dict[tuple[str, str], FileRecord] = {}
        for manifest in self.manifests:
            for row in manifest.records(domain=domain):
                key = (row.domain, row.log_name)
                known = best.get(key)
                if known is None or self._order(row) > self._order(known):
                    best[key] = row
        return sorted(best.values(), key=lambda r: (r.domain, r.hour_start, r.log_name))

    def _order(self, row: FileRecord) -> tuple[int, datetime]:
        return _STATUS_RANK.get(row.status, 0), row.updated_at

    def last_successful_run(self, domain: str) -> RunRecord | None:
        """The newest successful run of ``domain`` in any ledger."""
        runs = [r for m in self.manifests if (r := m.last_successful_run(domain)) is not None]
        return max(runs, key=lambda r: r.finished_at) if runs else None


def archive_status(
    manifest: Manifest | MergedLedgers,
    *,
    window_start: datetime,
    window_end: datetime,
    domains: Iterable[str] | None = None,
) -> list[DomainStatus]:
    """Per-domain counts, coverage and gaps in ``[window_start, window_end)``."""
    wanted = sorted(set(domains)) if domains else manifest.domains()
    window = hours_between(window_start, window_end)
    result = []
    for domain in wanted:
        rows = manifest.records(domain=domain)
        counts = dict.fromkeys(Status, 0)
        covered: set[datetime] = set()
        stored = in_store = store_only = 0
        for row in rows:
            counts[row.status] += 1
            if row.status in (Status.DONE, Status.PRUNED):
                covered.update(hours_between(row.hour_start, row.hour_end) or [row.hour_start])
            if row.status is Status.DONE:
                stored += _stored_bytes(row)
                in_store += row.store_url is not None
                store_only += row.store_url is not None and not row.local_copy
        last = manifest.last_successful_run(domain)
        result.append(
            DomainStatus(
                domain=domain,
                counts=counts,
                bytes_stored=stored,
                hours_covered=len(covered),
                first_hour=min(covered) if covered else None,
                last_hour=max(covered) if covered else None,
                window_start=window_start,
                window_end=window_end,
                gaps=hour_ranges(h for h in window if h not in covered),
                last_sync=last.finished_at if last else None,
                in_store=in_store,
                store_only=store_only,
            )
        )
    return result


def hour_ranges(hours: Iterable[datetime]) -> list[HourRange]:
    """Collapse hour starts into ranges of consecutive hours."""
    ranges: list[HourRange] = []
    for hour in sorted(set(hours)):
        if ranges and ranges[-1].end == hour:
            ranges[-1] = HourRange(ranges[-1].start, hour + timedelta(hours=1))
        else:
            ranges.append(HourRange(hour, hour + timedelta(hours=1)))
    return ranges


def _stored_bytes(row: FileRecord) -> int:
    if row.format == "gz":
        return row.remote_size or 0
    return row.plain_size or 0


# -- verify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One file that failed a check."""

    domain: str
    log_name: str
    local_path: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``path`` is the local path)."""
        return {
            "domain": self.domain,
            "log_name": self.log_name,
            "path": self.local_path,
            "reason": self.reason,
        }


@dataclass
class VerifyResult:
    """What ``verify`` found; ``problems`` were sent back to pending unless it was a dry run."""

    checked: int = 0
    ok: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: Files only in the object store, not checked because no store was given.
    not_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``verify --json``."""
        return {
            "checked": self.checked,
            "ok": self.ok,
            "bad": len(self.problems),
            "bytes_checked": self.bytes_checked,
            "not_checked": self.not_checked,
            "problems": [p.to_dict() for p in self.problems],
        }


def check_file(out_dir: Path, row: FileRecord) -> str | None:
    """Why a done row's file is not what the ledger says, or None if it is."""
    if row.local_path is None:
        return "the ledger has no local path"
    try:
        path = resolve_inside(out_dir, row.local_path)
    except CdnLogsError as exc:
        return f"unsafe local path: {exc}"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if not path.is_file():
        return "not a regular file"
    if row.format == "gz":
        expected_size, expected_sum = row.remote_size, row.sha256
        summer: Callable[[Path], str] = sha256_file
    else:
        expected_size, expected_sum = row.plain_size, row.plain_checksum
        summer = plain_checksum_file
    if expected_size is not None and size != expected_size:
        return f"size {size}, expected {expected_size}"
    if expected_sum is not None:
        try:
            actual = summer(path)
        except OSError as exc:
            return f"unreadable: {exc.strerror}"
        if actual != expected_sum:
            return "checksum mismatch"
    return None


def check_stored(store: ObjectStore, row: FileRecord) -> str | None:
    """Why a done row's object in the store is not what the ledger says, or None if it is.

    The object must exist with the file's size and the ETag recorded at upload (an ETag changes
    whenever the object is replaced).
    """
    assert row.store_url is not None
    relative = store.relative_of(row.store_url)
    if relative is None:
        return f"stored at {row.store_url}, outside the store {store.url}"
    stored = store.head(relative)
    if stored is None:
        return "missing from the store"
    expected = row.remote_size if row.format == "gz" else row.plain_size
    if expected is not None and stored.size != expected:
        return f"size {stored.size} in the store, expected {expected}"
    if row.store_etag is not None and stored.etag != row.store_etag:
        return "the object in the store was replaced (ETag differs)"
    return None


def verify_archive(
    manifest: Manifest,
    out_dir: Path,
    *,
    fix: bool = True,
    progress: ProgressCallback | None = None,
    store: ObjectStore | None = None,
) -> VerifyResult:
    """Re-check every done file (present, size, checksum); with ``fix``, mark bad ones pending.

    A local copy is checked as it is on disk; with ``store``, the file's object too (present,
    size, ETag). A file whose local copy was dropped is checked in the store only, and counted
    in ``not_checked`` when no store is given.
    """
    result = VerifyResult()
    for row in manifest.records(status=Status.DONE):
        if not row.local_copy and row.store_url is not None and store is None:
            result.not_checked += 1
            continue
        reason = check_file(out_dir, row) if row.local_copy else None
        if reason is None and row.store_url is not None and store is not None:
            reason = check_stored(store, row)
        result.checked += 1
        if reason is None:
            result.ok += 1
            result.bytes_checked += _stored_bytes(row)
        else:
            result.problems.append(Problem(row.domain, row.log_name, row.local_path, reason))
            if fix:
                manifest.mark_pending(row.domain, row.log_name, f"verify: {reason}")
        if progress is not None:
            progress(row)
    return result


def run_verify(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    progress: ProgressCallback | None = None,
    on_total: Callable[[int], None] | None = None,
) -> VerifyResult:
    """``verify``: :func:`verify_archive` under the archive lock, bad files marked pending.

    :param on_total: called first with the number of done files (a progress bar's total).
    :raises LockedError: another process holds the archive lock.
    :raises ManifestError: there is no ledger under ``settings.out_dir``.
    """
    with (
        ArchiveLock(settings.state_dir, purpose="verify"),
        Manifest.open(settings.state_dir, create=False) as manifest,
    ):
        if on_total is not None:
            on_total(sum(c.get(Status.DONE, 0) for c in manifest.status_counts().values()))
        return verify_archive(manifest, settings.out_dir, progress=progress, store=store)


# -- prune --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunedFile:
    """One file prune removed (or would remove)."""

    domain: str
    log_name: str
    local_path: str | None
    hour_end: datetime
    bytes: int


@dataclass
class PruneResult:
    """What ``prune`` did; with ``dry_run`` nothing was touched."""

    cutoff: datetime
    dry_run: bool
    files: list[PrunedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Bytes freed (or that would be freed)."""
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """``prune --json``."""
        return {
            "dry_run": self.dry_run,
            "cutoff": _iso(self.cutoff),
            "files": len(self.files),
            "bytes": self.bytes,
            "pruned": [
                {
                    "domain": f.domain,
                    "log_name": f.log_name,
                    "path": f.local_path,
                    "hour_end": _iso(f.hour_end),
                    "bytes": f.bytes,
                }
                for f in self.files
            ],
            "problems": [p.to_dict() for p in self.problems],
        }


def prune_archive(
    manifest: Manifest,
    out_dir: Path,
    keep: timedelta,
    now: datetime,
    dry_run: bool = False,
    *,
    store: ObjectStore | None = None,
) -> PruneResult:
    """Delete done files whose log hour ended before ``now - keep``; their rows become pruned.

    Selection is by the hour the log covers, never by file mtime, and only files the ledger
    knows are touched. The file is deleted first (its object in ``store``, then its local
    copy) and the row marked after: a crash in between leaves a done row without a file, which
    ``verify`` repairs, never an unknown file. A stored file is left alone (a problem) when no
    store, or another one, is given: pruning only its local copy would orphan the object.
    """
    if keep <= timedelta(0):
        raise UsageError("--keep must be a positive duration such as 7d")
    cutoff = now - keep
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    root = out_dir.resolve()
    for row in manifest.records(status=Status.DONE):
        if row.hour_end >= cutoff:
            continue
        path: Path | None = None
        size = 0
        remote: str | None = None
        if row.store_url is not None:
            remote = store.relative_of(row.store_url) if store is not None else None
            if remote is None:
                where = f"the store {store.url}" if store is not None else "no store (--store)"
                result.problems.append(
                    Problem(
                        row.domain,
                        row.log_name,
                        row.store_url,
                        f"stored at {row.store_url}, but prune was given {where}",
                    )
                )
                continue
            size = _stored_bytes(row)
        if row.local_path is not None and row.local_copy:
            try:
                path = resolve_inside(out_dir, row.local_path)
            except CdnLogsError as exc:
                # Never delete what the ledger cannot place inside --out.
                result.problems.append(Problem(row.domain, row.log_name, row.local_path, str(exc)))
                continue
            with contextlib.suppress(OSError):
                size = path.stat().st_size
        result.files.append(
            PrunedFile(
                row.domain, row.log_name, row.store_url or row.local_path, row.hour_end, size
            )
        )
        if dry_run:
            continue
        if remote is not None:
            assert store is not None
            try:
                store.delete(remote)
            except CdnLogsError as exc:
                result.files.pop()
                result.problems.append(
                    Problem(row.domain, row.log_name, row.store_url, f"cannot delete: {exc}")
                )
                continue
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                result.files.pop()
                result.problems.append(
                    Problem(row.domain, row.log_name, row.local_path, f"cannot delete: {exc}")
                )
                continue
            fsync_dir(path.parent)
            _remove_empty_parents(path.parent, root)
        manifest.mark_pruned(row.domain, row.log_name)
    return result


def _remove_empty_parents(directory: Path, root: Path) -> None:
    """Remove now-empty layout directories up to (not including) the archive root."""
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def run_prune(
    settings: Settings,
    keep: timedelta,
    *,
    now: datetime,
    dry_run: bool = False,
    store: ObjectStore | None = None,
) -> PruneResult:
    """``prune``: :func:`prune_archive` under the archive lock.

    With a ``store``, the ledger's snapshot is uploaded again after a prune that deleted
    something, so ``status --from-store`` and a new disk see the files as pruned.

    :raises LockedError: another process holds the archive lock.
    :raises ManifestError: there is no ledger under ``settings.out_dir``.
    """
    with (
        ArchiveLock(settings.state_dir, purpose="prune"),
        Manifest.open(settings.state_dir, create=False) as manifest,
    ):
        result = prune_archive(manifest, settings.out_dir, keep, now, dry_run, store=store)
        if store is not None and not dry_run and result.files:
            from cdnlogs.shard import resolve_shard
            from cdnlogs.upload import upload_snapshot

            upload_snapshot(manifest, store, resolve_shard(settings))
        return result


# -- adopt --------------------------------------------------------------------------------

#: Local file extensions adopt understands, and the format each one is.
ADOPT_EXTENSIONS = {".txt": "log", ".log": "log", ".gz": "gz"}


@dataclass(frozen=True)
class AdoptedFile:
    """One file adopt recorded."""

    domain: str
    log_name: str
    source: Path
    local_path: str
    format: str
    action: str  # "recorded" in place, "copied" or "moved"


@dataclass
class AdoptResult:
    """What ``adopt`` did with every file under the source directory."""

    adopted: list[AdoptedFile] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    unrecognised: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``adopt --json``."""
        return {
            "adopted": len(self.adopted),
            "skipped": len(self.skipped),
            "unrecognised": len(self.unrecognised),
            "files": [
                {
                    "domain": a.domain,
                    "log_name": a.log_name,
                    "source": str(a.source),
                    "path": a.local_path,
                    "format": a.format,
                    "action": a.action,
                }
                for a in self.adopted
            ],
            "skipped_files": [{"source": str(p), "reason": r} for p, r in self.skipped],
            "unrecognised_files": [str(p) for p in self.unrecognised],
        }


def adopt_files(
    manifest: Manifest,
    source: Path,
    out_dir: Path,
    *,
    layout: str,
    domains: Iterable[str] | None = None,
    move: bool = False,
    max_inflated_bytes: int = MAX_INFLATED_BYTES,
) -> AdoptResult:
    """Record files already on disk as done so sync never fetches them again.

    Understands the old script's ``download/<LogName minus .gz>.txt`` and ``.log``/``.gz`` files
    named like LogNames, anywhere under ``source``. A file already inside ``out_dir`` is
    recorded where it is; any other is copied (or with ``move``, moved) into ``out_dir``'s
    layout, keeping its format (text stays text, gzip stays gzip). A ``.gz`` file must pass
    the checks sync's downloads pass (``cdnlogs.gzipcheck``, with ``max_inflated_bytes`` as
    the inflate cap), or it is skipped with the reason sync would give.
    """
    wanted = set(domains) if domains else None
    root = out_dir.resolve()
    result = AdoptResult()
    for path in _scan(source, skip=root / ".cdnlogs"):
        named = _log_name_for(path)
        if named is None:
            result.unrecognised.append(path)
            continue
        log_name, fmt = named
        parsed = parse_log_name(log_name)
        if parsed is None:
            result.unrecognised.append(path)
            continue
        try:
            check_domain(parsed.domain)
        except CdnLogsError:
            result.unrecognised.append(path)
            continue
        if wanted is not None and parsed.domain not in wanted:
            result.skipped.append((path, f"domain {parsed.domain} not selected"))
            continue
        known = manifest.get(parsed.domain, log_name)
        if known is not None and known.status not in (Status.PENDING, Status.FAILED):
            result.skipped.append((path, f"already in the ledger ({known.status})"))
            continue
        try:
            adopted = _adopt_one(
                path,
                log_name,
                fmt,
                parsed.domain,
                parsed.start,
                root,
                layout,
                move,
                max_inflated_bytes,
            )
        except _Skip as skip:
            result.skipped.append((path, str(skip)))
            continue
        sums = adopted.sums
        manifest.record_adopted(
            parsed.domain,
            log_name,
            hour_start=parsed.start,
            hour_end=parsed.end,
            sha256=sums.sha256,
            plain_size=sums.plain_size,
            plain_checksum=sums.plain_checksum,
            lines=sums.plain_lines,
            local_path=adopted.local_path,
            fmt=fmt,
        )
        result.adopted.append(
            AdoptedFile(
                parsed.domain,
                log_name,
                path,
                adopted.local_path,
                fmt,
                adopted.action,
            )
        )
    return result


def run_adopt(
    settings: Settings,
    source: Path,
    *,
    domains: Iterable[str] | None = None,
    move: bool = False,
) -> AdoptResult:
    """``adopt``: :func:`adopt_files` into ``settings.out_dir`` under the archive lock.

    :raises LockedError: another process holds the archive lock.
    """
    with (
        ArchiveLock(settings.state_dir, purpose="adopt"),
        Manifest.open(settings.state_dir) as manifest,
    ):
        return adopt_files(
            manifest, source, settings.out_dir, layout=settings.layout, domains=domains, move=move
        )


class _Skip(Exception):
    """A file adopt leaves alone, with the reason."""


@dataclass(frozen=True)
class _Sums:
    sha256: str
    plain_size: int
    plain_checksum: str
    #: Lines of the text, for the ingest's check (as sync records them).
    plain_lines: int


@dataclass(frozen=True)
class _Placed:
    local_path: str
    action: str
    sums: _Sums


def _scan(source: Path, *, skip: Path) -> Iterator[Path]:
    if not source.is_dir():
        raise UsageError(f"{source} is not a directory")
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        # Hidden entries are never logs (the old script's `.download` list, our `.cdnlogs`).
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() != skip
        )
        for name in sorted(filenames):
            path = here / name
            if not name.startswith(".") and ".part" not in name and not path.is_symlink():
                yield path


def _log_name_for(path: Path) -> tuple[str, str] | None:
    """The LogName a local file stands for, and its format; None if it is not a log file.

    ``x_000000_010000.log`` (or the old script's ``.txt``) stands for ``x_000000_010000.gz``.
    A LogName with a tag after ``.gz`` (``x_000000_020000.gz.ab12``) is stored by sync as
    ``x_000000_020000.ab12.log`` (or ``.ab12.gz``), so that form maps back to the tagged name.
    """
    name = path.name
    for ext, fmt in ADOPT_EXTENSIONS.items():
        if not (name.endswith(ext) and len(name) > len(ext)):
            continue
        base = name[: -len(ext)]
        candidates = [name if ext == ".gz" else base + ".gz"]
        stem, dot, tag = base.rpartition(".")
        if dot and stem and _TAG_RE.fullmatch(tag):
            candidates.append(f"{stem}.gz.{tag}")
        for log_name in candidates:
            try:
                checked = check_log_name(log_name)
            except CdnLogsError:
                continue
            if parse_log_name(checked) is not None:
                return checked, fmt
        return None
    return None


_TAG_RE = re.compile(r"[A-Za-z0-9]{1,32}")


def _adopt_one(
    path: Path,
    log_name: str,
    fmt: str,
    domain: str,
    start: datetime,
    root: Path,
    layout: str,
    move: bool,
    max_inflated: int,
) -> _Placed:
    sums = _checksums(path, fmt, max_inflated)
    resolved = path.resolve()
    if resolved.is_relative_to(root):
        return _Placed(resolved.relative_to(root).as_posix(), "recorded", sums)
    rel = relative_path(layout, LayoutFields(domain, log_name, start), fmt)
    dest = resolve_inside(root, rel)
    if dest.exists():
        if _checksums(dest, fmt, max_inflated) != sums:
            raise _Skip(f"a different file is already at {rel}")
        if move:
            path.unlink()
        return _Placed(rel.as_posix(), "recorded", sums)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if move:
        try:
            os.replace(path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_durably(path, dest)
            path.unlink()
    else:
        _copy_durably(path, dest)
    fsync_dir(dest.parent)
    return _Placed(rel.as_posix(), "moved" if move else "copied", sums)


def _copy_durably(src: Path, dest: Path) -> None:
    """Copy to a temp file beside ``dest``, fsync, then rename: never a half file at ``dest``."""
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, HASH_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _checksums(path: Path, fmt: str, max_inflated: int = MAX_INFLATED_BYTES) -> _Sums:
    """sha256 of the file, and the size, checksum and lines of its text, in one read.

    A gzip file must pass ``cdnlogs.gzipcheck`` (at most ``max_inflated`` plain bytes).
    """
    if fmt != "gz":
        # No gzip bytes survive for a plain file: its own sha256 stands in for the download's.
        digest, checksum, lines = hashlib.sha256(), PlainChecksum(), LineCounter()
        size = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
                checksum.update(chunk)
                lines.feed(chunk)
                size += len(chunk)
        return _Sums(digest.hexdigest(), size, checksum.hexdigest(), lines.result())
    raw, plain, lines = hashlib.sha256(), PlainChecksum(), LineCounter()
    # sync's verifier, so adopt accepts and refuses exactly the .gz files sync does.
    verifier = GzipStreamVerifier(max_inflated=max_inflated)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                raw.update(chunk)
                for out in verifier.feed(chunk):
                    plain.update(out)
                    lines.feed(out)
        verifier.finish()
    except IncompleteDownloadError as exc:
        raise _Skip(str(exc)) from None
    size = verifier.inflated
    return _Sums(raw.hexdigest(), size, plain.hexdigest(), lines.result())
