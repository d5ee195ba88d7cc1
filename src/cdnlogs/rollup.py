"""Pre-aggregated rollups beside the dataset: one small Parquet file per dataset file.

Layout::

    <dataset>/_rollups/domain=<d>/date=<day>/<stem>@<size>-<mtime_ns>.parquet

A rollup holds the groups every report panel is summed from, for the rows of ONE dataset file
(``<dataset>/domain=<d>/date=<day>/<stem>.parquet``): a row per client IP, User-Agent, path,
referer, content type, status, UTC minute and response time (``dim`` says which), with
summable measures (requests, bytes, hits, hit bytes, errors, response time and the bytes
timed), one totals row (``dim = 0``, with the first and last ``ts``) and the distinct
``(hash(client_ip), hash(client_ip, user_agent))`` of the file (for exact-up-to-hash UV,
overall and per place: the client IP says where the visitor is; numbers, not the IP text,
because a report over 10 M busy rows counts 10 M of these). The source's size and mtime, and the
rollup format (``FORMAT``), are in the name: a re-ingested file gets a new rollup, the old one
is removed. ``ingest`` builds the rollups of the files it wrote at the end of its run
(``prepare_reports``, one scan of each new file, and the IP and User-Agent lookups of their
new values), so the first report is as fast as the next; a report builds any that are still
missing (a dataset ingested by an older version, a compacted day), and a read-only dataset gets
them in a temporary directory for that report.

A report over a window uses the rollup of every file whose rows all fall inside the window,
and groups the rows of the files the window cuts through (typically the first and last hour)
directly, with the window's filter. Both give the same rows of the same shape, so the panels
never know which was used.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from cdnlogs.dataset import connect, data_files, quote_sql
from cdnlogs.dims import DimensionStore
from cdnlogs.errors import ConfigError, is_interrupt

ROLLUP_DIR = "_rollups"
#: The grouping sets, by ``dim`` (0 is the totals row, the last is the visitors' hashes).
SETS: tuple[str, ...] = (
    "",
    "client_ip",
    "user_agent",
    "path",
    "referer",
    "content_type",
    "status",
    "minute",
    "response_time_ms",
)
PAIR_DIM = len(SETS)
#: The rollup format, in each rollup's name: a rollup of another format is built again.
#: r3: the visitor rows carry the hash of their client IP (UV per province and ISP).
FORMAT = "r3"
#: Columns of a rollup row, in file order, with their types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("dim", "UTINYINT"),
    ("domain", "VARCHAR"),
    ("client_ip", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("path", "VARCHAR"),
    ("referer", "VARCHAR"),
    ("content_type", "VARCHAR"),
    ("status", "INTEGER"),
    ("minute", "BIGINT"),
    ("response_time_ms", "BIGINT"),
    ("pair", "UBIGINT"),
    ("ip_hash", "UBIGINT"),
    ("n", "BIGINT"),
    ("b", "BIGINT"),
    ("h", "BIGINT"),
    ("hb", "BIGINT"),
    ("e", "BIGINT"),
    ("t", "BIGINT"),
    ("tb", "BIGINT"),
    ("first_ts", "TIMESTAMPTZ"),
    ("last_ts", "TIMESTAMPTZ"),
)
#: Summable measures (requests, bytes, hits, hit bytes, errors, response ms, bytes timed).
MEASURES: dict[str, str] = {
    "n": "count(*)::BIGINT",
    "b": "coalesce(sum(response_bytes), 0)::BIGINT",
    "h": "count(*) FILTER (WHERE cache_status = 'HIT')::BIGINT",
    "hb": "coalesce(sum(response_bytes) FILTER (WHERE cache_status = 'HIT'), 0)::BIGINT",
    "e": "count(*) FILTER (WHERE status >= 400)::BIGINT",
    "t": "coalesce(sum(response_time_ms), 0)::BIGINT",
    "tb": "coalesce(sum(response_bytes) FILTER (WHERE response_time_ms IS NOT NULL), 0)::BIGINT",
}


def dim(column: str) -> int:
    """The ``dim`` number of the grouping set on ``column`` (``""``: the totals row)."""
    return SETS.index(column)


def group_sql(rows_sql: str, *, per: str | None = None) -> str:
    """The rollup rows of the rows ``rows_sql`` selects (columns of the ``logs`` relation).

    :param per: a column of ``rows_sql`` to group by too, and to keep (the source file of
        each row, when one query builds the rollups of several files).

    One ``GROUP BY`` per set, glued with ``UNION ALL`` over the rows inlined into each (``NOT
    MATERIALIZED``: each reads only its own columns of the Parquet file). Measured on 2 M busy
    rows: 2.1-3.4 s, against 13-21 s for the same groups as one ``GROUPING SETS`` query, which
    DuckDB runs as one wide hash table per set over every column. The sets come out in ``dim``
    order, so a panel's ``dim = k`` filter skips the other sets' row groups.
    """
    names = [name for name, _ in COLUMNS]
    kinds = dict(COLUMNS)
    parts = []
    for which, column in enumerate(SETS):
        cells = []
        for name in names:
            if name == "dim":
                cells.append(f"{which}::UTINYINT AS dim")
            elif name == "domain" or (column and name == column):
                cells.append(name)
            elif name in MEASURES:
                cells.append(f"{MEASURES[name]} AS {name}")
            elif name in ("first_ts", "last_ts") and not column:
                cells.append(f"{'min' if name == 'first_ts' else 'max'}(ts) AS {name}")
            else:
                cells.append(f"NULL::{kinds[name]} AS {name}")
        # Every set is per domain too: a dataset file is one domain, the whole dataset is not.
        keys = (f"{per}, " if per else "") + "domain" + (f", {column}" if column else "")
        lead = f"{per}, " if per else ""
        parts.append(f"SELECT {lead}{', '.join(cells)} FROM src GROUP BY {keys}")
    pairs = ", ".join(
        {
            "dim": f"{PAIR_DIM}::UTINYINT AS dim",
            "domain": "domain",
            "ip_hash": "ip_hash",
            "pair": "pair",
        }.get(name, f"NULL::{kind} AS {name}")
        for name, kind in COLUMNS
    )
    lead = f"{per}, " if per else ""
    parts.append(
        f"SELECT {lead}{pairs} FROM (SELECT DISTINCT {lead}domain, hash(client_ip) AS ip_hash, "
        "hash(client_ip, user_agent) AS pair FROM src)"
    )
    return (
        "WITH src AS NOT MATERIALIZED "
        f"(SELECT *, epoch_us(ts) // 60000000 AS minute FROM ({rows_sql})) "
        + " UNION ALL ".join(parts)
    )


@dataclass(frozen=True)
class Source:
    """One dataset file and its rollup."""

    domain: str
    day: str
    data: Path
    rollup: Path
    #: The data file's size when listed (its rollup's name carries it too).
    size: int = 0


#: A data file smaller than this gets no rollup: its rows are grouped by each report. Opening
#: a tiny rollup costs what opening the tiny file costs, so it saves a report nothing, while
#: building it cost an ingest of 7,200 three-line files 4.4x its time (33 s against 7.6 s).
MIN_ROLLUP_BYTES = 64 * 1024


class RollupStore:
    """The rollups of the dataset at ``root`` (``None``: none kept, groups built per report)."""

    def __init__(
        self,
        root: Path | None,
        *,
        counted: set[str] | None = None,
        scratch: bool = True,
        min_bytes: int | None = None,
    ) -> None:
        """:param counted: the data files readers count (``dataset.data_files``); None: all.

        :param scratch: build into a temporary directory when the dataset is read-only
            (a report does; ``prepare_reports`` raises instead: its rollups are for later).
        :param min_bytes: files below this size get no rollup (default ``MIN_ROLLUP_BYTES``).
        """
        self.min_bytes = MIN_ROLLUP_BYTES if min_bytes is None else min_bytes
        self.use_scratch = scratch
        self.root = None if root is None else Path(root)
        self.counted = None if counted is None else {str(Path(p).absolute()) for p in counted}
        self.built = 0
        #: The rollups this store built (not the ones it found).
        self.new: list[Path] = []
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def sources(
        self, domains: tuple[str, ...], first_day: str | None, last_day: str | None
    ) -> list[Source]:
        """The dataset files in ``domains`` (all when empty) and ``first_day..last_day``."""
        if self.root is None or not self.root.is_dir():
            return []
        out = []
        for data in sorted(self.root.glob("domain=*/date=*/*.parquet")):
            domain = data.parent.parent.name.removeprefix("domain=")
            day = data.parent.name.removeprefix("date=")
            if domains and domain not in domains:
                continue
            if (first_day and day < first_day) or (last_day and day > last_day):
                continue
            if self.counted is not None and str(data.absolute()) not in self.counted:
                continue
            stat = data.stat()
            stem = data.name.removesuffix(".parquet")
            rel = data.parent.relative_to(self.root)
            name = f"{stem}@{stat.st_size}-{stat.st_mtime_ns}-{FORMAT}.parquet"
            rollup = self.root / ROLLUP_DIR / rel / name
            out.append(Source(domain, day, data, rollup, stat.st_size))
        return out

    def worth_a_rollup(self, source: Source) -> bool:
        """Whether ``source`` is large enough for a rollup (see ``MIN_ROLLUP_BYTES``)."""
        return source.size >= self.min_bytes

    def ensure(self, con: duckdb.DuckDBPyConnection, sources: list[Source]) -> list[Path]:
        """The rollup file of each source, building the missing ones.

        Small files are built many per query (``BATCH_BYTES`` of Parquet at a time): one
        query per file costs ~40 ms even for a file of ten lines, which made the ingest of a
        day of 111 small files 8x slower; a large file gets a query of its own.
        """
        found = {s: s.rollup for s in sources if s.rollup.is_file()}
        missing = [s for s in sources if s not in found]
        for batch in _batches(missing):
            built = self._build_many(con, batch) if len(batch) > 1 else {}
            for source in batch:
                path = built.get(source) or self._build(con, source)
                found[source] = path
                self.new.append(path)
                self.built += 1
        return [found[s] for s in sources]

    def _build_many(
        self, con: duckdb.DuckDBPyConnection, batch: list[Source]
    ) -> dict[Source, Path]:
        """The rollups of ``batch`` from one query, partitioned by file; {} if that fails."""
        files = "[" + ", ".join(quote_sql(str(s.data)) for s in batch) + "]"
        # The batch's rows once into memory (at most BATCH_BYTES of Parquet): each set's
        # GROUP BY re-reading a hundred small files would cost more than the grouping.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _rollup_batch AS
                SELECT *, list_position({files}, filename)::INTEGER AS rollup_of
                FROM read_parquet({files}, filename=true, hive_partitioning=true,
                                  hive_types={{'domain': 'VARCHAR', 'date': 'DATE'}})"""
        )
        select = "SELECT * FROM _rollup_batch"
        assert self.root is not None
        scratch = self.root / ROLLUP_DIR / f".batch-{secrets.token_hex(6)}"
        out: dict[Source, Path] = {}
        try:
            scratch.mkdir(parents=True)
            con.execute(
                f"COPY ({group_sql(select, per='rollup_of')}) TO {quote_sql(str(scratch))} "
                "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (rollup_of))"
            )
            for i, source in enumerate(batch, start=1):
                written = list((scratch / f"rollup_of={i}").glob("*.parquet"))
                if len(written) != 1:
                    continue  # none (an empty file) or split: built alone below
                source.rollup.parent.mkdir(parents=True, exist_ok=True)
                os.replace(written[0], source.rollup)
                _remove_stale(source.rollup)
                out[source] = source.rollup
        except (OSError, duckdb.IOException):
            return out  # a read-only dataset: each is built alone (in a scratch directory)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            con.execute("DROP TABLE IF EXISTS _rollup_batch")
        return out

    def remove_orphans(self) -> int:
        """Remove the rollups whose dataset file is gone (compacted, pruned, or replaced)."""
        if self.root is None:
            return 0
        removed = 0
        for rollup in self.root.glob(f"{ROLLUP_DIR}/domain=*/date=*/*.parquet"):
            rel = rollup.parent.relative_to(self.root / ROLLUP_DIR)
            stem = rollup.name.split("@", 1)[0]
            if not (self.root / rel / f"{stem}.parquet").is_file():
                with contextlib.suppress(OSError):  # a read-only dataset keeps them
                    rollup.unlink(missing_ok=True)
                    removed += 1
        for part in self.root.glob(f"{ROLLUP_DIR}/domain=*/date=*"):
            with contextlib.suppress(OSError):  # not empty: still holds rollups
                part.rmdir()
        return removed

    def _build(self, con: duckdb.DuckDBPyConnection, source: Source) -> Path:
        select = (
            f"SELECT *, {quote_sql(source.domain)} AS domain "
            f"FROM read_parquet({quote_sql(str(source.data))})"
        )
        target = source.rollup
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_atomic(con, group_sql(select), target)
        except (OSError, duckdb.IOException):
            if not self.use_scratch:
                raise
            # A read-only dataset: keep the rollup for this report only.
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="cdnlogs-rollup-")
            target = Path(self._scratch.name) / f"{secrets.token_hex(8)}.parquet"
            _copy_atomic(con, group_sql(select), target)
            return target
        _remove_stale(target)
        return target

    def close(self) -> None:
        """Remove the temporary rollups of a read-only dataset."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


@dataclass(frozen=True)
class Prepared:
    """What ``prepare_reports`` did: rollups built and removed, values looked up."""

    rollups_built: int = 0
    rollups_removed: int = 0
    ips_looked_up: int = 0
    uas_looked_up: int = 0


def prepare_reports(
    root: Path, geo_db: Path | None = None, *, written_since: float | None = None
) -> Prepared:
    """Build the rollups the dataset at ``root`` lacks and look up their new clients.

    ``ingest`` calls this once, at the end of its run (not per file, outside its fast path):
    one grouping scan of each dataset file without a rollup, then one IP lookup per client IP
    and one parse per User-Agent that ``_dims`` does not know yet.

    :param written_since: only the files modified at or after this ``time.time()`` (the ones
        the run wrote: an archive ingested by a version without rollups does not make one
        ingest scan it all; its first report builds those). The first report after the
    ingest then only reads rollups. A dataset that cannot be written to (or a bad ``geoip_db``)
    is left as it is: the report builds what is missing itself, and says what is wrong.
    """
    try:
        return _prepare(Path(root), geo_db, written_since)
    except (duckdb.Error, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None  # Ctrl-C or SIGTERM, as in the ingest before it
        if isinstance(exc, RuntimeError):
            raise
        # A file DuckDB cannot read (a damaged or foreign one in the dataset): the rows are
        # ingested, the rollups are a cache, and the report meets the same file and says so.
        return Prepared()


def _prepare(root: Path, geo_db: Path | None, written_since: float | None) -> Prepared:
    if not root.is_dir():
        return Prepared()
    con = connect(root)
    con.execute("SET enable_progress_bar = false")  # ingest draws its own on a terminal
    store = RollupStore(root, counted=set(data_files(con, root)), scratch=False)
    try:
        removed = store.remove_orphans()
        try:
            todo = [s for s in store.sources((), None, None) if store.worth_a_rollup(s)]
            if written_since is not None:
                todo = [s for s in todo if s.data.stat().st_mtime >= written_since]
            store.ensure(con, todo)
        except (OSError, duckdb.IOException):
            return Prepared(store.built, removed)  # a full or read-only disk: the report's job
        if not store.new:
            return Prepared(0, removed)
        try:
            dims = DimensionStore(root, geo_db)
        except ConfigError:
            return Prepared(store.built, removed)  # the report names the bad database
        files = "[" + ", ".join(quote_sql(str(p)) for p in store.new) + "]"
        dims.ensure(
            con,
            f"SELECT client_ip FROM read_parquet({files}) WHERE dim = {dim('client_ip')}",
            f"SELECT user_agent FROM read_parquet({files}) WHERE dim = {dim('user_agent')}",
        )
        return Prepared(store.built, removed, dims.looked_up["ip"], dims.looked_up["ua"])
    finally:
        store.close()
        con.close()


#: Parquet bytes of dataset files one rollup query takes at most.
BATCH_BYTES = 16 * 1024 * 1024


def _batches(sources: list[Source]) -> list[list[Source]]:
    """``sources`` in runs of at most ``BATCH_BYTES`` (a larger file alone)."""
    out: list[list[Source]] = []
    size = 0
    for source in sources:
        nbytes = source.size
        if not out or size + nbytes > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(source)
        size += nbytes
    return out


def _remove_stale(target: Path) -> None:
    """Remove the other rollups of ``target``'s source (an older size, mtime or format)."""
    # One listing of the (small) directory: a glob compiles a pattern per call, which cost
    # 0.5 ms a file, 3.8 s of an ingest of 7,200 small files.
    stale = target.name.split("@", 1)[0] + "@"
    with os.scandir(target.parent) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(stale) and name.endswith(".parquet") and name != target.name:
                Path(entry.path).unlink(missing_ok=True)


def _copy_atomic(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        con.execute(f"COPY ({query}) TO {quote_sql(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def window_spans(
    con: duckdb.DuckDBPyConnection, rollups: list[Path]
) -> list[tuple[datetime | None, datetime | None]]:
    """The first and last ``ts`` of each rollup's source (``None`` for an empty file)."""
    if not rollups:
        return []
    files = "[" + ", ".join(quote_sql(str(p)) for p in rollups) + "]"
    rows = con.execute(
        f"""SELECT filename, first_ts, last_ts FROM read_parquet({files}, filename=true)
            WHERE dim = 0"""
    ).fetchall()
    spans = {str(f): (a, b) for f, a, b in rows}
    return [spans.get(str(p), (None, None)) for p in rollups]
