"""The ``simulate`` command: serve the built-in simulator until interrupted."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from cdnlogs.cli import cli
from cdnlogs.errors import UsageError


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
def simulate(host: str, port: int, domains: str, days: int, seed: int, lines_per_file: int) -> None:
    """Serve a local Aliyun CDN API and signed log host until interrupted (Ctrl-C).

    Point cdnlogs at it with the environment variables it prints. The access key it prints is
    a fixed demo key that works only against this simulator.
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
