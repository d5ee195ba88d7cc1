"""The ingest fast path as SQL: DuckDB's CSV reader splitting an Aliyun log line into columns.

Pure string building (no connection): ``cdnlogs.ingest.ingester`` runs these statements. Kept
apart from the ingester because the SQL, and the reasons behind each rule in it, are a unit
of their own.
"""

from __future__ import annotations

from pathlib import Path

from cdnlogs.dataset import quote_sql

# The CSV reader's escape character. The log format has no escaping (a quote inside a value is
# written raw), so we need a character that never occurs in a log line: Tengine writes control
# characters as \xNN, so a raw 0x01 cannot appear in a real line.
_NO_ESCAPE = "\x01"
_NUMBER_COLUMNS = {"c4": "BIGINT", "c7": "INTEGER", "c8": "BIGINT", "c9": "BIGINT"}
#: The message of the error a suspect row raises inside the fast path's COPY.
BAD_ROW_MARKER = "cdnlogs: row failed validation"


def read_csv_sql(path: Path, ncols: int, *, parallel: bool = True) -> str:
    """DuckDB's ``read_csv`` of a log file split into ``ncols`` columns, rejects kept.

    ``parallel=False`` scans the file as one range: slower, but immune to the lost-range fault
    of the parallel scanner (see ``cdnlogs.linecount``), so it is the retry when lines go missing.
    """
    columns = {f"c{i}": "VARCHAR" for i in range(ncols)}
    columns["c0"] = "TIMESTAMP"
    columns_sql = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
    compression = "gzip" if path.suffix == ".gz" else "none"
    return (
        f"read_csv({quote_sql(str(path))}, delim=' ', quote='\"', escape='{_NO_ESCAPE}', "
        f"nullstr='-', header=false, auto_detect=false, columns={columns_sql}, "
        f"timestampformat='[%d/%b/%Y:%H:%M:%S', compression='{compression}', "
        f"store_rejects=true, max_line_size=1048576{'' if parallel else ', parallel=false'})"
    )


def fast_select(path: Path, ncols: int, source_file: str, *, parallel: bool = True) -> str:
    """SQL turning the CSV columns into the dataset's columns, in one streaming pass.

    Validation happens in the same pass: a row the fast path cannot vouch for raises (DuckDB's
    ``error()``), which aborts the statement and sends the whole file to the reference parser.
    A row is suspect when its time or UTC offset did not parse, a number does not cast back to
    the same text (spellings DuckDB would accept but the reference parser would not: ``+5``,
    ``1_000``, ``5.0``), the protocol holds a slash or a space, or the request starts with a
    space. The URL is split with string functions rather than a regular expression (the same
    rule as ``logformat.split_url``: a scheme is ``[A-Za-z][A-Za-z0-9+.-]*`` before the first
    ``:``, followed by ``//``); the common values (``+0800``, ``http``, ``https``) skip the
    regular expressions altogether.
    """
    number_checks = []
    casts = []
    for column, kind in _NUMBER_COLUMNS.items():
        casts.append(f"TRY_CAST({column} AS {kind}) AS n_{column}")
        number_checks.append(
            f"({column} IS NOT NULL"
            f" AND (n_{column} IS NULL OR CAST(n_{column} AS VARCHAR) <> {column}))"
        )
    protocol = "c13" if ncols >= 14 else "NULL::VARCHAR"
    bad_protocol = (
        "(c13 IS NOT NULL AND c13 NOT IN ('http', 'https', 'quic')"
        " AND NOT regexp_full_match(c13, '[^/\\s]*'))"
        if ncols >= 14
        else "false"
    )
    source = quote_sql(source_file)
    bad = (
        f"off IS NULL OR c0 IS NULL OR {' OR '.join(number_checks)} OR {bad_protocol}"
        " OR starts_with(c6, ' ')"
    )
    message = quote_sql(f"{BAD_ROW_MARKER}: {source_file}")
    return f"""
    WITH raw AS (SELECT * FROM {read_csv_sql(path, ncols, parallel=parallel)}),
    typed AS (
        SELECT *,
            CASE WHEN c1 = '+0800]' THEN 480
                 WHEN regexp_full_match(c1, '[+-][0-9]{{4}}\\]')
                  AND c1[2:3]::INTEGER < 24 AND c1[4:5]::INTEGER < 60
                 THEN (CASE WHEN c1[1] = '-' THEN -1 ELSE 1 END)
                      * (c1[2:3]::INTEGER * 60 + c1[4:5]::INTEGER)
            END AS off,
            strpos(c6, ' ') AS sp,
            {", ".join(casts)}
        FROM raw
    ),
    request AS (
        SELECT *, CASE WHEN sp > 0 THEN substr(c6, sp + 1) END AS url FROM typed
    ),
    split AS (
        SELECT *, strpos(url, '?') AS qpos FROM request
    ),
    query AS (
        SELECT *,
            CASE WHEN qpos > 0 THEN substr(url, 1, qpos - 1) ELSE url END AS rest,
            CASE WHEN qpos > 0 THEN substr(url, qpos + 1) END AS q
        FROM split
    ),
    scheme AS (
        SELECT *,
            CASE WHEN starts_with(rest, 'https://') THEN 6
                 WHEN starts_with(rest, 'http://') THEN 5
                 ELSE strpos(rest, ':') END AS cpos
        FROM query
    ),
    after AS (
        SELECT *,
            CASE WHEN cpos = 6 AND starts_with(rest, 'https://') THEN substr(rest, 9)
                 WHEN cpos = 5 AND starts_with(rest, 'http://') THEN substr(rest, 8)
                 WHEN cpos > 1 AND substr(rest, cpos, 3) = '://'
                  AND regexp_full_match(substr(rest, 1, cpos - 1), '[A-Za-z][A-Za-z0-9+.-]*')
                 THEN substr(rest, cpos + 3) END AS after_scheme
        FROM scheme
    ),
    parts AS (
        SELECT *, strpos(after_scheme, '/') AS spos FROM after
    )
    SELECT
        make_timestamptz(epoch_us(c0) - off * 60000000::BIGINT) AS ts,
        off AS utc_offset_minutes,
        c2 AS client_ip,
        c3 AS proxy_ip,
        n_c4 AS response_time_ms,
        c5 AS referer,
        CASE WHEN sp > 0 THEN substr(c6, 1, sp - 1) ELSE c6 END AS method,
        CASE WHEN after_scheme IS NOT NULL THEN substr(rest, 1, cpos - 1) END AS scheme,
        CASE WHEN after_scheme IS NULL THEN NULL
             WHEN spos > 0 THEN substr(after_scheme, 1, spos - 1)
             ELSE after_scheme END AS host,
        CASE WHEN after_scheme IS NULL THEN rest
             WHEN spos > 0 THEN substr(after_scheme, spos)
             ELSE '' END AS path,
        q AS query,
        n_c7 AS status,
        n_c8 AS request_bytes,
        n_c9 AS response_bytes,
        c10 AS cache_status,
        c11 AS user_agent,
        c12 AS content_type,
        {protocol} AS protocol,
        CASE WHEN {bad} THEN error({message}) ELSE {source} END AS source_file
    FROM parts
    """
