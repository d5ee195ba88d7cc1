"""Commands that fill the archive: ``sync`` and ``demo`` (the simulator, synced end to end)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cdnlogs.cli import cli
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.options import (
    api_options,
    domain_option,
    json_option,
    make_settings,
    out_option,
    verbose_option,
    window_options,
)
from cdnlogs.config import Settings
from cdnlogs.errors import PartialSyncError
from cdnlogs.sync import SyncCallbacks, SyncSummary
from cdnlogs.transfer import DownloadResult, DownloadTask

if TYPE_CHECKING:  # duckdb is imported only by commands that use the dataset
    from cdnlogs.ingest import IngestSummary

DEMO_DOMAINS = ("a.example.com", "b.example.com")
DEMO_DAYS = 2
DEFAULT_DEMO_OUT = Path("./cdnlogs-demo")


@cli.command("sync")
@domain_option
@window_options
@out_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["log", "gz"]),
    default=None,
    help="log: decompressed text (default); gz: the verified download as is. [env: CDNLOGS_FORMAT]",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Parallel downloads (default 8). [env: CDNLOGS_CONCURRENCY]",
)
@click.option(
    "--ingest",
    is_flag=True,
    default=False,
    help="After the sync, load the new files into the Parquet dataset (as `cdnlogs ingest`).",
)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Dataset directory for --ingest (default OUT/.cdnlogs/dataset). [env: CDNLOGS_DATASET]",
)
@api_options
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
    as_json: bool,
    ingest: bool,
    dataset: Path | None,
) -> None:
    """Download every log file of the window the archive lacks, verified, into --out.

    The window is the look-back (72h by default, the provider publishes late) up to now;
    every run lists it again and fetches only what the ledger does not have as done or
    pruned, so it is safe to run hourly from cron. --since 31d backfills what the provider
    keeps. Exit 0 when every listed file is in place, 5 when some failed after retries (the
    rest are kept and recorded; the next run retries them).
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
        dataset=dataset,
    )
    from cdnlogs.sync import SyncRun, make_sync_provider

    provider = make_sync_provider(settings)
    summary = _run_with_progress(
        app, lambda cb: SyncRun(settings, provider, callbacks=cb).run(), as_json=as_json
    )
    ingested = _ingest_after_sync(settings) if ingest else None
    _report(app, summary, as_json=as_json, ingested=ingested)
    _raise_if_partial(summary)
    if ingested is not None and ingested.failed:
        raise PartialSyncError(f"{len(ingested.failed)} file(s) could not be ingested")


def _ingest_after_sync(settings: Settings) -> IngestSummary:
    """Ingest what the sync (and earlier ones) downloaded; files that failed are skipped."""
    from cdnlogs.ingest import ingest_archive
    from cdnlogs.lock import ArchiveLock

    # The sync released its lock; take it again so no other sync or ingest runs alongside.
    with ArchiveLock(settings.state_dir, purpose="ingest"):
        return ingest_archive(settings, now=datetime.now(UTC))


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
        click.echo(
            f"\nThe archive is in {out_dir}/ (ledger: {settings.state_dir}/manifest.sqlite3). "
            "Run `cdnlogs demo` again: it fetches nothing new.\n"
            f"Next: `cdnlogs ingest --out {out_dir}`, then "
            f"`cdnlogs report --out {out_dir} --html report.html`.",
            file=app.stdout,
        )
    _raise_if_partial(summary)


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
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(file=app.stderr)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        return run(_RichProgress(progress))


# --- output -----------------------------------------------------------------------------------


def _raise_if_partial(summary: SyncSummary) -> None:
    failed = summary.failed
    if failed:
        raise PartialSyncError(
            f"{len(failed)} of {summary.total('listed')} listed files failed after retries; "
            "every other file is in place and recorded",
            hint="run `cdnlogs sync` again to retry them (they are recorded as failed)",
        )


def _human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GiB"  # pragma: no cover - loop always returns


def _report(
    app: AppContext,
    summary: SyncSummary,
    *,
    as_json: bool,
    ingested: IngestSummary | None = None,
) -> None:
    if as_json:
        data = summary.to_dict()
        if ingested is not None:
            data["ingest"] = ingested.to_dict()
        click.echo(json.dumps(data, indent=2), file=app.stdout)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=app.stdout, width=None if app.stdout.isatty() else 120)
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
            _human(d.bytes),
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
        f"{_human(summary.total('bytes'))} in {summary.seconds:.1f}s ({_human(rate)}/s)"
    )
    if summary.pruned:
        line += f"; {summary.pruned} pruned by retention"
    console.print(line, markup=False)
    if ingested is not None:
        console.print(
            f"ingested {ingested.files} file(s): {ingested.rows:,} rows, "
            f"{ingested.rejects:,} rejected line(s) in {ingested.seconds:.1f}s",
            markup=False,
        )
        for domain, log_name, error in ingested.failed:
            console.print(f"ingest failed: {domain} {log_name}: {error}", markup=False)


def _print_status(app: AppContext, settings: Settings, now: datetime) -> None:
    from rich.console import Console
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
            _human(row.bytes_stored),
        )
    Console(file=app.stdout, width=None if app.stdout.isatty() else 120).print(table)
