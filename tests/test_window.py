"""One row filter for report and export: date partitions outside the window are never read,
and the report's IP database can be pointed at another file."""

from __future__ import annotations

import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from cdnlogs.analyze import Filters, analyze
from cdnlogs.cli import main
from cdnlogs.errors import ExitStatus
from cdnlogs.export import ExportFilter, export_logs
from cdnlogs.geoip import default_database_path
from tests.helpers import T0, make_rows, open_dataset, write_dataset


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset plus an unreadable file in a partition a month before every row."""
    root = tmp_path_factory.mktemp("window") / "dataset"
    write_dataset(root, make_rows(seed=3, count=300))
    bad = root / "domain=zz.example.com" / "date=2026-10-01"  # sorts last: not the schema file
    bad.mkdir(parents=True)
    (bad / "broken.parquet").write_bytes(b"not parquet at all")
    return root


def test_export_and_report_skip_partitions_outside_the_window(poisoned: Path) -> None:
    flt = ExportFilter(since=T0 - timedelta(hours=1))
    con = open_dataset(poisoned)
    sink = io.BytesIO()
    count = export_logs(con, "csv", sink, flt)
    assert count == 300  # every row, and the broken file in date=2026-10-01 was never opened
    report = analyze(con, Filters(since=flt.since))
    assert report.totals.requests == 300
    # Without date terms the broken file is read: the pruning is what made the above work.
    with pytest.raises(duckdb.Error):
        export_logs(con, "csv", io.BytesIO(), ExportFilter())


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_a_newer_ip_database_file_by_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dataset"
    write_dataset(root, make_rows(seed=4, count=50))
    newer = tmp_path / "ip2region-newer.xdb"
    shutil.copyfile(default_database_path(), newer)
    monkeypatch.setenv("CDNLOGS_GEOIP_DB", str(newer))
    code, out, _ = run(capsys, "report", "--dataset", str(root), "--json")
    assert code == 0
    assert json.loads(out)["sources"]["ip_database"].startswith("ip2region-newer.xdb built 20")
    # A file that is not an xdb: a one-line config error naming the file, nothing written.
    newer.write_bytes(b"\x03\x00" + bytes(300))
    shutil.rmtree(root / "_dims", ignore_errors=True)
    code, out, err = run(capsys, "report", "--dataset", str(root))
    assert code == ExitStatus.CONFIG
    assert "ip2region-newer.xdb is not an ip2region IPv4 xdb database: xdb version 3" in err
    assert out == ""
    assert not (root / "_dims").exists()
    monkeypatch.setenv("CDNLOGS_GEOIP_DB", str(tmp_path / "missing.xdb"))
    code, _, err = run(capsys, "report", "--dataset", str(root))
    assert code == ExitStatus.CONFIG and "cannot read the IP database" in err
