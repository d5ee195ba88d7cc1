"""Commands that ask the provider's API and change nothing: ``domains`` and ``list``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from cdnlogs.cli import cli, render
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.options import (
    api_options,
    domain_option,
    json_option,
    make_settings,
    verbose_option,
    window_options,
)
from cdnlogs.cli.render import human_bytes
from cdnlogs.config import Settings
from cdnlogs.errors import UsageError
from cdnlogs.models import PROVIDER_TZ, Domain, Listing
from cdnlogs.redact import redact_url
from cdnlogs.timeutil import iso_utc, resolve_window

#: ``cdnlogs list`` without ``--since`` shows the last day (up to ``--until``, default now),
#: like the API's own default.
DEFAULT_LIST_WINDOW = timedelta(hours=24)


@cli.command("domains")
@api_options
@json_option
@verbose_option
@click.pass_obj
def domains_command(
    app: AppContext,
    config_path: Path | None,
    api: dict[str, Any],
    as_json: bool,
) -> None:
    """List the account's CDN domains (DescribeUserDomains, every page)."""
    from cdnlogs.providers import make_provider

    settings = make_settings(
        config_path,
        **api,
    )
    domains = make_provider(settings).list_domains()
    if as_json:
        payload = [{"name": d.name, "status": d.status, "cdn_type": d.cdn_type} for d in domains]
        click.echo(json.dumps(payload, indent=2), file=app.stdout)
        return
    _print_domains(app, domains)


@cli.command("list")
@domain_option
@window_options
@api_options
@json_option
@verbose_option
@click.pass_obj
def list_command(
    app: AppContext,
    domains: tuple[str, ...],
    all_domains: bool,
    since: str | None,
    until: str | None,
    config_path: Path | None,
    api: dict[str, Any],
    as_json: bool,
) -> None:
    """List the remote log files of a domain in a window (default: the last 24 hours).

    WHEN is ISO-8601 (UTC unless it has an offset, e.g. 2026-11-01T00:00:00Z) or relative to
    now (90m, 36h, 7d, 2w). The provider keeps 31 days; an older --since is clamped with a
    warning. Output never contains the signed part of a download URL.
    """
    from cdnlogs.providers import make_provider

    settings = make_settings(
        config_path,
        domains=domains,
        all_domains=all_domains,
        since=since,
        until=until,
        **api,
    )
    start, end = resolve_window(
        settings.since, settings.until, now=datetime.now(UTC), default=DEFAULT_LIST_WINDOW
    )
    provider = make_provider(settings)
    names = _domain_names(settings, provider.list_domains if settings.all_domains else None)
    listings = [provider.list_log_files(name, start, end) for name in names]
    if as_json:
        click.echo(json.dumps(listings_to_json(listings), indent=2), file=app.stdout)
        return
    for listing in listings:
        _print_listing(app, listing)
    if len(listings) > 1:
        files = sum(len(x.files) for x in listings)
        size = sum(x.total_bytes for x in listings)
        click.echo(
            f"All domains: {files} files, {size} bytes ({human_bytes(size)})", file=app.stdout
        )


def _domain_names(settings: Settings, list_domains: Any) -> list[str]:
    if list_domains is not None:
        return [d.name for d in list_domains()]
    if not settings.domains:
        raise UsageError(
            "no domain given",
            hint="use --domain D (or --all-domains), or set domains in the config file",
        )
    return list(dict.fromkeys(settings.domains))


def listings_to_json(listings: list[Listing]) -> dict[str, Any]:
    """The ``list --json`` document: download URLs without their signed query string."""
    out: list[dict[str, Any]] = []
    for listing in listings:
        out.append(
            {
                "domain": listing.domain,
                "start": iso_utc(listing.start),
                "end": iso_utc(listing.end),
                "clamped_from": iso_utc(listing.clamped_from) if listing.clamped_from else None,
                "pages": listing.pages,
                "duplicates": listing.duplicates,
                "request_ids": listing.request_ids,
                "total_files": len(listing.files),
                "total_bytes": listing.total_bytes,
                "files": [
                    {
                        "name": f.name,
                        "start": iso_utc(f.start),
                        "end": iso_utc(f.end),
                        "start_local": f.local_start.isoformat(),
                        "size": f.size,
                        "url": redact_url(f.url),
                    }
                    for f in listing.files
                ],
            }
        )
    return {
        "domains": out,
        "total_files": sum(d["total_files"] for d in out),
        "total_bytes": sum(d["total_bytes"] for d in out),
    }


# --- rendering ------------------------------------------------------------------------------


def _console(app: AppContext) -> Any:
    return render.console(app.stdout, plain_width=200, highlight=False)


def _print_domains(app: AppContext, domains: list[Domain]) -> None:
    from rich.table import Table

    table = Table(title="CDN domains", caption=f"{len(domains)} domains")
    table.add_column("Domain", no_wrap=True)
    table.add_column("Status")
    table.add_column("Type")
    for domain in domains:
        table.add_row(domain.name, domain.status or "-", domain.cdn_type or "-")
    _console(app).print(table)


def _print_listing(app: AppContext, listing: Listing) -> None:
    from rich.table import Table

    title = f"{listing.domain}: {iso_utc(listing.start)} .. {iso_utc(listing.end)}"
    total = listing.total_bytes
    caption = f"{len(listing.files)} files, {total} bytes ({human_bytes(total)})"
    if listing.clamped_from is not None:
        caption += f"; start clamped from {iso_utc(listing.clamped_from)} (31-day window)"
    if listing.duplicates:
        caption += f"; {listing.duplicates} duplicate entries ignored"
    table = Table(title=title, caption=caption)
    table.add_column("Log file", no_wrap=True)
    table.add_column("Hour (UTC)", no_wrap=True)
    table.add_column("Hour (+08:00)", no_wrap=True)
    table.add_column("Size", justify="right")
    for f in listing.files:
        table.add_row(
            f.name,
            f.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            f.start.astimezone(PROVIDER_TZ).strftime("%Y-%m-%d %H:%M"),
            f"{f.size:,}",
        )
    _console(app).print(table)
