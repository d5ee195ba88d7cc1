"""The ``report`` command: what happened on my domains, in the terminal, as JSON or as HTML."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from cdnlogs.analyze import DEFAULT_TOP, Filters, Report, analyze
from cdnlogs.cli import cli, render
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.options import (
    DATASET_LOCATION,
    config_option,
    domain_filter_option,
    make_settings,
    out_option,
)
from cdnlogs.dataset import RemoteDataset, connect, data_files, dataset_root
from cdnlogs.dims import DimensionStore
from cdnlogs.errors import UsageError
from cdnlogs.report.html import write_html
from cdnlogs.report.text import render_text
from cdnlogs.rollup import RollupStore
from cdnlogs.timeutil import parse_when

#: Width of the plain text report when stdout is not a terminal (pipes, cron mail, files).
PLAIN_WIDTH = 120


@cli.command("report")
@out_option
@config_option
@click.option(
    "--dataset",
    type=DATASET_LOCATION,
    default=None,
    help="Parquet dataset root (default OUT/.cdnlogs/dataset), or s3://bucket/prefix on a "
    "store. [env: CDNLOGS_DATASET]",
)
@domain_filter_option(
    "Only this domain; repeat or comma-separate for several (default: every domain in the dataset)."
)
@click.option(
    "--since", default=None, help="First instant included: ISO-8601 (UTC if naive) or 36h, 7d."
)
@click.option("--until", default=None, help="First instant excluded: ISO-8601 or 36h, 7d.")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=DEFAULT_TOP,
    show_default=True,
    help="Rows in each top table.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write one self-contained HTML file with charts (works offline) instead of the "
    "tables; with --json, the JSON too.",
)
@click.pass_obj
def report_command(
    app: AppContext,
    out_dir: Path | None,
    config_path: Path | None,
    dataset: Path | str | None,
    domains: tuple[str, ...],
    since: str | None,
    until: str | None,
    top: int,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Summarise the dataset: traffic, hit ratio, errors, top URLs and clients, latency, per hour.

    Times are UTC; the window is SINCE <= time < UNTIL. Run `cdnlogs ingest` first.
    """
    settings = make_settings(
        config_path,
        out_dir=out_dir,
        dataset=dataset,
        domains=list(domains) or None,
        since=since,
        until=until,
    )
    now = datetime.now(UTC)
    filters = Filters(
        domains=tuple(settings.domains),
        since=parse_when(settings.since, now=now) if settings.since else None,
        until=parse_when(settings.until, now=now) if settings.until else None,
        top=top,
    )
    if filters.since and filters.until and filters.since >= filters.until:
        raise UsageError("--since must be before --until")
    result = _run(dataset_root(settings), filters, settings.geoip_db)
    if html_path is not None:
        write_html(result, html_path)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), file=app.stdout)
        if html_path is not None:
            click.echo(f"Wrote {html_path}", err=True)
    elif html_path is not None:
        # The file is the report asked for: name it, rather than print the tables too.
        click.echo(f"Wrote {html_path}", file=app.stdout)
    else:
        render_text(result, _console(app))


def _run(root: Path | RemoteDataset, filters: Filters, geo_db: Path | None) -> Report:
    # A dataset on a store keeps no _dims or _rollups (they would be written beside it): its
    # dimensions are looked up in memory and its groups built from the rows; same numbers.
    local = root if isinstance(root, Path) else None
    dims = DimensionStore(local, geo_db)  # checks the IP database before any work
    con = connect(root)
    # Rollups of the files a reader counts now: after a compaction, not the per-source files
    # it replaced but has not removed yet.
    rollups = None if local is None else RollupStore(local, counted=set(data_files(con, root)))
    try:
        result = analyze(con, filters, dims, rollups)
    finally:
        con.close()
        if rollups is not None:
            rollups.close()
    if not root.is_dir():
        hint = f"no dataset at {root} (run `cdnlogs ingest` first, or pass --dataset)"
        result = replace(result, notes=[hint])
    return result


def _console(app: AppContext) -> Console:
    # On a pipe rich drops colour by itself; a fixed width keeps lines from wrapping at 80.
    return render.console(
        app.stdout, plain_width=PLAIN_WIDTH, highlight=False, emoji=False, markup=False
    )
