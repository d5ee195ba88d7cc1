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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cdnlogs.datafiles import DATA_GLOB, choose_files
from cdnlogs.datafiles import REPARSED_SUFFIX as REPARSED_SUFFIX
from cdnlogs.models import PROVIDER_TZ

if TYPE_CHECKING:
    from cdnlogs.config import Settings
    from cdnlogs.store import ObjectStore

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
#: The rejects files' columns. ``line`` is the line decoded as the reference parser reads it
#: (bytes that are not UTF-8 become U+FFFD); ``line_bytes`` is the physical line exactly as in
#: the source, without its newline (NULL in rejects files written before it existed).
REJECT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_file", "VARCHAR"),
    ("line_number", "BIGINT"),
    ("line", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("line_bytes", "BLOB"),
)
#: The Hive partition columns the views add (they are not stored inside the files).
PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (("domain", "VARCHAR"), ("date", "DATE"))
REJECTS_DIR = "_rejects"
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


class RemoteDataset:
    """A dataset on an object store (``s3://bucket/prefix``), read through s3fs.

    DuckDB reads it with the store's file system registered (``register_filesystem``), never
    with the httpfs extension, which cannot be installed offline.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __str__(self) -> str:
        return str(self.store.url)

    def is_dir(self) -> bool:
        """True when the prefix holds any object (a dataset was published there)."""
        return next(iter(self.store.list()), None) is not None

    def url(self, relative: str) -> str:
        """The ``s3://`` URL of a file of the dataset."""
        return self.store.url.url(relative)

    def files(self) -> list[str]:
        """Every object's key relative to the dataset root, as listed now."""
        prefix = self.store.url.prefix
        cut = len(prefix) + 1 if prefix else 0
        return [stored.key[cut:] for stored in self.store.list()]


def dataset_root(settings: Settings) -> Path | RemoteDataset:
    """The dataset the read commands open: the local directory, or the one on the store."""
    url = settings.dataset_url
    if url is None:
        return settings.dataset_dir
    from cdnlogs.store import open_store

    return RemoteDataset(open_store(settings, url))


def create_views(con: duckdb.DuckDBPyConnection, root: Path | RemoteDataset) -> None:
    """(Re)create the ``logs`` and ``rejects`` views over the dataset at ``root``.

    Both have the partition columns ``domain VARCHAR`` and (``logs`` only) ``date DATE``, and
    are empty typed views while the dataset has no files.

    ``logs`` reads the files ``cdnlogs.datafiles.choose_files`` picks in each partition: while
    a compaction's old files are still there (an interrupted run, or the moment between adding
    the new generation and removing what it replaced where no atomic swap is possible), the
    view lists the files to read explicitly, as found now; otherwise it is the plain glob.
    A dataset on a store is always read from the explicit list taken here (one listing, and a
    compaction published meanwhile cannot make a query count a day twice).
    """
    data: str | None = None
    rejects_from: str | None = None
    reject_files: list[str] = []
    if isinstance(root, RemoteDataset):
        chosen, reject_files = _remote_files(con, root)
    else:
        root = Path(root).absolute()
        local = _chosen_files(con, root)
        chosen = local if local is not None else []
        data = quote_sql(str(root / DATA_GLOB)) if local is None else None
        if _has_files(root, f"{REJECTS_DIR}/domain=*/*.parquet"):
            rejects_from = quote_sql(str(root / REJECTS_DIR / "domain=*" / "*.parquet"))
    hive = "hive_partitioning=true, hive_types={'domain': 'VARCHAR', 'date': 'DATE'}"
    names = ", ".join(name for name, _ in LOG_COLUMNS + PARTITION_COLUMNS)
    if data is not None:
        logs = f"SELECT {names} FROM read_parquet({data}, {hive})"
    elif chosen:
        con.execute(f"SET VARIABLE {_FILES_VARIABLE} = $1", [chosen])
        logs = f"SELECT {names} FROM read_parquet(getvariable('{_FILES_VARIABLE}'), {hive})"
    else:
        logs = _empty_view(LOG_COLUMNS + PARTITION_COLUMNS)
    if reject_files:
        con.execute(f"SET VARIABLE {_REJECTS_VARIABLE} = $1", [reject_files])
        rejects_from = f"getvariable('{_REJECTS_VARIABLE}')"
    if rejects_from is not None:
        names = ", ".join(name for name, _ in REJECT_COLUMNS)
        # By name, with an empty relation holding ``line_bytes``: rejects files written before
        # that column existed read it as NULL, even when no file has it.
        rejects = (
            f"SELECT {names}, domain FROM (SELECT * FROM read_parquet({rejects_from}, "
            "hive_partitioning=true, hive_types={'domain': 'VARCHAR'}, union_by_name=true) "
            "UNION ALL BY NAME SELECT NULL::BLOB AS line_bytes WHERE false)"
        )
    else:
        rejects = _empty_view((*REJECT_COLUMNS, ("domain", "VARCHAR")))
    con.execute(f"CREATE OR REPLACE VIEW logs AS {logs}")
    con.execute(f"CREATE OR REPLACE VIEW rejects AS {rejects}")


