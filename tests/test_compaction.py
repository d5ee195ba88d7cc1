"""Compaction of settled days: totals exact before, during and after; late files; leftovers."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from cdnlogs import compaction
from cdnlogs.analyze import Filters
from cdnlogs.cli import cli
from cdnlogs.cli.report import _run as report_run
from cdnlogs.compaction import CompactOptions, compact_dataset, is_settled
from cdnlogs.config import Settings
from cdnlogs.datafiles import CompactedName, choose_files
from cdnlogs.dataset import data_files
from cdnlogs.errors import UsageError
from cdnlogs.ingest import ingest_archive
from cdnlogs.manifest import Manifest
from tests.dataset_helpers import DAY_START, DOMAINS, TOTALS_SQL, add_source, small_archive, totals

DAY = "2024-03-01"
#: 2024-03-01 (+08:00) is settled (ended more than 2 days ago), 2024-03-02 is not.
NOW = datetime(2024, 3, 3, 17, tzinfo=UTC)


def _compact(settings: Settings, *, exchange: bool = True) -> compaction.CompactSummary:
    with Manifest.open(settings.state_dir) as manifest:
        return compact_dataset(
            settings.dataset_dir, manifest, now=NOW, options=CompactOptions(exchange=exchange)
        )


def _names(settings: Settings, domain: str, day: str = DAY) -> list[str]:
    return sorted(
        p.name for p in (settings.dataset_dir / f"domain={domain}" / f"date={day}").iterdir()
    )


def _glob_totals(settings: Settings) -> dict[tuple[str, str], tuple[int, int]]:
    """What an engine that only globs (no reader rule) counts."""
    glob = f"{settings.dataset_dir}/domain=*/date=*/*.parquet"
    con = duckdb.connect()
    rows = con.execute(
        TOTALS_SQL.format(logs=f"read_parquet('{glob}', hive_partitioning=true)")
    ).fetchall()
    return {(d, day): (int(n), int(b)) for d, day, n, b in rows}


def test_settled_is_the_end_of_the_provider_day_plus_the_delay() -> None:
    day = datetime(2024, 3, 1).date()
    end = datetime(2024, 3, 1, 16, tzinfo=UTC)  # 2024-03-02 00:00 +08:00
    assert not is_settled(day, now=end + timedelta(days=2, seconds=-1), settle=timedelta(days=2))
    assert is_settled(day, now=end + timedelta(days=2), settle=timedelta(days=2))


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "in-place"])
def test_compact_a_day_then_a_late_file(tmp_path: Path, exchange: bool) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    small_archive(settings.out_dir)
    assert ingest_archive(settings, now=NOW).files == 8
    before = totals(settings.dataset_dir)
    per_source = len(_names(settings, DOMAINS[0]))
    assert per_source >= 3  # 3 sources (and the small .reparsed files of their odd lines)

    summary = _compact(settings, exchange=exchange)
    assert (len(summary.compacted), summary.unsettled) == (2, 2)
    assert totals(settings.dataset_dir) == before
    assert _glob_totals(settings) == before  # nothing left over for engines to double count
    (only,) = _names(settings, DOMAINS[0])
    parsed = CompactedName.parse(only)
    assert parsed is not None and (parsed.generation, parsed.part, parsed.parts) == (1, 0, 1)
    assert len(_names(settings, DOMAINS[0], "2024-03-02")) == 1  # not settled: as it was
    assert not list(settings.dataset_dir.glob("domain=*/.date=*"))  # no staging left
    with Manifest.open(settings.state_dir) as manifest:
        record = manifest.compactions(str(settings.dataset_dir.absolute()))[
            (DOMAINS[0], datetime(2024, 3, 1).date())
        ]
        assert len(record.sources) == 3 and all(record.sources.values())
        assert record.rows == before[(DOMAINS[0], DAY)][0]

    # Idempotent: the sources are in the compacted file, so ingest loads nothing again,
    # and a second compaction has nothing to do.
    assert ingest_archive(settings, now=NOW).files == 0
    assert _compact(settings, exchange=exchange).compacted == []
    assert totals(settings.dataset_dir) == before

    # A late file for the compacted day: counted at once, folded in by the next compaction.
    late = add_source(settings.out_dir, DOMAINS[0], DAY_START + timedelta(hours=20), 7, seed=5)
    assert ingest_archive(settings, now=NOW).rows == 7
    expected = dict(before)
    requests, _ = expected[(DOMAINS[0], DAY)]
    after_late = totals(settings.dataset_dir)
    assert after_late[(DOMAINS[0], DAY)][0] == requests + 7
    files_now = len(_names(settings, DOMAINS[0]))
    assert files_now >= 2
    again = _compact(settings, exchange=exchange)
    assert [(p.domain, p.generation, p.sources, p.replaced) for p in again.compacted] == [
        (DOMAINS[0], 2, 4, files_now)
    ]
    assert totals(settings.dataset_dir) == after_late == _glob_totals(settings)
    assert _names(settings, DOMAINS[0])[0].startswith("compacted-g0002-")
    with Manifest.open(settings.state_dir) as manifest:
        record = manifest.compactions(str(settings.dataset_dir.absolute()))[
            (DOMAINS[0], datetime(2024, 3, 1).date())
        ]
        assert late in record.sources and record.generation == 2


def test_totals_are_exact_in_the_middle_of_an_in_place_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between adding the new generation and removing the old files, cdnlogs' views count each
    row once; an engine that only globs counts the day twice (what docs/engines.md says)."""
    settings = Settings(out_dir=tmp_path / "out")
    small_archive(settings.out_dir)
    ingest_archive(settings, now=NOW)
    before = totals(settings.dataset_dir)
    seen: list[tuple[dict[tuple[str, str], tuple[int, int]], ...]] = []
    real = compaction._fsync_dir

    reported: list[int] = []

    def spy(path: Path) -> None:
        real(path)
        if path.name == f"date={DAY}":  # the new files are in, the old ones not yet removed
            seen.append((totals(settings.dataset_dir), _glob_totals(settings), _names_of(path)))
            # The report's panels are summed from per-file rollups: of the files readers count
            # (the new generation), not of every file in the partition.
            report = report_run(settings.dataset_dir, Filters(), None)
            reported.append(sum(row.requests for row in report.client_types["device_class"]))

    def _names_of(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
        return {("files", str(len(os.listdir(path)))): (0, 0)}

    per_source = {d: len(_names(settings, d)) for d in DOMAINS}

    monkeypatch.setattr(compaction, "_fsync_dir", spy)
    _compact(settings, exchange=False)
    assert len(seen) == 2
    for (ours, globbed, files), domain in zip(seen, DOMAINS, strict=True):
        assert ours == before
        assert list(files) == [("files", str(per_source[domain] + 1))]  # old files + new one
        requests, size = before[(domain, DAY)]
        assert globbed[(domain, DAY)] == (2 * requests, 2 * size)  # the day's rows twice
    assert totals(settings.dataset_dir) == before
    assert reported == [sum(requests for requests, _ in before.values())] * 2


def test_re_downloaded_source_of_a_compacted_day_is_compacted_again(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    names = small_archive(settings.out_dir)
    ingest_archive(settings, now=NOW)
    _compact(settings)
    before = totals(settings.dataset_dir)
    # The same hour downloaded again with other content (new sha256): 5 lines instead of 40.
    again = add_source(settings.out_dir, DOMAINS[0], DAY_START, 5, seed=77)
    assert again == names[0]
    assert ingest_archive(settings, now=NOW).rows == 5
    # Until the day is compacted again, readers keep the compacted (old) rows: one version.
    assert totals(settings.dataset_dir) == before
    summary = _compact(settings)
    assert [p.generation for p in summary.compacted] == [2]
    requests, _ = before[(DOMAINS[0], DAY)]
    assert totals(settings.dataset_dir)[(DOMAINS[0], DAY)][0] == requests - 40 + 5
    assert len(_names(settings, DOMAINS[0])) == 1


def test_left_overs_of_an_interrupted_run_are_cleaned(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    small_archive(settings.out_dir)
    ingest_archive(settings, now=NOW)
    part = settings.dataset_dir / f"domain={DOMAINS[0]}" / f"date={DAY}"
    kept = {p.name: p.read_bytes() for p in part.iterdir()}
    before = totals(settings.dataset_dir)
    _compact(settings)
    # As if the run had stopped after the swap, before removing the old files and recording:
    # the per-source files are back next to the compacted one, and the ledger forgot it.
    for name, data in kept.items():
        (part / name).write_bytes(data)
    staging = part.parent / f".date={DAY}.compact-0123456789ab"
    staging.mkdir()
    (staging / "x.parquet").write_bytes(b"half")
    with Manifest.open(settings.state_dir) as manifest:
        manifest.forget_compaction(
            str(settings.dataset_dir.absolute()), DOMAINS[0], datetime(2024, 3, 1).date()
        )
    assert totals(settings.dataset_dir) == before  # the reader rule: covered files not read
    con = duckdb.connect()
    assert [
        Path(f).name
        for f in data_files(con, settings.dataset_dir)
        if f"date={DAY}" in f and DOMAINS[0] in f
    ] == [n for n in _names(settings, DOMAINS[0]) if n.startswith("compacted-")]
    summary = _compact(settings)
    assert (summary.compacted, summary.cleaned) == ([], len(kept))
    assert not staging.exists()
    assert len(_names(settings, DOMAINS[0])) == 1
    assert ingest_archive(settings, now=NOW).files == 0  # the ledger knows again
    assert totals(settings.dataset_dir) == before == _glob_totals(settings)


def test_reader_rule_incomplete_generation_and_superseded_ones() -> None:
    g1 = CompactedName(1, "a" * 12, 0, 1).filename
    g2 = [CompactedName(2, "b" * 12, i, 2).filename for i in range(2)]
    holds = {g1: ["s1", "s2"], g2[0]: ["s1", "s2", "s3"]}
    # Generation 2 half uploaded: generation 1 and the late source s3 are read.
    choice = choose_files([g1, g2[0], "s1.parquet", "s3.parquet"], holds.__getitem__)
    assert (choice.read, choice.stale) == ((g1, "s3.parquet"), (g2[0], "s1.parquet"))
    # Complete: it wins, and everything it holds or supersedes is stale.
    choice = choose_files([g1, *g2, "s3.parquet", "s3.reparsed.parquet"], holds.__getitem__)
    assert choice.read == tuple(g2)
    assert set(choice.stale) == {g1, "s3.parquet", "s3.reparsed.parquet"}
    # No compacted file: every per-source file, nothing stale.
    assert choose_files(["s1.parquet"], holds.__getitem__).read == ("s1.parquet",)


def test_compact_command_and_ingest_compact(tmp_path: Path) -> None:
    out = tmp_path / "out"
    small_archive(out)
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", "--out", str(out), "--compact", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # Real time: 2024 is long settled, both days are compacted.
    assert (data["files"], len(data["compaction"]["compacted"])) == (8, 4)
    add_source(out, DOMAINS[1], DAY_START + timedelta(hours=9), 3, seed=3)
    assert runner.invoke(cli, ["ingest", "--out", str(out)]).exit_code == 0
    result = runner.invoke(cli, ["compact", "--out", str(out), "--domain", DOMAINS[1]])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Compacted 1 day(s): 2 file(s) into 1,")
    result = runner.invoke(cli, ["compact", "--out", str(out), "--settle", "soon"])
    assert isinstance(result.exception, UsageError)  # main() makes it exit 2
    assert "option --settle: not a duration" in str(result.exception)
