"""Decide what a sync fetches: a pure function of the listing and the ledger rows.

[aws-cli syncstrategy] A listed file is fetched when the ledger lacks it or holds it as
``pending`` or ``failed``. ``done`` files are skipped, ``pruned`` ones are never fetched again
(retention deleted them on purpose) and ``rejected`` ones stay rejected. A LogName that cannot be
a plain local file name (or renders an unsafe path) is rejected here, before anything touches
the disk. No network, no clock, no disk: the caller passes everything in. (A signed URL that
has expired is found by the download, which re-lists: see :mod:`cdnlogs.signedurl`.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from cdnlogs.errors import UnsafeNameError
from cdnlogs.manifest import FileRecord, Status
from cdnlogs.models import LogFile
from cdnlogs.storage import relative_path

#: Ledger statuses whose files are (re)fetched.
FETCH_STATUSES = frozenset({Status.PENDING, Status.FAILED})


@dataclass(frozen=True)
class FetchTask:
    """One file to download, and where it goes (relative to the output directory)."""

    log_file: LogFile
    relative_path: PurePosixPath


@dataclass(frozen=True)
class Rejection:
    """A listed file that will never be fetched, and why."""

    log_file: LogFile
    reason: str
    #: True when the ledger already had it as rejected (warn once, not every run).
    known: bool


@dataclass
class Plan:
    """What one domain's sync does with its listing."""

    fetch: list[FetchTask] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    #: Listed files left alone, by ledger status (``done``, ``pruned``).
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def new_rejections(self) -> list[Rejection]:
        """Rejections the ledger does not know yet (to record and warn about)."""
        return [r for r in self.rejected if not r.known]

    @property
    def fetch_bytes(self) -> int:
        """Sum of the listed sizes of the files to fetch."""
        return sum(task.log_file.size for task in self.fetch)


def plan_fetches(
    files: Iterable[LogFile],
    records: Iterable[FileRecord],
    *,
    layout: str,
    fmt: str,
) -> Plan:
    """Turn a listing and the ledger's rows into a :class:`Plan`.

    :param files: the listing (any domains; duplicates by (domain, name) count once).
    :param records: ledger rows for those domains (others are ignored).
    :param layout: the path template (see :func:`cdnlogs.storage.relative_path`).
    :param fmt: ``log`` or ``gz``.
    :raises ConfigError: for a bad layout or format (nothing could be placed).
    """
    by_key = {(r.domain, r.log_name): r for r in records}
    plan = Plan()
    seen: set[tuple[str, str]] = set()
    for log_file in sorted(files, key=lambda f: (f.domain, f.start, f.name)):
        key = (log_file.domain, log_file.name)
        if key in seen:
            continue
        seen.add(key)
        record = by_key.get(key)
        status = record.status if record is not None else None
        if status is Status.REJECTED:
            reason = (record.last_error if record else None) or "rejected earlier"
            plan.rejected.append(Rejection(log_file, reason, known=True))
            continue
        if status is not None and status not in FETCH_STATUSES:
            plan.skipped[str(status)] += 1
            continue
        try:
            rel = relative_path(layout, log_file, fmt)
        except UnsafeNameError as exc:
            plan.rejected.append(Rejection(log_file, exc.message, known=False))
            continue
        plan.fetch.append(FetchTask(log_file, rel))
    return plan
