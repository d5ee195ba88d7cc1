"""Judge the archive against the provider's own counts, per domain and hour and per day (pure).

The provider counts every request it serves, per UTC hour, whether or not the log file reached
us. For each settled hour, reconcile compares:

* bytes: ``factor`` (1.1: TCP/IP overhead and retransmission, as Aliyun documents) x the logged
  response bytes, against the provider's traffic;
* requests: the logged lines, against the provider's requests (no factor).

``ratio = expected / provider``. An hour is ``short`` when either ratio is below
``1 - tolerance``: a file is missing, truncated or not ingested. ``over`` (above
``1 + tolerance``) is reported but is not a failure: the logs hold more than the provider
counted (e.g. a factor that does not fit the domain). A request near an hour boundary may be
logged in one hour and counted in the next, which a small hour cannot absorb: hours with fewer
than ``min_requests`` provider requests are ``few`` and left to their day, and every day (the
provider's +08:00 day, which names the files) is judged as a whole with ``day_tolerance``.
An hour the provider has no data point for is ``no-data``: nothing to judge against.

No network, no clock, no disk: :mod:`cdnlogs.reconcile_run` gathers the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from cdnlogs.models import PROVIDER_TZ
from cdnlogs.timeutil import floor_hour, iso_utc

#: Billed/monitored traffic is about 1.1x the logged response bytes (7-15%, per Aliyun).
DEFAULT_FACTOR = 1.1
#: Per hour: room for the boundary spill and the overhead's variation.
DEFAULT_TOLERANCE = 0.10
#: Per day, tighter: the spill between a day's hours cancels out.
DEFAULT_DAY_TOLERANCE = 0.05
#: Hours younger than this are not judged: monitoring data lags ~4 h, offline logs up to 24 h.
DEFAULT_SETTLE = "24h"
#: Below this many provider requests an hour is too small to judge alone (one spilled request
#: would be 5% of it); its day judges it.
DEFAULT_MIN_REQUESTS = 20


class Verdict(StrEnum):
    """The outcome of one comparison, hour, day, domain or run (worst first in ``SEVERITY``)."""

    OK = "ok"
    SHORT = "short"
    OVER = "over"
    FEW = "few"
    NO_DATA = "no-data"


#: Which verdict wins when several combine: a shortfall always shows.
SEVERITY = (Verdict.SHORT, Verdict.NO_DATA, Verdict.OVER, Verdict.FEW, Verdict.OK)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe of ``verdicts`` (``ok`` for none)."""
    found = set(verdicts)
    return next((v for v in SEVERITY if v in found), Verdict.OK)


@dataclass(frozen=True)
class ReconcileOptions:
    """How strictly to judge. ``tolerance`` per hour, ``day_tolerance`` per day (fractions)."""

    factor: float = DEFAULT_FACTOR
    tolerance: float = DEFAULT_TOLERANCE
    day_tolerance: float = DEFAULT_DAY_TOLERANCE
    min_requests: int = DEFAULT_MIN_REQUESTS


@dataclass(frozen=True)
class Comparison:
    """One quantity of one hour or day: what the logs say against what the provider says.

    ``logged`` is the raw log figure (response bytes, or lines); ``expected`` what the provider
    should report for it (``factor x logged`` for bytes); ``provider`` is ``None`` when the
    provider has no data point; ``ratio = expected / provider``.
    """

    logged: int
    expected: float
    provider: float | None
    ratio: float | None
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "logged": self.logged,
            "expected": round(self.expected, 3),
            "provider": self.provider,
            "ratio": None if self.ratio is None else round(self.ratio, 6),
            "verdict": self.verdict.value,
        }


