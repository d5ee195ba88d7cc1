"""The command-line interface: the only package that prints, reads flags or exits.

``main()`` is the single place where exceptions become a one-line message and an exit status.
Commands live in one module per area and attach themselves to the ``cli`` group when that
module is imported. The group imports a command's module only when the command runs (or help
lists it), so a cron line pays for duckdb, requests or rich only in the commands that use
them: ``cdnlogs ingest`` starts without the HTTP stack, ``cdnlogs sync`` without rich tables.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from cdnlogs.__about__ import __version__
from cdnlogs.cli.context import AppContext
from cdnlogs.errors import CdnLogsError, ExitStatus, is_interrupt
from cdnlogs.redact import RedactingFilter, redact_text
from cdnlogs.signals import Terminated, sigterm_as_interrupt, sigterm_received

#: Every command and the module under ``cdnlogs.cli`` that defines it.
COMMAND_MODULES: dict[str, str] = {
    "domains": "remote",
    "list": "remote",
    "simulate": "simulate",
    "sync": "archive",
    "demo": "archive",
    "status": "housekeeping",
    "verify": "housekeeping",
    "prune": "housekeeping",
    "adopt": "housekeeping",
    "ingest": "analysis",
    "query": "analysis",
    "export": "analysis",
    "report": "report",
    "reconcile": "reconcile",
    "watch": "watch",
    "compact": "analysis",
}


class LazyGroup(click.Group):
    """A group that imports a command's module the first time the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"cdnlogs.cli.{module}")
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cdnlogs")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Keep a complete, verified archive of Alibaba Cloud CDN offline logs, and query it."""
    ctx.obj = AppContext(verbose=verbose, debug=debug)
    _setup_logging(verbose)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("cdnlogs")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def exit_status_of(exc: BaseException | None) -> int:
    """The status ``main()`` exits with when a command ends by raising ``exc`` (None: success).

    The one mapping from outcomes to exit statuses; the run hooks (metrics, pings) report it.
    """
    if exc is None:
        return ExitStatus.OK
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        # click turns a KeyboardInterrupt (and so a SIGTERM's Terminated) into Abort.
        terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)
        return _interrupted_status(terminated)
    if isinstance(exc, click.ClickException):
        return ExitStatus.USAGE if exc.exit_code == 2 else exc.exit_code
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else ExitStatus.OK if code is None else 1
    if isinstance(exc, CdnLogsError):
        return exc.exit_code
    if is_interrupt(exc):  # Ctrl-C or SIGTERM while DuckDB ran a statement
        return _interrupted_status(False)
    return ExitStatus.ERROR


def _interrupted_status(terminated: bool) -> ExitStatus:
    # DuckDB may swallow the Terminated exception (see signals.py): the signal itself decides.
    if terminated or sigterm_received():
        return ExitStatus.TERMINATED
    return ExitStatus.INTERRUPTED


def _debug_requested(args: list[str]) -> bool:
    """Whether the group's ``--debug`` flag was given, as click parses the group's options.

    Parsed up front, before any command runs: an error can come before the group's callback
    (importing a command's module) or outside any context, and a ``--debug`` that is only a
    command's argument (``query 'SELECT ...' -- --debug``) is not the flag.
    """
    try:
        with cli.make_context("cdnlogs", list(args), resilient_parsing=True) as ctx:
            return bool(ctx.params.get("debug"))
    except (click.exceptions.ClickException, click.exceptions.Exit):
        return False


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn every outcome into an exit status."""
    debug = _debug_requested(argv if argv is not None else sys.argv[1:])
    try:
        # With standalone_mode=False click returns (not raises) the code of ctx.exit(n).
        with sigterm_as_interrupt():
            status = cli.main(args=argv, prog_name="cdnlogs", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        click.echo("", err=True)
        sys.exit(exit_status_of(exc))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exit_status_of(exc))
    except click.exceptions.Exit as exc:
        sys.exit(exit_status_of(exc))
    except CdnLogsError as exc:
        if debug:
            raise
        click.echo(f"Error: {redact_text(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"hint: {redact_text(exc.hint)}", err=True)
        sys.exit(exit_status_of(exc))
    except Exception as exc:
        if is_interrupt(exc):
            click.echo("", err=True)
            sys.exit(exit_status_of(exc))
        if debug:
            raise
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {redact_text(str(exc))} "
            "(run with --debug for a traceback)",
            err=True,
        )
        sys.exit(exit_status_of(exc))
    sys.exit(status if isinstance(status, int) else ExitStatus.OK)


__all__ = ["COMMAND_MODULES", "LazyGroup", "cli", "exit_status_of", "main"]
