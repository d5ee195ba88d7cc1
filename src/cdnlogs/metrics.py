"""The metrics file: Prometheus text format for node_exporter's textfile collector.

After each run (``sync``, ``ingest``, a ``watch`` tick, and later ``reconcile``) the command
builds a :class:`Metrics` and :func:`write_metrics` writes it with prometheus-client's
``write_to_textfile`` (a temporary file in the same directory, then a rename), so the collector
never reads half a file.

Two kinds of family (see :data:`FAMILIES`):

* **run** families carry a ``command`` label and describe the run that wrote them (when it
  ended, how long it took, its exit status). A run replaces only its own command's samples:
  ``sync`` and ``ingest`` from two cron lines can share one file.
* **archive** families describe the archive as the ledger has it now (per ``domain``): every
  writer that can read the ledger recomputes them, so they are never older than the last run.
  The ``_total`` counters are sums over the ledger's run rows, so they only grow.

A family a run does not set is kept from the file as it was (``cdnlogs_reconcile_ratio``
written by ``reconcile`` survives a ``sync``). Adding a metric is one entry in
:data:`FAMILIES` and one :meth:`Metrics.set` call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from cdnlogs.check import CheckResult
from cdnlogs.manifest import Manifest, Status

Scope = Literal["run", "archive"]
Kind = Literal["gauge", "counter"]


@dataclass(frozen=True)
class Family:
    """One metric family: its type, help text, labels, and whose samples a write replaces."""

    kind: Kind
    help: str
    labels: tuple[str, ...]
    scope: Scope


#: Every metric cdnlogs writes. Names follow Prometheus conventions (base units, ``_total``
#: for counters, ``_timestamp_seconds`` for Unix times).
FAMILIES: dict[str, Family] = {
    "cdnlogs_last_run_timestamp_seconds": Family(
        "gauge", "When the last run of this command ended (Unix time).", ("command",), "run"
    ),
    "cdnlogs_last_run_duration_seconds": Family(
        "gauge", "How long the last run of this command took.", ("command",), "run"
    ),
    "cdnlogs_last_run_exit_status": Family(
        "gauge",
        "Exit status of the last run of this command (0 ok, 5 partial, 143 SIGTERM, ...).",
        ("command",),
        "run",
    ),
    "cdnlogs_last_run_success_timestamp_seconds": Family(
        "gauge",
        "When a run of this command last ended with exit 0 (Unix time).",
        ("command",),
        "run",
    ),
    "cdnlogs_last_run_files_failed": Family(
        "gauge", "Files that failed in the last run of this command.", ("command",), "run"
    ),
    "cdnlogs_last_success_timestamp_seconds": Family(
        "gauge",
        "When the last sync of this domain ended with every listed file in place (Unix time).",
        ("domain",),
        "archive",
    ),
    "cdnlogs_files_downloaded_total": Family(
        "counter", "Log files downloaded and verified by sync runs.", ("domain",), "archive"
    ),
    "cdnlogs_bytes_downloaded_total": Family(
        "counter", "Bytes downloaded (as served) by sync runs.", ("domain",), "archive"
    ),
    "cdnlogs_files_failed": Family(
        "gauge",
        "Files the ledger has as failed (missing until a sync fetches them).",
        ("domain",),
        "archive",
    ),
    "cdnlogs_gap_hours": Family(
        "gauge",
        "Settled hours of the look-back window with no file (what status --check flags).",
        ("domain",),
        "archive",
    ),
    "cdnlogs_files": Family(
        "gauge", "Files in the ledger by status.", ("domain", "status"), "archive"
    ),
    "cdnlogs_reconcile_ratio": Family(
        "gauge",
        "Logged bytes x factor / the provider's traffic over the last reconciled window.",
        ("domain",),
        "archive",
    ),
    "cdnlogs_reconcile_requests_ratio": Family(
        "gauge",
        "Logged requests / the provider's request count over the last reconciled window.",
        ("domain",),
        "archive",
    ),
    "cdnlogs_reconcile_short_hours": Family(
        "gauge",
        "Settled hours the last reconcile found short of the provider's counts.",
        ("domain",),
        "archive",
    ),
}


@dataclass(frozen=True)
class _Sample:
    labels: dict[str, str]
    value: float


class Metrics:
    """The samples one run writes.

    :param command: the ``command`` label of the run families (``sync``, ``ingest``, ...).
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self._samples: dict[str, list[_Sample]] = {}

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set one sample of a family of :data:`FAMILIES`; run families get ``command``."""
        family = FAMILIES[name]
        if family.scope == "run":
            labels = {"command": self.command, **labels}
        if set(labels) != set(family.labels):
            raise ValueError(f"{name} takes labels {family.labels}, not {tuple(labels)}")
        samples = self._samples.setdefault(name, [])
        samples[:] = [s for s in samples if s.labels != labels]
        samples.append(_Sample(labels, float(value)))

    def names(self) -> list[str]:
        """The families set so far."""
        return list(self._samples)

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The samples of one family: (labels, value)."""
        return [(dict(s.labels), s.value) for s in self._samples.get(name, [])]

    def record_run(
        self,
        *,
        started: datetime,
        finished: datetime,
        exit_status: int,
        files_failed: int | None = None,
    ) -> None:
        """The run families for a run that ended with ``exit_status``."""
        ended = finished.timestamp()
        self.set("cdnlogs_last_run_timestamp_seconds", ended)
        self.set("cdnlogs_last_run_duration_seconds", (finished - started).total_seconds())
        self.set("cdnlogs_last_run_exit_status", exit_status)
        if exit_status == 0:
            self.set("cdnlogs_last_run_success_timestamp_seconds", ended)
        if files_failed is not None:
            self.set("cdnlogs_last_run_files_failed", files_failed)

    def record_archive(self, manifest: Manifest, check: CheckResult) -> None:
        """The archive families, from the ledger and a check over every domain it knows."""
        totals = manifest.run_totals()
        for domain in check.domains:
            name = domain.domain
            files, nbytes = totals.get(name, (0, 0))
            self.set("cdnlogs_files_downloaded_total", files, domain=name)
            self.set("cdnlogs_bytes_downloaded_total", nbytes, domain=name)
            self.set("cdnlogs_files_failed", len(domain.failed_files), domain=name)
            self.set("cdnlogs_gap_hours", domain.missing_hours, domain=name)
            if domain.last_sync is not None:
                self.set(
                    "cdnlogs_last_success_timestamp_seconds",
                    domain.last_sync.timestamp(),
                    domain=name,
                )
            for status in Status:
                self.set(
                    "cdnlogs_files", domain.counts.get(status, 0), domain=name, status=status.value
                )


