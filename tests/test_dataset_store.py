"""The dataset on a store (moto on 127.0.0.1): published by ingest, read by query, report,
export and chdb with the local totals; compaction, late files, crashes and retention on it."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cdnlogs.cli import cli
from cdnlogs.cli.context import AppContext
from cdnlogs.compaction import compact_archive
from cdnlogs.config import Settings
from cdnlogs.dataset import RemoteDataset, connect, dataset_root
from cdnlogs.errors import CdnLogsError, StoreConfigError, StoreError, StoreUnreachableError
from cdnlogs.ingest import ingest_archive
from cdnlogs.manifest import Manifest
from cdnlogs.publish import keep_cutoff, local_files, publish_archive_dataset, publish_dataset
from cdnlogs.shard import Shard
from cdnlogs.store import ObjectStore, open_store
from cdnlogs.upload import restore_snapshot, upload_snapshot
from tests.dataset_helpers import DAY_START, DOMAINS, TOTALS_SQL, add_source, small_archive, totals
from tests.s3server import ACCESS_KEY, S3_BUCKET, SECRET_KEY, S3Server

URL = f"s3://{S3_BUCKET}/ds"
DAY = "2024-03-01"
#: 2024-03-01 (+08:00) is settled, 2024-03-02 is not.
NOW = datetime(2024, 3, 3, 17, tzinfo=UTC)
Totals = dict[tuple[str, str], tuple[int, int]]


def _settings(s3: S3Server, out: Path, **kw: Any) -> Settings:
    return Settings(
        out_dir=out,
        dataset=URL,
        store_endpoint=s3.endpoint,
        store_region="us-east-1",
        store_attempts=1,
        **kw,
    )


def _store_totals(settings: Settings) -> Totals:
    root = dataset_root(settings)
    assert isinstance(root, RemoteDataset)
    con = connect(root)
    try:
        rows = con.execute(TOTALS_SQL.format(logs="logs")).fetchall()
    finally:
        con.close()
    return {(d, day): (int(n), int(b)) for d, day, n, b in rows}


def _stored_keys(s3: S3Server) -> set[str]:
    return {k.removeprefix("ds/") for k in s3.objects(S3_BUCKET, "ds/")}


def _invoke(args: list[str]) -> tuple[int, str, str]:
    stdout = io.StringIO()
    result = CliRunner().invoke(cli, args, obj=AppContext(stdout=stdout, stderr=io.StringIO()))
    if isinstance(result.exception, CdnLogsError):
        return int(result.exception.exit_code), stdout.getvalue(), str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, stdout.getvalue() + result.stdout, result.stderr


@pytest.fixture
def store_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    monkeypatch.setenv("CDNLOGS_STORE_ENDPOINT", s3.endpoint)
    monkeypatch.setenv("CDNLOGS_STORE_REGION", "us-east-1")
    return s3


def test_ingest_publishes_and_query_report_export_read_the_store(
    store_env: S3Server, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    small_archive(out)
    code, text, err = _invoke(
        ["ingest", "--out", str(out), "--dataset", URL, "--compact", "--json"]
    )
    assert code == 0, err
    data = json.loads(text)
    local_root = out / ".cdnlogs" / "dataset"  # the working copy
    assert data["publish"]["uploaded"] == len(local_files(local_root)) > 0
    assert _stored_keys(store_env) == set(local_files(local_root))
    expected = totals(local_root)

    sql = TOTALS_SQL.format(logs="logs")
    for dataset in (URL, str(local_root)):
        code, text, err = _invoke(["query", sql, "--dataset", dataset, "--format", "json"])
        assert code == 0, err
        rows = [list(r.values()) for r in json.loads(text)]
        assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == expected
    reports: list[Any] = []
    for dataset in (URL, str(local_root)):
        code, text, err = _invoke(["report", "--dataset", dataset, "--json"])
        assert code == 0, err
        reports.append(json.loads(text))
    assert reports[0] == reports[1]
    exports: list[list[str]] = []
    for dataset in (URL, str(local_root)):
        target = tmp_path / f"export-{len(exports)}.csv"
        code, _, err = _invoke(
            ["export", "--format", "csv", "--output", str(target), "--dataset", dataset]
        )
        assert code == 0, err
        exports.append(sorted(target.read_text().splitlines()))
    assert exports[0] == exports[1] and len(exports[0]) > 1

    # ClickHouse reads the same objects with its s3() function and the exact glob.
    import chdb

    source = (
        f"s3('{store_env.endpoint}/{S3_BUCKET}/ds/domain=*/date=*/*.parquet', "
        f"'{ACCESS_KEY}', '{SECRET_KEY}', 'Parquet')"
    )
    out_json = chdb.query(
        f"SELECT domain, toString(date), count(), sum(coalesce(response_bytes, 0)) FROM {source} "
        "GROUP BY domain, date SETTINGS use_hive_partitioning = 1",
        "JSONCompact",
    )
    rows = json.loads(out_json.bytes())["data"]
    assert {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows} == expected


def test_late_file_recompaction_and_retention_on_the_store(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(s3, tmp_path / "out")
    small_archive(settings.out_dir)
    ingest_archive(settings, now=NOW)
    compact_archive(settings, now=NOW)
    publish_archive_dataset(settings)
    before = totals(settings.dataset_dir)
    assert _store_totals(settings) == before

    late = add_source(settings.out_dir, DOMAINS[0], DAY_START + timedelta(hours=22), 9, seed=8)
    ingest_archive(settings, now=NOW)
    summary = publish_archive_dataset(settings)
    assert summary is not None and (summary.uploaded, summary.deleted) == (1, 0)
    after_late = totals(settings.dataset_dir)
    assert _store_totals(settings) == after_late != before

    # Re-compaction: the new generation is uploaded, then the old one and the late file go.
    # Between the two steps the store holds both, and cdnlogs still counts each row once.
    compact_archive(settings, now=NOW)
    seen: list[Totals] = []
    real_delete = ObjectStore.delete

    def delete(self: ObjectStore, relative: Any) -> None:
        if not seen:
            seen.append(_store_totals(settings))
        real_delete(self, relative)

    monkeypatch.setattr(ObjectStore, "delete", delete)
    summary = publish_archive_dataset(settings)
    assert summary is not None and (summary.uploaded, summary.deleted) == (1, 2)  # gen 1, late
    assert seen == [after_late]
    assert _store_totals(settings) == after_late
    assert _stored_keys(s3) == set(local_files(settings.dataset_dir))
    with Manifest.open(settings.state_dir) as manifest:
        assert late in next(iter(manifest.compactions(str(settings.dataset_dir)).values())).sources

    # Dataset retention: the days --keep ages out leave the store too.
    settings.dataset_keep = "2d"  # 2024-03-01 ages out, 2024-03-02 stays
    ingest_archive(settings, now=NOW)
    publish_archive_dataset(settings)
    assert {k.split("/")[1] for k in _stored_keys(s3) if k.startswith("domain=")} == {
        "date=2024-03-02"
    }
    assert set(_store_totals(settings)) == {(d, "2024-03-02") for d in DOMAINS}


def test_a_new_disk_restores_the_published_dataset_instead_of_deleting_it(
    s3: S3Server, tmp_path: Path
) -> None:
    """A worker whose disk is new (a pod; its ledger back from the snapshot) has none of the
    published files locally: its publish must not take that for deletions, and its compaction
    of a day with a late file must hold the whole day, not only the files on this disk."""
    first = _settings(s3, tmp_path / "pod-1")
    small_archive(first.out_dir)
    ingest_archive(first, now=NOW)
    compact_archive(first, now=NOW)
    publish_archive_dataset(first)
    before = _store_totals(first)
    published = _stored_keys(s3)
    store = open_store(first, f"s3://{S3_BUCKET}/raw")  # where sync keeps the snapshots
    with Manifest.open(first.state_dir) as manifest:
        upload_snapshot(manifest, store, None)

    second = _settings(s3, tmp_path / "pod-2")
    assert restore_snapshot(store, second.state_dir, second.out_dir, None)
    with Manifest.open(second.state_dir) as manifest:  # the raw copies are not on this disk
        manifest.mark_local_dropped_many((r.domain, r.log_name) for r in manifest.records())
    late = add_source(second.out_dir, DOMAINS[0], DAY_START + timedelta(hours=21), 6, seed=6)
    assert ingest_archive(second, now=NOW).rows == 6
    summary = publish_archive_dataset(second)
    assert summary is not None and (summary.uploaded, summary.deleted) == (1, 0)
    assert summary.restored == len(published)
    assert _stored_keys(s3) == published | set(local_files(second.dataset_dir)) != published
    requests, _ = before[(DOMAINS[0], DAY)]
    after = _store_totals(second)
    assert after[(DOMAINS[0], DAY)][0] == requests + 6 and after == totals(second.dataset_dir)

    compact_archive(second, now=NOW)  # the day's generation 2: the restored one and the late file
    summary = publish_archive_dataset(second)
    assert summary is not None and (summary.restored, summary.uploaded, summary.deleted) == (
        0,
        1,
        2,
    )
    assert _stored_keys(s3) == set(local_files(second.dataset_dir))
    assert _store_totals(second) == after
    with Manifest.open(second.state_dir) as manifest:
        record = manifest.compactions(str(second.dataset_dir))[(DOMAINS[0], date(2024, 3, 1))]
    assert record.generation == 2 and late in record.sources and len(record.sources) == 4


def test_a_new_disk_does_not_restore_days_its_retention_ages_out(
    s3: S3Server, tmp_path: Path
) -> None:
    first = _settings(s3, tmp_path / "pod-1")
    small_archive(first.out_dir)
    ingest_archive(first, now=NOW)
    publish_archive_dataset(first)
    published = _stored_keys(s3)
    aged = {k for k in published if "/date=2024-03-01/" in k}
    kept = published - aged
    assert aged and kept
    second = _settings(s3, tmp_path / "pod-2")
    store = open_store(second, URL)
    with Manifest.open(first.state_dir) as manifest:  # the ledger as a snapshot brings it back
        manifest.snapshot(tmp_path / "ledger.sqlite3")
    second.state_dir.mkdir(parents=True)
    shutil.copy(tmp_path / "ledger.sqlite3", second.state_dir / "manifest.sqlite3")
    lost = sorted(kept)[0]  # deleted behind cdnlogs' back: nothing to restore, no error
    s3.client().delete_object(Bucket=S3_BUCKET, Key=f"ds/{lost}")
    with Manifest.open(second.state_dir) as manifest:
        # dataset_keep's first kept day (publish_archive_dataset computes it from the setting)
        summary = publish_dataset(second.dataset_dir, store, manifest, cutoff=date(2024, 3, 2))
        assert lost not in manifest.published(URL)
    assert (summary.restored, summary.deleted) == (len(kept) - 1, len(aged))
    assert _stored_keys(s3) == kept - {lost} == set(local_files(second.dataset_dir))
    assert keep_cutoff(Settings(dataset_keep="2d"), NOW) == date(2024, 3, 2)  # prune's rule


def test_shards_publish_their_own_domains_to_one_dataset_url(s3: S3Server, tmp_path: Path) -> None:
    """Two workers (shards 0/3 and 2/3: one domain each) publish to one URL; a compaction and
    retention on one of them never touch the other's keys, and the store sums both."""
    assert [Shard(k, 3).select(DOMAINS) for k in (2, 0)] == [[DOMAINS[0]], [DOMAINS[1]]]
    workers = [_settings(s3, tmp_path / f"w{k}", shard=f"{k}/3") for k in (2, 0)]
    for worker in workers:
        small_archive(worker.out_dir)  # the same files on both disks: each ingests its own
        ingest_archive(worker, now=NOW)
        publish_archive_dataset(worker)
    expected = totals(workers[0].dataset_dir) | totals(workers[1].dataset_dir)
    assert {d for d, _ in expected} == set(DOMAINS)
    assert _store_totals(workers[0]) == expected
    theirs = {k for k in _stored_keys(s3) if DOMAINS[1] in k}
    compact_archive(workers[0], now=NOW)
    workers[0].dataset_keep = "2d"  # 2024-03-01 ages out of shard 2's domain only
    ingest_archive(workers[0], now=NOW)
    summary = publish_archive_dataset(workers[0])
    assert summary is not None and summary.deleted > 0
    assert {k for k in _stored_keys(s3) if DOMAINS[1] in k} == theirs
    assert _store_totals(workers[1]) == {
        key: value for key, value in expected.items() if key != (DOMAINS[0], DAY)
    }


