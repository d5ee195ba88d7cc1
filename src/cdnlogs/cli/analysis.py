"""Commands of the analysis area: ``ingest``, ``query`` and ``export`` (``report`` has its own)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import duckdb

from cdnlogs.cli import cli, render
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.operate import operated_run, ops_options
from cdnlogs.cli.options import (
    DATASET_LOCATION,
    config_option,
    domain_filter_option,
    json_option,
    make_settings,
    out_option,
    shard_options,
)
from cdnlogs.dataset import RemoteDataset, connect, dataset_root
from cdnlogs.errors import CdnLogsError, ExitStatus, UsageError
from cdnlogs.export import EXPORT_FORMATS, ExportFilter, export_logs
from cdnlogs.ingest import DEFAULT_JOBS, IngestRun, run_ingest
from cdnlogs.timeutil import parse_duration, parse_when

if TYPE_CHECKING:
    from cdnlogs.compaction import CompactSummary
    from cdnlogs.ingest.archive import IngestCallbacks
    from cdnlogs.publish import PublishSummary

T = TypeVar("T")

#: Rows ``query --format table`` shows before saying how many it left out.
TABLE_ROW_LIMIT = 1000


def dataset_option(func: Any) -> Any:
    """``--dataset PATH|s3://BUCKET/PREFIX``: the Parquet dataset root."""
    return click.option(
        "--dataset",
        type=DATASET_LOCATION,
        default=None,
        help="Parquet dataset root (default OUT/.cdnlogs/dataset), or s3://bucket/prefix on a "
        "store (ingest publishes there, query/export read it). [env: CDNLOGS_DATASET]",
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
@shard_options
@click.option(
    "--compact",
    is_flag=True,
    default=None,
    help="Then compact the settled days (as `cdnlogs compact`). "
    "[env: CDNLOGS_COMPACT_AFTER_INGEST]",
)
@config_option
@ops_options
@json_option
@click.pass_obj
def ingest_command(
    app: AppContext,
    out_dir: Path | None,
    dataset: Path | str | None,
    anonymize_ip: bool | None,
    drop_query: bool | None,
    keep: str | None,
    jobs: int | None,
    shard: str | None,
    shards: int | None,
    compact: bool | None,
    config_path: Path | None,
    ops: dict[str, Any],
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
        **ops,
        shard=shard,
        shards=shards,
        compact_after_ingest=compact,
    )
    if settings.dataset_keep:
        parse_duration(settings.dataset_keep)  # a bad value fails before any work
    with operated_run(settings, "ingest") as run:
        ingested = ingest_with_progress(
            app,
            lambda cb: run_ingest(settings, now=datetime.now(UTC), callbacks=cb),
            as_json=as_json,
        )
        summary = ingested.summary
        run.summary = summary.to_dict()
        run.files_failed = len(summary.failed)
        run.headline = f"ingested {summary.files} file(s), {summary.rows:,} rows"
        _report_ingest(app, ingested, as_json=as_json)
        if summary.failed:
            sys.exit(ExitStatus.PARTIAL)


class _IngestProgress:
    """IngestCallbacks drawing one rich progress bar: files, bytes, rate, ETA (stderr only)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._files = 0
        self._done = 0
        self._rows = 0
        self._task = progress.add_task("ingest", total=0)

    def _describe(self) -> str:
        return f"{self._done}/{self._files} files, {self._rows:,} rows"

    def on_planned(self, files: int, nbytes: int) -> None:
        self._files = files
        self._progress.update(self._task, total=nbytes, description=self._describe())

    def on_file(self, nbytes: int, rows: int) -> None:
        self._done += 1
        self._rows += rows
        self._progress.update(self._task, advance=nbytes, description=self._describe())


def ingest_with_progress(
    app: AppContext, step: Callable[[IngestCallbacks | None], T], *, as_json: bool
) -> T:
    """Run an ingest ``step`` with a progress bar on a terminal's stderr; quietly otherwise."""
    if as_json or not app.interactive:
        return step(None)
    with render.bytes_progress(app) as progress:
        return step(_IngestProgress(progress))


def _report_ingest(app: AppContext, ingested: IngestRun, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(ingested.to_dict(), indent=2), file=app.stdout)
        return
    summary, compacted, published = ingested.summary, ingested.compacted, ingested.published
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
    if compacted is not None:
        _report_compact(app, compacted)
    if published is not None:
        _report_publish(app, published)
    for domain, log_name, error in summary.failed:
        click.echo(f"failed: {domain} {log_name}: {error}", err=True)


@cli.command("compact")
@out_option
@dataset_option
@domain_filter_option("Only this domain; repeat or comma-separate for several.")
@click.option(
    "--settle",
    default=None,
    metavar="WHEN",
    help="Compact a day this long after its +08:00 end, when no late file is expected "
    "(default 2d). [env: CDNLOGS_COMPACT_SETTLE]",
)
@config_option
@json_option
@click.pass_obj
def compact_command(
    app: AppContext,
    out_dir: Path | None,
    dataset: Path | str | None,
    domains: tuple[str, ...],
    settle: str | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Merge each settled day's per-source Parquet files into one file (or a few of ~128 MB).

    Readers see the old files or the new ones, never both; the ledger keeps which sources a
    compacted file holds, so ingest stays idempotent, and a late or re-downloaded file for a
    compacted day is folded in by the next compaction.
    """
    from cdnlogs.compaction import run_compact

    settings = make_settings(config_path, out_dir=out_dir, dataset=dataset, compact_settle=settle)
    compacted = run_compact(settings, now=datetime.now(UTC), domains=domains)
    if as_json:
        click.echo(json.dumps(compacted.to_dict(), indent=2), file=app.stdout)
    else:
        _report_compact(app, compacted.summary)
        if compacted.published is not None:
            _report_publish(app, compacted.published)


def _report_publish(app: AppContext, summary: PublishSummary) -> None:
    click.echo(
        f"Published to {summary.url}: {summary.uploaded} file(s) uploaded "
        f"({summary.uploaded_bytes:,} bytes), {summary.deleted} deleted, "
        f"{summary.unchanged} unchanged.",
        file=app.stdout,
    )


def _report_compact(app: AppContext, summary: CompactSummary) -> None:
    rows = sum(p.rows for p in summary.compacted)
    replaced = sum(p.replaced for p in summary.compacted)
    click.echo(
        f"Compacted {len(summary.compacted)} day(s): {replaced} file(s) into "
        f"{sum(len(p.files) for p in summary.compacted)}, {rows:,} rows, in "
        f"{summary.seconds:.1f}s ({summary.current} already compacted, "
        f"{summary.unsettled} not settled yet).",
        file=app.stdout,
    )


def _dataset_root(
    config_path: Path | None, out_dir: Path | None, dataset: Path | str | None
) -> Path | RemoteDataset:
    return dataset_root(make_settings(config_path, out_dir=out_dir, dataset=dataset))


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
    dataset: Path | str | None,
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
    from rich.table import Table

    table = Table(*names, show_lines=False)
    for row in rows[:TABLE_ROW_LIMIT]:
        table.add_row(*("NULL" if v is None else _text(v) for v in row))
    console = render.console(app.stdout, plain_width=160)
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
    dataset: Path | str | None,
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
