"""Many small source files in one DuckDB pass (a backfill of many quiet domains).

Ingesting a file on its own costs ~10 ms of fixed overhead (statements, Parquet footers,
renames, a fsync, a ledger transaction): 7,200 files of 3 lines took 96 s. Here a batch of
small plain files is read by one ``read_text`` over the list, split into numbered lines and
parsed by the same SQL as the fast path into a small temp table; each source then gets its own
Parquet file from it (one partitioned ``COPY`` into the scratch directory), renamed into its
place after one ``sync`` for the batch, so the dataset and the ledger (one transaction per
batch) look exactly as if each file had been ingested alone.

Only files whose every line the SQL vouches for are finished here; any other file of the
batch (an odd line, no rows at all) is handed back to be ingested on its own, with the whole
checked path. ``.gz`` files take the per-file path (``read_text`` does not inflate).
Idempotence stays per file: each file replaces only its own Parquet file.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cdnlogs.dataset import (
    LOG_COLUMNS,
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


@dataclass(frozen=True)
class SmallFile:
    """One source file for a batch: where it is, where it goes, its line count if known."""

    source: Path
    domain: str
    log_name: str
    day: date
    lines: int | None


def batches(files: Sequence[SmallFile]) -> list[list[SmallFile]]:
    """Split ``files`` into batches of at most BATCH_FILES files and ~BATCH_BYTES bytes."""
    found: list[list[SmallFile]] = []
    current: list[SmallFile] = []
    size = 0
    for item in files:
        nbytes = item.source.stat().st_size
        if current and (len(current) >= BATCH_FILES or size + nbytes > BATCH_BYTES):
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
            # One partitioned COPY writes every file (~1.4 ms a file, where a COPY per file
            # costs ~3.5 ms: each Parquet writer's set-up is the cost).
            out = ingester.scratch / f"batch-{tag}"
            names = ", ".join(name for name, _ in LOG_COLUMNS)
            try:
                con.execute(
                    f"COPY (SELECT {names}, idx AS part FROM batch WHERE kind = '{KIND_ROW}') "
                    f"TO {quote_sql(str(out))} (FORMAT parquet, COMPRESSION zstd, "
                    "PARTITION_BY (part))"
                )
                # One sync for the batch instead of an fsync per file, then the renames.
                os.sync()
                seconds = time.monotonic() - started
                for index in good:
                    item = files[index]
                    written = list((out / f"part={index}").glob("*.parquet"))
                    if len(written) != 1:
                        back.append(item)
                        continue
                    part = partition_dir(ingester.root, item.domain, item.day)
                    part.mkdir(parents=True, exist_ok=True)
                    final = part / f"{source_stem(item.log_name)}.parquet"
                    rows = counts[index][0]
                    done.append((item, _place(ingester, item, written[0], final, rows, seconds)))
            finally:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        con.execute("DROP TABLE IF EXISTS batch")
        con.execute("DROP TABLE IF EXISTS batch_files")
    return done, back


def _place(
    ingester: Ingester, item: SmallFile, written: Path, final: Path, rows: int, seconds: float
) -> FileIngest:
    """Move a batch's Parquet file to the source's place; drop its stale companions."""
    stem = source_stem(item.log_name)
    # As in Ingester.ingest_file: the stale re-parsed file goes first, so a crash in between
    # can only leave rows missing (the ledger has not recorded the file yet), never twice.
    (final.parent / f"{stem}{REPARSED_SUFFIX}").unlink(missing_ok=True)
    os.replace(written, final)
    rejects_path(ingester.root, item.domain, stem).unlink(missing_ok=True)
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
