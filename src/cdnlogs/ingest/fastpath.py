"""The ingest fast path as SQL: DuckDB reads physical lines, string functions parse the fields.

Pure string building (no connection): ``cdnlogs.ingest.ingester`` runs these statements. Kept
apart from the ingester because the SQL, and the reasons behind each rule in it, are a unit
of their own.

Why lines first, fields second: DuckDB's CSV reader with ``quote='"'`` keeps quoting state
across line ends, so one raw quote in a User-Agent (real traffic has them) shifts the fields of
the line, or runs a quoted field past the end of the line and drops the rest of an 8 MB scanner
range. Here the reader does no quote handling at all: it splits physical lines (a newline never
occurs inside a field of this format) into one VARCHAR column, in parallel. The line is then
split on ``"``: a line with exactly eight quotes has exactly one way to match
``logformat.parse_line``'s structure (``[time] client proxy rt "referer" "request" status
reqb respb cache "ua" "ct"`` then an optional protocol and extra fields), so string functions
give exactly the fields ``parse_line`` gives. Each rule below only *vouches* for a line when
the result is certain to be ``parse_line``'s (plain ASCII digits, a time that formats back to
the same text, printable ASCII in the unquoted fields); any other line is marked ``odd`` and
the reference parser reads it. That is a few lines per thousand in hostile traffic (raw quotes,
odd times), never the whole file.
"""

from __future__ import annotations

from pathlib import Path

from cdnlogs.dataset import LOG_COLUMNS, quote_sql

#: The delimiter of the one-column read: a line holding this byte splits into two columns and
#: the reader reports it (with its line number) instead of returning it, so it costs nothing
#: to pick one a log line is very unlikely to hold.
_DELIMITER = "\\x1f"
#: Longer lines are reported by the reader (with their numbers) and read by the reference
#: parser. DuckDB needs its buffer to hold at least two lines of the maximum size.
MAX_LINE_BYTES = 2 << 20
#: The value of the ``kind`` partition column for the rows the SQL vouches for / the others.
KIND_ROW = "row"
KIND_ODD = "odd"


def read_lines_sql(path: Path, *, parallel: bool = True) -> str:
    """DuckDB's reader of ``path`` as physical lines: one VARCHAR column ``l``, no quoting.

    ``strict_mode`` makes a carriage return an error rather than a line end (DuckDB would
    otherwise split a line at a bare ``\\r``, and its numbering with it), so a file holding one
    is normalised first (see ``cdnlogs.ingest.lines``). Lines that are not UTF-8, too long, or
    hold the delimiter land in ``reject_errors`` with their line numbers. An empty line
    comes back as NULL; ``parse_sql`` skips it, as the line count expects.
    """
    compression = "gzip" if path.suffix == ".gz" else "none"
    return (
        f"read_csv({quote_sql(str(path))}, columns={{'l': 'VARCHAR'}}, delim=e'{_DELIMITER}', "
        "quote='', escape='', header=false, auto_detect=false, strict_mode=true, "
        f"new_line='\\n', store_rejects=true, max_line_size={MAX_LINE_BYTES}, "
        f"buffer_size={4 * MAX_LINE_BYTES}, compression='{compression}'"
        f"{'' if parallel else ', parallel=false'})"
    )


def small_files_lines_sql(paths: list[Path], names_table: str) -> str:
    """The physical lines of many small plain files, numbered: ``filename`` (the LogName from
    ``names_table(filename, log_name, idx)``), ``idx``, ``n`` (line number) and ``l``.

    ``read_text`` costs ~0.15 ms a file where ``read_csv`` costs ~2 ms; each file is one
    value, split here on newlines, so line numbers are exact and a carriage return is just a
    character (the ones ending a line are dropped, as ``parse_line`` drops them). A file that
    is not UTF-8 makes the whole read fail (the caller splits the batch).
    """
    files = "[" + ", ".join(quote_sql(str(p)) for p in paths) + "]"
    return f"""(
        SELECT names.log_name AS filename, names.idx, x.n, rtrim(x.l, e'\\r') AS l
        FROM (
            SELECT filename, unnest(s) AS l, unnest(generate_series(1, len(s))) AS n
            FROM (SELECT filename, string_split(content, e'\\n') AS s FROM read_text({files}))
        ) AS x
        JOIN {names_table} AS names ON x.filename = names.filename
        WHERE x.l <> ''
    )"""


