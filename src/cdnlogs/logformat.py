"""The Aliyun CDN offline-log line format: the reference parser (pure Python, the test oracle).

A line has 12 fields, or 13 since 2020-11 (the request protocol); extra trailing fields are
ignored::

    [9/Jun/2015:01:58:09 +0800] 192.168.15.75 - 1542 "-" "GET http://www.aliyun.com/index.html" \
200 191 2830 MISS "Mozilla/5.0 ..." "text/html" https

Quoting rules, the same ones the DuckDB fast path in ``cdnlogs.dataset`` follows:

* Values are written raw: there is no escape character. A backslash is an ordinary character,
  and a double quote inside a quoted field (real logs carry them in User-Agent and Referer) is
  kept as it is. Field boundaries are found from the structure of the whole line instead: the
  Referer ends at the first ``" "`` that is followed by a request, a status and three more
  fields; the User-Agent runs to the last ``" "`` before the content type, which never holds a
  quote.
* ``-`` (bare or quoted) means "no value" and becomes ``None``.
* Numbers are plain decimal digits.

``parse_line`` raises ``ParseError``; ``format_line`` is its inverse; ``to_clf`` writes the
Combined Log Format line GoAccess and AWStats read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from cdnlogs.errors import ParseError

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.lower(): number for number, name in enumerate(_MONTHS, start=1)}

# A number field: plain decimal digits or "-" (range-checked after the match).
_NUM = r"(?:-|\d+)"
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# Everything after the Referer's opening quote up to the User-Agent's opening quote is anchored
# on the request (a method token, then optionally a space and the URL), the status, both byte
# counts and the cache status, so a quote inside the Referer cannot shift the fields after it.
# The method is first looked for as an HTTP method (upper case): a Referer holding '" "' then
# cannot end early at a quote followed by some other token ('"x" "= " "GET /a"' keeps the
# Referer 'x" "= '). A line whose method is not upper case falls back to any token.
_HTTP_METHOD = r"-|[A-Z][A-Z0-9_-]*"
_ANY_METHOD = r'[^ "]+'


def _head(method: str) -> str:
    return (
        r"\[(?P<time>[^\]]*)\] (?P<client>\S+) (?P<proxy>\S+) (?P<rt>" + _NUM + r") "
        r'"(?P<referer>.*?)" "(?P<request>|(?:' + method + r')(?: .*?)?)" '
        r"(?P<status>" + _NUM + r") (?P<reqb>" + _NUM + r") (?P<respb>" + _NUM + r") "
        r"(?P<cache>\S+) "
    )


_PROTO = r'(?: (?P<proto>"[^"]*"|[^\s"]+))?'


def _line_patterns(method: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The three shapes of a line, tried in order, for one method pattern.

    First choice: exactly 12 or 13 fields. The User-Agent is greedy, so a quote inside it stays
    inside it; the content type never holds a quote. A quoted last field that looks like a
    protocol (no slash, no space) is read as the protocol, as the CSV fast path reads it.
    Fallback: more trailing fields than we know; the User-Agent is then lazy so the extras are
    not swallowed into it.
    """
    head = _head(method)
    return (
        re.compile(head + r'"(?P<ua>.*)" "(?P<ct>[^"]*)" (?P<proto>"[^"/\s]*")$'),
        re.compile(head + r'"(?P<ua>.*)" "(?P<ct>[^"]*)"' + _PROTO + r"$"),
        re.compile(head + r'"(?P<ua>.*?)" "(?P<ct>[^"]*)"' + _PROTO + r"(?: .*)?$"),
    )


