"""The Parquet dataset, read side: its schema, its paths, the views over it, its retention.

Layout (the contract ``analyze`` and users' own tools read; documented in docs/analysis.md)::

    <root>/domain=<domain>/date=<YYYY-MM-DD>/<source-stem>.parquet     one per source log file
    <root>/domain=<domain>/date=<YYYY-MM-DD>/<source-stem>.reparsed.parquet
                                  its lines the fast path could not vouch for, read by the
                                  reference parser (only when there are any)
    <root>/_rejects/domain=<domain>/<source-stem>.parquet             its unparseable lines

The write path (parsing source files into this layout) is the ``cdnlogs.ingest`` package.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from cdnlogs.models import PROVIDER_TZ

#: The dataset's columns, in file order, with their DuckDB (and Parquet) types.
LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "TIMESTAMPTZ"),
    ("utc_offset_minutes", "INTEGER"),
    ("client_ip", "VARCHAR"),
    ("proxy_ip", "VARCHAR"),
    ("response_time_ms", "BIGINT"),
    ("referer", "VARCHAR"),
    ("method", "VARCHAR"),
    ("scheme", "VARCHAR"),
    ("host", "VARCHAR"),
    ("path", "VARCHAR"),
    ("query", "VARCHAR"),
    ("status", "INTEGER"),
    ("request_bytes", "BIGINT"),
    ("response_bytes", "BIGINT"),
    ("cache_status", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("content_type", "VARCHAR"),
    ("protocol", "VARCHAR"),
    ("source_file", "VARCHAR"),
)
#: The rejects files' columns.
REJECT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_file", "VARCHAR"),
    ("line_number", "BIGINT"),
    ("line", "VARCHAR"),
    ("reason", "VARCHAR"),
)
#: The Hive partition columns the views add (they are not stored inside the files).
PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (("domain", "VARCHAR"), ("date", "DATE"))
REJECTS_DIR = "_rejects"
#: The name ending of the second, small file holding the rows the reference parser re-read.
REPARSED_SUFFIX = ".reparsed.parquet"
DEFAULT_THREADS = 2
#: DuckDB's memory limit for queries (report, query, export).
DEFAULT_MEMORY_LIMIT = "768MB"


def quote_sql(text: str) -> str:
    """A SQL string literal (file paths go into read_parquet/COPY, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def columns_sql(columns: tuple[tuple[str, str], ...]) -> str:
    """``name TYPE, ...`` for a CREATE TABLE."""
    return ", ".join(f"{name} {kind}" for name, kind in columns)


# -- paths ------------------------------------------------------------------------------------


def partition_dir(root: Path, domain: str, day: date) -> Path:
    """``<root>/domain=<domain>/date=<YYYY-MM-DD>``."""
    return root / f"domain={domain}" / f"date={day.isoformat()}"


def rejects_path(root: Path, domain: str, stem: str) -> Path:
    """``<root>/_rejects/domain=<domain>/<stem>.parquet``."""
    return root / REJECTS_DIR / f"domain={domain}" / f"{stem}.parquet"


def source_stem(log_name: str) -> str:
    """The LogName without ``.gz`` / ``.log``: the Parquet file's name."""
    for suffix in (".gz", ".log"):
        if log_name.endswith(suffix):
            return log_name[: -len(suffix)]
    return log_name


def partition_date(log_name: str, hour_start: datetime) -> date:
    """The provider's +08:00 date of a source file: from its LogName, else from its hour."""
    from cdnlogs.storage import parse_log_name

    parsed = parse_log_name(log_name)
    if parsed is not None:
        return parsed.local_start.date()
    return hour_start.astimezone(PROVIDER_TZ).date()


# -- retention --------------------------------------------------------------------------------


def prune_dataset(root: Path, *, keep: timedelta, now: datetime) -> list[Path]:
    """Delete ``date=`` partitions whose whole +08:00 day ended before ``now - keep``.

    Returns the removed directories. Rejects files are kept (they are small and say what was
    lost); the raw archive and the ledger are not touched.
    """
    cutoff = (now - keep).astimezone(PROVIDER_TZ).date()
    removed: list[Path] = []
    for part in sorted(root.glob("domain=*/date=*")):
        try:
            day = date.fromisoformat(part.name.removeprefix("date="))
        except ValueError:
            continue
        if day < cutoff:
            shutil.rmtree(part)
            removed.append(part)
    return removed


# -- reading the dataset ----------------------------------------------------------------------


def _has_files(pattern_root: Path, pattern: str) -> bool:
    return next(iter(pattern_root.glob(pattern)), None) is not None


def _empty_view(columns: tuple[tuple[str, str], ...]) -> str:
    return (
        "SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in columns) + " WHERE false"
    )


def create_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)create the ``logs`` and ``rejects`` views over the dataset at ``root``.

    Both have the partition columns ``domain VARCHAR`` and (``logs`` only) ``date DATE``, and
    are empty typed views while the dataset has no files.
    """
    root = Path(root).absolute()
    hive = "hive_partitioning=true, hive_types={'domain': 'VARCHAR', 'date': 'DATE'}"
    if _has_files(root, "domain=*/date=*/*.parquet"):
        glob = quote_sql(str(root / "domain=*" / "date=*" / "*.parquet"))
        names = ", ".join(name for name, _ in LOG_COLUMNS + PARTITION_COLUMNS)
        logs = f"SELECT {names} FROM read_parquet({glob}, {hive})"
    else:
        logs = _empty_view(LOG_COLUMNS + PARTITION_COLUMNS)
    if _has_files(root, f"{REJECTS_DIR}/domain=*/*.parquet"):
        glob = quote_sql(str(root / REJECTS_DIR / "domain=*" / "*.parquet"))
        names = ", ".join(name for name, _ in REJECT_COLUMNS)
        rejects = (
            f"SELECT {names}, domain FROM read_parquet({glob}, hive_partitioning=true, "
            "hive_types={'domain': 'VARCHAR'})"
        )
    else:
        rejects = _empty_view((*REJECT_COLUMNS, ("domain", "VARCHAR")))
    con.execute(f"CREATE OR REPLACE VIEW logs AS {logs}")
    con.execute(f"CREATE OR REPLACE VIEW rejects AS {rejects}")


def connect(
    root: Path,
    *,
    threads: int = DEFAULT_THREADS,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``logs`` and ``rejects`` views over ``root``.

    The session time zone is UTC, so ``ts`` prints and truncates in UTC.
    """
    con = duckdb.connect(config={"threads": threads})
    try:
        con.execute(f"SET memory_limit = {quote_sql(memory_limit)}")
        con.execute("SET TimeZone = 'UTC'")
        create_views(con, root)
    except BaseException:
        con.close()
        raise
    return con


# The write path moved to ``cdnlogs.ingest``; these names still import from here so code
# written against the old module (and branches merged later) keeps working.
_MOVED_TO_INGEST = frozenset(
    {
        "DEFAULT_JOBS",
        "FileIngest",
        "IngestOptions",
        "IngestSummary",
        "Ingester",
        "ingest_archive",
        "iter_lines",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_INGEST:
        import cdnlogs.ingest

        return getattr(cdnlogs.ingest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
