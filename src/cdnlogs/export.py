"""Export rows of the dataset as CSV, JSON lines, Parquet or the Combined Log Format.

``clf`` writes ``host ident authuser [date] "request" status bytes "referer" "user-agent"``,
line for line what ``cdnlogs.logformat.to_clf`` writes for the same record, so GoAccess
(``--log-format=COMBINED``) and AWStats read an export like an Apache log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import duckdb

from cdnlogs.errors import UsageError
from cdnlogs.window import where_sql

EXPORT_FORMATS = ("csv", "jsonl", "parquet", "clf")
#: Rows fetched from DuckDB at a time when writing CLF lines.
CLF_BATCH = 20_000


@dataclass(frozen=True)
class ExportFilter:
    """Which rows to export: domains (empty: all) and ``since <= ts < until`` (aware, optional)."""

    domains: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


def _where(flt: ExportFilter) -> tuple[str, list[object]]:
    # The report's filter, date partition terms included, so an export reads only the
    # partitions its window can touch.
    return where_sql(flt.domains, flt.since, flt.until)


def _esc(expr: str) -> str:
    """SQL for CLF's quoted-field escaping: backslash and double quote get a backslash."""
    return f"replace(replace({expr}, '\\', '\\\\'), '\"', '\\\"')"


#: One CLF line per row; mirrors ``logformat.to_clf`` (tested to be equal).
CLF_SQL = (
    "coalesce(client_ip, '-') || ' - - [' "
    "|| strftime((ts AT TIME ZONE 'UTC') + to_minutes(utc_offset_minutes), '%d/%b/%Y:%H:%M:%S') "
    "|| ' ' || CASE WHEN utc_offset_minutes < 0 THEN '-' ELSE '+' END "
    "|| lpad(CAST(abs(utc_offset_minutes) // 60 AS VARCHAR), 2, '0') "
    "|| lpad(CAST(abs(utc_offset_minutes) % 60 AS VARCHAR), 2, '0') || '] \"' "
    "|| "
    + _esc(
        "coalesce(method, '-') || ' ' || CASE WHEN coalesce(path, '') || "
        "coalesce('?' || query, '') = '' THEN '/' ELSE coalesce(path, '') || "
        "coalesce('?' || query, '') END || ' HTTP/1.1'"
    )
    + " || '\" ' || coalesce(CAST(status AS VARCHAR), '-') "
    "|| ' ' || coalesce(CAST(response_bytes AS VARCHAR), '-') "
    "|| ' \"' || coalesce(" + _esc("referer") + ", '-') "
    "|| '\" \"' || coalesce(" + _esc("user_agent") + ", '-') || '\"'"
)


def export_logs(
    con: duckdb.DuckDBPyConnection,
    fmt: str,
    sink: Path | BinaryIO,
    flt: ExportFilter | None = None,
) -> int:
    """Write the ``logs`` rows matching ``flt`` to ``sink`` in ``fmt``; return the row count.

    :param con: a connection from ``cdnlogs.dataset.connect``.
    :param fmt: one of ``EXPORT_FORMATS``.
    :param sink: a file path (written through a temp name, then renamed) or a binary stream.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
    where, params = _where(flt or ExportFilter())
    if isinstance(sink, Path):
        sink.parent.mkdir(parents=True, exist_ok=True)
        tmp = sink.parent / f".{sink.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            count = _write(con, fmt, tmp, where, params)
            os.replace(tmp, sink)
        finally:
            tmp.unlink(missing_ok=True)
        return count
    with tempfile.TemporaryDirectory(prefix="cdnlogs-export-") as scratch:
        tmp = Path(scratch) / f"export.{fmt}"
        count = _write(con, fmt, tmp, where, params)
        with tmp.open("rb") as src:
            shutil.copyfileobj(src, sink, 1024 * 1024)
    return count


def _write(
    con: duckdb.DuckDBPyConnection, fmt: str, path: Path, where: str, params: list[object]
) -> int:
    order = " ORDER BY ts, domain"
    if fmt == "clf":
        cursor = con.execute(f"SELECT {CLF_SQL} FROM logs{where}{order}", params)
        count = 0
        with path.open("w", encoding="utf-8", newline="\n") as out:
            while batch := cursor.fetchmany(CLF_BATCH):
                out.write("".join(f"{row[0]}\n" for row in batch))
                count += len(batch)
        return count
    options = {
        "csv": "FORMAT csv, HEADER true",
        "jsonl": "FORMAT json",
        "parquet": "FORMAT parquet, COMPRESSION zstd",
    }[fmt]
    target = "'" + str(path).replace("'", "''") + "'"
    row = con.execute(
        f"COPY (SELECT * FROM logs{where}{order}) TO {target} ({options})", params
    ).fetchone()
    return int(row[0]) if row else 0
