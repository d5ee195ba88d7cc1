"""Commands status, verify, prune and adopt: look after an archive without the network."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cdnlogs.check import CheckResult, check_with_settings
from cdnlogs.cli import cli, render
from cdnlogs.cli.context import AppContext
from cdnlogs.cli.options import (
    config_option,
    domain_filter_option,
    json_option,
    make_settings,
    out_option,
    store_option,
)
from cdnlogs.cli.render import human_bytes
from cdnlogs.config import Settings
from cdnlogs.errors import (
    CorruptFilesError,
    IncompleteArchiveError,
    PruneIncompleteError,
    UsageError,
)
from cdnlogs.housekeeping import (
    AdoptResult,
    DomainStatus,
    HourRange,
    MergedLedgers,
    PruneResult,
    VerifyResult,
    archive_status,
    run_adopt,
    run_prune,
    run_verify,
    status_to_dict,
    status_window,
)
from cdnlogs.manifest import Manifest, Status
from cdnlogs.timeutil import iso_utc, parse_duration, parse_when

if TYPE_CHECKING:  # s3fs is imported only when a store is given
    from cdnlogs.store import ObjectStore

#: Gap ranges shown per domain in the table view (all of them are in --json).
MAX_GAPS_SHOWN = 8


def _console(ctx: click.Context) -> Console:
    app = ctx.find_object(AppContext)
    stream: IO[str] = app.stdout if app is not None else sys.stdout
    return render.console(stream, plain_width=160, highlight=False)


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def _range_text(gap: HourRange) -> str:
    start = gap.start.astimezone(UTC)
    last = gap.end.astimezone(UTC)
    if gap.hours == 1:
        return f"{start:%Y-%m-%d %H}:00"
    end_text = f"{last:%H}:00" if last.date() == start.date() else f"{last:%Y-%m-%d %H}:00"
    return f"{start:%Y-%m-%d %H}:00–{end_text} ({gap.hours}h)"


def _open_ledger(settings: Settings) -> Manifest:
    return Manifest.open(settings.state_dir, create=False)


def _open_store(settings: Settings) -> ObjectStore | None:
    """The ``--store`` (or ``store`` setting), checked; None when there is none."""
    if not settings.store:
        return None
    from cdnlogs.store import open_store

    store = open_store(settings)
    store.check()
    return store


# -- status -------------------------------------------------------------------------------


@cli.command()
@out_option
@config_option
@store_option
@click.option(
    "--from-store",
    is_flag=True,
    help="Read every shard's ledger snapshot from --store (the whole account) instead of "
    "the local ledger.",
)
@domain_filter_option(
    "Only this domain; repeat or comma-separate for several. Default: every domain in the archive."
)
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Look for gaps from here (ISO-8601 or relative like 7d). Default: the look-back (72h).",
)
@click.option(
    "--check",
    "run_check",
    is_flag=True,
    help="Also judge the archive: exit 6 with the reasons when a settled hour has no file, "
    "files failed, or the last successful sync is too old (settings check_settle, "
    "check_stale_after, check_max_gap_hours).",
)
@json_option
@click.pass_context
def status(
    ctx: click.Context,
    out_dir: Path | None,
    config_path: Path | None,
    store: str | None,
    from_store: bool,
    domains: tuple[str, ...],
    since: str | None,
    run_check: bool,
    as_json: bool,
) -> None:
    """Show per-domain file counts, hours covered, gaps in the window and the last sync.

    With --check, exit 6 (and name every reason) when the archive is incomplete or stale, so
    cron or a monitoring agent can alert; 0 when it is complete. With --from-store, the ledgers
    are every shard's snapshot in the store, read as one.
    """
    settings = make_settings(config_path, out_dir=out_dir, since=since, store=store)
    now = datetime.now(UTC)
    start, end = status_window(
        now=now,
        since=parse_when(settings.since, now=now) if settings.since else None,
        lookback=parse_duration(settings.lookback),
    )
    if from_store and run_check:
        raise UsageError(
            "--check judges this machine's ledger; --from-store reads every shard's snapshot",
            hint="run `cdnlogs status --check` on each shard's worker",
        )
    checked: CheckResult | None = None
    shards: list[str] | None = None
    if from_store:
        result, shards = _status_from_store(settings, domains, start, end)
    else:
        with _open_ledger(settings) as manifest:
            wanted = list(domains) or sorted(set(manifest.domains()) | set(settings.domains))
            result = archive_status(manifest, window_start=start, window_end=end, domains=wanted)
            if run_check:
                checked = check_with_settings(manifest, settings, now=now, domains=wanted)
    if as_json:
        data = status_to_dict(settings.out_dir, start, end, result)
        if shards is not None:
            data["store"], data["ledgers"] = settings.store, shards
        if checked is not None:
            data["check"] = checked.to_dict()
        _emit_json(data)
    else:
        if shards is not None:
            _console(ctx).print(f"{settings.store}: ledger snapshots {', '.join(shards) or 'none'}")
        _print_status(_console(ctx), settings, start, end, result)
        if checked is not None:
            _print_check(_console(ctx), checked)
    if checked is not None and not checked.ok:
        raise IncompleteArchiveError(
            f"archive check failed: {len(checked.problems)} problem(s) in "
            f"{len({p.domain for p in checked.problems})} domain(s)",
            hint="`cdnlogs sync` fetches missing and failed files; see docs/operations.md",
        )


def _print_check(console: Console, result: CheckResult) -> None:
    window = f"settled hours {_iso(result.window_start)} to {_iso(result.window_end)}"
    if result.ok:
        console.print(f"check: ok ({window})", markup=False)
        return
    console.print(f"check: {len(result.problems)} problem(s) ({window}):", markup=False)
    for problem in result.problems:
        console.print(f"  {problem.domain}: {problem.message}", markup=False)


def _status_from_store(
    settings: Settings, domains: tuple[str, ...], start: datetime, end: datetime
) -> tuple[list[DomainStatus], list[str]]:
    import contextlib
    import tempfile

    from cdnlogs.upload import fetch_snapshots

    store = _open_store(settings)
    if store is None:
        raise UsageError("--from-store needs --store s3://bucket/prefix (or the store setting)")
    with tempfile.TemporaryDirectory(prefix="cdnlogs-status-") as tmp:
        snapshots = fetch_snapshots(store, Path(tmp))
        if not snapshots:
            raise UsageError(
                f"no ledger snapshot under {store.url.url('.cdnlogs/ledgers')}",
                hint="each `cdnlogs sync --store` run leaves one there",
            )
        with contextlib.ExitStack() as stack:
            ledgers = [
                stack.enter_context(Manifest.open(path, create=False)) for _, path in snapshots
            ]
            merged = MergedLedgers(ledgers)
            wanted = list(domains) or sorted(set(merged.domains()) | set(settings.domains))
            result = archive_status(merged, window_start=start, window_end=end, domains=wanted)
    return result, [name for name, _ in snapshots]


def _print_status(
    console: Console, settings: Settings, start: datetime, end: datetime, rows: list[DomainStatus]
) -> None:
    if not rows:
        console.print(f"The archive {settings.out_dir} has no files yet.")
        return
    table = Table(
        title=f"{settings.out_dir}: window {_iso(start)} to {_iso(end)}",
        title_justify="left",
    )
    table.add_column("domain", no_wrap=True)
    for status in Status:
        table.add_column(status.value, justify="right")
    table.add_column("size", justify="right")
    table.add_column("hours", justify="right")
    table.add_column("missing", justify="right")
    table.add_column("last sync (UTC)")
    for d in rows:
        table.add_row(
            d.domain,
            *(str(d.counts.get(status, 0)) for status in Status),
            human_bytes(d.bytes_stored),
            str(d.hours_covered),
            f"[red]{d.missing_hours}[/red]" if d.missing_hours else "0",
            _iso(d.last_sync) or "never",
        )
    console.print(table)
    for d in rows:
        if not d.gaps:
            continue
        shown = ", ".join(_range_text(g) for g in d.gaps[:MAX_GAPS_SHOWN])
        more = len(d.gaps) - MAX_GAPS_SHOWN
        if more > 0:
            shown += f", and {more} more"
        console.print(f"{d.domain}: no file yet for {shown} (UTC)")


# -- verify -------------------------------------------------------------------------------


@cli.command()
@out_option
@config_option
@store_option
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    out_dir: Path | None,
    config_path: Path | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Re-check every downloaded file (present, size, checksum); bad ones are fetched again.

    A .log file is checked against the CRC-32 of its text, a .gz file against the sha256 of
    the download; with --store, the stored object too (present, size, ETag).

    Exits 5 if any file was missing or corrupt (it is marked pending, so the next sync
    downloads it again), 0 if all are intact.
    """
    settings = make_settings(config_path, out_dir=out_dir, store=store)
    app = ctx.find_object(AppContext)
    object_store = _open_store(settings)
    if app is None or not app.interactive:
        result = run_verify(settings, store=object_store)
    else:
        with Progress(console=render.stderr_console(app), transient=True) as bar:
            task = bar.add_task("verifying", total=None)
            result = run_verify(
                settings,
                store=object_store,
                progress=lambda _row: bar.advance(task),
                on_total=lambda total: bar.update(task, total=total),
            )
    if as_json:
        _emit_json(result.to_dict())
    else:
        _print_verify(_console(ctx), result)
    if result.problems:
        # Raised, not ctx.exit(5): main() maps CdnLogsError exit codes, and the summary line
        # goes to stderr where scripts look for it.
        raise CorruptFilesError(
            f"{len(result.problems)} of {result.checked} files missing or corrupt; "
            "marked for download by the next sync"
        )


