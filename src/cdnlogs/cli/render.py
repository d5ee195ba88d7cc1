"""What the commands share to render output: byte sizes and rich consoles.

rich is imported only when a console is made, so ``cdnlogs --help`` and the JSON paths stay
quick to start.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from cdnlogs.cli.context import AppContext

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(nbytes: float) -> str:
    """``812 B``, ``1.5 KiB`` ... ``3.2 TiB`` (binary units, one decimal above bytes)."""
    value = float(nbytes)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable: the last unit always returns")  # pragma: no cover


def console(stream: IO[str], *, plain_width: int, **options: Any) -> Console:
    """A rich Console on ``stream``: the terminal's width there, ``plain_width`` on a pipe.

    Off a terminal rich would wrap at 80 columns and fold long file names; piped output is
    read by people too (cron mail). ``options`` go to rich (``highlight``, ``markup``...).
    """
    from rich.console import Console

    return Console(file=stream, width=None if stream.isatty() else plain_width, **options)


def stderr_console(app: AppContext) -> Console:
    """The console progress bars draw on: the command's stderr."""
    from rich.console import Console

    return Console(file=app.stderr)


def bytes_progress(app: AppContext) -> Progress:
    """The progress bar of a sync or an ingest, on stderr: description, bar, bytes, rate, ETA.

    Transient: it is gone when the run ends, leaving only the report.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr_console(app),
        transient=True,
    )
