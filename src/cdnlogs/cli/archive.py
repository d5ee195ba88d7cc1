"""Commands that fill the archive: ``sync`` and ``demo`` (the simulator, synced end to end)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cdnlogs.cli import cli, render
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.operate import RunRecorder, operated_run, ops_options
from cdnlogs.cli.options import (
    DATASET_LOCATION,
    api_options,
    domain_option,
    json_option,
    make_settings,
    out_option,
    shard_options,
    store_option,
    verbose_option,
    window_options,
)
from cdnlogs.cli.render import human_bytes
from cdnlogs.config import Settings
from cdnlogs.errors import IngestIncompleteError, PartialSyncError
from cdnlogs.sync import SyncCallbacks, SyncSummary
from cdnlogs.transfer import DownloadResult, DownloadTask

if TYPE_CHECKING:  # duckdb is imported only by commands that use the dataset
    from cdnlogs.ingest import IngestSummary

F = TypeVar("F", bound=Callable[..., Any])

DEMO_DOMAINS = ("a.example.com", "b.example.com")
DEMO_DAYS = 2
DEFAULT_DEMO_OUT = Path("./cdnlogs-demo")


def sync_options(func: F) -> F:
    """``--format``, ``--concurrency``, ``--ingest`` and ``--dataset``: sync's and watch's."""
    func = click.option(
        "--dataset",
        type=DATASET_LOCATION,
        default=None,
        help="Dataset directory for --ingest (default OUT/.cdnlogs/dataset), or "
        "s3://bucket/prefix to publish it to. [env: CDNLOGS_DATASET]",
    )(func)
    func = click.option(
        "--ingest",
        is_flag=True,
        default=False,
        help="After the sync, load the new files into the Parquet dataset (as `cdnlogs ingest`). "
        "[env: CDNLOGS_INGEST_AFTER_SYNC]",
    )(func)
    func = click.option(
        "--concurrency",
        type=click.IntRange(1, 64),
        default=None,
        help="Parallel downloads (default 8). [env: CDNLOGS_CONCURRENCY]",
    )(func)
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(["log", "gz"]),
        default=None,
        help="log: decompressed text (default); gz: the verified download as is. "
        "[env: CDNLOGS_FORMAT]",
    )(func)
    return func


@cli.command("sync")
@domain_option
@window_options
@out_option
@sync_options
@store_option
@click.option(
    "--drop-local",
    is_flag=True,
    default=False,
    help="Delete each file's local copy once it is verified in --store (with --ingest: once "
    "it is ingested too). [env: CDNLOGS_STORE_DROP_LOCAL]",
)
@shard_options
@api_options
@ops_options
@json_option
@verbose_option
@click.pass_obj
def sync_command(
    app: AppContext,
    domains: tuple[str, ...],
    all_domains: bool,
    since: str | None,
    until: str | None,
    out_dir: Path | None,
    fmt: str | None,
    concurrency: int | None,
    config_path: Path | None,
    api: dict[str, Any],
    ops: dict[str, Any],
    as_json: bool,
    ingest: bool,
    dataset: Path | str | None,
    store: str | None,
    drop_local: bool,
    shard: str | None,
    shards: int | None,
) -> None:
    """Download every log file of the window the archive lacks, verified, into --out.

    The window is the look-back (72h by default, the provider publishes late) up to now;
    every run lists it again and fetches only what the ledger does not have as done or
    pruned, so it is safe to run hourly from cron. --since 31d backfills what the provider
    keeps. Exit 0 when every listed file is in place, 5 when some failed after retries (the
    rest are kept and recorded; the next run retries them).

    With --store, each verified file is uploaded to s3://bucket/prefix/<layout path> and
    verified there before it counts as done, and a snapshot of the ledger goes to the store
    after the run. With --shard K/N, only that shard's domains are synced (docs/storage.md).
    """
    settings = make_settings(
        config_path,
        domains=domains,
        all_domains=all_domains,
        since=since,
        until=until,
        out_dir=out_dir,
        format=fmt,
        concurrency=concurrency,
        **api,
        **ops,
        dataset=dataset,
        ingest_after_sync=ingest,
        store=store,
        store_drop_local=drop_local,
        shard=shard,
        shards=shards,
    )
    with operated_run(settings, "sync") as run:
        sync_once(
            app,
            settings,
            run,
            lambda summary, ingested: _report(app, summary, as_json=as_json, ingested=ingested),
            progress=not as_json,
        )


#: Prints what one sync (and its ingest, if any) did.
Reporter = Callable[[SyncSummary, "IngestSummary | None"], None]


def sync_once(
    app: AppContext,
    settings: Settings,
    run: RunRecorder,
    report: Reporter,
    *,
    progress: bool,
) -> None:
    """One sync (and ingest, with ``ingest_after_sync``) as ``sync`` and each watch tick run it.

    Fills ``run`` for the metrics and heartbeats, reports, then raises PartialSyncError
    (exit 5) when files failed to download, or IngestIncompleteError (its subclass, exit 5)
    when they failed to ingest.
    """
    from cdnlogs.cli.analysis import ingest_with_progress
    from cdnlogs.sync import make_sync_provider, sync_and_ingest

    def headline(summary: SyncSummary) -> str:
        return (
            f"{summary.total('fetched')} fetched, {summary.total('skipped')} already present, "
            f"{len(summary.failed)} failed"
        )

    def synced(summary: SyncSummary) -> None:
        # The sync is recorded even if the ingest stops the run.
        run.summary = summary.to_dict()
        run.files_failed = len(summary.failed)
        run.headline = headline(summary)

    summary, ingest_run = sync_and_ingest(
        settings,
        make_sync_provider(settings),
        with_sync_progress=lambda step: _run_with_progress(app, step, as_json=not progress),
        with_ingest_progress=lambda step: ingest_with_progress(app, step, as_json=not progress),
        on_synced=synced,
    )
    ingested = ingest_run.summary if ingest_run is not None else None
    if ingested is not None:
        run.summary = summary.to_dict(ingested)
        run.files_failed = len(summary.failed) + len(ingested.failed)
        run.headline = (
            f"{headline(summary)}; ingested {ingested.files} file(s), {len(ingested.failed)} failed"
        )
    report(summary, ingested)
    _raise_if_partial(summary)
    if ingested is not None and ingested.failed:
        raise IngestIncompleteError(f"{len(ingested.failed)} file(s) could not be ingested")


@cli.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DEMO_OUT,
    show_default=True,
    help="Archive directory for the demo.",
)
@json_option
@verbose_option
@click.pass_obj
def demo_command(app: AppContext, out_dir: Path, as_json: bool) -> None:
    """Start the built-in simulator, sync two domains over two days into --out, show the status.

    Needs no account, credential or config: it runs against a local simulated API and log
    host. Running it again fetches nothing new (the simulated days are fixed for the day).
    """
    from cdnlogs.simulator import Simulator, SimulatorConfig
    from cdnlogs.sync import SyncRun

    # Pin the simulated "now" to the start of the UTC day so a rerun the same day lists the
    # same files and fetches nothing; the signed URLs still expire on the real clock.
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimulatorConfig(domains=DEMO_DOMAINS, days=DEMO_DAYS, now=now)
    with Simulator(config) as sim:
        settings = Settings(
            domains=list(DEMO_DOMAINS),
            out_dir=out_dir,
            endpoint=sim.endpoint,
            log_scheme="http",
            access_key_id=sim.access_key_id,
            access_key_secret=sim.access_key_secret,
            since=f"{DEMO_DAYS * 24}h",
        )
        from cdnlogs.providers import make_provider

        provider = make_provider(settings)
        summary = _run_with_progress(
            app,
            lambda cb: SyncRun(settings, provider, callbacks=cb, now=now).run(),
            as_json=as_json,
        )
    _report(app, summary, as_json=as_json)
    if not as_json:
        _print_status(app, settings, now)
        program = how_to_run(sys.argv[0], sys.executable, os.environ.get("PATH"))
        out = shlex.quote(str(out_dir))
        click.echo(
            f"\nThe archive is in {out_dir}/ (ledger: {settings.state_dir}/manifest.sqlite3). "
            f"Run `{program} demo` again: it fetches nothing new.\n"
            f"Next: `{program} ingest --out {out}`, then "
            f"`{program} report --out {out} --html report.html`.",
            file=app.stdout,
        )
    _raise_if_partial(summary)


def how_to_run(argv0: str, executable: str, path: str | None) -> str:
    """The command that runs this cdnlogs again from the current directory, for printed hints.

    ``cdnlogs`` when that name on ``path`` is this program; otherwise the script as it was
    started (``.venv/bin/cdnlogs`` after ``make demo``, where the venv is not on PATH), or
    ``python -m cdnlogs`` with this interpreter.
    """
    started = Path(argv0)
    script = started if started.name == "cdnlogs" else Path(executable).parent / "cdnlogs"
    found = shutil.which("cdnlogs", path=path)
    if found is not None and script.exists() and Path(found).resolve() == script.resolve():
        return "cdnlogs"
    if started.name == "cdnlogs":
        return shlex.quote(argv0)
    return f"{shlex.quote(executable)} -m cdnlogs"


# --- running with a progress bar --------------------------------------------------------------


class _RichProgress:
    """SyncCallbacks drawing one rich progress bar: files, bytes, rate, ETA (stderr only)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._files_total = 0
        self._files_done = 0
        self._task = progress.add_task("listing", total=0)

    def _describe(self) -> str:
        return f"{self._files_done}/{self._files_total} files"

    def on_planned(self, domain: str, files: int, nbytes: int) -> None:
        with self._lock:
            self._files_total += files
            total = (self._progress.tasks[0].total or 0) + nbytes
            self._progress.update(self._task, total=total, description=self._describe())

    def on_queued(self, task: DownloadTask) -> None:
        pass

    def on_progress(self, task: DownloadTask, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def on_done(self, result: DownloadResult) -> None:
        with self._lock:
            self._files_done += 1
            self._progress.update(self._task, description=self._describe())


def _run_with_progress(
    app: AppContext,
    run: Callable[[SyncCallbacks | None], SyncSummary],
    *,
    as_json: bool,
) -> SyncSummary:
    """Run a sync with a progress bar on a terminal's stderr; quietly otherwise."""
    if as_json or not app.interactive:
        return run(None)
    with render.bytes_progress(app) as progress:
        return run(_RichProgress(progress))


# --- output -----------------------------------------------------------------------------------


def _raise_if_partial(summary: SyncSummary) -> None:
    failed = summary.failed
    if summary.snapshot_error and not failed:
        raise PartialSyncError(
            f"every file is in place, but the ledger snapshot did not reach the store: "
            f"{summary.snapshot_error}",
            hint="`status --from-store` shows this shard as of its last snapshot until the "
            "next run",
        )
    if failed:
        raise PartialSyncError(
            f"{len(failed)} of {summary.total('listed')} listed files failed after retries; "
            "every other file is in place and recorded",
            hint="run `cdnlogs sync` again to retry them (they are recorded as failed)",
        )


def _report(
    app: AppContext,
    summary: SyncSummary,
    *,
    as_json: bool,
    ingested: IngestSummary | None = None,
) -> None:
    if as_json:
        click.echo(json.dumps(summary.to_dict(ingested), indent=2), file=app.stdout)
        return
    from rich.table import Table

    console = render.console(app.stdout, plain_width=120)
    table = Table(title=f"sync {summary.start} .. {summary.end} -> {summary.out_dir}")
    for column in ("Domain", "Listed", "Fetched", "Skipped", "Failed", "Rejected", "Bytes"):
        table.add_column(column, justify="left" if column == "Domain" else "right")
    for d in summary.domains:
        table.add_row(
            d.domain,
            str(d.listed),
            str(d.fetched),
            str(d.skipped),
            str(len(d.failed)),
            str(len(d.rejected)),
            human_bytes(d.bytes),
        )
    console.print(table)
    for problem in summary.failed:
        console.print(f"failed: {problem.domain} {problem.name}: {problem.reason}", markup=False)
    for problem in summary.rejected:
        console.print(f"rejected: {problem.domain}: {problem.reason}", markup=False)
    rate = summary.total("bytes") / summary.seconds if summary.seconds else 0.0
    line = (
        f"{summary.total('fetched')} fetched, {summary.total('skipped')} already present, "
        f"{len(summary.failed)} failed, {len(summary.rejected)} rejected; "
        f"{human_bytes(summary.total('bytes'))} in {summary.seconds:.1f}s ({human_bytes(rate)}/s)"
    )
    if summary.pruned:
        line += f"; {summary.pruned} pruned by retention"
    console.print(line, markup=False)
    if summary.store:
        where = f"shard {summary.shard}, " if summary.shard else ""
        console.print(
            f"store {summary.store} ({where}{summary.total('uploaded')} uploaded, "
            f"{summary.dropped_local} local copies dropped); ledger snapshot: "
            f"{summary.snapshot or 'FAILED: ' + (summary.snapshot_error or '')}",
            markup=False,
        )
    if ingested is not None:
        console.print(
            f"ingested {ingested.files} file(s): {ingested.rows:,} rows, "
            f"{ingested.rejects:,} rejected line(s) in {ingested.seconds:.1f}s",
            markup=False,
        )
        for domain, log_name, error in ingested.failed:
            console.print(f"ingest failed: {domain} {log_name}: {error}", markup=False)


def _print_status(app: AppContext, settings: Settings, now: datetime) -> None:
    from rich.table import Table

    from cdnlogs.housekeeping import archive_status
    from cdnlogs.manifest import Manifest, Status

    with Manifest.open(settings.state_dir, create=False) as manifest:
        rows = archive_status(
            manifest,
            window_start=now - timedelta(days=DEMO_DAYS),
            window_end=now,
            domains=settings.domains,
        )
    table = Table(title="status")
    for column in ("Domain", "Done", "Failed", "Pending", "Hours", "Gaps", "Stored"):
        table.add_column(column, justify="left" if column == "Domain" else "right")
    for row in rows:
        table.add_row(
            row.domain,
            str(row.counts.get(Status.DONE, 0)),
            str(row.counts.get(Status.FAILED, 0)),
            str(row.counts.get(Status.PENDING, 0)),
            str(row.hours_covered),
            str(row.missing_hours),
            human_bytes(row.bytes_stored),
        )
    render.console(app.stdout, plain_width=120).print(table)