# ``logformat``'s line patterns in RE2 syntax, for the few lines with more than eight quotes
# (raw quotes inside the Referer or the User-Agent). RE2 gives the same (leftmost-first)
# submatches as Python's ``re`` for these patterns; only the character classes differ, and
# they are the same on ASCII text, the only text this path is used for: Python's ``\s`` is
# [\t\n\v\f\r\x1c-\x1f ] there, and ``\d`` is [0-9].
_WS = r"\x09-\x0d\x1c-\x20"
_S = rf"[^{_WS}]"
_NUM = r"(-|[0-9]+)"
_HTTP_METHOD = r"-|[A-Z][A-Z0-9_-]*"
_ANY_METHOD = r'[^ "]+'
_FIELDS = (
    "time", "client", "proxy", "rt", "referer", "request", "status", "reqb", "respb",
    "cache", "ua", "ct", "proto",
)  # fmt: skip


def _head(method: str) -> str:
    return (
        rf"^\[([^\]]*)\] ({_S}+) ({_S}+) {_NUM} "
        rf'"(.*?)" "(|(?:{method})(?: .*?)?)" {_NUM} {_NUM} {_NUM} ({_S}+) '
    )


def _patterns() -> list[tuple[str, bool]]:
    """(pattern, only for lines ending in a quote), in ``logformat._match_line``'s order."""
    found = []
    proto = rf'(?: ("[^"]*"|[^{_WS}"]+))?'
    for method in (_HTTP_METHOD, _ANY_METHOD):
        head = _head(method)
        found.append((head + rf'"(.*)" "([^"]*)" ("[^"/{_WS}]*")$', True))
        found.append((head + r'"(.*)" "([^"]*)"' + proto + "$", False))
        found.append((head + r'"(.*?)" "([^"]*)"' + proto + "(?: .*)?$", False))
    return found


def _regex_fields() -> str:
    """A CASE giving the 13 text fields of an ASCII line with raw quotes (NULL: no match)."""
    names = "[" + ", ".join(f"'{name}'" for name in _FIELDS) + "]"
    branches = []
    for pattern, needs_quote in _patterns():
        literal = quote_sql(pattern)
        guard = "ends_with(l, '\"') AND " if needs_quote else ""
        branches.append(
            f"WHEN {guard}regexp_matches(l, {literal}) THEN regexp_extract(l, {literal}, {names})"
        )
    return "CASE " + " ".join(branches) + " END"


def _number(text: str, kind: str) -> tuple[str, str]:
    """(value, vouched) SQL for a number field: ``-`` is NULL, else plain non-negative digits.

    A spelling DuckDB would cast but ``parse_line`` would not (``+5``, ``007``, ``1_000``,
    ``-5``) does not cast back to the same text, so the line is left to the reference parser.
    """
    value = f"TRY_CAST(NULLIF({text}, '-') AS {kind})"
    vouched = f"({text} = '-' OR ({value} >= 0 AND CAST({value} AS VARCHAR) = {text}))"
    return value, vouched