def compare(logged: int, factor: float, provider: float | None, tolerance: float) -> Comparison:
    """Judge one quantity: ``short``/``over`` outside ``1 -+ tolerance``, else ``ok``."""
    expected = logged * factor
    if provider is None:
        verdict = Verdict.NO_DATA if logged else Verdict.OK
        return Comparison(logged, expected, None, None, verdict)
    if provider <= 0:
        return Comparison(logged, expected, provider, None, Verdict.OVER if logged else Verdict.OK)
    ratio = expected / provider
    if ratio < 1 - tolerance:
        verdict = Verdict.SHORT
    elif ratio > 1 + tolerance:
        verdict = Verdict.OVER
    else:
        verdict = Verdict.OK
    return Comparison(logged, expected, provider, ratio, verdict)


@dataclass(frozen=True)
class HourResult:
    """One domain's UTC hour: bytes and requests compared, and the ledger's files of the hour."""

    hour: datetime
    bytes: Comparison
    requests: Comparison
    verdict: Verdict
    #: Files the ledger has downloaded for this hour (by the hour their name spells).
    files: int = 0

    @property
    def local_hour(self) -> datetime:
        """The hour as file names spell it (+08:00)."""
        return self.hour.astimezone(PROVIDER_TZ)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "hour": iso_utc(self.hour),
            "local_hour": self.local_hour.isoformat(),
            "files": self.files,
            "bytes": self.bytes.to_dict(),
            "requests": self.requests.to_dict(),
            "verdict": self.verdict.value,
        }


@dataclass(frozen=True)
class DayResult:
    """One provider day (+08:00) of one domain: the sums of its judged hours in the window."""

    day: date
    hours: int
    bytes: Comparison
    requests: Comparison
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "day": self.day.isoformat(),
            "hours": self.hours,
            "bytes": self.bytes.to_dict(),
            "requests": self.requests.to_dict(),
            "verdict": self.verdict.value,
        }


@dataclass(frozen=True)
class DomainResult:
    """Every hour and day of one domain, and the domain's verdict."""

    domain: str
    hours: list[HourResult]
    days: list[DayResult]
    verdict: Verdict
    #: Bytes over the whole window: ``factor x logged / provider`` (None without traffic).
    ratio: float | None
    requests_ratio: float | None
    #: Downloaded files of the window that are not (or no longer) in the dataset.
    not_ingested: int = 0

    @property
    def short_hours(self) -> list[HourResult]:
        """The hours that fall short."""
        return [h for h in self.hours if h.verdict is Verdict.SHORT]

    @property
    def short_days(self) -> list[DayResult]:
        """The days that fall short."""
        return [d for d in self.days if d.verdict is Verdict.SHORT]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "domain": self.domain,
            "verdict": self.verdict.value,
            "ratio": None if self.ratio is None else round(self.ratio, 6),
            "requests_ratio": None
            if self.requests_ratio is None
            else round(self.requests_ratio, 6),
            "short_hours": [iso_utc(h.hour) for h in self.short_hours],
            "short_days": [d.day.isoformat() for d in self.short_days],
            "not_ingested": self.not_ingested,
            "hours": [h.to_dict() for h in self.hours],
            "days": [d.to_dict() for d in self.days],
        }


@dataclass
class ReconcileResult:
    """A whole reconcile run: the window judged, the options, every domain, the verdict."""

    product: str
    start: datetime
    end: datetime
    options: ReconcileOptions
    domains: list[DomainResult] = field(default_factory=list)
    #: The provider's RequestIds of the monitoring calls, for support.
    request_ids: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """``short`` when any hour or day of any domain falls short, else the worst other."""
        return worst(d.verdict for d in self.domains)

    @property
    def ok(self) -> bool:
        """True unless something falls short (``over``/``few``/``no-data`` are not failures)."""
        return self.verdict is not Verdict.SHORT

    def to_dict(self) -> dict[str, Any]:
        """The ``reconcile --json`` document."""
        return {
            "ok": self.ok,
            "verdict": self.verdict.value,
            "product": self.product,
            "start": iso_utc(self.start),
            "end": iso_utc(self.end),
            "factor": self.options.factor,
            "tolerance": self.options.tolerance,
            "day_tolerance": self.options.day_tolerance,
            "min_requests": self.options.min_requests,
            "domains": [d.to_dict() for d in self.domains],
        }