_PATTERNS = (_line_patterns(_HTTP_METHOD), _line_patterns(_ANY_METHOD))
_TIME_RE = re.compile(
    r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{1,2}):(\d{1,2}):(\d{1,2}) ([+-])(\d{2})(\d{2})$"
)
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class LogRecord:
    """One request, as one log line describes it.

    ``time`` is timezone-aware in the line's own offset; ``ts`` gives the UTC instant and
    ``utc_offset_minutes`` the offset (480 for +0800). ``None`` stands for ``-``.
    """

    time: datetime
    client_ip: str | None
    proxy_ip: str | None
    response_time_ms: int | None
    referer: str | None
    method: str | None
    scheme: str | None
    host: str | None
    path: str | None
    query: str | None
    status: int | None
    request_bytes: int | None
    response_bytes: int | None
    cache_status: str | None
    user_agent: str | None
    content_type: str | None
    protocol: str | None = None

    @property
    def ts(self) -> datetime:
        """The UTC instant of the line."""
        return self.time.astimezone(UTC)

    @property
    def utc_offset_minutes(self) -> int:
        """The line's offset from UTC in minutes (480 for +0800)."""
        offset = self.time.utcoffset()
        return 0 if offset is None else int(offset.total_seconds() // 60)

    @property
    def url(self) -> str | None:
        """The URL as the line spelled it, rebuilt from its parts."""
        return join_url(self.scheme, self.host, self.path, self.query)


def _value(text: str) -> str | None:
    return None if text == "-" else text


def _number(text: str, name: str, limit: int = _INT64_MAX) -> int | None:
    if text == "-":
        return None
    value = int(text)
    if value > limit:
        raise ParseError(f"{name} out of range: {text}")
    return value


def parse_time(text: str) -> datetime:
    """Parse ``9/Jun/2015:01:58:09 +0800`` (no brackets) into an aware datetime."""
    match = _TIME_RE.match(text)
    if match is None:
        raise ParseError(f"bad time {text!r}")
    day, mon, year, hour, minute, second, sign, off_h, off_m = match.groups()
    month = _MONTH_NUMBER.get(mon.lower())
    if month is None:
        raise ParseError(f"bad month in time {text!r}")
    if int(off_h) > 23 or int(off_m) > 59:
        raise ParseError(f"bad UTC offset in time {text!r}")
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as exc:
        raise ParseError(f"bad time {text!r}: {exc}") from None


def split_url(url: str | None) -> tuple[str | None, str | None, str | None, str | None]:
    """Split a logged URL into ``(scheme, host, path, query)``.

    The query is what follows the first ``?`` (``None`` when there is no ``?``). A URL without
    ``scheme://`` has no scheme or host, and all of it before ``?`` is the path.
    """
    if url is None:
        return None, None, None, None
    rest, mark, query = url.partition("?")
    match = _SCHEME_RE.match(rest)
    if match is None:
        return None, None, rest, query if mark else None
    return match.group(1), match.group(2), match.group(3), query if mark else None


def join_url(
    scheme: str | None, host: str | None, path: str | None, query: str | None
) -> str | None:
    """Inverse of ``split_url``."""
    if scheme is None and host is None and path is None and query is None:
        return None
    head = f"{scheme}://{host or ''}" if scheme is not None else ""
    tail = f"?{query}" if query is not None else ""
    return f"{head}{path or ''}{tail}"


def split_request(request: str | None) -> tuple[str | None, str | None]:
    """Split ``"GET http://host/path"`` into the method and the URL (``None`` if absent)."""
    if request is None:
        return None, None
    method, space, url = request.partition(" ")
    return method, url if space else None


def _match_line(text: str) -> re.Match[str] | None:
    for quoted_proto, strict, extra in _PATTERNS:
        # The quoted-protocol shape ends in '"$' and ``text`` has no trailing newline: skipping
        # it when the line does not end in a quote changes nothing but the time.
        quoted = quoted_proto.match(text) if text.endswith('"') else None
        match = quoted or strict.match(text) or extra.match(text)
        if match is not None:
            return match
    return None


def parse_line(line: str) -> LogRecord:
    """Parse one log line (a trailing newline is allowed) into a LogRecord.

    Raises ParseError naming what is wrong.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        raise ParseError("empty line")
    match = _match_line(text)
    if match is None:
        raise ParseError(_diagnose(text))
    g = match.groupdict()
    method, url = split_request(_value(g["request"]))
    scheme, host, path, query = split_url(url)
    proto = g["proto"]
    if proto is not None and proto.startswith('"'):
        proto = proto[1:-1]
    return LogRecord(
        time=parse_time(g["time"]),
        client_ip=_value(g["client"]),
        proxy_ip=_value(g["proxy"]),
        response_time_ms=_number(g["rt"], "response time"),
        referer=_value(g["referer"]),
        method=method,
        scheme=scheme,
        host=host,
        path=path,
        query=query,
        status=_number(g["status"], "status", _INT32_MAX),
        request_bytes=_number(g["reqb"], "request bytes"),
        response_bytes=_number(g["respb"], "response bytes"),
        cache_status=_value(g["cache"]),
        user_agent=_value(g["ua"]),
        content_type=_value(g["ct"]),
        protocol=None if proto is None else _value(proto),
    )


def _diagnose(text: str) -> str:
    """Say which part of a line that does not match the structure is off, as best we can."""
    if not text.startswith("["):
        return "no [time] at the start of the line"
    if "]" not in text:
        return "unterminated [time]"
    if text.count('"') < 8:
        return f"too few quoted fields ({text.count(chr(34))} quotes, expected at least 8)"
    return "fields do not match the Aliyun log format (wrong count, or a non-number in a number)"


def _fmt_value(value: str | None) -> str:
    return "-" if value is None else value


def _fmt_number(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_time(value: datetime) -> str:
    """Format an aware datetime as the provider does: ``9/Jun/2015:01:58:09 +0800``."""
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    return (
        f"{value.day}/{_MONTHS[value.month - 1]}/{value.year:04d}:"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} {sign}{hh:02d}{mm:02d}"
    )


def format_line(record: LogRecord) -> str:
    """Write a LogRecord as an Aliyun log line (without newline); ``parse_line``'s inverse."""
    request: str | None = record.method
    url = record.url
    if url is not None:
        request = f"{record.method or ''} {url}"
    fields = [
        f"[{format_time(record.time)}]",
        _fmt_value(record.client_ip),
        _fmt_value(record.proxy_ip),
        _fmt_number(record.response_time_ms),
        f'"{_fmt_value(record.referer)}"',
        f'"{_fmt_value(request)}"',
        _fmt_number(record.status),
        _fmt_number(record.request_bytes),
        _fmt_number(record.response_bytes),
        _fmt_value(record.cache_status),
        f'"{_fmt_value(record.user_agent)}"',
        f'"{_fmt_value(record.content_type)}"',
    ]
    if record.protocol is not None:
        fields.append(record.protocol)
    return " ".join(fields)


def clf_escape(value: str | None) -> str:
    """Escape a value for a quoted Combined Log Format field (``"`` and ``\\`` get a backslash)."""
    if value is None:
        return "-"
    return value.replace("\\", "\\\\").replace('"', '\\"')


def clf_time(value: datetime) -> str:
    """``10/Oct/2000:13:55:36 -0700``: CLF's zero-padded day, in the line's own offset."""
    text = format_time(value)
    return text if value.day >= 10 else f"0{text}"


def to_clf(record: LogRecord) -> str:
    """The record as one Combined Log Format line (without newline).

    ``host ident authuser [date] "request" status bytes "referer" "user-agent"``: the request
    is ``METHOD path?query`` followed by ``HTTP/1.1`` because CLF readers expect a protocol
    there and the Aliyun format does not log one. ``bytes`` is the response size.
    """
    target = join_url(None, None, record.path, record.query)
    request = f"{record.method or '-'} {target or '/'} HTTP/1.1"
    return (
        f"{record.client_ip or '-'} - - [{clf_time(record.time)}] "
        f'"{clf_escape(request)}" {_fmt_number(record.status)} '
        f"{_fmt_number(record.response_bytes)} "
        f'"{clf_escape(record.referer)}" "{clf_escape(record.user_agent)}"'
    )


def anonymize_ip(value: str | None) -> str | None:
    """Truncate an IP address to its network: IPv4 to /24 (``1.2.3.0``), IPv6 to /48.

    A value that is not an IP address is returned unchanged (it already says nothing).
    """
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return value
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)