def test_failed_upload_or_crash_records_nothing_not_stored_and_a_rerun_completes(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(s3, tmp_path / "out")
    small_archive(settings.out_dir)
    ingest_archive(settings, now=NOW)
    files = local_files(settings.dataset_dir)

    # The store answers 500 after 3 puts: a clear error, only stored files verified.
    s3.faults.put_errors, s3.faults.put_errors_after = 100, 3
    with pytest.raises(StoreError, match=URL):
        publish_archive_dataset(settings)
    with Manifest.open(settings.state_dir) as manifest:
        verified = {k for k, f in manifest.published(URL).items() if f.uploaded}
    assert len(verified) == 3 and verified <= _stored_keys(s3)
    s3.faults.clear()

    # A crash between a verified upload and its ledger record.
    real = Manifest.record_published
    calls = {"n": 0}

    def crash(self: Manifest, store: str, items: Any) -> None:
        items = list(items)
        if items and items[0].uploaded:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
        real(self, store, items)

    monkeypatch.setattr(Manifest, "record_published", crash)
    with pytest.raises(KeyboardInterrupt):
        publish_archive_dataset(settings)
    monkeypatch.setattr(Manifest, "record_published", real)
    summary = publish_archive_dataset(settings)
    assert summary is not None and summary.uploaded == len(files) - 3 - 1
    assert _stored_keys(s3) == set(files)
    assert _store_totals(settings) == totals(settings.dataset_dir)
    with Manifest.open(settings.state_dir) as manifest:
        assert all(f.uploaded for f in manifest.published(URL).values())
    again = publish_archive_dataset(settings)
    assert again is not None and (again.uploaded, again.deleted) == (0, 0)


def test_sigkill_while_publishing_then_a_rerun_completes(
    store_env: S3Server, tmp_path: Path
) -> None:
    """A real kill -9 of `cdnlogs ingest --dataset s3://` while the store holds a PUT's answer:
    the object is stored, the ledger does not call it published; the rerun finishes."""
    out = tmp_path / "out"
    small_archive(out)
    store_env.faults.hold_after_put = 3  # stored, the client never hears back
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdnlogs", "ingest", "--out", str(out), "--dataset", URL],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        assert store_env.faults.held.wait(timeout=60), proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        store_env.faults.release.set()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert store_env.faults.held_path is not None
    held = store_env.faults.held_path.removeprefix(f"/{S3_BUCKET}/ds/")
    stored = _stored_keys(store_env)
    local_root = out / ".cdnlogs" / "dataset"
    with Manifest.open(out / ".cdnlogs") as manifest:
        recorded = manifest.published(URL)
    verified = {k for k, f in recorded.items() if f.uploaded}
    assert held in stored and held in recorded and held not in verified
    assert len(verified) == 2 and verified <= stored
    store_env.faults.clear()
    code, text, err = _invoke(["ingest", "--out", str(out), "--dataset", URL, "--json"])
    assert code == 0, err
    assert json.loads(text)["publish"]["uploaded"] == len(local_files(local_root)) - 2
    assert _stored_keys(store_env) == set(local_files(local_root))
    with Manifest.open(out / ".cdnlogs") as manifest:
        assert all(f.uploaded for f in manifest.published(URL).values())
    sql = TOTALS_SQL.format(logs="logs")
    code, text, err = _invoke(["query", sql, "--dataset", URL, "--format", "json"])
    assert code == 0, err
    rows = [list(r.values()) for r in json.loads(text)]
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == totals(local_root)


def test_store_errors_name_the_url(s3: S3Server, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = Settings(
        out_dir=out,
        dataset="s3://no-such-bucket/ds",
        store_endpoint=s3.endpoint,
        store_region="us-east-1",
        store_attempts=1,
    )
    with pytest.raises(StoreConfigError, match="no-such-bucket") as info:
        connect(dataset_root(missing))
    assert int(info.value.exit_code) == 3
    dead = Settings(
        out_dir=out,
        dataset=URL,
        store_endpoint="http://127.0.0.1:9",
        store_region="us-east-1",
        store_attempts=1,
        connect_timeout_seconds=1,
    )
    with pytest.raises(StoreUnreachableError, match=URL) as unreachable:
        connect(dataset_root(dead))
    assert int(unreachable.value.exit_code) == 4
    assert ACCESS_KEY not in str(unreachable.value)


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("missing-bucket", 3, "bucket 'no-such-bucket' does not exist at http://127.0.0.1"),
        ("unreachable", 4, f"cannot reach the store {URL} at http://127.0.0.1:9"),
        ("denied", 4, f"access to {URL} denied at http://127.0.0.1"),
        ("wrong-region", 3, f"{URL} is in another region than us-east-1 at http://127.0.0.1"),
    ],
)
@pytest.mark.parametrize("command", ["query", "report", "export"])
def test_reading_a_bad_store_is_one_clear_line_and_its_exit_status(
    store_env: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    case: str,
    status: int,
    message: str,
) -> None:
    url = URL
    if case == "missing-bucket":
        url = "s3://no-such-bucket/ds"
    elif case == "unreachable":
        monkeypatch.setenv("CDNLOGS_STORE_ENDPOINT", "http://127.0.0.1:9")
        monkeypatch.setenv("CDNLOGS_STORE_ATTEMPTS", "1")
    elif case == "denied":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        monkeypatch.setattr("moto.settings.INITIAL_NO_AUTH_ACTION_COUNT", 0)
    else:
        store_env.faults.bucket_regions[S3_BUCKET] = "eu-west-1"
    args = {
        "query": ["query", "SELECT count(*) FROM logs"],
        "report": ["report", "--json"],
        "export": ["export", "--format", "csv", "--output", str(tmp_path / "x.csv")],
    }[command]
    code, _, err = _invoke([*args, "--dataset", url])
    assert (code, message in err) == (status, True), err
    assert "\n" not in err and "not-the-secret" not in err and SECRET_KEY not in err
