"""What an unattended run reports besides its output: metrics file, pings, failure webhook.

``sync``, ``ingest`` and each ``watch`` tick run inside :func:`operated_run`. It pings
``URL/start``, lets the command run, then, however the command ended (success, a partial
failure, an error, SIGTERM), works out the exit status ``main()`` will use, writes the metrics
file, pings ``URL`` or ``URL/fail`` and on failure posts the webhook. Reporting never changes
the outcome: a metrics file that cannot be written or a ping that fails is a warning.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from cdnlogs.__about__ import __version__
from cdnlogs.cli import exit_status_of
from cdnlogs.cli.options import grouped
from cdnlogs.config import Settings
from cdnlogs.errors import CdnLogsError
from cdnlogs.redact import redact_text
from cdnlogs.signals import Terminated
from cdnlogs.timeutil import iso_utc

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: The flags ``ops_options`` adds; the command receives them together as ``ops``.
OPS_FLAGS = ("metrics_file", "ping_url", "notify_webhook")


def ops_options(func: F) -> F:
    """``--metrics-file``, ``--ping-url`` and ``--notify-webhook``, passed on as ``ops``.

    The command gets one keyword, ``ops``: Settings field names to values (``None`` = not
    given), to pass on as ``make_settings(config_path, **ops, ...)``.
    """
    func = grouped("ops", OPS_FLAGS)(func)
    func = click.option(
        "--notify-webhook",
        default=None,
        metavar="URL",
        help="POST a JSON summary here when the run fails. [env: CDNLOGS_NOTIFY_WEBHOOK]",
    )(func)
    func = click.option(
        "--ping-url",
        default=None,
        metavar="URL",
        help="Dead-man's switch: ping URL/start, then URL on success or URL/fail "
        "(healthchecks style); a failed ping only warns. [env: CDNLOGS_PING_URL]",
    )(func)
    return click.option(
        "--metrics-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Write Prometheus metrics here after the run (node_exporter textfile collector; "
        "name it *.prom). [env: CDNLOGS_METRICS_FILE]",
    )(func)


@dataclass
class RunRecorder:
    """What the command tells the reporting about its run while it runs."""

    command: str
    started: datetime
    #: The run's JSON summary (as ``--json`` prints it), for the webhook and the ping body.
    summary: dict[str, Any] | None = None
    #: Files that failed in this run, for ``cdnlogs_last_run_files_failed``.
    files_failed: int | None = None
    #: One line for the ping body on success.
    headline: str = ""
    #: Extra samples for the metrics file (families of ``cdnlogs.metrics.FAMILIES``).
    extra: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)

    def metric(self, name: str, value: float, **labels: str) -> None:
        """Add one sample to the metrics this run writes (e.g. ``cdnlogs_reconcile_ratio``)."""
        self.extra.append((name, value, labels))


@contextmanager
def operated_run(settings: Settings, command: str) -> Iterator[RunRecorder]:
    """Run the body as one reported run of ``command`` (see the module docstring)."""
    recorder = RunRecorder(command=command, started=datetime.now(UTC))
    if settings.ping_url:
        # Imported only when asked for: it loads requests, which ingest otherwise never does.
        from cdnlogs import heartbeat

        heartbeat.ping(settings.ping_url, "start", timeout=settings.heartbeat_timeout_seconds)
    try:
        yield recorder
    except BaseException as exc:
        report_run(settings, recorder, exit_status_of(exc), describe_failure(exc))
        raise
    report_run(settings, recorder, 0, None)


def report_run(
    settings: Settings, recorder: RunRecorder, exit_status: int, error: str | None
) -> None:
    """Metrics, then the success/fail ping, then (on failure) the webhook."""
    finished = datetime.now(UTC)
    if settings.metrics_file is not None:
        write_run_metrics(settings, recorder, finished, exit_status)
    timeout = settings.heartbeat_timeout_seconds
    ok = exit_status == 0
    line = _headline(recorder, exit_status, error)
    if not (settings.ping_url or (settings.notify_webhook and not ok)):
        return
    from cdnlogs import heartbeat

    if settings.ping_url:
        heartbeat.ping(settings.ping_url, "success" if ok else "fail", body=line, timeout=timeout)
    if settings.notify_webhook and not ok:
        heartbeat.post_webhook(
            settings.notify_webhook,
            failure_payload(settings, recorder, finished, exit_status, error, line),
            timeout=timeout,
        )


def write_run_metrics(
    settings: Settings, recorder: RunRecorder, finished: datetime, exit_status: int
) -> None:
    """Write the metrics file: this run's figures and, if the ledger opens, the archive's."""
    from cdnlogs.check import check_with_settings
    from cdnlogs.manifest import Manifest
    from cdnlogs.metrics import Metrics, write_metrics

    assert settings.metrics_file is not None
    metrics = Metrics(recorder.command)
    metrics.record_run(
        started=recorder.started,
        finished=finished,
        exit_status=exit_status,
        files_failed=recorder.files_failed,
    )
    for name, value, labels in recorder.extra:
        metrics.set(name, value, **labels)
    try:
        with Manifest.open(settings.state_dir, create=False) as manifest:
            domains = sorted(set(manifest.domains()) | set(settings.domains))
            check = check_with_settings(manifest, settings, now=finished, domains=domains)
            metrics.record_archive(manifest, check)
    except CdnLogsError as exc:
        # No ledger yet, or a broken one: the run's own figures still go out (the archive's
        # are kept from the previous file).
        log.info("metrics: archive figures left as they were: %s", exc.message)
    try:
        write_metrics(settings.metrics_file, metrics)
    except OSError as exc:
        log.warning(
            "cannot write the metrics file %s: %s (the run goes on)",
            settings.metrics_file,
            exc.strerror or exc,
        )


def describe_failure(exc: BaseException) -> str:
    """One line saying why a run ended, safe to send anywhere (redacted)."""
    if isinstance(exc, Terminated):
        return "terminated by SIGTERM"
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return "interrupted"
    if isinstance(exc, CdnLogsError):
        return redact_text(exc.message)
    if isinstance(exc, SystemExit | click.exceptions.Exit):
        return f"exit {exit_status_of(exc)}"
    return f"unexpected {type(exc).__name__}: {redact_text(str(exc))}"


def failure_payload(
    settings: Settings,
    recorder: RunRecorder,
    finished: datetime,
    exit_status: int,
    error: str | None,
    line: str,
) -> dict[str, Any]:
    """The webhook's JSON: what failed, where, and the run's summary (no secret, no URL)."""
    return {
        "text": line,
        "tool": "cdnlogs",
        "version": __version__,
        "command": recorder.command,
        "ok": False,
        "exit_status": exit_status,
        "error": error,
        "host": socket.gethostname(),
        "out": str(settings.out_dir),
        "started": iso_utc(recorder.started),
        "finished": iso_utc(finished),
        "seconds": round((finished - recorder.started).total_seconds(), 3),
        "summary": recorder.summary,
    }


def _headline(recorder: RunRecorder, exit_status: int, error: str | None) -> str:
    host = socket.gethostname()
    if exit_status == 0:
        return f"cdnlogs {recorder.command} ok on {host}: {recorder.headline}".rstrip(": ")
    return f"cdnlogs {recorder.command} failed on {host} (exit {exit_status}): {error}"
