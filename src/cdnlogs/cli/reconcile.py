"""Command reconcile: prove the archive complete against the provider's own hourly counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cdnlogs.cli import cli, render
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.operate import RunRecorder, operated_run, ops_options
from cdnlogs.cli.options import (
    api_options,
    domain_filter_option,
    json_option,
    make_settings,
    out_option,
    verbose_option,
    window_options,
)
from cdnlogs.config import Settings
from cdnlogs.errors import ReconcileShortError
from cdnlogs.reconcile import Comparison, DomainResult, ReconcileResult, Verdict

_STYLES = {
    Verdict.OK: "green",
    Verdict.SHORT: "bold red",
    Verdict.OVER: "yellow",
    Verdict.FEW: "dim",
    Verdict.NO_DATA: "yellow",
}
#: Short hours named in the one-line error (all of them are in the table and --json).
MAX_HOURS_NAMED = 6


@cli.command("reconcile")
@domain_filter_option(
    "Domain to reconcile; repeat or comma-separate (default: every domain of the ledger)."
)
@window_options
@out_option
@click.option(
    "--factor",
    "reconcile_factor",
    type=float,
    default=None,
    help="Provider traffic / logged response bytes (default 1.1). [env: CDNLOGS_RECONCILE_FACTOR]",
)
@click.option(
    "--tolerance",
    "reconcile_tolerance",
    type=float,
    default=None,
    help="Allowed deviation per hour, a fraction (default 0.10). "
    "[env: CDNLOGS_RECONCILE_TOLERANCE]",
)
@click.option(
    "--day-tolerance",
    "reconcile_day_tolerance",
    type=float,
    default=None,
    help="Allowed deviation per day, a fraction (default 0.05). "
    "[env: CDNLOGS_RECONCILE_DAY_TOLERANCE]",
)
@click.option(
    "--settle",
    "reconcile_settle",
    default=None,
    metavar="DURATION",
    help="Judge only hours older than this (default 24h). [env: CDNLOGS_RECONCILE_SETTLE]",
)
@api_options
@ops_options
@json_option
@verbose_option
@click.pass_obj
def reconcile_command(
    app: AppContext,
    domains: tuple[str, ...],
    since: str | None,
    until: str | None,
    out_dir: Path | None,
    reconcile_factor: float | None,
    reconcile_tolerance: float | None,
    reconcile_day_tolerance: float | None,
    reconcile_settle: str | None,
    config_path: Path | None,
    api: dict[str, Any],
    ops: dict[str, Any],
    as_json: bool,
) -> None:
    """Compare the dataset with the provider's hourly traffic and request counts.

    Per domain and settled UTC hour: 1.1 x the logged response bytes against the provider's
    traffic (DescribeDomainTrafficData, or DCDN's/VOD's own), and the logged requests against
    its request count (DescribeDomainQpsData's AccValue); then per +08:00 day. Reads the
    dataset, so run `cdnlogs ingest` (or `sync --ingest`) first. Exits 6 when any hour or day
    falls short (a file missing, truncated or not ingested).
    """
    settings = make_settings(
        config_path,
        domains=domains,
        since=since,
        until=until,
        out_dir=out_dir,
        reconcile_factor=reconcile_factor,
        reconcile_tolerance=reconcile_tolerance,
        reconcile_day_tolerance=reconcile_day_tolerance,
        reconcile_settle=reconcile_settle,
        **api,
        **ops,
    )
    with operated_run(settings, "reconcile") as run:
        reconcile_once(settings, run, lambda result: _report(app, result, as_json=as_json))


def reconcile_once(
    settings: Settings, run: RunRecorder, report: Callable[[ReconcileResult], None]
) -> None:
    """One reconcile, as ``reconcile`` and each ``watch --reconcile`` tick run it.

    Fills ``run`` (the ratios for the metrics file), reports, then raises ReconcileShortError
    (exit 6) when an hour or day falls short.
    """
    from cdnlogs.providers import make_monitoring_provider
    from cdnlogs.reconcile_run import run_reconcile

    result = run_reconcile(settings, make_monitoring_provider(settings), now=datetime.now(UTC))
    run.summary = result.to_dict()
    for domain in result.domains:
        if domain.ratio is not None:
            run.metric("cdnlogs_reconcile_ratio", domain.ratio, domain=domain.domain)
        if domain.requests_ratio is not None:
            run.metric(
                "cdnlogs_reconcile_requests_ratio", domain.requests_ratio, domain=domain.domain
            )
        run.metric("cdnlogs_reconcile_short_hours", len(domain.short_hours), domain=domain.domain)
    short = sum(len(d.short_hours) for d in result.domains)
    run.headline = f"reconcile {result.verdict.value}: {short} short hour(s)"
    report(result)
    if not result.ok:
        raise _short_error(result)


def _report(app: AppContext, result: ReconcileResult, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2), file=app.stdout)
    else:
        _print_result(app, result)


def _short_error(result: ReconcileResult) -> ReconcileShortError:
    hours = [(d.domain, h.hour) for d in result.domains for h in d.short_hours]
    days = [(d.domain, day.day) for d in result.domains for day in d.short_days]
    named = ", ".join(f"{domain} {hour:%Y-%m-%dT%H}Z" for domain, hour in hours[:MAX_HOURS_NAMED])
    if len(hours) > MAX_HOURS_NAMED:
        named += f" and {len(hours) - MAX_HOURS_NAMED} more"
    parts = [f"{len(hours)} hour(s)"] + ([f"{len(days)} day(s)"] if days else [])
    message = f"{' and '.join(parts)} hold less than the provider counted"
    if named:
        message += f": {named}"
    not_ingested = sum(d.not_ingested for d in result.domains)
    if not_ingested:
        hint = f"{not_ingested} downloaded file(s) are not in the dataset: run `cdnlogs ingest`"
    else:
        hint = (
            "run `cdnlogs sync` over the window again (late or re-published files), then "
            "`cdnlogs ingest`; `cdnlogs verify` re-checks the files on disk"
        )
    return ReconcileShortError(message, hint=hint)


def _print_result(app: AppContext, result: ReconcileResult) -> None:
    console = render.console(app.stdout, plain_width=160, highlight=False)
    opts = result.options
    console.print(
        f"Reconcile {result.product.upper()} {result.start:%Y-%m-%d %H:%M} .. "
        f"{result.end:%Y-%m-%d %H:%M} UTC: bytes x {opts.factor:g}, tolerance "
        f"{opts.tolerance:.0%} per hour, {opts.day_tolerance:.0%} per day"
    )
    for domain in result.domains:
        _print_domain(console, domain, opts.factor)
    style = _STYLES[result.verdict]
    console.print(f"Overall: [{style}]{result.verdict.value}[/{style}]")


def _print_domain(console: Console, domain: DomainResult, factor: float) -> None:
    table = Table(title=f"{domain.domain}: {domain.verdict.value}", title_justify="left")
    for name in ("hour (UTC)", "files", f"logged x{factor:g}", "provider", "ratio"):
        table.add_column(name, justify="left" if name.startswith("hour") else "right")
    for name in ("requests", "provider", "ratio", "verdict"):
        table.add_column(name, justify="right")
    for hour in domain.hours:
        style = _STYLES[hour.verdict]
        table.add_row(
            f"{hour.hour:%Y-%m-%d %H}:00",
            str(hour.files),
            *_cells(hour.bytes),
            *_cells(hour.requests),
            f"[{style}]{hour.verdict.value}[/{style}]",
        )
    console.print(table)
    days = Table(title=f"{domain.domain} per day (+08:00)", title_justify="left")
    for name in ("day", "hours", f"logged x{factor:g}", "provider", "ratio"):
        days.add_column(name, justify="left" if name == "day" else "right")
    for name in ("requests", "provider", "ratio", "verdict"):
        days.add_column(name, justify="right")
    for day in domain.days:
        style = _STYLES[day.verdict]
        days.add_row(
            day.day.isoformat(),
            str(day.hours),
            *_cells(day.bytes),
            *_cells(day.requests),
            f"[{style}]{day.verdict.value}[/{style}]",
        )
    console.print(days)
    ratio = "n/a" if domain.ratio is None else f"{domain.ratio:.3f}"
    console.print(
        f"{domain.domain}: bytes ratio {ratio}, {len(domain.short_hours)} short hour(s), "
        f"{len(domain.short_days)} short day(s)"
        + (f", {domain.not_ingested} file(s) not ingested" if domain.not_ingested else "")
    )


def _cells(comparison: Comparison) -> tuple[str, str, str]:
    provider = "-" if comparison.provider is None else f"{comparison.provider:,.0f}"
    ratio = "-" if comparison.ratio is None else f"{comparison.ratio:.3f}"
    return f"{comparison.expected:,.0f}", provider, ratio
