"""One sync run: list -> plan -> transfer -> record. The one module composing those parts.

[s3transfer manager] Under the archive lock, for the window ``[since, until)``:

1. every domain's window is listed again (logs arrive late; an hour can be split) and every
   listed file is recorded in the ledger (``record_listed``) before anything is downloaded;
2. :func:`cdnlogs.plan.plan_fetches` picks what the ledger lacks (pending/failed/new) and
   rejects unsafe names, which are recorded as ``rejected`` with a warning;
3. one :class:`~cdnlogs.transfer.Downloader` fetches every task of every domain on one bounded
   pool; each verified file is in place (fsynced, renamed) before its row becomes ``done``;
   a failure becomes ``failed`` with its reason and the run goes on;
4. files whose signed URL expired (403 / ``Expires=`` past) make their domain re-list its
   window once, and are retried with the fresh URLs;
5. ``retention`` prunes old files, and one run row per domain is recorded.

With a store (``--store s3://bucket/prefix``, :mod:`cdnlogs.upload`), a file verified in place
is uploaded to ``prefix/<layout path>`` and verified there before its row becomes ``done`` (with
its ``store_url``); done files without an object yet are uploaded too; local copies may then be
dropped, and a snapshot of the ledger goes to the store after the run. With a shard
(``--shard K/N``, :mod:`cdnlogs.shard`) only the domains of that shard are synced.

The result is a :class:`SyncSummary`; the CLI prints it and turns failures into exit 5.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import requests

from cdnlogs import timeutil
from cdnlogs.config import Settings
from cdnlogs.errors import CdnLogsError, ConfigError, UnsafeNameError, UrlExpiredError, UsageError
from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import Manifest, RunRecord
from cdnlogs.models import Listing
from cdnlogs.plan import FetchTask, Plan, plan_fetches
from cdnlogs.providers.base import Provider
from cdnlogs.redact import redact_text
from cdnlogs.shard import Shard, resolve_shard, shard_settings
from cdnlogs.storage import FORMATS, make_directory, resolve_inside, validate_layout
from cdnlogs.store import ObjectStore, StoredObject
from cdnlogs.timeutil import iso_utc, parse_duration
from cdnlogs.transfer import (
    DEFAULT_RETRY_POLICY,
    Downloader,
    DownloadResult,
    DownloadTask,
    NullCallbacks,
    TransferConfig,
    make_session,
)

if TYPE_CHECKING:  # duckdb is imported only when an ingest runs
    from cdnlogs.ingest import IngestRun, IngestSummary
    from cdnlogs.ingest.archive import IngestCallbacks

log = logging.getLogger(__name__)


class SyncCallbacks(Protocol):
    """Progress subscriber of a whole sync: transfer events plus what each domain will fetch."""

    def on_planned(self, domain: str, files: int, nbytes: int) -> None:
        """``domain`` will fetch ``files`` files totalling ``nbytes`` listed bytes."""

    def on_queued(self, task: DownloadTask) -> None:
        """See :class:`cdnlogs.transfer.TransferCallbacks`."""

    def on_progress(self, task: DownloadTask, nbytes: int) -> None:
        """See :class:`cdnlogs.transfer.TransferCallbacks`."""

    def on_done(self, result: DownloadResult) -> None:
        """See :class:`cdnlogs.transfer.TransferCallbacks`."""


class NullSyncCallbacks(NullCallbacks):
    """Ignores every event."""

    def on_planned(self, domain: str, files: int, nbytes: int) -> None:
        """Ignore."""


@dataclass
class FileProblem:
    """A file that failed or was rejected, and why (never a URL's query string)."""

    domain: str
    name: str
    reason: str


@dataclass
class DomainSummary:
    """What one domain's sync did."""

    domain: str
    listed: int = 0
    fetched: int = 0
    skipped: int = 0
    failed: list[FileProblem] = field(default_factory=list)
    rejected: list[FileProblem] = field(default_factory=list)
    #: Gzip bytes received and plain bytes written by this run.
    bytes: int = 0
    plain_bytes: int = 0
    #: The window start asked for, when the provider moved it forward.
    clamped_from: str | None = None
    relisted: bool = False
    #: Files put to the store by this run (new downloads and earlier done files).
    uploaded: int = 0

    @property
    def ok(self) -> bool:
        """True when every fetchable listed file is in place."""
        return not self.failed


@dataclass
class SyncSummary:
    """What a whole sync run did: the numbers `--json` prints."""

    out_dir: str
    start: str
    end: str
    format: str
    domains: list[DomainSummary] = field(default_factory=list)
    pruned: int = 0
    seconds: float = 0.0
    #: The store URL, the shard (``K/N``), and the ledger snapshot's URL or why it failed.
    store: str | None = None
    shard: str | None = None
    snapshot: str | None = None
    snapshot_error: str | None = None
    #: Local copies deleted after their upload (``store_drop_local``).
    dropped_local: int = 0

    @property
    def ok(self) -> bool:
        """True when no file failed (rejected names are reported but do not fail the run)."""
        return all(d.ok for d in self.domains) and self.snapshot_error is None

    def total(self, name: str) -> int:
        """Sum of an integer field (``listed``, ``fetched``, ``skipped``, ``bytes``...)."""
        return sum(int(getattr(d, name)) for d in self.domains)

    @property
    def failed(self) -> list[FileProblem]:
        """Every failed file of every domain."""
        return [p for d in self.domains for p in d.failed]

    @property
    def rejected(self) -> list[FileProblem]:
        """Every rejected file of every domain."""
        return [p for d in self.domains for p in d.rejected]

    def to_dict(self, ingested: IngestSummary | None = None) -> dict[str, Any]:
        """The JSON summary: totals first, then per-domain details, then ``ingested``'s.

        ``sync --json`` and each ``watch --json`` tick print this (with ``--ingest``, the
        ingest that followed as ``ingest``).
        """
        data = {
            "ok": self.ok,
            "out": self.out_dir,
            "start": self.start,
            "end": self.end,
            "format": self.format,
            "listed": self.total("listed"),
            "fetched": self.total("fetched"),
            "skipped": self.total("skipped"),
            "failed": [asdict(p) for p in self.failed],
            "rejected": [asdict(p) for p in self.rejected],
            "bytes": self.total("bytes"),
            "plain_bytes": self.total("plain_bytes"),
            "pruned": self.pruned,
            "seconds": round(self.seconds, 3),
            "store": self.store,
            "shard": self.shard,
            "uploaded": self.total("uploaded"),
            "dropped_local": self.dropped_local,
            "snapshot": self.snapshot,
            "snapshot_error": self.snapshot_error,
            "domains": [
                {
                    "domain": d.domain,
                    "ok": d.ok,
                    "listed": d.listed,
                    "fetched": d.fetched,
                    "skipped": d.skipped,
                    "failed": len(d.failed),
                    "rejected": len(d.rejected),
                    "bytes": d.bytes,
                    "plain_bytes": d.plain_bytes,
                    "clamped_from": d.clamped_from,
                    "relisted": d.relisted,
                    "uploaded": d.uploaded,
                }
                for d in self.domains
            ],
        }
        if ingested is not None:
            data["ingest"] = ingested.to_dict()
        return data


def resolve_window(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """``sync``'s ``[since, until)``: the look-back up to ``now`` by default.

    See :func:`cdnlogs.timeutil.resolve_window` (the one rule every command's window follows).
    """
    return timeutil.resolve_window(
        settings.since, settings.until, now=now, default=parse_duration(settings.lookback)
    )


def transfer_config(settings: Settings) -> TransferConfig:
    """The downloader's tunables from the settings (concurrency, timeouts, attempts, pace)."""
    return TransferConfig(
        max_workers=settings.concurrency,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        read_timeout_seconds=settings.read_timeout_seconds,
        # The downloader's backoff, with the attempts the settings give.
        retry=replace(DEFAULT_RETRY_POLICY, attempts=settings.download_attempts),
        min_speed_bytes_per_second=settings.download_min_speed_bytes_per_second,
        min_speed_seconds=settings.download_min_speed_seconds,
        max_attempt_seconds=settings.download_max_seconds,
    )


def check_settings(settings: Settings) -> None:
    """Refuse settings a sync cannot use before taking the lock (ConfigError / UsageError)."""
    if settings.format not in FORMATS:
        raise ConfigError(
            f"unknown format {settings.format!r}", hint="use one of: " + ", ".join(FORMATS)
        )
    validate_layout(settings.layout)
    if settings.concurrency < 1:
        raise UsageError(f"concurrency must be at least 1, not {settings.concurrency}")
    if settings.retention:
        parse_duration(settings.retention)


def select_domains(settings: Settings, provider: Provider, shard: Shard | None = None) -> list[str]:
    """The domains to sync: ``--domain`` values, or every domain with ``--all-domains``.

    With a shard, only those of the selection that the shard owns (possibly none).
    """
    names = list(dict.fromkeys(settings.domains))
    if settings.all_domains:
        names += [d.name for d in provider.list_domains() if d.name not in names]
    if not names:
        raise ConfigError(
            "no domain to sync",
            hint="pass --domain NAME (repeatable) or --all-domains, or set `domains` in the "
            "config file",
        )
    if shard is None:
        return names
    mine = shard.select(names)
    log.info("shard %s takes %d of %d domains", shard, len(mine), len(names))
    return mine


@dataclass
class _DomainState:
    summary: DomainSummary
    listing: Listing
    plan: Plan
    expired: list[str] = field(default_factory=list)


class SyncRun:
    """One sync over an archive; build it, then call :meth:`run` once.

    :param settings: the loaded settings (window, domains, out dir, format, layout, ...).
    :param provider: where listings come from (e.g. :func:`make_sync_provider`).
    :param session: HTTP session for downloads (default :func:`~cdnlogs.transfer.make_session`).
    :param config: downloader tunables (default from the settings).
    :param callbacks: progress subscriber (the CLI's progress bar).
    :param now: "now" for the window and the URL-expiry check.
    :param prune: applies ``settings.retention`` after the sync; returns files pruned
        (default :func:`cdnlogs.housekeeping.prune_archive`).
    :param store: the object store (default: opened from ``settings.store`` when set).
    :param drop_local: delete local copies once stored (default ``settings.store_drop_local``);
        ``sync --ingest`` passes False and drops after the ingest.
    """

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        *,
        session: requests.Session | None = None,
        config: TransferConfig | None = None,
        callbacks: SyncCallbacks | None = None,
        now: datetime | None = None,
        prune: Callable[[Settings, Manifest, datetime], int] | None = None,
        store: ObjectStore | None = None,
        drop_local: bool | None = None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.config = config or transfer_config(settings)
        self.downloader = Downloader(session or make_session(self.config), self.config)
        self.callbacks: SyncCallbacks = callbacks or NullSyncCallbacks()
        self.now = now or datetime.now(UTC)
        self._prune = prune or (lambda s, m, now: _default_prune(s, m, now, self.store))
        self.store = store
        self.drop_local = settings.store_drop_local if drop_local is None else drop_local

    def run(self) -> SyncSummary:
        """Sync every selected domain; return the summary (failures are in it, not raised).

        Raises ConfigError/UsageError for unusable settings, ApiError when a listing is
        refused, LockedError when another sync holds the archive, StoreError (or
        StoreConfigError) when the store cannot be used at the start.
        """
        started = time.monotonic()
        settings = self.settings
        check_settings(settings)
        shard = resolve_shard(settings)
        start, end = resolve_window(settings, self.now)
        summary = SyncSummary(
            out_dir=str(settings.out_dir),
            start=iso_utc(start),
            end=iso_utc(end),
            format=settings.format,
            store=settings.store,
            shard=str(shard) if shard else None,
        )
        store = self._open_store()
        domains = select_domains(settings, self.provider, shard)
        make_directory(settings.out_dir)
        with ArchiveLock(settings.state_dir, purpose="sync"):
            if store is not None:
                from cdnlogs.upload import restore_snapshot

                restore_snapshot(store, settings.state_dir, settings.out_dir, shard)
            with Manifest.open(settings.state_dir) as manifest:
                self._run_locked(manifest, store, shard, domains, summary, start, end)
        summary.seconds = time.monotonic() - started
        return summary

    def _open_store(self) -> ObjectStore | None:
        if self.store is None and self.settings.store:
            from cdnlogs.store import open_store

            self.store = open_store(self.settings)
        if self.store is not None:
            self.store.check()  # a missing bucket or a denied key stops the run before anything
        return self.store

    def _run_locked(
        self,
        manifest: Manifest,
        store: ObjectStore | None,
        shard: Shard | None,
        domains: list[str],
        summary: SyncSummary,
        start: datetime,
        end: datetime,
    ) -> None:
        settings = self.settings
        run_started = datetime.now(UTC)
        states = [self._list_and_plan(manifest, d, start, end) for d in domains]
        summary.domains = [s.summary for s in states]
        by_domain = {s.summary.domain: s for s in states}
        self._fetch(manifest, by_domain, [t for s in states for t in s.plan.fetch])
        # Expired URLs: re-list each affected domain once and retry only those files.
        retry_tasks: list[FetchTask] = []
        for state in states:
            if state.expired:
                retry_tasks += self._relist(manifest, state, start, end)
        self._fetch(manifest, by_domain, retry_tasks, final=True)
        if store is not None:
            self._store_unstored(manifest, store, by_domain)
            if self.drop_local:
                from cdnlogs.upload import drop_local_copies

                summary.dropped_local = drop_local_copies(
                    manifest, settings.out_dir, domains=domains
                )
        if settings.retention:
            summary.pruned = self._prune(settings, manifest, self.now)
        finished = datetime.now(UTC)
        for state in states:
            manifest.record_run(
                RunRecord(
                    domain=state.summary.domain,
                    started_at=run_started,
                    finished_at=finished,
                    ok=state.summary.ok,
                    summary_json=json.dumps(asdict(state.summary), sort_keys=True),
                )
            )
        if store is not None:
            self._snapshot(manifest, store, shard, summary)

    def _store_unstored(
        self, manifest: Manifest, store: ObjectStore, states: dict[str, _DomainState]
    ) -> None:
        """Upload done files the store lacks (the archive predates --store)."""
        from cdnlogs.housekeeping import check_file
        from cdnlogs.upload import upload_unstored

        uploaded, problems = upload_unstored(
            manifest,
            store,
            self.settings.out_dir,
            list(states),
            workers=self.settings.concurrency,
            check=check_file,
        )
        for row, reason in problems:
            log.warning("not stored %s %s: %s", row.domain, row.log_name, reason)
            states[row.domain].summary.failed.append(
                FileProblem(row.domain, row.log_name, f"not stored: {redact_text(reason)}")
            )
        for row in uploaded:
            states[row.domain].summary.uploaded += 1
        if uploaded:
            log.info("uploaded %d file(s) the store did not have yet", len(uploaded))

    def _snapshot(
        self, manifest: Manifest, store: ObjectStore, shard: Shard | None, summary: SyncSummary
    ) -> None:
        from cdnlogs.upload import snapshot_key, upload_snapshot

        try:
            upload_snapshot(manifest, store, shard)
        except CdnLogsError as exc:
            summary.snapshot_error = redact_text(exc.message)
            log.warning("the ledger snapshot did not reach the store: %s", summary.snapshot_error)
        else:
            summary.snapshot = store.url.url(snapshot_key(shard))

    def _list_and_plan(
        self, manifest: Manifest, domain: str, start: datetime, end: datetime
    ) -> _DomainState:
        listing = self.provider.list_log_files(domain, start, end)
        manifest.record_listed(listing.files)
        plan = plan_fetches(
            listing.files,
            manifest.records(domain),
            layout=self.settings.layout,
            fmt=self.settings.format,
        )
        summary = DomainSummary(
            domain=domain,
            listed=len(listing.files),
            skipped=sum(plan.skipped.values()),
            clamped_from=iso_utc(listing.clamped_from) if listing.clamped_from else None,
        )
        summary.rejected.extend(
            FileProblem(domain, r.log_file.name, r.reason) for r in plan.rejected
        )
        for rejection in plan.new_rejections:  # known ones were warned about when first seen
            log.warning("rejected %s: %s", domain, rejection.reason)
            manifest.mark_rejected(domain, rejection.log_file.name, rejection.reason)
        self.callbacks.on_planned(domain, len(plan.fetch), plan.fetch_bytes)
        return _DomainState(summary, listing, plan)

    def _relist(
        self, manifest: Manifest, state: _DomainState, start: datetime, end: datetime
    ) -> list[FetchTask]:
        domain = state.summary.domain
        log.info(
            "%d signed URLs of %s expired: listing the window again", len(state.expired), domain
        )
        state.summary.relisted = True
        listing = self.provider.list_log_files(domain, start, end)
        manifest.record_listed(listing.files)
        wanted = set(state.expired)
        state.expired = []
        fresh = [f for f in listing.files if f.name in wanted]
        plan = plan_fetches(
            fresh,
            manifest.records(domain),
            layout=self.settings.layout,
            fmt=self.settings.format,
        )
        gone = wanted - {f.name for f in fresh}
        for name in sorted(gone):
            reason = "signed URL expired and the file is no longer listed"
            state.summary.failed.append(FileProblem(domain, name, reason))
            manifest.mark_failed(domain, name, reason)
        self.callbacks.on_planned(domain, len(plan.fetch), plan.fetch_bytes)
        return plan.fetch

    def _tasks(
        self, manifest: Manifest, states: dict[str, _DomainState], fetches: Sequence[FetchTask]
    ) -> Iterator[DownloadTask]:
        out_dir = self.settings.out_dir
        keep_gzip = self.settings.format == "gz"
        for fetch in fetches:
            log_file = fetch.log_file
            try:
                destination = resolve_inside(out_dir, fetch.relative_path)
            except UnsafeNameError as exc:
                # A symlink planted under --out would take the write elsewhere: refuse it.
                state = states[log_file.domain]
                log.warning("rejected %s: %s", log_file.domain, exc.message)
                state.summary.rejected.append(
                    FileProblem(log_file.domain, log_file.name, exc.message)
                )
                manifest.mark_rejected(log_file.domain, log_file.name, exc.message)
                continue
            yield DownloadTask(
                url=log_file.url,
                destination=destination,
                expected_size=log_file.size,
                keep_gzip=keep_gzip,
                key=fetch,
            )

    def _fetch(
        self,
        manifest: Manifest,
        states: dict[str, _DomainState],
        fetches: Sequence[FetchTask],
        *,
        final: bool = False,
    ) -> None:
        if not fetches:
            return
        if self.store is None:
            self._fetch_into(manifest, states, fetches, final, None)
            return
        from cdnlogs.upload import Uploader

        with Uploader(self.store, self.settings.concurrency) as uploader:
            self._fetch_into(manifest, states, fetches, final, uploader)
            for upload in uploader.drain():
                self._uploaded(manifest, states, upload)

    def _fetch_into(
        self,
        manifest: Manifest,
        states: dict[str, _DomainState],
        fetches: Sequence[FetchTask],
        final: bool,
        uploader: Any,
    ) -> None:
        tasks = self._tasks(manifest, states, fetches)
        for result in self.downloader.map(tasks, self.callbacks):
            fetch: FetchTask = result.task.key
            domain, name = fetch.log_file.domain, fetch.log_file.name
            state = states[domain]
            if result.ok:
                if uploader is None:
                    self._record_done(manifest, state, result, None)
                    continue
                # Verified in place; it counts as done only once the store holds it too.
                for upload in uploader.submit(result.task.destination, fetch.relative_path, result):
                    self._uploaded(manifest, states, upload)
                continue
            assert result.error is not None
            if isinstance(result.error, UrlExpiredError) and not final:
                state.expired.append(name)
                continue
            self._record_failed(manifest, state, fetch, str(result.error))

    def _uploaded(self, manifest: Manifest, states: dict[str, _DomainState], upload: Any) -> None:
        result: DownloadResult = upload.tag
        fetch: FetchTask = result.task.key
        state = states[fetch.log_file.domain]
        if upload.stored is None:
            self._record_failed(manifest, state, fetch, f"upload to the store: {upload.error}")
            return
        state.summary.uploaded += 1
        self._record_done(manifest, state, result, upload.stored)

    def _record_done(
        self,
        manifest: Manifest,
        state: _DomainState,
        result: DownloadResult,
        stored: StoredObject | None,
    ) -> None:
        fetch: FetchTask = result.task.key
        manifest.mark_done(
            fetch.log_file.domain,
            fetch.log_file.name,
            sha256=result.sha256 or "",
            plain_size=result.plain_size,
            plain_checksum=result.plain_checksum,
            local_path=fetch.relative_path.as_posix(),
            fmt=self.settings.format,
            lines=result.plain_lines,
            store_url=stored.url if stored else None,
            store_etag=stored.etag if stored else None,
        )
        state.summary.fetched += 1
        state.summary.bytes += result.size
        state.summary.plain_bytes += result.plain_size

    @staticmethod
    def _record_failed(
        manifest: Manifest, state: _DomainState, fetch: FetchTask, error: str
    ) -> None:
        domain, name = fetch.log_file.domain, fetch.log_file.name
        reason = redact_text(error)
        log.warning("failed %s %s: %s", domain, name, reason)
        state.summary.failed.append(FileProblem(domain, name, reason))
        manifest.mark_failed(domain, name, reason)


def _default_prune(
    settings: Settings, manifest: Manifest, now: datetime, store: ObjectStore | None = None
) -> int:
    # Imported here: housekeeping is a sibling composed only when retention is set.
    from cdnlogs import housekeeping

    assert settings.retention is not None
    result = housekeeping.prune_archive(
        manifest, settings.out_dir, keep=parse_duration(settings.retention), now=now, store=store
    )
    for problem in result.problems:
        log.warning("retention: cannot prune %s: %s", problem.log_name, problem.reason)
    return len(result.files)


#: One sync given its progress subscriber (None: none); see :func:`sync_and_ingest`.
SyncStep = Callable[[SyncCallbacks | None], "SyncSummary"]
#: One ingest given its progress subscriber (None: none).
IngestStep = Callable[["IngestCallbacks | None"], "IngestRun"]


def sync_and_ingest(
    settings: Settings,
    provider: Provider,
    *,
    now: datetime | None = None,
    with_sync_progress: Callable[[SyncStep], SyncSummary] | None = None,
    with_ingest_progress: Callable[[IngestStep], IngestRun] | None = None,
    on_synced: Callable[[SyncSummary], None] | None = None,
) -> tuple[SyncSummary, IngestRun | None]:
    """``sync`` (and each ``watch`` tick): one :class:`SyncRun`, then, with
    ``settings.ingest_after_sync``, :func:`cdnlogs.ingest.run_ingest` of what it fetched.

    Each step takes the archive lock itself; the ingest runs even when some downloads failed
    (the failed files are simply not there to ingest). With ``store_drop_local``, local copies
    are dropped after the ingest has read them rather than at upload.

    :param with_sync_progress: runs the sync step, giving it a progress subscriber (a UI's
        progress bar lives exactly as long as the step); default: no subscriber.
    :param with_ingest_progress: the same for the ingest step.
    :param on_synced: called with the sync's summary before the ingest starts, so a caller
        can record the sync even when the ingest then raises.
    :returns: the sync's summary and the ingest's outcome (None without ``ingest_after_sync``).
    """
    ingest = settings.ingest_after_sync
    drop_now = settings.store_drop_local and not ingest

    def sync_step(callbacks: SyncCallbacks | None) -> SyncSummary:
        return SyncRun(settings, provider, callbacks=callbacks, now=now, drop_local=drop_now).run()

    summary = with_sync_progress(sync_step) if with_sync_progress else sync_step(None)
    if on_synced is not None:
        on_synced(summary)
    if not ingest:
        return summary, None
    from cdnlogs.ingest import run_ingest  # duckdb: imported only when there is an ingest

    def ingest_step(callbacks: IngestCallbacks | None) -> IngestRun:
        return run_ingest(
            settings,
            now=now or datetime.now(UTC),
            callbacks=callbacks,
            drop_local=True,
        )

    ingested = with_ingest_progress(ingest_step) if with_ingest_progress else ingest_step(None)
    return summary, ingested


def make_sync_provider(settings: Settings) -> Provider:
    """:func:`cdnlogs.providers.make_provider` for this worker's shard of ``settings``.

    A shard's provider calls the API at ``api_rate / N``: the N workers share the account's limit.
    """
    from cdnlogs.providers import make_provider

    return make_provider(shard_settings(settings, resolve_shard(settings)))
