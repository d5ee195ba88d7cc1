"""The ``simulate`` command: serve the built-in simulator until interrupted."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from cdnlogs.cli import cli
from cdnlogs.errors import UsageError

if TYPE_CHECKING:
    from cdnlogs.simulator import Simulator


def _domain_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UsageError("--domains needs at least one domain name")
    return names


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (0: a free one).")
@click.option(
    "--domains",
    default="a.example.com,b.example.com",
    show_default=True,
    help="Comma-separated domains of the simulated account.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 31),
    default=2,
    show_default=True,
    help="Days of hourly log files before now.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated data.")
@click.option(
    "--lines-per-file",
    type=click.IntRange(1, 10_000_000),
    default=200,
    show_default=True,
    help="Log lines per hour and domain.",
)
@click.option(
    "--hide-file",
    "hide_files",
    multiple=True,
    metavar="LOGNAME",
    help="Never list this file, while the monitoring series still count it (repeatable): "
    "`cdnlogs reconcile` must flag its hour.",
)
@click.option(
    "--truncate-file",
    "truncate_files",
    multiple=True,
    metavar="LOGNAME",
    help="Serve only the first half of this file's lines, while the monitoring series count "
    "all of them (repeatable).",
)
def simulate(
    host: str,
    port: int,
    domains: str,
    days: int,
    seed: int,
    lines_per_file: int,
    hide_files: tuple[str, ...],
    truncate_files: tuple[str, ...],
) -> None:
    """Serve a local Aliyun CDN, DCDN and VOD API and signed log host until interrupted (Ctrl-C).

    Point cdnlogs at it with the environment variables it prints. The access key it prints is
    a fixed demo key that works only against this simulator. `cdnlogs list` shows the LogNames
    that --hide-file and --truncate-file take.
    """
    # Imported here so `cdnlogs --help` does not pay for the simulator's imports.
    from cdnlogs.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(
        domains=_domain_list(domains),
        days=days,
        seed=seed,
        host=host,
        port=port,
        lines_per_file=lines_per_file,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Simulator(config) as sim:
            _lose_files(sim, hide_files, truncate_files)
            click.echo(
                f"cdnlogs simulator serving {', '.join(config.domains)} at {sim.endpoint} "
                "(Ctrl-C to stop)",
            )
            click.echo(
                f"  export CDNLOGS_ENDPOINT={sim.endpoint} CDNLOGS_LOG_SCHEME=http "
                f"ALIBABA_CLOUD_ACCESS_KEY_ID={sim.access_key_id} "
                f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={sim.access_key_secret}"
            )
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("simulator stopped", err=True)


def _lose_files(sim: Simulator, hide: tuple[str, ...], truncate: tuple[str, ...]) -> None:
    """Apply --hide-file and --truncate-file; UsageError for a name the simulator lacks."""
    for name in (*hide, *truncate):
        try:
            sim.file(name)
        except KeyError:
            raise UsageError(
                f"the simulator has no file {name!r}",
                hint="run `cdnlogs list` against it (same --days, --seed) to see the LogNames",
            ) from None
    for name in hide:
        sim.hide_file(name)
    for name in truncate:
        sim.truncate_file(name, keep_lines=sim.file(name).line_count // 2)