def write_metrics(path: Path, metrics: Metrics) -> None:
    """Write ``metrics`` to ``path`` atomically, keeping what other runs wrote there.

    Raises OSError when the file cannot be written (the caller warns; a run never fails
    because of its metrics).
    """
    previous = _read_previous(path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics, previous))
    try:
        write_to_textfile(str(path), registry)
    except KeyboardInterrupt:
        # write_to_textfile cleans its temporary file up only on Exception.
        for leftover in path.parent.glob(f"{path.name}.{os.getpid()}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


def _read_previous(path: Path) -> dict[str, Metric]:
    """The families already in the file; nothing if it is missing or not ours to parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        return {family.name: family for family in text_string_to_metric_families(text)}
    except Exception:
        # Whatever the parser makes of a damaged file, it is replaced whole rather than
        # failing every later run.
        return {}


class _Collector:
    """Yields this run's families merged with the kept samples of the previous file."""

    def __init__(self, metrics: Metrics, previous: dict[str, Metric]) -> None:
        self._metrics = metrics
        self._previous = previous

    def collect(self) -> Iterator[Metric]:
        for name, family in FAMILIES.items():
            metric = _new_family(name, family)
            kept = self._kept(name, metric.name, family)
            for labels, value in [*kept, *self._metrics.samples(name)]:
                metric.add_metric([labels[label] for label in family.labels], value)
            if metric.samples:
                yield metric

    def _kept(
        self, name: str, family_name: str, family: Family
    ) -> Iterable[tuple[dict[str, str], float]]:
        old = self._previous.get(family_name)
        if old is None:
            return []
        ours = name in self._metrics.names()
        kept = []
        for sample in old.samples:
            if set(sample.labels) != set(family.labels) or sample.name.endswith("_created"):
                continue
            if ours and (
                family.scope == "archive" or sample.labels.get("command") == self._metrics.command
            ):
                continue  # this run has fresh values for these
            kept.append((dict(sample.labels), float(sample.value)))
        return kept


def _new_family(name: str, family: Family) -> GaugeMetricFamily | CounterMetricFamily:
    if family.kind == "counter":
        return CounterMetricFamily(name, family.help, labels=family.labels)
    return GaugeMetricFamily(name, family.help, labels=family.labels)
