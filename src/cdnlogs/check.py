"""``status --check``: is the archive complete and fresh? Numbers and reasons, no printing.

Three things make a check fail, each a :class:`CheckProblem` naming its domain:

* a **settled** hour with no file: an hour counts once ``check_settle`` (24 h) has passed since
  it ended, since offline logs can be published that late; only hours wholly inside the
  look-back window (which every sync lists again) are judged, and ``check_max_gap_hours``
  allows a quiet domain some hours without traffic (and so without a file);
* files recorded as ``failed`` (the next sync retries them; until then they are missing);
* no successful sync within ``check_stale_after`` (3 h), or none at all.

The same numbers feed the metrics file (``cdnlogs_gap_hours``, ``cdnlogs_files_failed``), so an
alert rule and ``status --check`` agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cdnlogs.config import Settings
from cdnlogs.housekeeping import DomainStatus, HourRange, archive_status
from cdnlogs.manifest import Manifest, Status
from cdnlogs.timeutil import floor_hour, iso_utc, parse_duration, parse_when

#: Failed files named in one problem's message (all are counted).
FAILED_NAMES_SHOWN = 3
#: Gap ranges named in one problem's message (all are counted).
GAPS_SHOWN = 4


@dataclass(frozen=True)
class CheckPolicy:
    """What counts as a problem; from the ``check_*`` settings."""

    settle: timedelta
    stale_after: timedelta
    max_gap_hours: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckPolicy:
        """The policy the settings describe (they were validated when loaded)."""
        return cls(
            settle=parse_duration(settings.check_settle),
            stale_after=parse_duration(settings.check_stale_after),
            max_gap_hours=settings.check_max_gap_hours,
        )


@dataclass(frozen=True)
class CheckProblem:
    """One reason the check fails. ``kind`` is ``missing-hours``, ``failed-files`` or ``stale``."""

    domain: str
    kind: str
    message: str


@dataclass(frozen=True)
class DomainCheck:
    """One domain's figures for the check and the metrics file."""

    domain: str
    #: Settled hours of the window with no done or pruned file, as ranges.
    gaps: list[HourRange]
    failed_files: list[str]
    last_sync: datetime | None
    counts: dict[Status, int]

    @property
    def missing_hours(self) -> int:
        """Settled hours with no file."""
        return sum(gap.hours for gap in self.gaps)


@dataclass
class CheckResult:
    """What ``check_archive`` found; ``ok`` when ``problems`` is empty."""

    now: datetime
    #: The settled hours judged: ``[window_start, window_end)`` (empty when the look-back
    #: is shorter than the settle delay).
    window_start: datetime
    window_end: datetime
    domains: list[DomainCheck] = field(default_factory=list)
    problems: list[CheckProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, failed or stale."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """``status --check --json``'s ``check``: the verdict, the settled window, the reasons."""
        return {
            "ok": self.ok,
            "settled_window": {
                "start": iso_utc(self.window_start),
                "end": iso_utc(self.window_end),
            },
            "problems": [
                {"domain": p.domain, "kind": p.kind, "message": p.message} for p in self.problems
            ],
        }


def check_window(
    *, now: datetime, since: datetime | None, lookback: timedelta, settle: timedelta
) -> tuple[datetime, datetime]:
    """The settled hours to judge: whole hours from ``since`` (or now - lookback) to now - settle.

    The start is rounded *up*: sync lists ``[now - lookback, now)``, so the hour the window
    starts inside may not be listed by it, and flagging that hour would be a false alarm.
    """
    begin = since if since is not None else now - lookback
    start = floor_hour(begin)
    if start < begin:
        start += timedelta(hours=1)
    end = floor_hour(now - settle)
    return start, max(start, end)


def check_archive(
    manifest: Manifest,
    *,
    now: datetime,
    policy: CheckPolicy,
    window_start: datetime,
    window_end: datetime,
    domains: Iterable[str] | None = None,
) -> CheckResult:
    """Judge every domain (default: every domain in the ledger) against ``policy``."""
    wanted = sorted(set(domains)) if domains else manifest.domains()
    statuses = archive_status(
        manifest, window_start=window_start, window_end=window_end, domains=wanted
    )
    result = CheckResult(now=now, window_start=window_start, window_end=window_end)
    for status in statuses:
        failed = [row.log_name for row in manifest.records(status.domain, Status.FAILED)]
        domain = DomainCheck(
            domain=status.domain,
            gaps=status.gaps,
            failed_files=failed,
            last_sync=status.last_sync,
            counts=status.counts,
        )
        result.domains.append(domain)
        result.problems += _problems(domain, status, now, policy)
    return result


def check_with_settings(
    manifest: Manifest, settings: Settings, *, now: datetime, domains: Iterable[str]
) -> CheckResult:
    """:func:`check_archive` with the settings' window (``since``/``lookback``) and policy."""
    start, end = check_window(
        now=now,
        since=parse_when(settings.since, now=now) if settings.since else None,
        lookback=parse_duration(settings.lookback),
        settle=parse_duration(settings.check_settle),
    )
    return check_archive(
        manifest,
        now=now,
        policy=CheckPolicy.from_settings(settings),
        window_start=start,
        window_end=end,
        domains=domains,
    )


def _problems(
    domain: DomainCheck, status: DomainStatus, now: datetime, policy: CheckPolicy
) -> list[CheckProblem]:
    name = domain.domain
    problems = []
    if domain.missing_hours > policy.max_gap_hours:
        shown = ", ".join(_range(g) for g in domain.gaps[:GAPS_SHOWN])
        if len(domain.gaps) > GAPS_SHOWN:
            shown += f" and {len(domain.gaps) - GAPS_SHOWN} more range(s)"
        allowed = f" (allowed: {policy.max_gap_hours})" if policy.max_gap_hours else ""
        problems.append(
            CheckProblem(
                name,
                "missing-hours",
                f"{domain.missing_hours} settled hour(s) have no file{allowed}: {shown}",
            )
        )
    if domain.failed_files:
        shown = ", ".join(domain.failed_files[:FAILED_NAMES_SHOWN])
        if len(domain.failed_files) > FAILED_NAMES_SHOWN:
            shown += ", ..."
        problems.append(
            CheckProblem(
                name, "failed-files", f"{len(domain.failed_files)} file(s) failed: {shown}"
            )
        )
    if status.last_sync is None:
        problems.append(CheckProblem(name, "stale", "no successful sync recorded"))
    elif now - status.last_sync > policy.stale_after:
        age = now - status.last_sync
        problems.append(
            CheckProblem(
                name,
                "stale",
                f"last successful sync {iso_utc(status.last_sync)} is {_age(age)} old "
                f"(more than {_age(policy.stale_after)})",
            )
        )
    return problems


def _range(gap: HourRange) -> str:
    if gap.hours == 1:
        return f"{gap.start:%Y-%m-%dT%H}:00Z"
    return f"{gap.start:%Y-%m-%dT%H}:00Z..{gap.end:%Y-%m-%dT%H}:00Z ({gap.hours}h)"


def _age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d{hours % 24}h"
