"""What every command shares: help text, and main()'s one exception -> exit status translation."""

from __future__ import annotations

from collections.abc import Iterator

import click
import duckdb
import pytest
from click.testing import CliRunner

from cdnlogs import errors
from cdnlogs.cli import cli, main
from cdnlogs.errors import ExitStatus
from cdnlogs.signals import Terminated


def all_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, as the group lists them (loading each lazily defined command)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if name.startswith("_") or command is None:
            continue
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, name
        command = found
    return command


def test_the_cli_has_the_foundation_commands() -> None:
    paths = set(all_commands())
    assert {("domains",), ("list",)} <= paths


@pytest.mark.parametrize("path", list(all_commands()), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = command_at(path)
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts} has no help text"
            assert any(o.startswith("--") for o in param.opts), f"{param.opts} lacks a long form"


def test_group_help_and_version() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "cdnlogs" in result.output


# --- main(): the single translation point ---------------------------------------------------


_TO_RAISE: list[BaseException | None] = [None]


@pytest.fixture
def raising_command() -> Iterator[None]:
    """A throwaway command on the real group that raises what the test asks for."""

    @cli.command("_raise", hidden=True)
    def _raise() -> None:
        """Raise the exception the test put in _TO_RAISE."""
        exc = _TO_RAISE[0]
        if exc is not None:
            raise exc

    try:
        yield
    finally:
        cli.commands.pop("_raise", None)
        _TO_RAISE[0] = None


CASES: list[tuple[BaseException | None, ExitStatus, str]] = [
    (None, ExitStatus.OK, ""),
    (RuntimeError("boom"), ExitStatus.ERROR, "Error: unexpected RuntimeError: boom"),
    (errors.ManifestError("ledger broken"), ExitStatus.ERROR, "Error: ledger broken"),
    (errors.UsageError("bad value", hint="try this"), ExitStatus.USAGE, "hint: try this"),
    (errors.ConfigError("f.toml: unknown key 'x'"), ExitStatus.CONFIG, "unknown key 'x'"),
    (errors.CredentialsError("no credential"), ExitStatus.CONFIG, "Error: no credential"),
    (
        errors.ApiNotFoundError("no such domain", code="InvalidDomain.NotFound", request_id="R1"),
        ExitStatus.API,
        "Error: InvalidDomain.NotFound: no such domain (RequestId R1)",
    ),
    (errors.ApiThrottledError("slow", code="Throttling.User"), ExitStatus.API, "Throttling"),
    (errors.PartialSyncError("2 files failed"), ExitStatus.PARTIAL, "2 files failed"),
    (errors.ReconcileShortError("1 hour(s) hold less"), ExitStatus.SHORT, "1 hour(s) hold less"),
    (KeyboardInterrupt(), ExitStatus.INTERRUPTED, ""),
    (Terminated("signal 15"), ExitStatus.TERMINATED, ""),  # SIGTERM (signals.py)
    # Ctrl-C while DuckDB runs a statement: how duckdb reports it, in its thread or another
    (RuntimeError("Query interrupted"), ExitStatus.INTERRUPTED, ""),
    (duckdb.InterruptException("INTERRUPT Error: Interrupted!"), ExitStatus.INTERRUPTED, ""),
    (RuntimeError("interrupted by a bug"), ExitStatus.ERROR, "unexpected RuntimeError"),
    (errors.IncompleteArchiveError("2 hours missing"), ExitStatus.INCOMPLETE, "2 hours missing"),
]


def test_cases_cover_every_exit_status() -> None:
    assert {status for _, status, _ in CASES} == set(ExitStatus)


@pytest.mark.parametrize(("exc", "status", "message"), CASES, ids=lambda v: repr(v)[:40])
def test_main_translates_each_outcome(
    raising_command: None,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException | None,
    status: ExitStatus,
    message: str,
) -> None:
    _TO_RAISE[0] = exc
    with pytest.raises(SystemExit) as info:
        main(["_raise"])
    assert info.value.code == status
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    if status not in (ExitStatus.OK, ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        assert err.startswith("Error: ")


def test_click_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["list", "--no-such-option"])
    assert info.value.code == ExitStatus.USAGE
    assert "No such option" in capsys.readouterr().err


def test_debug_shows_the_exception(raising_command: None) -> None:
    _TO_RAISE[0] = errors.ConfigError("with traceback")
    with pytest.raises(errors.ConfigError):
        main(["--debug", "_raise"])


def test_messages_are_redacted(raising_command: None, capsys: pytest.CaptureFixture[str]) -> None:
    _TO_RAISE[0] = errors.TransferError(
        "failed http://h/x.gz?Expires=1&OSSAccessKeyId=KEYID&Signature=SIGVALUE",
    )
    with pytest.raises(SystemExit) as info:
        main(["_raise"])
    assert info.value.code == ExitStatus.PARTIAL
    err = capsys.readouterr().err
    assert "SIGVALUE" not in err and "KEYID" not in err
    assert "Signature=***" in err


def test_debug_is_the_group_flag_only(capsys: pytest.CaptureFixture[str]) -> None:
    """A ``--debug`` that is a command's argument is not the flag: the error is one line."""

    @cli.command("_words", hidden=True)
    @click.argument("words", nargs=-1)
    def _words(words: tuple[str, ...]) -> None:
        raise errors.ConfigError(f"got {' '.join(words)}")

    try:
        with pytest.raises(SystemExit) as info:
            main(["_words", "--", "--debug"])
        assert info.value.code == ExitStatus.CONFIG
        assert capsys.readouterr().err == "Error: got --debug\n"
        with pytest.raises(errors.ConfigError):
            main(["--debug", "_words", "x"])
    finally:
        cli.commands.pop("_words", None)


def test_debug_works_for_an_error_before_the_group_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error while the command's module is imported comes before any callback ran."""
    from cdnlogs.cli import COMMAND_MODULES

    monkeypatch.setitem(COMMAND_MODULES, "_broken", "no_such_module_here")
    with pytest.raises(ModuleNotFoundError):
        main(["--debug", "_broken"])
    with pytest.raises(SystemExit) as info:
        main(["_broken"])
    assert info.value.code == ExitStatus.ERROR
    assert "unexpected ModuleNotFoundError" in capsys.readouterr().err
