"""main(): the single place where outcomes become exit statuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from cdnlogs.cli import cli, main
from cdnlogs.errors import ApiError, ExitStatus


@pytest.fixture
def temporary_command() -> Iterator[click.Group]:
    names = set(cli.commands)
    yield cli
    for name in set(cli.commands) - names:
        del cli.commands[name]


def test_ctx_exit_status_is_kept(temporary_command: click.Group) -> None:
    @temporary_command.command("x-exit")
    @click.pass_context
    def _exit(ctx: click.Context) -> None:
        ctx.exit(5)

    with pytest.raises(SystemExit) as info:
        main(["x-exit"])
    assert info.value.code == 5


def test_library_error_is_one_redacted_line(
    temporary_command: click.Group, capsys: pytest.CaptureFixture[str]
) -> None:
    @temporary_command.command("x-api")
    def _api() -> None:
        raise ApiError(
            "denied for https://h/x.gz?Expires=1&OSSAccessKeyId=AK&Signature=S",
            code="Forbidden.RAM",
            request_id="REQ-9",
        )

    with pytest.raises(SystemExit) as info:
        main(["x-api"])
    assert info.value.code == ExitStatus.API
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Forbidden.RAM" in err and "REQ-9" in err
    assert "OSSAccessKeyId=AK" not in err and "Signature=S" not in err


def test_unknown_option_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-option"])
    assert info.value.code == ExitStatus.USAGE


def test_bad_layout_in_config_is_exit_3_naming_file_and_key(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('layout = "{domain}/{nope}/{stem}{ext}"\n')
    with pytest.raises(SystemExit) as info:
        main(["status", "--config", str(config), "--out", str(tmp_path / "out")])
    assert info.value.code == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert str(config) in err and "layout" in err and "nope" in err


def test_every_command_is_mapped_to_the_module_that_defines_it() -> None:
    import importlib

    from cdnlogs.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"cdnlogs.cli.{module}")
    defined = {
        name: command.callback.__module__
        for name, command in cli.commands.items()
        if command.callback is not None and command.callback.__module__.startswith("cdnlogs.cli.")
    }
    assert defined == {name: f"cdnlogs.cli.{module}" for name, module in COMMAND_MODULES.items()}


#: Libraries cdnlogs imports only inside the functions that need them (each is checked below
#: to be one src imports): a command that does not use one must not load it.
LAZY_HEAVY = (
    "duckdb",
    "requests",
    "rich",
    "plotly",
    "alibabacloud_tea_openapi",
    "alibabacloud_credentials",
    "s3fs",
    "prometheus_client",
    "ua_parser",
)


def test_the_heavy_modules_checked_are_ones_src_imports() -> None:
    import ast

    import cdnlogs

    imported: set[str] = set()
    for path in Path(cdnlogs.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert set(LAZY_HEAVY) <= imported, set(LAZY_HEAVY) - imported


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--version"], ""),
        (["ingest", "--help"], "duckdb"),
        (["sync", "--help"], "requests"),
    ],
)
def test_a_command_imports_only_what_it_needs(argv: list[str], expected: str) -> None:
    """Lazy command modules: a cron line pays only for its own command's libraries."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cdnlogs.cli import main\n"
        f"sys.argv = ['cdnlogs', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = {LAZY_HEAVY!r}\n"
        "print(','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == expected