def judge_domain(
    domain: str,
    hours: Sequence[datetime],
    *,
    logged_requests: Mapping[datetime, int],
    logged_bytes: Mapping[datetime, int],
    provider_requests: Mapping[datetime, int],
    provider_bytes: Mapping[datetime, float],
    files: Mapping[datetime, int] | None = None,
    not_ingested: int = 0,
    options: ReconcileOptions | None = None,
) -> DomainResult:
    """Judge every hour in ``hours`` (UTC hour starts) of ``domain``, then every day.

    The mappings are keyed by UTC hour start; a missing logged hour counts as zero, a missing
    provider hour as "no data point".
    """
    opts = options or ReconcileOptions()
    files = files or {}
    results: list[HourResult] = []
    for hour in sorted(hours):
        nbytes = compare(
            logged_bytes.get(hour, 0), opts.factor, provider_bytes.get(hour), opts.tolerance
        )
        nreq = compare(
            logged_requests.get(hour, 0), 1.0, _num(provider_requests.get(hour)), opts.tolerance
        )
        verdict = worst((nbytes.verdict, nreq.verdict))
        provider_n = provider_requests.get(hour)
        if verdict in (Verdict.SHORT, Verdict.OVER) and (provider_n or 0) < opts.min_requests:
            verdict = Verdict.FEW
        results.append(HourResult(hour, nbytes, nreq, verdict, files.get(hour, 0)))
    days = _judge_days(results, opts)
    logged_total = sum(h.bytes.logged for h in results)
    provider_total = _sum(h.bytes.provider for h in results)
    requests_total = sum(h.requests.logged for h in results)
    provider_requests_total = _sum(h.requests.provider for h in results)
    return DomainResult(
        domain=domain,
        hours=results,
        days=days,
        verdict=worst([*(h.verdict for h in results), *(d.verdict for d in days)]),
        ratio=_ratio(logged_total * opts.factor, provider_total),
        requests_ratio=_ratio(requests_total, provider_requests_total),
        not_ingested=not_ingested,
    )


def _judge_days(hours: Sequence[HourResult], opts: ReconcileOptions) -> list[DayResult]:
    by_day: dict[date, list[HourResult]] = {}
    for hour in hours:
        by_day.setdefault(hour.local_hour.date(), []).append(hour)
    days = []
    for day, members in sorted(by_day.items()):
        nbytes = compare(
            sum(h.bytes.logged for h in members),
            opts.factor,
            _sum(h.bytes.provider for h in members),
            opts.day_tolerance,
        )
        nreq = compare(
            sum(h.requests.logged for h in members),
            1.0,
            _sum(h.requests.provider for h in members),
            opts.day_tolerance,
        )
        verdict = worst((nbytes.verdict, nreq.verdict))
        if verdict in (Verdict.SHORT, Verdict.OVER) and (nreq.provider or 0) < opts.min_requests:
            verdict = Verdict.FEW
        days.append(DayResult(day, len(members), nbytes, nreq, verdict))
    return days


def settled_window(
    start: datetime, end: datetime, *, now: datetime, settle: timedelta
) -> tuple[datetime, datetime]:
    """The whole UTC hours that overlap ``[start, end)``, ending no later than ``now - settle``.

    Hours younger than ``settle`` are left out: the provider's hourly data arrives after about
    4 hours and offline log files can be up to 24 hours late.
    """
    first = floor_hour(start.astimezone(UTC))
    last = min(floor_hour(end.astimezone(UTC)), floor_hour((now - settle).astimezone(UTC)))
    return first, last


def _num(value: int | None) -> float | None:
    return None if value is None else float(value)


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ratio(expected: float, provider: float | None) -> float | None:
    return expected / provider if provider else None
