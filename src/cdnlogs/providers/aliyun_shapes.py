"""Read DescribeCdnDomainLogs / DescribeUserDomains bodies in every documented shape (pure).

Tolerated, because the docs and samples disagree (see the API reference, sections 1 and 6):

* 2018-05-10: ``DomainLogDetails.DomainLogDetail[].{LogInfos.LogInfoDetail[], PageInfos}``
  with ``PageInfos.PageIndex`` or ``PageInfos.PageNumber``;
* 2014-11-11: ``DomainLogModel.DomainLogDetails.DomainLogDetail[]`` or the 2016
  ``DomainLogModel.Items.DomainLogDetail[]``, with ``PageNumber``/``TotalCount`` at the top
  level or inside ``DomainLogModel``;
* a single object where a list is expected (XML-to-JSON converters do that);
* Start/EndTime as ISO-8601 (with or without seconds) or epoch seconds; missing times are
  read from the LogName, which spells the hour in +08:00.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cdnlogs.errors import ApiError
from cdnlogs.models import PROVIDER_TZ, Domain, LogFile
from cdnlogs.timeutil import parse_provider_time

# <domain>_<YYYY>_<MM>_<DD>_<HHMMSS or HHMM>_<HHMMSS or HHMM>[_ext].gz
_NAME_TIME_RE = re.compile(r"_(\d{4})_(\d{2})_(\d{2})_(\d{2})(\d{2})(\d{2})?_(\d{4,6})")
_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass
class LogPage:
    """One page of DescribeCdnDomainLogs: its raw entries and the paging numbers it claims."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    page_number: int | None = None


@dataclass
class DomainPage:
    """One page of DescribeUserDomains."""

    domains: list[Domain] = field(default_factory=list)
    total: int | None = None


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: ``None`` -> [], one object -> [object]."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _first_int(*values: Any) -> int | None:
    for value in values:
        number = _int(value)
        if number is not None:
            return number
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_log_page(body: dict[str, Any]) -> LogPage:
    """Entries and paging of one DescribeCdnDomainLogs answer, whichever version shaped it."""
    page = LogPage()
    if "DomainLogModel" in body:
        model = _dict(body["DomainLogModel"])
        container = _dict(model.get("DomainLogDetails")) or _dict(model.get("Items"))
        page.entries = [e for e in as_list(container.get("DomainLogDetail")) if e]
        page.total = _first_int(body.get("TotalCount"), model.get("TotalCount"))
        page.page_number = _first_int(body.get("PageNumber"), model.get("PageNumber"))
        return page
    details = as_list(_dict(body.get("DomainLogDetails")).get("DomainLogDetail"))
    for detail in details:
        detail = _dict(detail)
        infos = _dict(detail.get("LogInfos"))
        page.entries.extend(e for e in as_list(infos.get("LogInfoDetail")) if e)
        paging = _dict(detail.get("PageInfos"))
        if page.total is None:
            page.total = _first_int(paging.get("Total"), paging.get("TotalCount"))
        if page.page_number is None:
            page.page_number = _first_int(paging.get("PageIndex"), paging.get("PageNumber"))
    if page.total is None:
        page.total = _first_int(body.get("TotalCount"))
    return page


def has_log_payload(body: dict[str, Any]) -> bool:
    """True when ``body`` carries a listing (so a ``Code`` key next to it is not an error)."""
    return "DomainLogDetails" in body or "DomainLogModel" in body


def hour_from_name(name: str) -> datetime | None:
    """The UTC start of the hour a LogName spells in +08:00, or None."""
    match = _NAME_TIME_RE.search(name)
    if not match:
        return None
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    try:
        local = datetime(year, month, day, hour, minute, tzinfo=PROVIDER_TZ)
    except ValueError:
        return None
    return local.astimezone(UTC)


def with_scheme(path: str, scheme: str) -> str:
    """``path`` with ``scheme://`` in front unless it already has a scheme."""
    path = path.strip()
    if _SCHEME_RE.match(path):
        return path
    return f"{scheme}://{path.lstrip('/')}"


def to_log_file(entry: dict[str, Any], *, domain: str, scheme: str) -> LogFile:
    """One LogInfoDetail / DomainLogDetail entry as a LogFile, or ApiError if unusable."""
    name = entry.get("LogName")
    path = entry.get("LogPath")
    if not isinstance(name, str) or not name or not isinstance(path, str) or not path.strip():
        raise ApiError(f"listing entry without LogName/LogPath: keys {sorted(entry)}")
    start = parse_provider_time(entry.get("StartTime")) or hour_from_name(name)
    if start is None:
        raise ApiError(f"listing entry {name!r} has no usable StartTime")
    end = parse_provider_time(entry.get("EndTime")) or start + timedelta(hours=1)
    size = _int(entry.get("LogSize"))
    return LogFile(
        domain=domain,
        name=name,
        url=with_scheme(path, scheme),
        size=size if size is not None else 0,
        start=start,
        end=end,
    )


def parse_domain_page(body: dict[str, Any]) -> DomainPage:
    """Domains and TotalCount of one DescribeUserDomains answer."""
    page = DomainPage(total=_int(body.get("TotalCount")))
    for item in as_list(_dict(body.get("Domains")).get("PageData")):
        item = _dict(item)
        name = item.get("DomainName")
        if isinstance(name, str) and name:
            page.domains.append(
                Domain(
                    name=name,
                    status=item.get("DomainStatus") or None,
                    cdn_type=item.get("CdnType") or None,
                )
            )
    return page


def parse_series(body: dict[str, Any], container: str, value_field: str) -> dict[datetime, float]:
    """``{TimeStamp: number}`` of a monitoring answer's ``<container>.DataModule[]``.

    Numbers come as strings (CDN, VOD: ``"123456"``) or floats (DCDN); a point without a
    usable time or number is skipped. Raises ApiError when the container is missing, so an
    unexpected answer is not read as "no traffic".
    """
    if container not in body:
        raise ApiError(f"monitoring answer without {container}: keys {sorted(body)}")
    points: dict[datetime, float] = {}
    for point in as_list(_dict(body.get(container)).get("DataModule")):
        point = _dict(point)
        when = parse_provider_time(point.get("TimeStamp"))
        raw = point.get(value_field)
        if when is None or raw is None or raw == "" or isinstance(raw, bool):
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        points[when] = points.get(when, 0.0) + value
    return points
