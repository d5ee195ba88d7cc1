"""Many small source files in one DuckDB pass (a backfill of many quiet domains).

Ingesting a file on its own costs ~10 ms of fixed overhead (statements, Parquet footers,
renames, a fsync, a ledger transaction): 7,200 files of 3 lines took 96 s. Here a batch of
small plain files is read by one ``read_text`` over the list, split into numbered lines and
parsed by the same SQL as the fast path into a small temp table; each source then gets its own
Parquet file from it, written by partitioned ``COPY`` statements straight into the partition
directories under hidden temporary names (see ``_write_files``), renamed into their places
after one ``sync`` for the batch, so the dataset and the ledger (one transaction per batch)
look exactly as if each file had been ingested alone.

Only files whose every line the SQL vouches for are finished here; any other file of the
batch (an odd line, no rows at all) is handed back to be ingested on its own, with the whole
checked path. ``.gz`` files take the per-file path (``read_text`` does not inflate).
Idempotence stays per file: each file replaces only its own Parquet file.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cdnlogs.dataset import (
    LOG_COLUMNS,
    REJECTS_DIR,
    REPARSED_SUFFIX,
    partition_dir,
    quote_sql,
    rejects_path,
    source_stem,
)
from cdnlogs.ingest.fastpath import KIND_ROW, parse_sql, small_files_lines_sql
from cdnlogs.ingest.ingester import FileIngest, Ingester

#: Files up to this size (on disk) go into batches; bigger ones gain nothing from it.
SMALL_FILE_BYTES = 1 << 20
#: Files per batch: bounds the temp table (at most ~1 GB of small files' text per batch would
#: be far more than the memory limit, so the size bounds it too).
BATCH_FILES = 2000
BATCH_BYTES = 64 << 20
#: Domains whose partition directory DuckDB's partitioned COPY names exactly as
#: ``partition_dir`` does (it would escape other characters); hostnames always are.
_SAFE_DOMAIN = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SmallFile:
    """One source file for a batch: where it is, where it goes, its line count if known."""

    source: Path
    domain: str
    log_name: str
    day: date
    lines: int | None


def batches(files: Sequence[SmallFile], *, parts: int = 1) -> list[list[SmallFile]]:
    """Split ``files`` into batches of at most BATCH_FILES files and ~BATCH_BYTES bytes, and
    into at least ``parts`` batches when there are enough files (one per worker)."""
    limit = BATCH_FILES
    if parts > 1 and len(files) >= 2 * parts:
        limit = min(limit, -(-len(files) // parts))
    found: list[list[SmallFile]] = []
    current: list[SmallFile] = []
    size = 0
    for item in files:
        nbytes = item.source.stat().st_size
        if current and (len(current) >= limit or size + nbytes > BATCH_BYTES):
            found.append(current)
            current, size = [], 0
        current.append(item)
        size += nbytes
    if current:
        found.append(current)
    return found


def ingest_batch(
    ingester: Ingester, files: Sequence[SmallFile]
) -> tuple[list[tuple[SmallFile, FileIngest]], list[SmallFile]]:
    """Ingest ``files`` in one pass; return (finished files with results, files handed back).

    Raises DuckDB's error when the batch cannot be read as a whole (a file that is not UTF-8).
    """
    started = time.monotonic()
    con = ingester.con
    tag = uuid.uuid4().hex[:12]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE batch_files (filename VARCHAR, log_name VARCHAR, idx INTEGER)"
    )
    con.execute(
        "INSERT INTO batch_files SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), "
        "unnest($3::INTEGER[])",
        [
            [str(item.source) for item in files],
            [item.log_name for item in files],
            list(range(len(files))),
        ],
    )
    # The partition values of each file, for the partitioned COPY.
    con.execute("CREATE OR REPLACE TEMP TABLE batch_days (idx INTEGER, domain VARCHAR, date DATE)")
    con.execute(
        "INSERT INTO batch_days SELECT unnest($1::INTEGER[]), unnest($2::VARCHAR[]), "
        "unnest($3::DATE[])",
        [list(range(len(files))), [item.domain for item in files], [item.day for item in files]],
    )
    lines = small_files_lines_sql([item.source for item in files], "batch_files")
    done: list[tuple[SmallFile, FileIngest]] = []
    back: list[SmallFile] = []
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE batch AS "
            f"SELECT * FROM ({parse_sql(lines, None, carry=('idx', 'n'))})"
        )
        counts: dict[int, tuple[int, int]] = {
            int(idx): (int(rows), int(odd))
            for idx, rows, odd in con.execute(
                f"SELECT idx, count(*) FILTER (kind = '{KIND_ROW}'), "
                f"count(*) FILTER (kind <> '{KIND_ROW}') FROM batch GROUP BY idx"
            ).fetchall()
        }
        good: list[int] = []
        for index, item in enumerate(files):
            rows, odd = counts.get(index, (0, 0))
            if odd or rows == 0:  # the per-file path reads its odd lines by number
                back.append(item)
            else:
                good.append(index)
        if good:
            done, missing = _write_files(ingester, files, good, counts, tag, started)
            back.extend(missing)
    finally:
        con.execute("DROP TABLE IF EXISTS batch")
        con.execute("DROP TABLE IF EXISTS batch_files")
        con.execute("DROP TABLE IF EXISTS batch_days")
    return done, back


def _write_files(
    ingester: Ingester,
    files: Sequence[SmallFile],
    good: list[int],
    counts: dict[int, tuple[int, int]],
    tag: str,
    started: float,
) -> tuple[list[tuple[SmallFile, FileIngest]], list[SmallFile]]:
    """Write each good file's rows (table ``batch``) to its own Parquet file in its partition.

    Straight into the dataset's partition directories: a partitioned ``COPY`` by (domain, date)
    writes one file per partition, so each round takes at most one source per partition (the
    n-th source of every partition in round n), under a hidden ``.bulk-<tag>-<round>-*.tmp``
    name that the renames below give the source's name. No directory is made or removed per
    file (an ``rmdir`` alone cost 2.3 ms on the bench VM's ext4, more than the rest of a file).
    A killed run leaves only ``.*.tmp`` files there, which the next ingest removes.
    """
    con = ingester.con
    root = ingester.root
    rounds: dict[tuple[str, date], list[int]] = {}
    back: list[SmallFile] = []
    for index in good:
        item = files[index]
        if _SAFE_DOMAIN.fullmatch(item.domain) is None:
            back.append(item)  # a partition value DuckDB would escape: its own path
            continue
        rounds.setdefault((item.domain, item.day), []).append(index)
    placing = [(index, n) for indexes in rounds.values() for n, index in enumerate(indexes)]
    if not placing:
        return [], back
    con.execute("CREATE OR REPLACE TEMP TABLE batch_place (idx INTEGER, rnd INTEGER)")
    con.execute(
        "INSERT INTO batch_place SELECT unnest($1::INTEGER[]), unnest($2::INTEGER[])",
        [[i for i, _ in placing], [n for _, n in placing]],
    )
    prefix = f".bulk-{tag}-"
    names = ", ".join(name for name, _ in LOG_COLUMNS)
    dirs = {key: partition_dir(root, *key) for key in rounds}
    try:
        try:
            for rnd in range(max(n for _, n in placing) + 1):
                con.execute(
                    f"COPY (SELECT {names}, f.domain, f.date FROM batch "
                    "JOIN batch_place AS p USING (idx) JOIN batch_days AS f USING (idx) "
                    f"WHERE kind = '{KIND_ROW}' AND p.rnd = {rnd}) TO {quote_sql(str(root))} "
                    "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (domain, date), "
                    f"FILENAME_PATTERN '{prefix}{rnd}-{{uuid}}', FILE_EXTENSION 'tmp', APPEND)"
                )
        finally:
            con.execute("DROP TABLE IF EXISTS batch_place")
        # One sync for the batch instead of an fsync per file, then the renames.
        os.sync()
        seconds = time.monotonic() - started
        done: list[tuple[SmallFile, FileIngest]] = []
        stale_rejects = _rejects_present(root, {files[i].domain for i, _ in placing})
        for key, indexes in rounds.items():
            part = dirs[key]
            present = os.listdir(part)
            written: dict[int, list[str]] = {}
            for name in present:
                if name.startswith(prefix):
                    rnd = int(name[len(prefix) :].split("-", 1)[0])
                    written.setdefault(rnd, []).append(name)
            for rnd, index in enumerate(indexes):
                item = files[index]
                mine = written.pop(rnd, [])
                if len(mine) != 1:
                    back.append(item)
                    for name in mine:
                        (part / name).unlink(missing_ok=True)
                    continue
                stem = source_stem(item.log_name)
                # As in Ingester.ingest_file: the stale re-parsed file goes first, so a crash in
                # between can only leave rows missing (the ledger has not recorded the file
                # yet), never counted twice.
                if f"{stem}{REPARSED_SUFFIX}" in present:
                    (part / f"{stem}{REPARSED_SUFFIX}").unlink(missing_ok=True)
                final = part / f"{stem}.parquet"
                os.replace(part / mine[0], final)
                if (item.domain, f"{stem}.parquet") in stale_rejects:
                    rejects_path(root, item.domain, stem).unlink(missing_ok=True)
                done.append((item, _result(item, final, counts[index][0], seconds)))
        return done, back
    except BaseException:
        # Whatever this batch wrote and did not place (Ctrl-C, a DuckDB error) goes now.
        for part in dirs.values():
            if part.is_dir():
                for name in os.listdir(part):
                    if name.startswith(prefix):
                        (part / name).unlink(missing_ok=True)
        raise


def _rejects_present(root: Path, domains: set[str]) -> set[tuple[str, str]]:
    """(domain, file name) of the rejects files of these domains (one listing per domain)."""
    found: set[tuple[str, str]] = set()
    for domain in domains:
        try:
            names = os.listdir(root / REJECTS_DIR / f"domain={domain}")
        except FileNotFoundError:
            continue
        found.update((domain, name) for name in names)
    return found


def _result(item: SmallFile, final: Path, rows: int, seconds: float) -> FileIngest:
    return FileIngest(
        domain=item.domain,
        log_name=item.log_name,
        parquet=final,
        rows=rows,
        rejects=0,
        reparsed=0,
        slow_path=False,
        seconds=seconds,
    )