def data_files(con: duckdb.DuckDBPyConnection, root: Path | RemoteDataset) -> list[str]:
    """The data files a reader counts now (the reader rule applied), as paths or URLs.

    For code that reads the files one by one (per-file rollups, say) instead of the ``logs``
    view: a plain glob would also take the files a compaction replaced but has not removed yet.
    """
    if isinstance(root, RemoteDataset):
        return _remote_files(con, root)[0]
    root = Path(root).absolute()
    chosen = _chosen_files(con, root)
    if chosen is not None:
        return chosen
    return [str(p) for p in sorted(root.glob(DATA_GLOB)) if p.is_file()]


#: The session variables holding the explicit file lists of the views.
_FILES_VARIABLE = "cdnlogs_logs_files"
_REJECTS_VARIABLE = "cdnlogs_rejects_files"


def _chosen_files(con: duckdb.DuckDBPyConnection, root: Path) -> list[str] | None:
    """The data files to read, or None when the plain glob reads exactly those.

    Lists each partition; only a partition holding compacted files can have files not to
    read (``datafiles.choose_files``), so the others cost one directory listing.
    """
    from cdnlogs.compaction import held_stems

    chosen: list[str] = []
    skipped = False
    for part in sorted(root.glob("domain=*/date=*")):
        if not part.is_dir():
            continue
        listed = [p.name for p in part.iterdir() if p.name.endswith(".parquet") and p.is_file()]
        choice = choose_files(listed, partial(held_stems, con, str(part)))
        skipped = skipped or bool(choice.stale)
        chosen.extend(str(part / name) for name in choice.read)
    return chosen if skipped or not chosen else None


def _remote_files(
    con: duckdb.DuckDBPyConnection, root: RemoteDataset
) -> tuple[list[str], list[str]]:
    """The data files to read (per the reader rule) and the rejects files, as URLs."""
    from cdnlogs.compaction import held_stems

    root.store.check()  # a missing bucket, denied access or a dead store: a clear error
    con.register_filesystem(root.store.filesystem)
    partitions: dict[str, list[str]] = {}
    rejects: list[str] = []
    for relative in root.files():
        parts = relative.split("/")
        if len(parts) != 3 or not parts[2].endswith(".parquet") or parts[2].startswith("."):
            continue
        if parts[0].startswith("domain=") and parts[1].startswith("date="):
            partitions.setdefault(f"{parts[0]}/{parts[1]}", []).append(parts[2])
        elif parts[0] == REJECTS_DIR and parts[1].startswith("domain="):
            rejects.append(root.url(relative))
    chosen: list[str] = []
    for partition, listed in sorted(partitions.items()):
        base = root.url(partition)
        choice = choose_files(listed, partial(held_stems, con, base))
        chosen.extend(f"{base}/{name}" for name in choice.read)
    return chosen, rejects


def connect(
    root: Path | RemoteDataset,
    *,
    threads: int = DEFAULT_THREADS,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``logs`` and ``rejects`` views over ``root``.

    The session time zone is UTC, so ``ts`` prints and truncates in UTC. ``root`` is a local
    directory, or a ``RemoteDataset`` on a store (see ``dataset_root``).
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
