"""Small files in bulk: one Parquet file per source in its partition, written in one pass per
batch, with no per-file scratch directory, and idempotent per file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdnlogs.config import Settings
from cdnlogs.dataset import REPARSED_SUFFIX, connect, partition_date, partition_dir, rejects_path
from cdnlogs.dims import DIMS_DIR
from cdnlogs.ingest import ingest_archive
from cdnlogs.ingest.bulk import SmallFile, batches
from cdnlogs.manifest import Manifest
from cdnlogs.models import LogFile
from cdnlogs.rollup import ROLLUP_DIR
from cdnlogs.simulator.loggen import generate_lines

HOUR = datetime(2024, 3, 1, 2, tzinfo=UTC)
NOW = HOUR + timedelta(days=3)


def _archive(out_dir: Path, count: int) -> list[tuple[str, str, str]]:
    """``count`` plain files of 3 lines: 3 domains, consecutive hours over two local days."""
    listed, done = [], []
    for i in range(count):
        domain = f"d{i % 3}.example.com"
        hour = HOUR + timedelta(hours=10 + i // 3)
        local = hour + timedelta(hours=8)
        name = f"{domain}_{local:%Y_%m_%d_%H}0000_{(local + timedelta(hours=1)):%H}0000.gz"
        rel = f"{domain}/{local:%Y/%m/%d}/{name.removesuffix('.gz')}.log"
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in generate_lines(domain, hour, 3, i)))
        listed.append(LogFile(domain, name, "http://x/" + name, 1, hour, hour + timedelta(hours=1)))
        done.append((domain, name, rel))
    with Manifest.open(out_dir / ".cdnlogs") as manifest:
        manifest.record_listed(listed)
        for domain, name, rel in done:
            manifest.mark_done(
                domain, name, sha256="0" * 64, plain_size=3, local_path=rel, fmt="log"
            )
    return done


def _files(root: Path) -> dict[str, float]:
    """The dataset's files, without the report's caches beside them (``_rollups``, ``_dims``:
    tests/test_report_panels.py checks those)."""
    caches = {ROLLUP_DIR, DIMS_DIR}
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and ".tmp" not in p.parts and p.relative_to(root).parts[0] not in caches
    }


def test_each_small_file_gets_its_own_parquet_file_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(out_dir=tmp_path / "out")
    done = _archive(settings.out_dir, 60)  # 20 hours a domain: several sources a partition
    root = settings.dataset_dir
    # Stale companions of one source from an earlier ingest: both must go.
    domain, name, _ = done[4]
    stem = name.removesuffix(".gz")
    day = partition_date(name, HOUR)
    stale = partition_dir(root, domain, day) / f"{stem}{REPARSED_SUFFIX}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    stale_rejects = rejects_path(root, domain, stem)
    stale_rejects.parent.mkdir(parents=True)
    stale_rejects.write_bytes(b"old")

    summary = ingest_archive(settings, now=NOW)
    assert (summary.files, summary.rows, summary.failed) == (60, 180, [])
    assert not stale.exists() and not stale_rejects.exists()
    files = _files(root)
    # Exactly one file per source, named after it, in its partition; no hidden leftovers.
    expected = set()
    for domain, name, _ in done:
        part = partition_dir(root, domain, partition_date(name, HOUR)).relative_to(root)
        expected.add(str(part / f"{name.removesuffix('.gz')}.parquet"))
    assert set(files) == expected
    assert not [p for p in root.rglob(".*") if p.name != ".tmp"]
    assert not list((root / ".tmp").iterdir())
    con = connect(root)
    per_file = dict(con.execute("SELECT source_file, count(*) FROM logs GROUP BY 1").fetchall())
    # Each file holds its own source's rows (not another source of the same partition).
    inside = con.execute(
        "SELECT DISTINCT filename, source_file FROM "
        f"read_parquet('{root}/domain=*/date=*/*.parquet', filename=true)"
    ).fetchall()
    con.close()
    assert len(inside) == 60
    assert all(Path(f).name == f"{s.removesuffix('.gz')}.parquet" for f, s in inside)
    assert per_file == {name: 3 for _, name, _ in done}
    with Manifest.open(settings.state_dir) as manifest:
        rows = {r.log_name: (r.ingested_rows, r.ingested_rejects) for r in manifest.records()}
    assert rows == {name: (3, 0) for _, name, _ in done}

    # Idempotent per file: a deleted file is ingested again, alone; the others stay untouched.
    lost = root / sorted(files)[7]
    lost.unlink()
    again = ingest_archive(settings, now=NOW)
    assert (again.files, again.rows) == (1, 3)
    after = _files(root)
    assert set(after) == set(files)
    assert {k: v for k, v in after.items() if k != sorted(files)[7]} == {
        k: v for k, v in files.items() if k != sorted(files)[7]
    }


def test_batches_split_for_the_workers(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    path.write_text("x\n")
    items = [SmallFile(path, "d", f"n{i}", HOUR.date(), 1) for i in range(9)]
    assert [len(b) for b in batches(items)] == [9]
    assert [len(b) for b in batches(items, parts=2)] == [5, 4]
    assert [len(b) for b in batches(items[:3], parts=2)] == [3]