def _print_verify(console: Console, result: VerifyResult) -> None:
    console.print(
        f"Checked {result.checked} files ({human_bytes(result.bytes_checked)} intact): "
        f"{result.ok} ok, {len(result.problems)} missing or corrupt."
    )
    if result.not_checked:
        console.print(
            f"{result.not_checked} files are only in the object store: pass --store to check them."
        )
    if not result.problems:
        return
    table = Table("domain", "file", "problem")
    for p in result.problems:
        table.add_row(p.domain, p.local_path or p.log_name, p.reason)
    console.print(table)
    console.print("They are marked pending: the next `cdnlogs sync` downloads them again.")


# -- prune --------------------------------------------------------------------------------


@cli.command()
@out_option
@config_option
@click.option(
    "--keep",
    default=None,
    metavar="DURATION",
    help="Keep logs whose hour ended within this long ago (e.g. 7d); older files are "
    "deleted. Default: the retention setting.",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; touch nothing.")
@store_option
@json_option
@click.pass_context
def prune(
    ctx: click.Context,
    out_dir: Path | None,
    config_path: Path | None,
    keep: str | None,
    store: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete downloaded logs older than --keep, by the hour they cover (not file mtime).

    Only files the ledger knows are deleted; their rows stay as "pruned" so sync never
    downloads them again.
    """
    settings = make_settings(config_path, out_dir=out_dir, store=store)
    keep_text = keep or settings.retention
    if not keep_text:
        raise UsageError("say how much to keep: --keep 7d (or set `retention` in the config)")
    duration = parse_duration(keep_text)
    object_store = _open_store(settings)
    result = run_prune(
        settings, duration, now=datetime.now(UTC), dry_run=dry_run, store=object_store
    )
    if as_json:
        _emit_json(result.to_dict())
    else:
        _print_prune(_console(ctx), result)
    if result.problems:
        raise PruneIncompleteError(f"{len(result.problems)} files could not be pruned")


def _print_prune(console: Console, result: PruneResult) -> None:
    verb = "Would delete" if result.dry_run else "Deleted"
    if result.dry_run:
        for f in result.files:
            console.print(f"  {f.local_path or f.log_name}")
    console.print(
        f"{verb} {len(result.files)} files ({human_bytes(result.bytes)}) whose hour ended before "
        f"{_iso(result.cutoff)}."
    )
    for p in result.problems:
        console.print(f"[red]not pruned[/red] {p.local_path or p.log_name}: {p.reason}")


# -- adopt --------------------------------------------------------------------------------


@cli.command()
@click.argument("source", type=click.Path(path_type=Path, file_okay=False, exists=True))
@out_option
@config_option
@domain_filter_option(
    "Only adopt files of this domain; repeat or comma-separate for several. Default: every domain."
)
@click.option(
    "--move/--copy",
    default=False,
    help="Move files from SOURCE into the archive instead of copying them (default: copy). "
    "Files already inside --out are recorded where they are.",
)
@json_option
@click.pass_context
def adopt(
    ctx: click.Context,
    source: Path,
    out_dir: Path | None,
    config_path: Path | None,
    domains: tuple[str, ...],
    move: bool,
    as_json: bool,
) -> None:
    """Record log files already on disk (e.g. the old script's download/*.txt) as downloaded.

    Files named like LogNames (.txt and .log hold text, .gz the download) are checked, placed
    under the archive layout and recorded, so `cdnlogs sync` never fetches them again.
    """
    settings = make_settings(config_path, out_dir=out_dir)
    result = run_adopt(settings, source, domains=domains or None, move=move)
    if as_json:
        _emit_json(result.to_dict())
    else:
        _print_adopt(_console(ctx), result)


def _print_adopt(console: Console, result: AdoptResult) -> None:
    console.print(
        f"Adopted {len(result.adopted)} files, skipped {len(result.skipped)}, "
        f"{len(result.unrecognised)} not recognised as CDN log files."
    )
    for path, reason in result.skipped[:MAX_GAPS_SHOWN]:
        console.print(f"  skipped {path}: {reason}")
    for path in result.unrecognised[:MAX_GAPS_SHOWN]:
        console.print(f"  not a log name: {path}")