def parse_sql(lines_sql: str, source_file: str | None, carry: tuple[str, ...] = ()) -> str:
    """SQL turning physical lines into the dataset's columns plus ``kind`` (row or odd).

    ``source_file`` is the LogName stored in every row; ``None`` takes it from the reader's
    ``filename`` column (several files in one read; the caller maps paths to names then).
    ``carry`` names more columns of ``lines_sql`` passed through to the result.
    An odd row carries its whole line in ``user_agent`` (the other columns are meaningless).

    Two ways to the fields: a line with exactly eight quotes is split on them (fast, and the
    only possible reading); an ASCII line with more quotes is matched with ``logformat``'s own
    patterns. Either gives the 13 text fields (``f``), checked and typed the same way.
    """
    rt, rt_ok = _number("f.rt", "BIGINT")
    status, status_ok = _number("f.status", "INTEGER")
    reqb, reqb_ok = _number("f.reqb", "BIGINT")
    respb, respb_ok = _number("f.respb", "BIGINT")
    source = "filename" if source_file is None else quote_sql(source_file)
    split_ok = " AND ".join(
        (
            # Single spaces between the quoted fields.
            "p[3] = ' '",
            "p[7] = ' '",
            # The unquoted parts hold printable ASCII only (Python's \\d and \\s are wider).
            "NOT regexp_matches(p[1] || p[5] || p[9], '[^ -~]')",
            # '[time offset] client proxy rt ' and ' status reqb respb cache '.
            "len(h) = 6",
            "h[6] = ''",
            "h[3] <> ''",
            "h[4] <> ''",
            "len(m) = 6",
            "m[1] = ''",
            "m[6] = ''",
            "m[5] <> ''",
            # The request is empty, '-', or a method then optionally a space and the URL.
            "NOT starts_with(p[4], ' ')",
            # After the content type: nothing, or a space then the protocol and any extras.
            "(p[9] = '' OR starts_with(p[9], ' '))",
        )
    )
    vouched = " AND ".join(
        (
            "f.time IS NOT NULL",
            "off IS NOT NULL",
            # A time parse_time reads the same way: it formats back to the same text.
            "lt IS NOT NULL",
            "strftime(lt, '[%-d/%b/%Y:%H:%M:%S') = f.date",
            "year(lt) BETWEEN 1000 AND 9998",
            rt_ok,
            status_ok,
            reqb_ok,
            respb_ok,
        )
    )
    names = [name for name, _ in LOG_COLUMNS]
    values = {
        "ts": "make_timestamptz(epoch_us(lt) - off * 60000000::BIGINT)",
        "utc_offset_minutes": "off",
        "client_ip": "NULLIF(f.client, '-')",
        "proxy_ip": "NULLIF(f.proxy, '-')",
        "response_time_ms": rt,
        "referer": "NULLIF(f.referer, '-')",
        "method": "CASE WHEN f.request = '-' THEN NULL "
        "WHEN sp > 0 THEN f.request[:sp - 1] ELSE f.request END",
        "scheme": "CASE WHEN after_scheme IS NOT NULL THEN rest[:cpos - 1] END",
        "host": "CASE WHEN after_scheme IS NULL THEN NULL "
        "WHEN spos > 0 THEN after_scheme[:spos - 1] ELSE after_scheme END",
        "path": "CASE WHEN after_scheme IS NULL THEN rest "
        "WHEN spos > 0 THEN after_scheme[spos:] ELSE '' END",
        "query": "q",
        "status": status,
        "request_bytes": reqb,
        "response_bytes": respb,
        "cache_status": "NULLIF(f.cache, '-')",
        "user_agent": "CASE WHEN ok THEN NULLIF(f.ua, '-') ELSE l END",
        "content_type": "NULLIF(f.ct, '-')",
        "protocol": "NULLIF(f.proto, '-')",
        "source_file": source,
    }
    # Computed for vouched rows only (CASE evaluates its THEN for the rows it selects): an odd
    # line's fields may be anything, and one that made a function raise (a time out of range)
    # would abort the whole file's copy. The ingester writes rows and odd lines in one pass.
    select = ",\n        ".join(
        f"{values[name]} AS {name}"
        if name in ("user_agent", "source_file")
        else f"CASE WHEN ok THEN {values[name]} END AS {name}"
        for name in names
    )
    file_column = "".join(
        f", {name}" for name in (("filename",) if source_file is None else ()) + carry
    )
    split_fields = (
        "{'date': h[1], 'offset': h[2], 'client': h[3], 'proxy': h[4], 'rt': h[5], "
        "'referer': p[2], 'request': p[4], 'status': m[2], 'reqb': m[3], 'respb': m[4], "
        "'cache': m[5], 'ua': p[6], 'ct': p[8], "
        "'proto': NULLIF(split_part(p[9], ' ', 2), ''), 'time': ''}"
    )
    regex_fields = (
        "{'date': '[' || split_part(r.time, ' ', 1), 'offset': split_part(r.time, ' ', 2) || ']', "
        "'client': r.client, 'proxy': r.proxy, 'rt': r.rt, 'referer': r.referer, "
        "'request': r.request, 'status': r.status, 'reqb': r.reqb, 'respb': r.respb, "
        "'cache': r.cache, 'ua': r.ua, 'ct': r.ct, "
        "'proto': CASE WHEN starts_with(r.proto, '\"') THEN r.proto[2:-2] "
        "ELSE NULLIF(r.proto, '') END, "
        "'time': CASE WHEN len(string_split(r.time, ' ')) = 2 THEN '' END}"
    )
    return f"""
    WITH raw AS (SELECT l{file_column} FROM {lines_sql} WHERE l IS NOT NULL),
    split AS (
        SELECT l{file_column}, string_split(l, '"') AS p FROM raw
    ),
    cut AS (
        SELECT *, string_split(p[1], ' ') AS h, string_split(p[5], ' ') AS m FROM split
    ),
    regex AS (
        SELECT *,
            CASE WHEN len(p) > 9 AND NOT regexp_matches(l, '[^\\x00-\\x7f]')
                 THEN {_regex_fields()} END AS r
        FROM cut
    ),
    matched AS (
        SELECT l{file_column},
            CASE WHEN len(p) = 9 THEN CASE WHEN {split_ok} THEN {split_fields} END
                 WHEN r IS NOT NULL THEN {regex_fields}
            END AS f
        FROM regex
    ),
    typed AS (
        SELECT *,
            CASE WHEN f.offset = '+0800]' THEN 480
                 WHEN regexp_full_match(f.offset, '[+-][0-9]{{4}}\\]')
                  AND f.offset[2:3]::INTEGER < 24 AND f.offset[4:5]::INTEGER < 60
                 THEN (CASE WHEN f.offset[1] = '-' THEN -1 ELSE 1 END)
                      * (f.offset[2:3]::INTEGER * 60 + f.offset[4:5]::INTEGER)
            END AS off,
            try_strptime(f.date, '[%d/%b/%Y:%H:%M:%S') AS lt
        FROM matched
    ),
    checked AS (
        SELECT *, coalesce({vouched}, false) AS ok FROM typed
    ),
    request AS (
        SELECT *, strpos(f.request, ' ') AS sp FROM checked
    ),
    url AS (
        SELECT *, CASE WHEN f.request <> '-' AND sp > 0 THEN f.request[sp + 1:] END AS u
        FROM request
    ),
    query AS (
        SELECT *, strpos(u, '?') AS qpos FROM url
    ),
    parts AS (
        SELECT *,
            CASE WHEN qpos > 0 THEN u[:qpos - 1] ELSE u END AS rest,
            CASE WHEN qpos > 0 THEN u[qpos + 1:] END AS q
        FROM query
    ),
    scheme AS (
        SELECT *,
            CASE WHEN starts_with(rest, 'https://') THEN 6
                 WHEN starts_with(rest, 'http://') THEN 5
                 ELSE strpos(rest, ':') END AS cpos
        FROM parts
    ),
    after AS (
        SELECT *,
            CASE WHEN cpos = 6 AND starts_with(rest, 'https://') THEN rest[9:]
                 WHEN cpos = 5 AND starts_with(rest, 'http://') THEN rest[8:]
                 WHEN cpos > 1 AND rest[cpos:cpos + 2] = '://'
                  AND regexp_full_match(rest[:cpos - 1], '[A-Za-z][A-Za-z0-9+.-]*')
                 THEN rest[cpos + 3:] END AS after_scheme
        FROM scheme
    ),
    host AS (
        SELECT *, strpos(after_scheme, '/') AS spos FROM after
    )
    SELECT
        {select},
        CASE WHEN ok THEN '{KIND_ROW}' ELSE '{KIND_ODD}' END AS kind{
        "".join(f", {name}" for name in carry)
    }
    FROM host
    """
