"""Commands of the analysis area: ``ingest``, ``query`` and ``export`` (``report`` has its own)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import duckdb

from cdnlogs.cli import cli
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.options import (
    config_option,
    domain_filter_option,
    json_option,
    make_settings,
    out_option,
)
from cdnlogs.dataset import connect
from cdnlogs.errors import CdnLogsError, ExitStatus, UsageError
from cdnlogs.export import EXPORT_FORMATS, ExportFilter, export_logs
from cdnlogs.ingest import DEFAULT_JOBS, IngestSummary, ingest_archive
from cdnlogs.lock import ArchiveLock
from cdnlogs.timeutil import parse_duration, parse_when

#: Rows ``query --format table`` shows before saying how many it left out.
TABLE_ROW_LIMIT = 1000


def dataset_option(func: Any) -> Any:
    """``--dataset PATH``: the Parquet dataset root."""
    return click.option(
        "--dataset",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Parquet dataset root (default OUT/.cdnlogs/dataset). [env: CDNLOGS_DATASET]",
    )(func)


@cli.command("ingest")
@out_option
@dataset_option
@click.option(
    "--anonymize-ip",
    is_flag=True,
    default=None,
    help="Store client and proxy IPs truncated to their network (IPv4 /24, IPv6 /48).",
)
@click.option("--drop-query", is_flag=True, default=None, help="Store no query strings.")
@click.option(
    "--keep",
    default=None,
    metavar="WHEN",
    help="Delete dataset partitions (days) older than this, e.g. 90d. [env: CDNLOGS_DATASET_KEEP]",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Source files ingested at once (they share DuckDB's threads and memory limit). "
    f"Default {DEFAULT_JOBS}. [env: CDNLOGS_INGEST_JOBS]",
)
@config_option
@json_option
@click.pass_obj
def ingest_command(
    app: AppContext,
    out_dir: Path | None,
    dataset: Path | None,
    anonymize_ip: bool | None,
    drop_query: bool | None,
    keep: str | None,
    jobs: int | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Load every downloaded log file not yet in the dataset (idempotent per file).

    Each source file becomes one Parquet file under domain=<d>/date=<YYYY-MM-DD>/; a file
    downloaded again replaces its own rows. Lines that cannot be parsed are kept in the
    rejects table with their file and line number.
    """
    settings = make_settings(
        config_path,
        out_dir=out_dir,
        dataset=dataset,
        anonymize_ip=anonymize_ip or None,
        drop_query=drop_query or None,
        dataset_keep=keep,
        ingest_jobs=jobs,
    )
    if settings.dataset_keep:
        parse_duration(settings.dataset_keep)  # a bad value fails before any work
    with ArchiveLock(settings.state_dir, purpose="ingest"):
        summary = ingest_archive(settings, now=datetime.now(UTC))
    _report_ingest(app, summary, as_json=as_json)
    if summary.failed:
        sys.exit(ExitStatus.PARTIAL)


def _report_ingest(app: AppContext, summary: IngestSummary, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2), file=app.stdout)
        return
    rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
    click.echo(
        f"Ingested {summary.files} file(s): {summary.rows:,} rows, {summary.rejects:,} rejected "
        f"line(s) in {summary.seconds:.1f}s ({rate:,.0f} rows/s).",
        file=app.stdout,
    )
    if summary.reparsed:
        click.echo(
            f"{summary.reparsed:,} line(s) were re-read by the reference parser.", file=app.stdout
        )
    if summary.recopied_files:
        click.echo(
            f"{summary.recopied_files} file(s) were read again on one scanner: DuckDB's parallel "
            "CSV reader missed lines in them (all are in the dataset now).",
            file=app.stdout,
        )
    for part in summary.removed_partitions:
        click.echo(f"Removed {part} (older than --keep).", file=app.stdout)
    for domain, log_name, error in summary.failed:
        click.echo(f"failed: {domain} {log_name}: {error}", err=True)


def _dataset_root(config_path: Path | None, out_dir: Path | None, dataset: Path | None) -> Path:
    settings = make_settings(config_path, out_dir=out_dir, dataset=dataset)
    return settings.dataset_dir


@cli.command("query")
@click.argument("sql")
@out_option
@dataset_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format (json: one array of objects).",
)
@config_option
@click.pass_obj
def query_command(
    app: AppContext,
    sql: str,
    out_dir: Path | None,
    dataset: Path | None,
    fmt: str,
    config_path: Path | None,
) -> None:
    """Run DuckDB SQL over the dataset: views `logs` (one row per request) and `rejects`.

    Example: cdnlogs query "SELECT status, count(*) FROM logs GROUP BY 1 ORDER BY 2 DESC"
    """
    con = connect(_dataset_root(config_path, out_dir, dataset))
    try:
        try:
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchall() if names else []
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            raise UsageError(f"SQL: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise CdnLogsError(f"SQL: {_first_line(exc)}") from None
    finally:
        con.close()
    if fmt == "json":
        data = [dict(zip(names, (_jsonable(v) for v in row), strict=True)) for row in rows]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False), file=app.stdout)
    elif fmt == "csv":
        writer = csv.writer(app.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in rows])
    else:
        _print_table(app, names, rows)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _print_table(app: AppContext, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*names, show_lines=False)
    for row in rows[:TABLE_ROW_LIMIT]:
        table.add_row(*("NULL" if v is None else _text(v) for v in row))
    console = Console(file=app.stdout, width=None if app.stdout.isatty() else 160)
    console.print(table)
    if len(rows) > TABLE_ROW_LIMIT:
        console.print(
            f"({len(rows) - TABLE_ROW_LIMIT:,} more rows; use --format csv or a LIMIT)",
            style="dim",
        )


@cli.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(EXPORT_FORMATS)),
    required=True,
    help="csv, jsonl, parquet, or clf (Combined Log Format for GoAccess/AWStats).",
)
@click.option(
    "--output",
    "output",
    default="-",
    metavar="FILE",
    help="File to write, or - for stdout (default).",
)
@domain_filter_option("Only this domain; repeat or comma-separate for several.")
@click.option(
    "--since", default=None, metavar="WHEN", help="First instant included (ISO-8601, 7d)."
)
@click.option("--until", default=None, metavar="WHEN", help="First instant excluded.")
@out_option
@dataset_option
@config_option
@click.pass_obj
def export_command(
    app: AppContext,
    fmt: str,
    output: str,
    domains: tuple[str, ...],
    since: str | None,
    until: str | None,
    out_dir: Path | None,
    dataset: Path | None,
    config_path: Path | None,
) -> None:
    """Export dataset rows as CSV, JSON lines, Parquet, or Combined Log Format (clf)."""
    now = datetime.now(UTC)
    flt = ExportFilter(
        domains=domains,
        since=parse_when(since, now=now) if since else None,
        until=parse_when(until, now=now) if until else None,
    )
    if flt.since and flt.until and flt.since >= flt.until:
        raise UsageError("--since must be before --until")
    con = connect(_dataset_root(config_path, out_dir, dataset))
    try:
        if output == "-":
            app.stdout.flush()
            stream = getattr(app.stdout, "buffer", None)
            if stream is None:
                raise UsageError("stdout cannot take binary output here; use --output FILE")
            count = export_logs(con, fmt, stream, flt)
            stream.flush()
        else:
            count = export_logs(con, fmt, Path(output), flt)
    finally:
        con.close()
    click.echo(f"Exported {count:,} row(s).", err=True)
