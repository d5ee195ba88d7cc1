"""The reference parser's side of the ingest: reading a source's lines, rows as JSON lines.

Lines the fast path cannot vouch for are parsed by ``cdnlogs.logformat.parse_line`` (the
oracle) and written as JSON lines that DuckDB then copies to Parquet with the dataset's types.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cdnlogs.dataset import LOG_COLUMNS, quote_sql
from cdnlogs.ingest.lines import decoded
from cdnlogs.linecount import open_source
from cdnlogs.logformat import LogRecord


def iter_raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, bytes)`` for every line of a .log or .gz file (1-based), each
    line's bytes as in the file without its ``\\n``."""
    with open_source(path) as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw[:-1] if raw.endswith(b"\n") else raw


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a .log or .gz file (1-based).

    Bytes that are not UTF-8 become U+FFFD, as they do in the rejects' ``line`` column.
    """
    for number, raw in iter_raw_lines(path):
        yield number, decoded(raw)


def record_row(record: LogRecord, source_file: str) -> dict[str, Any]:
    ts = record.ts
    return {
        "ts_us": int(ts.timestamp()) * 1_000_000 + ts.microsecond,
        "utc_offset_minutes": record.utc_offset_minutes,
        "client_ip": record.client_ip,
        "proxy_ip": record.proxy_ip,
        "response_time_ms": record.response_time_ms,
        "referer": record.referer,
        "method": record.method,
        "scheme": record.scheme,
        "host": record.host,
        "path": record.path,
        "query": record.query,
        "status": record.status,
        "request_bytes": record.request_bytes,
        "response_bytes": record.response_bytes,
        "cache_status": record.cache_status,
        "user_agent": record.user_agent,
        "content_type": record.content_type,
        "protocol": record.protocol,
        "source_file": source_file,
    }


def _json_columns_sql() -> str:
    kinds = dict(LOG_COLUMNS)
    kinds.pop("ts")
    items = ["'ts_us': 'BIGINT'"] + [f"'{k}': '{v}'" for k, v in kinds.items()]
    return "{" + ", ".join(items) + "}"


def select_from_json(path: Path) -> str:
    names = ", ".join(name for name, _ in LOG_COLUMNS[1:])
    return (
        f"SELECT make_timestamp(ts_us) AT TIME ZONE 'UTC' AS ts, {names} "
        f"FROM read_json({quote_sql(str(path))}, format='newline_delimited', "
        f"columns={_json_columns_sql()})"
    )
