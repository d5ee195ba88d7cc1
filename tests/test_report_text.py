"""The `cdnlogs report` command and the terminal reporter, run end to end through main()."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console

from cdnlogs.analyze import Filters, analyze
from cdnlogs.cli import main
from cdnlogs.report import fmt_bytes, fmt_int, fmt_ratio
from cdnlogs.report.text import MAX_TEXT_HOURS, render_text
from tests.helpers import T0, Row, expected, make_rows, open_dataset, write_dataset


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    """An archive directory whose dataset sits at the default place, OUT/.cdnlogs/dataset."""
    out = tmp_path_factory.mktemp("out")
    rows = make_rows(seed=11, count=900)
    write_dataset(out / ".cdnlogs" / "dataset", rows, rejects={"b.example.com": 6})
    return out, rows


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI like a user would; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *args])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_text_report_is_plain_and_has_the_numbers(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = archive
    code, stdout, _ = run(capsys, "--out", str(out))
    assert code == 0
    exp = expected(rows)
    assert "\x1b[" not in stdout  # not a terminal: no colour codes
    assert max(len(line) for line in stdout.splitlines()) <= 120
    for label, value in (
        ("Requests", fmt_int(exp["requests"])),
        ("Response bytes", fmt_bytes(exp["bytes"])),
        ("Unique client IPs", fmt_int(exp["clients"])),
        ("Rejected lines", "6"),
        ("Hit ratio (requests)", fmt_ratio(exp["hit_requests"])),
        ("Hit ratio (bytes)", fmt_ratio(exp["hit_bytes"])),
    ):
        assert any(label in line and line.rstrip().endswith(value) for line in stdout.splitlines())
    top_url, top_n, _ = exp["urls"][0]
    assert any(top_url in line and fmt_int(top_n) in line for line in stdout.splitlines())
    for title in ("Status classes", "Top error codes", "Per domain", "Top URLs", "Per hour"):
        assert title in stdout


def test_hostile_log_text_cannot_drive_the_terminal(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = archive
    _, stdout, _ = run(capsys, "--out", str(out))
    # Markup stays literal text and the escape byte is shown, not sent.
    assert '<script>alert("ua")</script> [bold]x[/bold] \\x1b[31mred' in stdout
    assert "\x1b" not in stdout
    # The same on a real terminal console (colours on): only rich's own styling escapes.
    report = analyze(open_dataset(out / ".cdnlogs" / "dataset"), Filters())
    buffer = io.StringIO()
    render_text(report, Console(file=buffer, force_terminal=True, width=200, markup=False))
    assert "\x1b[31mred" not in buffer.getvalue()
    assert "[bold]x[/bold]" in buffer.getvalue()


def test_json_is_one_object_equal_to_analyze(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = archive
    code, stdout, _ = run(capsys, "--out", str(out), "--json", "--top", "3")
    assert code == 0
    data = json.loads(stdout)
    report = analyze(open_dataset(out / ".cdnlogs" / "dataset"), Filters(top=3))
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["totals"]["requests"] == len(rows)
    assert len(data["tops"]["urls"]) == 3
    assert len(data["tops"]["user_agents"]) == 3


def test_domain_and_time_filters(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = archive
    code, stdout, _ = run(
        capsys,
        *("--out", str(out), "--json", "--domain", "a.example.com"),
        # 01:00 UTC, and 03:00 UTC written with an offset.
        *("--since", "2026-11-01T01:00:00Z", "--until", "2026-11-01T11:00:00+08:00"),
    )
    assert code == 0
    data = json.loads(stdout)
    lo, hi = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    subset = [r for r in rows if r.domain == "a.example.com" and lo <= r.values["ts"] < hi]
    exp = expected(subset)
    assert data["totals"]["requests"] == exp["requests"] == len(subset)
    assert data["totals"]["bytes"] == exp["bytes"]
    assert data["filters"]["since"] == "2026-11-01T01:00:00Z"
    assert data["filters"]["until"] == "2026-11-01T03:00:00Z"
    assert [d["domain"] for d in data["domains"]] == ["a.example.com"]
    assert data["totals"]["rejected_lines"] == 0  # the rejects belong to b.example.com


def test_relative_since_covers_everything(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = archive
    code, stdout, _ = run(capsys, "--out", str(out), "--json", "--since", "3650d")
    assert code == 0
    assert json.loads(stdout)["totals"]["requests"] == len(rows)


def test_html_option_writes_the_file(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, rows = archive
    target = tmp_path / "sub" / "report.html"
    code, stdout, stderr = run(capsys, "--out", str(out), "--html", str(target))
    assert code == 0
    # The file is the report: one line names it, and the terminal tables are not printed too.
    assert stdout == f"Wrote {target}\n" and stderr == ""
    html = target.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and f">{fmt_int(len(rows))}<" in html
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_html_with_json_prints_the_json(
    archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, rows = archive
    target = tmp_path / "report.html"
    code, stdout, stderr = run(capsys, "--out", str(out), "--json", "--html", str(target))
    assert code == 0
    assert json.loads(stdout)["totals"]["requests"] == len(rows)
    assert stderr == f"Wrote {target}\n" and target.is_file()


def test_empty_dataset_is_a_message_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(capsys, "--out", str(tmp_path))
    assert code == 0
    assert "Nothing to report" in stdout and "run `cdnlogs ingest` first" in stdout
    (tmp_path / ".cdnlogs" / "dataset").mkdir(parents=True)
    code, stdout, _ = run(capsys, "--out", str(tmp_path), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["empty"] is True and data["notes"] == ["the dataset has no rows yet"]
    code, _, _ = run(capsys, "--out", str(tmp_path), "--html", str(tmp_path / "e.html"))
    assert code == 0 and "Nothing to report" in (tmp_path / "e.html").read_text()


def test_empty_window(archive: tuple[Path, list[Row]], capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = archive
    code, stdout, _ = run(capsys, "--out", str(out), "--since", "2030-01-01")
    assert code == 0
    assert "Nothing to report" in stdout and "no requests in the window" in stdout
    assert "Rejected lines: 6" in stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "yesterday-ish"),
        ("--since", "2026-11-02", "--until", "2026-11-01"),
        ("--top", "0"),
    ],
)
def test_bad_options_exit_with_usage(
    args: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run(capsys, "--out", str(tmp_path), *args)
    assert code == 2
    assert stderr.strip()


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "--help")
    assert code == 0
    for option in ("--dataset", "--domain", "--since", "--until", "--top", "--json", "--html"):
        assert option in stdout


def test_long_ranges_show_the_last_hours_in_the_terminal(tmp_path: Path) -> None:
    rows = make_rows(seed=3, count=60)
    for i, row in enumerate(rows):
        row.values["ts"] = T0 + timedelta(hours=i)
    write_dataset(tmp_path, rows)
    report = analyze(open_dataset(tmp_path), Filters())
    assert len(report.hours) == 60
    buffer = io.StringIO()
    render_text(report, Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert f"the last {MAX_TEXT_HOURS} of 60 hours" in text
    hour_lines = text.split("Per hour", 1)[1].splitlines()
    shown = [line.split()[:2] for line in hour_lines if line.startswith("  2026-")]
    assert len(shown) == MAX_TEXT_HOURS
    assert shown[0] == ["2026-11-01", "12:00Z"] and shown[-1] == ["2026-11-03", "11:00Z"]


def _ingest(capsys: pytest.CaptureFixture[str], out: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--out", str(out), "--json"])
    capsys.readouterr()
    assert exit_info.value.code == 0


def test_ingest_builds_the_rollups_so_the_first_report_only_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdnlogs.dataset import connect
    from cdnlogs.dims import DIMS_DIR, DimensionStore
    from cdnlogs.rollup import ROLLUP_DIR, RollupStore, prepare_reports
    from cdnlogs.simulator.busylog import generate_busy_lines
    from tests.test_cli_analysis import HOUR, _archive

    lines = list(generate_busy_lines("a.example.com", HOUR, 3000, seed=4))
    out, plain = tmp_path / "out", tmp_path / "plain"
    _archive(out, lines)
    _archive(plain, lines)
    _ingest(capsys, out)
    monkeypatch.setenv("CDNLOGS_REPORT_ROLLUPS", "false")
    _ingest(capsys, plain)
    monkeypatch.delenv("CDNLOGS_REPORT_ROLLUPS")
    dataset = out / ".cdnlogs" / "dataset"
    data = sorted(dataset.glob("domain=*/date=*/*.parquet"))
    rollups = sorted((dataset / ROLLUP_DIR).rglob("*.parquet"))
    assert len(data) == len(rollups) >= 1
    assert (dataset / DIMS_DIR / "ip.parquet").is_file()
    assert not (plain / ".cdnlogs" / "dataset" / ROLLUP_DIR).exists()  # the setting is off
    # The first report builds nothing and looks nothing up: ingest did it.
    con = connect(dataset)
    store, dims = RollupStore(dataset), DimensionStore(dataset)
    first = analyze(con, Filters(top=50), dims, store)
    assert store.built == 0 and dims.looked_up == {"ip": 0, "ua": 0}
    con.close()
    assert first.totals.requests == 3000 and first.geo["province"]
    # ... and says what a report over a dataset ingested without them says.
    code, with_json, _ = run(capsys, "--out", str(out), "--json", "--top", "50")
    code_plain, plain_json, _ = run(capsys, "--out", str(plain), "--json", "--top", "50")
    assert code == code_plain == 0
    assert (
        json.loads(with_json)
        == json.loads(plain_json)
        == json.loads(json.dumps(first.to_dict(), default=str))
    )
    # A data file that is gone (compacted, pruned) takes its rollup with it on the next run.
    for path in data:
        path.unlink()
    assert prepare_reports(dataset).rollups_removed == len(rollups)
    assert not list((dataset / ROLLUP_DIR).rglob("*.parquet"))
