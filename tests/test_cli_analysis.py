"""The `ingest`, `query` and `export` commands, end to end through click with a real archive."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from cdnlogs.cli import cli
from cdnlogs.cli.context import AppContext
from cdnlogs.errors import CdnLogsError
from cdnlogs.logformat import parse_line, to_clf
from cdnlogs.manifest import Manifest
from cdnlogs.models import LogFile
from cdnlogs.simulator.loggen import generate_lines

DOMAIN = "a.example.com"
HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)
NAME = "a.example.com_2024_03_01_100000_110000.gz"


def _archive(out: Path, lines: list[str]) -> None:
    rel = f"{DOMAIN}/2024/03/01/{NAME.removesuffix('.gz')}.log"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    with Manifest.open(out / ".cdnlogs") as manifest:
        manifest.record_listed(
            [LogFile(DOMAIN, NAME, "http://x/" + NAME, 1, HOUR, HOUR + timedelta(hours=1))]
        )
        manifest.mark_done(
            DOMAIN,
            NAME,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            plain_size=path.stat().st_size,
            local_path=rel,
            fmt="log",
        )


def _invoke(args: list[str]) -> tuple[int, str, str]:
    runner = CliRunner()
    stdout, stderr = io.StringIO(), io.StringIO()
    result = runner.invoke(cli, args, obj=AppContext(stdout=stdout, stderr=stderr))
    exc = result.exception
    if isinstance(exc, CdnLogsError):
        # main() turns these into the exit status; the runner calls the group directly.
        return int(exc.exit_code), stdout.getvalue(), str(exc)
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    # The group callback installs its own AppContext on sys.stdout, which the runner captures.
    return result.exit_code, stdout.getvalue() + result.stdout, stderr.getvalue() + result.stderr


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, list[str]]:
    lines = [*generate_lines(DOMAIN, HOUR, 300, 5), "not a log line"]
    out = tmp_path / "out"
    _archive(out, lines)
    return out, lines


def test_ingest_json_then_nothing_to_do(archive: tuple[Path, list[str]]) -> None:
    out, _ = archive
    code, stdout, _ = _invoke(["ingest", "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(stdout)
    assert (summary["files"], summary["rows"], summary["rejects"]) == (1, 300, 1)
    code, stdout, _ = _invoke(["ingest", "--out", str(out)])
    assert code == 0 and "Ingested 0 file(s)" in stdout


def test_ingest_privacy_flags(archive: tuple[Path, list[str]]) -> None:
    out, _ = archive
    assert _invoke(["ingest", "--out", str(out), "--anonymize-ip", "--drop-query"])[0] == 0
    code, stdout, _ = _invoke(
        [
            "query",
            "SELECT count(*) FILTER (WHERE query IS NOT NULL) AS q,"
            " count(*) FILTER (WHERE client_ip NOT LIKE '%.0' AND client_ip NOT LIKE '%::') AS ip"
            " FROM logs",
            "--out",
            str(out),
            "--format",
            "json",
        ]
    )
    assert code == 0 and json.loads(stdout) == [{"q": 0, "ip": 0}]


def test_ingest_bad_keep_is_a_usage_error(archive: tuple[Path, list[str]]) -> None:
    out, _ = archive
    code, _, _ = _invoke(["ingest", "--out", str(out), "--keep", "soon"])
    assert code == 2


def test_query_formats(archive: tuple[Path, list[str]]) -> None:
    out, lines = archive
    _invoke(["ingest", "--out", str(out)])
    sql = "SELECT status, count(*) AS n FROM logs GROUP BY status ORDER BY n DESC, status"
    expected: dict[int, int] = {}
    for line in lines[:-1]:
        status = parse_line(line).status
        assert status is not None
        expected[status] = expected.get(status, 0) + 1
    code, stdout, _ = _invoke(["query", sql, "--out", str(out), "--format", "json"])
    assert code == 0
    assert {row["status"]: row["n"] for row in json.loads(stdout)} == expected
    code, stdout, _ = _invoke(["query", sql, "--out", str(out), "--format", "csv"])
    rows = list(csv.reader(io.StringIO(stdout)))
    assert rows[0] == ["status", "n"]
    assert {int(s): int(n) for s, n in rows[1:]} == expected
    code, stdout, _ = _invoke(["query", sql, "--out", str(out)])
    assert code == 0 and "status" in stdout and str(max(expected.values())) in stdout
    code, stdout, _ = _invoke(
        ["query", "SELECT line_number, reason FROM rejects", "--out", str(out), "--format", "json"]
    )
    assert [r["line_number"] for r in json.loads(stdout)] == [len(lines)]


@pytest.mark.parametrize(
    ("sql", "status"),
    [
        ("SELEC nonsense", 2),
        ("SELECT no_such_column FROM logs", 2),
        ("SELECT * FROM no_such_table", 2),
        ("SELECT 'a'::INTEGER", 1),
    ],
)
def test_query_errors_are_one_line(
    archive: tuple[Path, list[str]], sql: str, status: int, capfd: pytest.CaptureFixture[str]
) -> None:
    out, _ = archive
    from cdnlogs.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["query", sql, "--out", str(out)])
    assert exc.value.code == status
    err = capfd.readouterr().err
    assert err.startswith("Error: SQL:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_query_on_an_empty_dataset(tmp_path: Path) -> None:
    code, stdout, _ = _invoke(
        ["query", "SELECT count(*) AS n FROM logs", "--out", str(tmp_path), "--format", "json"]
    )
    assert code == 0 and json.loads(stdout) == [{"n": 0}]


def test_export_clf_to_file_and_stdout_filters(
    archive: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out, lines = archive
    _invoke(["ingest", "--out", str(out)])
    target = tmp_path / "access.log"
    code, _, _ = _invoke(["export", "--format", "clf", "--out", str(out), "--output", str(target)])
    assert code == 0
    expected = sorted(to_clf(parse_line(line)) for line in lines[:-1])
    assert sorted(target.read_text().splitlines()) == expected
    code, stdout, _ = _invoke(
        ["export", "--format", "jsonl", "--out", str(out), "--domain", "other.example.com"]
    )
    assert code == 0 and stdout.strip() == ""
    target = tmp_path / "late.parquet"
    code, _, _ = _invoke(
        [
            "export",
            "--format",
            "parquet",
            "--out",
            str(out),
            "--since",
            "2024-03-01T02:30:00Z",
            "--output",
            str(target),
        ]
    )
    assert code == 0
    got = duckdb.connect().execute(f"SELECT count(*), min(ts) FROM '{target}'").fetchone()
    half = [
        r
        for r in (parse_line(line) for line in lines[:-1])
        if r.ts >= datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    ]
    assert got is not None and got[0] == len(half)


def test_export_window_must_not_be_empty(archive: tuple[Path, list[str]]) -> None:
    out, _ = archive
    code, _, _ = _invoke(
        ["export", "--format", "csv", "--out", str(out), "--since", "1h", "--until", "2h"]
    )
    assert code == 2


@pytest.mark.parametrize("command", ["ingest", "query", "export"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and len(result.output) > 200


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hourly files of 400,000 lines each: long enough to interrupt mid-way."""
    out = tmp_path_factory.mktemp("big") / "out"
    with Manifest.open(out / ".cdnlogs") as manifest:
        for hour in range(3):
            start = HOUR + timedelta(hours=hour)
            local = start + timedelta(hours=8)
            name = f"{DOMAIN}_{local:%Y_%m_%d_%H}0000_{local + timedelta(hours=1):%H}0000.gz"
            rel = f"{DOMAIN}/2024/03/01/{name.removesuffix('.gz')}.log"
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(generate_lines(DOMAIN, start, 400_000, hour)) + "\n")
            log_file = LogFile(
                DOMAIN, name, "http://x/" + name, 1, start, start + timedelta(hours=1)
            )
            manifest.record_listed([log_file])
            manifest.mark_done(
                DOMAIN, name, sha256=name, plain_size=path.stat().st_size, local_path=rel, fmt="log"
            )
    return out


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize(("signame", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_sigterm_stops_ingest_at_once_and_leaves_nothing_half_done(
    big_archive: Path, tmp_path: Path, jobs: str, signame: str, status: int
) -> None:
    """Ctrl-C (130) and SIGTERM from systemd or `timeout` (143) take the same clean-up path,
    whether DuckDB runs the statement in the main thread (--jobs 1) or on workers (--jobs 2)."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    shutil.copytree(big_archive, out)
    dataset = out / ".cdnlogs" / "dataset"
    process = subprocess.Popen(
        [sys.executable, "-m", "cdnlogs", "ingest", "--out", str(out), "--jobs", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start background jobs with SIGINT ignored; a terminal would not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not [p for p in dataset.rglob(".*.tmp") if p.is_file()]:  # a Parquet file is written
        assert process.poll() is None, "ingest ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(getattr(signal, signame))
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert "Error" not in err
    assert [p.name for p in dataset.rglob("*.tmp") if p.is_file()] == []
    assert list((dataset / ".tmp").iterdir()) == []  # every ingester removed its scratch
    with Manifest.open(out / ".cdnlogs") as manifest:
        recorded = {r.log_name for r in manifest.records() if r.ingested_rows is not None}
    written = {
        p.name for p in dataset.rglob("*.parquet") if not p.name.endswith(".reparsed.parquet")
    }
    # Only whole files: each one recorded is in the dataset (one not yet recorded may be, and
    # the next run replaces it).
    assert {n.removesuffix(".gz") + ".parquet" for n in recorded} <= written
    assert len(recorded) < 3  # it stopped; it did not finish the files first (no clock needed)

    code, _, _ = _invoke(["ingest", "--out", str(out), "--json"])
    assert code == 0
    # The dataset's own files (ingest also writes the report's _rollups and _dims beside them).
    rows = f"{dataset}/domain=*/date=*/*.parquet"
    total = duckdb.execute(f"SELECT count(*) FROM read_parquet('{rows}')").fetchall()
    assert total == [(1_200_000,)]


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as a user's would."""

    def isatty(self) -> bool:
        return True


def test_ingest_draws_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    from cdnlogs.cli.analysis import ingest_with_progress
    from cdnlogs.config import Settings
    from cdnlogs.ingest import ingest_archive

    lines = list(generate_lines(DOMAIN, HOUR, 50, 1))
    terminal, pipe = _Terminal(), io.StringIO()
    for out, stderr in ((tmp_path / "tty", terminal), (tmp_path / "pipe", pipe)):
        _archive(out, lines)
        app = AppContext(stdout=io.StringIO(), stderr=stderr)
        settings = Settings(out_dir=out)
        summary = ingest_with_progress(
            app,
            lambda cb: ingest_archive(settings, now=datetime.now(UTC), callbacks=cb),  # noqa: B023
            as_json=False,
        )
        assert summary.rows == 50
    # The terminal got the bar (files and rows done); the pipe got nothing at all.
    assert "1/1 files, 50 rows" in terminal.getvalue()
    assert pipe.getvalue() == ""
