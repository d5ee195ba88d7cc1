"""One reconcile run: the dataset's hourly counts + the ledger + the provider's series -> verdict.

The library entry point is :func:`run_reconcile`; it returns a
:class:`~cdnlogs.reconcile.ReconcileResult` (per domain and hour: logged and provider bytes and
requests, ratios, verdicts; per day; overall) and never prints, so the CLI, the metrics writer
and anything else can use the same result.

Why the dataset (not the ledger's ``plain_lines``) for requests: bytes need the dataset anyway,
and the dataset puts each line in the hour of its own logged time, the way the provider counts,
for bytes and requests alike; the ledger only knows a file's line count, by the hour its name
spells. The ledger still says which downloaded files are not ingested yet, which the result
reports (``not_ingested``) because such hours fall short until ``cdnlogs ingest`` runs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from cdnlogs.analyze import Filters, hourly_logged
from cdnlogs.config import Settings
from cdnlogs.errors import ConfigError, UsageError
from cdnlogs.manifest import Manifest, Status
from cdnlogs.providers.base import HourlyCounts, MonitoringProvider
from cdnlogs.reconcile import (
    ReconcileOptions,
    ReconcileResult,
    judge_domain,
    settled_window,
)
from cdnlogs.timeutil import hours_between, iso_utc, parse_duration, resolve_window

log = logging.getLogger(__name__)


def reconcile_options(settings: Settings) -> ReconcileOptions:
    """The judging options from the settings (factor, tolerances)."""
    return ReconcileOptions(
        factor=settings.reconcile_factor,
        tolerance=settings.reconcile_tolerance,
        day_tolerance=settings.reconcile_day_tolerance,
    )


def reconcile_window(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """The settled whole hours of ``[since, until)``: ``since`` defaults to ``now - lookback``.

    UsageError when no settled hour is left (the window is younger than ``reconcile_settle``).
    """
    since, until = resolve_window(
        settings.since, settings.until, now=now, default=parse_duration(settings.lookback)
    )
    settle = parse_duration(settings.reconcile_settle)
    start, end = settled_window(since, until, now=now, settle=settle)
    if start >= end:
        raise UsageError(
            f"no settled hour in the window {iso_utc(since)} .. {iso_utc(until)}: hours younger "
            f"than {settings.reconcile_settle} (before {iso_utc(now - settle)}) are not judged",
            hint="widen --since, or lower reconcile_settle (CDNLOGS_RECONCILE_SETTLE)",
        )
    return start, end


def run_reconcile(
    settings: Settings,
    provider: MonitoringProvider,
    *,
    now: datetime | None = None,
    domains: Sequence[str] | None = None,
) -> ReconcileResult:
    """Reconcile the archive at ``settings.out_dir`` with ``provider``'s hourly counts.

    :param domains: the domains to judge (default: ``settings.domains``, else every domain
        the ledger knows).
    :raises ManifestError: no ledger at ``--out``; ConfigError: no domain; ApiError: the
        provider refused a monitoring call (with its Code and RequestId).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start, end = reconcile_window(settings, now)
    options = reconcile_options(settings)
    with Manifest.open(settings.state_dir, create=False) as manifest:
        names = list(dict.fromkeys(domains or settings.domains or manifest.domains()))
        if not names:
            raise ConfigError(
                "no domain to reconcile: the ledger is empty",
                hint="pass --domain NAME, or run `cdnlogs sync` first",
            )
        files: dict[str, Counter[datetime]] = {name: Counter() for name in names}
        not_ingested: Counter[str] = Counter()
        for name in names:
            for record in manifest.records(name, Status.DONE):
                if not start <= record.hour_start < end:
                    continue
                files[name][record.hour_start] += 1
                if record.ingested_sha256 != record.sha256:
                    not_ingested[name] += 1
    logged = _logged_counts(settings, names, start, end)
    result = ReconcileResult(product=settings.product, start=start, end=end, options=options)
    hours = hours_between(start, end)
    for name in names:
        counts: HourlyCounts = provider.hourly_counts(name, start, end)
        result.request_ids.extend(counts.request_ids)
        requests, nbytes = logged.get(name, ({}, {}))
        domain_result = judge_domain(
            name,
            hours,
            logged_requests=requests,
            logged_bytes=nbytes,
            provider_requests=counts.requests,
            provider_bytes=counts.bytes,
            files=files[name],
            not_ingested=not_ingested[name],
            options=options,
        )
        if domain_result.not_ingested:
            log.warning(
                "%s: %d downloaded files of the window are not in the dataset; run `cdnlogs "
                "ingest` first or their hours fall short",
                name,
                domain_result.not_ingested,
            )
        result.domains.append(domain_result)
    return result


def _logged_counts(
    settings: Settings, names: Sequence[str], start: datetime, end: datetime
) -> dict[str, tuple[dict[datetime, int], dict[datetime, int]]]:
    """``{domain: (requests by hour, response bytes by hour)}`` from the dataset."""
    from cdnlogs.dataset import connect

    out: dict[str, tuple[dict[datetime, int], dict[datetime, int]]] = {
        name: ({}, {}) for name in names
    }
    con = connect(settings.dataset_dir)
    try:
        rows = hourly_logged(con, Filters(domains=tuple(names), since=start, until=end))
    finally:
        con.close()
    for row in rows:
        requests, nbytes = out[row.domain]
        requests[row.hour] = row.requests
        nbytes[row.hour] = row.bytes
    return out
