"""``cdnlogs watch``: the service mode. Sync (ingest, reconcile) on a schedule, in one process.

For containers and supervisors that want one long-running process instead of cron. Each tick
is exactly a ``cdnlogs sync`` run (same lock, same ledger, same metrics and pings, reported as
command ``sync``), followed with ``--reconcile`` by a ``cdnlogs reconcile`` run. Ticks never
overlap, and a tick that finds the archive locked by another run (a cron job, a manual
``verify``) is skipped with a warning. SIGTERM during a tick stops
it as it stops ``sync`` (in-flight downloads dropped, no half file, the ledger consistent);
between ticks it ends the wait at once. Either way the exit status is 143.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cdnlogs.cli import cli, exit_status_of
from cdnlogs.cli.archive import sync_once, sync_options
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.operate import RunRecorder, operated_run, ops_options
from cdnlogs.cli.options import (
    api_options,
    domain_option,
    json_option,
    make_settings,
    out_option,
    verbose_option,
)
from cdnlogs.config import Settings
from cdnlogs.errors import CdnLogsError, ExitStatus, LockedError, UsageError
from cdnlogs.lock import ArchiveLock
from cdnlogs.redact import redact_text
from cdnlogs.schedule import Schedule, run_every
from cdnlogs.sync import SyncSummary, check_settings, resolve_window
from cdnlogs.timeutil import iso_utc, parse_duration

if TYPE_CHECKING:
    from cdnlogs.ingest import IngestSummary
    from cdnlogs.reconcile import ReconcileResult

#: Exit statuses of a tick that end ``watch``: settings that will not fix themselves.
FATAL_STATUSES = frozenset({ExitStatus.USAGE, ExitStatus.CONFIG})


@cli.command("watch")
@domain_option
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Each tick's window start, relative like 36h (default: the look-back, 72h).",
)
@out_option
@sync_options
@click.option(
    "--every",
    default=None,
    metavar="DURATION",
    help="Time between ticks, e.g. 1h, 30m (default 1h). [env: CDNLOGS_WATCH_EVERY]",
)
@click.option(
    "--jitter",
    default=None,
    metavar="DURATION",
    help="Random delay added to each tick, 0 to this (default 0s). [env: CDNLOGS_WATCH_JITTER]",
)
@click.option(
    "--reconcile",
    is_flag=True,
    default=False,
    help="After each tick's sync and ingest, reconcile with the provider's hourly counts "
    "(needs --ingest). [env: CDNLOGS_WATCH_RECONCILE]",
)
@click.option(
    "--max-ticks",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many ticks and exit with the last one's status (for trial runs).",
)
@api_options
@ops_options
@json_option
@verbose_option
@click.pass_obj
def watch_command(
    app: AppContext,
    domains: tuple[str, ...],
    all_domains: bool,
    since: str | None,
    out_dir: Path | None,
    fmt: str | None,
    concurrency: int | None,
    ingest: bool,
    dataset: Path | None,
    every: str | None,
    jitter: str | None,
    reconcile: bool,
    max_ticks: int | None,
    config_path: Path | None,
    api: dict[str, Any],
    ops: dict[str, Any],
    as_json: bool,
) -> None:
    """Sync every --every (1h) until stopped: the service mode for containers and supervisors.

    The first tick runs at once. Each tick is a `cdnlogs sync` run (same lock, metrics file
    and pings), then with --reconcile a `cdnlogs reconcile` run. A tick that fails (API
    refusal, files that failed, a short hour) is reported and the next tick runs on time; a
    bad setting ends watch with exit 2 or 3. A tick that finds the archive locked by another
    run is skipped; one that overruns its interval makes the ticks it covered be skipped.
    SIGTERM (docker stop, systemctl stop, a pod's deletion) exits 143: at once between
    ticks, and during a tick after the files in flight were dropped (no half file). Ctrl-C
    exits 130.
    """
    settings = make_settings(
        config_path,
        domains=domains,
        all_domains=all_domains,
        since=since,
        out_dir=out_dir,
        format=fmt,
        concurrency=concurrency,
        dataset=dataset,
        ingest_after_sync=ingest,
        watch_every=every,
        watch_jitter=jitter,
        watch_reconcile=reconcile,
        **api,
        **ops,
    )
    if settings.until:
        raise UsageError("watch syncs up to each tick's now: it takes no `until`")
    check_settings(settings)
    resolve_window(settings, datetime.now(UTC))  # a bad --since fails now, not at a tick
    if settings.watch_reconcile:
        if not settings.ingest_after_sync:
            raise UsageError(
                "--reconcile compares the dataset with the provider: it needs --ingest",
                hint="add --ingest (or ingest_after_sync = true in the config file)",
            )
        from cdnlogs.reconcile_run import reconcile_window

        reconcile_window(settings, datetime.now(UTC))  # a window with no settled hour
    schedule = Schedule(
        every=parse_duration(settings.watch_every).total_seconds(),
        jitter=parse_duration(settings.watch_jitter).total_seconds(),
    )
    ticker = _Ticker(app, settings, as_json=as_json)
    click.echo(
        f"watch: syncing {settings.out_dir} every {settings.watch_every}"
        + (f" (jitter up to {settings.watch_jitter})" if schedule.jitter else ""),
        err=True,
    )
    run_every(
        schedule,
        ticker.tick,
        on_skip=lambda n: click.echo(
            f"watch: the last tick overran its interval; {n} tick(s) skipped", err=True
        ),
        on_wait=lambda seconds: click.echo(
            "watch: next tick at " + iso_utc(datetime.now(UTC) + timedelta(seconds=seconds)),
            err=True,
        ),
        max_ticks=max_ticks,
    )
    if ticker.last_status != ExitStatus.OK:
        raise click.exceptions.Exit(ticker.last_status)


class _Ticker:
    """Runs one tick: a reported sync run, with the outcomes watch lives through."""

    def __init__(self, app: AppContext, settings: Settings, *, as_json: bool) -> None:
        self.app = app
        self.settings = settings
        self.as_json = as_json
        self.last_status = int(ExitStatus.OK)

    def tick(self, number: int) -> None:
        try:
            # A cron run (or verify, prune...) holds the archive: skip, don't queue behind it.
            with ArchiveLock(self.settings.state_dir, purpose="watch"):
                pass
        except LockedError as exc:
            click.echo(f"watch: tick {number} skipped: {exc.message}", err=True)
            return
        status = self._step(
            number,
            "sync",
            lambda run: sync_once(
                self.app,
                self.settings,
                run,
                lambda summary, ingested: self._report(number, summary, ingested),
                progress=False,
            ),
        )
        if self.settings.watch_reconcile:
            from cdnlogs.cli.reconcile import reconcile_once

            status = (
                self._step(
                    number,
                    "reconcile",
                    lambda run: reconcile_once(
                        self.settings, run, lambda result: self._report_reconcile(number, result)
                    ),
                )
                or status
            )
        self.last_status = status

    def _step(self, number: int, command: str, body: Callable[[RunRecorder], None]) -> int:
        """Run one reported step of a tick; its exit status (fatal ones end watch)."""
        try:
            with operated_run(self.settings, command) as run:
                body(run)
        except CdnLogsError as exc:
            status = exit_status_of(exc)
            if status in FATAL_STATUSES:
                raise
            click.echo(
                f"watch: tick {number} {command} failed (exit {status}): "
                f"{redact_text(exc.message)}",
                err=True,
            )
            return status
        return ExitStatus.OK

    def _report_reconcile(self, number: int, result: ReconcileResult) -> None:
        if self.as_json:
            data = {"tick": number, "reconcile": result.to_dict()}
            click.echo(json.dumps(data), file=self.app.stdout)
            return
        ratios = ", ".join(
            f"{d.domain} {'n/a' if d.ratio is None else f'{d.ratio:.3f}'}"
            f" ({len(d.short_hours)} short)"
            for d in result.domains
        )
        click.echo(
            f"tick {number}: reconcile {result.verdict.value}: {ratios}", file=self.app.stdout
        )

    def _report(self, number: int, summary: SyncSummary, ingested: IngestSummary | None) -> None:
        if self.as_json:
            data = {"tick": number, **summary.to_dict(ingested)}
            click.echo(json.dumps(data), file=self.app.stdout)
            return
        line = (
            f"tick {number}: {summary.total('fetched')} fetched, "
            f"{summary.total('skipped')} already present, {len(summary.failed)} failed, "
            f"{len(summary.rejected)} rejected; {summary.total('bytes')} bytes in "
            f"{summary.seconds:.1f}s"
        )
        if ingested is not None:
            line += f"; ingested {ingested.files} file(s), {ingested.rows:,} rows"
        click.echo(line, file=self.app.stdout)
