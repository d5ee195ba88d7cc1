"""sync --store end to end: the simulator's API and log host, moto's S3 server, a real ledger.

What must hold whatever happens: a row is ``done`` only when its object is in the store with
exactly the file's bytes; a rerun after any failure completes with one object per file.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdnlogs.cli import main
from cdnlogs.config import Settings
from cdnlogs.housekeeping import archive_status, prune_archive, verify_archive
from cdnlogs.manifest import Manifest, Status
from cdnlogs.providers import make_provider
from cdnlogs.retry import RetryPolicy
from cdnlogs.shard import Shard
from cdnlogs.simulator import Simulator, SimulatorConfig
from cdnlogs.store import open_store
from cdnlogs.sync import SyncRun, SyncSummary
from cdnlogs.transfer import TransferConfig
from tests.s3server import S3_BUCKET, S3Server

DOMAINS = ("a.example.com", "b.example.com", "c.example.com", "d.example.com")
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
PREFIX = "raw"
SNAPSHOT_DIR = f"{PREFIX}/.cdnlogs/ledgers/"
FAST = TransferConfig(
    max_workers=4,
    retry=RetryPolicy(attempts=3, base_delay_seconds=0.001, max_delay_seconds=0.01),
    connect_timeout_seconds=5,
    read_timeout_seconds=5,
)


def _this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_this_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW is this test's hour, not the hour the module was imported in: `status` judges up to
    the real clock, so a suite that crossed an hour after import saw one hour missing."""
    monkeypatch.setitem(globals(), "NOW", _this_hour())


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(domains=DOMAINS, days=1, lines_per_file=40, now=NOW)
    with Simulator(config) as running:
        yield running


def _settings(sim: Simulator, s3: S3Server, out: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "domains": [DOMAINS[0]],
        "out_dir": out,
        "endpoint": sim.endpoint,
        "log_scheme": "http",
        "access_key_id": sim.access_key_id,
        "access_key_secret": sim.access_key_secret,
        "since": "6h",
        "api_attempts": 2,
        "store": f"s3://{S3_BUCKET}/{PREFIX}",
        "store_endpoint": s3.endpoint,
        "store_region": "us-east-1",
        "store_attempts": 2,
        "connect_timeout_seconds": 2,
    }
    values.update(kw)
    return Settings(**values)


def _sync(sim: Simulator, s3: S3Server, out: Path, **kw: Any) -> SyncSummary:
    settings = _settings(sim, s3, out, **kw)
    return SyncRun(settings, make_provider(settings), config=FAST, now=NOW).run()


def _rows(out: Path) -> dict[str, Any]:
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        return {r.log_name: r for r in manifest.records()}


def _listed(sim: Simulator, domains: tuple[str, ...] = DOMAINS[:1]) -> list[str]:
    start = NOW - timedelta(hours=6)
    return sorted(
        f.name
        for d in domains
        for f in sim.files(d, published_only=True)
        if f.end > start and f.start < NOW
    )


def _archive_objects(s3: S3Server) -> dict[str, bytes]:
    return {
        k: v
        for k, v in s3.objects(S3_BUCKET, PREFIX + "/").items()
        if not k.startswith(SNAPSHOT_DIR)
    }


def _assert_store_holds_every_done_file(sim: Simulator, s3: S3Server, out: Path, fmt: str) -> int:
    """Each done row's object is the simulator's file (text or gzip); no other object exists."""
    objects = _archive_objects(s3)
    done = {n: r for n, r in _rows(out).items() if r.status is Status.DONE}
    for name, row in done.items():
        gz = sim.file(name).read_bytes()
        assert row.store_url == f"s3://{S3_BUCKET}/{PREFIX}/{row.local_path}"
        body = objects[f"{PREFIX}/{row.local_path}"]
        assert body == (gz if fmt == "gz" else gzip.decompress(gz)), name
    assert sorted(objects) == sorted(f"{PREFIX}/{r.local_path}" for r in done.values())
    return len(done)


@pytest.mark.parametrize("fmt", ["log", "gz"])
def test_sync_to_the_store_then_rerun_uploads_nothing(
    sim: Simulator, s3: S3Server, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "out"
    listed = _listed(sim)
    first = _sync(sim, s3, out, format=fmt)
    assert first.ok and first.total("fetched") == len(listed) == first.total("uploaded")
    assert _assert_store_holds_every_done_file(sim, s3, out, fmt) == len(listed)
    assert first.snapshot == f"s3://{S3_BUCKET}/{PREFIX}/.cdnlogs/ledgers/all.sqlite3"
    # The layout is the local one: domain/YYYY/MM/DD/<stem>.<fmt> under the prefix.
    key = next(iter(_archive_objects(s3)))
    assert key.startswith(f"{PREFIX}/{DOMAINS[0]}/") and key.endswith("." + fmt)
    puts = s3.faults.puts_seen
    second = _sync(sim, s3, out, format=fmt)
    assert second.ok and second.total("fetched") == 0 and second.total("uploaded") == 0
    assert s3.faults.puts_seen == puts + 1  # the ledger snapshot only
    assert _assert_store_holds_every_done_file(sim, s3, out, fmt) == len(listed)


def test_drop_local_then_status_verify_and_prune_on_the_store(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    listed = _listed(sim)
    summary = _sync(sim, s3, out, store_drop_local=True)
    assert summary.ok and summary.dropped_local == len(listed)
    assert [p for p in out.rglob("*") if p.is_file() and ".cdnlogs" not in p.parts] == []
    settings = _settings(sim, s3, out)
    store = open_store(settings)
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        (status,) = archive_status(manifest, window_start=NOW - timedelta(hours=6), window_end=NOW)
        assert status.counts[Status.DONE] == len(listed) == status.store_only
        assert status.missing_hours == 0
        # Without the store nothing can be checked; with it every object is.
        unchecked = verify_archive(manifest, out)
        assert unchecked.not_checked == len(listed) and not unchecked.problems
        checked = verify_archive(manifest, out, store=store)
        assert checked.ok == len(listed) and not checked.problems
        # An object replaced behind cdnlogs' back is caught and fetched again.
        victim = sorted(_archive_objects(s3))[0]
        size = next(
            r.plain_size for r in manifest.records() if r.local_path and r.local_path in victim
        )
        s3.client().put_object(Bucket=S3_BUCKET, Key=victim, Body=b"tampered")
        bad = verify_archive(manifest, out, store=store)
        assert [p.reason for p in bad.problems] == [f"size 8 in the store, expected {size}"]
    again = _sync(sim, s3, out, store_drop_local=True)
    assert again.ok and again.total("fetched") == 1
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == len(listed)
    # prune on the store: objects older than the cut-off go, rows become pruned.
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        refused = prune_archive(manifest, out, timedelta(hours=3), NOW)
        assert refused.files == [] and len(refused.problems) > 0  # no store given: left alone
        result = prune_archive(manifest, out, timedelta(hours=3), NOW, store=store)
        assert result.files and not result.problems
        pruned = {r.log_name for r in manifest.records(status=Status.PRUNED)}
    assert pruned == {f.log_name for f in result.files}
    remaining = _archive_objects(s3)
    rows = _rows(out)
    assert all(f"{PREFIX}/{rows[n].local_path}" not in remaining for n in pruned)
    assert len(remaining) == len(listed) - len(pruned)


def _snapshot_rows(s3: S3Server, tmp_path: Path) -> dict[str, Any]:
    """The rows of the unsharded ledger snapshot on the store, by LogName."""
    copy = tmp_path / f"snapshot-{len(list(tmp_path.glob('snapshot-*')))}"
    copy.mkdir()
    body = s3.objects(S3_BUCKET, SNAPSHOT_DIR)[SNAPSHOT_DIR + "all.sqlite3"]
    (copy / "manifest.sqlite3").write_bytes(body)
    with Manifest.open(copy, create=False) as manifest:
        return {r.log_name: r for r in manifest.records()}


def test_a_standalone_ingest_and_prune_refresh_the_snapshot(
    sim: Simulator,
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status --from-store` and a new disk read the snapshot: after `ingest` or `prune` on
    their own (not through `sync`), it must hold what they did."""
    from cdnlogs.housekeeping import run_prune

    out = tmp_path / "out"
    assert _sync(sim, s3, out).ok
    listed = _listed(sim)
    assert not any(r.ingested_rows for r in _snapshot_rows(s3, tmp_path).values())
    for name, value in _cli_env(sim, s3).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CDNLOGS_STORE", f"s3://{S3_BUCKET}/{PREFIX}")
    with pytest.raises(SystemExit) as info:
        main(["ingest", "--out", str(out), "--json"])
    assert info.value.code == 0, capsys.readouterr().err
    after_ingest = _snapshot_rows(s3, tmp_path)
    assert len(after_ingest) == len(listed)
    assert all(r.ingested_rows for r in after_ingest.values())
    settings = _settings(sim, s3, out)
    result = run_prune(settings, timedelta(hours=3), now=NOW, store=open_store(settings))
    assert result.files and not result.problems
    after_prune = _snapshot_rows(s3, tmp_path)
    pruned = {n for n, r in after_prune.items() if r.status == Status.PRUNED}
    assert pruned == {f.log_name for f in result.files}


def test_500s_mid_upload_then_rerun_completes_nothing_lost_or_doubled(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    listed = _listed(sim)
    s3.faults.put_errors_after = 2  # two uploads get through, then every PUT fails
    s3.faults.put_errors = 10_000
    first = _sync(sim, s3, out, concurrency=1, store_attempts=1)
    assert not first.ok and first.snapshot_error  # the snapshot could not be written either
    assert first.total("uploaded") == 2 and len(first.failed) == len(listed) - 2
    assert all("InternalError" in p.reason for p in first.failed)
    rows = _rows(out)
    assert sum(r.status is Status.DONE for r in rows.values()) == 2
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == 2
    s3.faults.clear()
    second = _sync(sim, s3, out)
    assert second.ok and second.total("uploaded") == len(listed) - 2
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == len(listed)


def test_store_killed_mid_run_then_rerun_completes(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    listed = _listed(sim)
    s3.faults.kill_at_put = 3
    first = _sync(sim, s3, out, concurrency=1, store_attempts=1, connect_timeout_seconds=1)
    assert not s3.running and not first.ok
    done = {n for n, r in _rows(out).items() if r.status is Status.DONE}
    assert len(done) == 2 and len(first.failed) == len(listed) - 2
    s3.start()  # back, with what it had stored, on a new port
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == 2
    downloads = dict(sim.downloads)
    second = _sync(sim, s3, out)
    assert second.ok and second.total("fetched") == len(listed) - 2
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == len(listed)
    assert all(sim.downloads[n] == downloads[n] for n in done)  # done files not fetched again


def _done_count(out: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{out / '.cdnlogs' / 'manifest.sqlite3'}?mode=ro", uri=True)
        try:
            return int(
                conn.execute("SELECT count(*) FROM files WHERE status = 'done'").fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _cli_env(sim: Simulator, s3: S3Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDNLOGS_", "AWS_"))}
    env.update(s3.env())
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret
    env["CDNLOGS_STORE_ENDPOINT"] = s3.endpoint
    env["CDNLOGS_STORE_ATTEMPTS"] = "1"
    env["CDNLOGS_CONNECT_TIMEOUT_SECONDS"] = "2"
    return env


def _cli_args(sim: Simulator, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cdnlogs", "sync", "--domain", DOMAINS[0],
        "--since", (NOW - timedelta(hours=6)).isoformat(), "--until", NOW.isoformat(),
        "--out", str(out), "--endpoint", sim.endpoint, "--log-scheme", "http",
        "--store", f"s3://{S3_BUCKET}/{PREFIX}", *extra,
    ]  # fmt: skip


def test_sigkill_between_upload_and_ledger_record(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    listed = _listed(sim)
    s3.faults.hold_after_put = 2  # stored, but the client never hears back
    proc = subprocess.Popen(
        _cli_args(sim, out, "--concurrency", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_cli_env(sim, s3),
    )
    try:
        assert s3.faults.held.wait(timeout=60), proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        s3.faults.release.set()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    rows = _rows(out)
    objects = _archive_objects(s3)
    # The held upload is in the store, and its row is not done: the window the kill hit.
    assert s3.faults.held_path is not None
    held_key = s3.faults.held_path.removeprefix(f"/{S3_BUCKET}/")
    held = next(n for n in rows if _key(sim, n) == held_key)
    assert held_key in objects and rows[held].status is not Status.DONE
    assert _done_count(out) <= 1
    for row in rows.values():
        if row.status is Status.DONE:  # a done row's object is there, complete
            assert objects[f"{PREFIX}/{row.local_path}"] == gzip.decompress(
                sim.file(row.log_name).read_bytes()
            )
    s3.faults.clear()
    rerun = subprocess.run(
        _cli_args(sim, out, "--json"), capture_output=True, text=True, env=_cli_env(sim, s3)
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["ok"] is True
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == len(listed)


def _key(sim: Simulator, name: str) -> str:
    from cdnlogs.models import PROVIDER_TZ

    f = sim.file(name)
    local = f.start.astimezone(PROVIDER_TZ)
    return f"{PREFIX}/{f.domain}/{local:%Y/%m/%d}/{name.replace('.gz', '.log')}"


def test_two_shards_into_one_bucket_and_status_from_the_store(
    sim: Simulator,
    s3: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outs = [tmp_path / "w0", tmp_path / "w1"]
    for k, out in enumerate(outs):
        summary = _sync(sim, s3, out, domains=list(DOMAINS), shard=f"{k}/2", api_rate=40.0)
        assert summary.ok and summary.shard == f"{k}/2"
        mine = Shard(k, 2).select(DOMAINS)
        assert [d.domain for d in summary.domains] == mine
        assert {r.domain for r in _rows(out).values()} == set(mine)
    objects = _archive_objects(s3)
    assert len(objects) == len(_listed(sim, DOMAINS))  # every file once, whoever fetched it
    assert {k for k in s3.objects(S3_BUCKET, SNAPSHOT_DIR)} == {
        f"{SNAPSHOT_DIR}shard-0-of-2.sqlite3",
        f"{SNAPSHOT_DIR}shard-1-of-2.sqlite3",
    }
    monkeypatch.setenv("CDNLOGS_STORE_ENDPOINT", s3.endpoint)
    with pytest.raises(SystemExit) as info:
        main(
            ["status", "--from-store", "--since", "6h", "--json", "--out", str(tmp_path / "x"),
             "--store", f"s3://{S3_BUCKET}/{PREFIX}"]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    data = json.loads(captured.out)
    assert data["ledgers"] == ["shard-0-of-2", "shard-1-of-2"]
    assert [d["domain"] for d in data["domains"]] == sorted(DOMAINS)
    for domain in data["domains"]:
        assert domain["counts"]["done"] == len(_listed(sim, (domain["domain"],)))
        assert domain["in_store"] == domain["counts"]["done"]
        assert domain["missing_hours"] == 0 and domain["last_sync"] is not None


def test_a_new_disk_restores_its_ledger_from_the_snapshot(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    first = _sync(sim, s3, tmp_path / "pod-1", shard="0/1")
    assert first.ok
    downloads = dict(sim.downloads)
    # The next run starts on an empty disk (a new pod): nothing is fetched or uploaded again.
    second = _sync(sim, s3, tmp_path / "pod-2", shard="0/1")
    assert second.ok and second.total("fetched") == 0 and second.total("uploaded") == 0
    assert dict(sim.downloads) == downloads
    rows = _rows(tmp_path / "pod-2")
    assert all(r.status is Status.DONE and not r.local_copy for r in rows.values())


def test_archive_given_a_store_later_uploads_what_it_has(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    local_only = _sync(sim, s3, out, store=None, format="gz")
    assert local_only.ok and _archive_objects(s3) == {}
    summary = _sync(sim, s3, out, format="gz")
    assert summary.ok and summary.total("fetched") == 0
    assert summary.total("uploaded") == len(_listed(sim))
    assert _assert_store_holds_every_done_file(sim, s3, out, "gz") == len(_listed(sim))


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("missing-bucket", 3, "bucket 'no-such-bucket' does not exist at http://127.0.0.1"),
        ("unreachable", 4, "cannot reach the store s3://cdnlogs-test/raw at http://127.0.0.1:9"),
        ("denied", 4, "access to s3://cdnlogs-test/raw denied at http://127.0.0.1"),
        ("wrong-region", 3, "s3://cdnlogs-test/raw is in another region than us-east-1 at http"),
    ],
)
def test_store_errors_exit_with_a_clear_message_and_record_nothing(
    sim: Simulator,
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    status: int,
    message: str,
) -> None:
    out = tmp_path / "out"
    for name, value in _cli_env(sim, s3).items():
        monkeypatch.setenv(name, value)
    args = _cli_args(sim, out)[3:]  # main() in this process: the one exit-status translation
    if case == "missing-bucket":
        args[-1] = "s3://no-such-bucket/raw"
    elif case == "unreachable":
        monkeypatch.setenv("CDNLOGS_STORE_ENDPOINT", "http://127.0.0.1:9")
    elif case == "wrong-region":
        monkeypatch.setenv("CDNLOGS_STORE_REGION", "us-east-1")
        s3.faults.bucket_regions[S3_BUCKET] = "eu-west-1"  # a regional endpoint of another
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        # moto checks signatures from now on, against its IAM, where this key is unknown.
        monkeypatch.setattr("moto.settings.INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == status, err
    assert message in err
    assert err.startswith("Error: ") and "\nhint: " in err and "Traceback" not in err
    assert len(err.splitlines()) == 2  # one line of error, one of hint
    assert "not-the-secret" not in err and "testing-secret" not in err
    assert sim.access_key_secret not in err
    if case == "wrong-region":
        assert "hint: set store_region = 'eu-west-1' and a store_endpoint" in err
    assert sim.downloads == {} and _done_count(out) == 0


def test_ingest_takes_its_shard_and_skips_dropped_copies(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    from cdnlogs.ingest import ingest_archive

    out = tmp_path / "out"
    two = [DOMAINS[0], DOMAINS[3]]  # shards 1 and 0 of 2
    assert Shard(0, 2).owns(two[0]) != Shard(0, 2).owns(two[1])
    assert _sync(sim, s3, out, domains=two).ok
    mine = Shard(0, 2).select(two)
    summary = ingest_archive(_settings(sim, s3, out, shard="0/2"), now=NOW)
    assert not summary.failed
    ingested = {r.domain for r in _rows(out).values() if r.ingested_rows is not None}
    assert ingested == set(mine)
    # The other domain's copies are dropped after upload: ingest leaves them, no failure.
    other = [d for d in two if d not in mine]
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        from cdnlogs.upload import drop_local_copies

        assert drop_local_copies(manifest, out, domains=other) > 0
    summary = ingest_archive(_settings(sim, s3, out), now=NOW)
    assert not summary.failed and summary.files == 0


def test_cli_sync_ingest_drops_local_copies_after_the_ingest(
    sim: Simulator,
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    for name, value in _cli_env(sim, s3).items():
        monkeypatch.setenv(name, value)
    dataset = f"s3://{S3_BUCKET}/ds"
    with pytest.raises(SystemExit) as info:
        main([*_cli_args(sim, out)[3:], "--drop-local", "--ingest", "--dataset", dataset, "--json"])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    summary = json.loads(captured.out)
    listed = _listed(sim)
    assert summary["uploaded"] == len(listed) and summary["ingest"]["files"] == len(listed)
    rows = _rows(out).values()
    assert all(r.ingested_rows and r.local_dropped_at is not None for r in rows)
    assert [p for p in out.rglob("*") if p.is_file() and ".cdnlogs" not in p.parts] == []
    assert _assert_store_holds_every_done_file(sim, s3, out, "log") == len(listed)
    # The snapshot holds what followed the sync (a new disk restores all of it): every file
    # ingested and dropped, and the dataset's published keys.
    published = {k.removeprefix("ds/") for k in s3.objects(S3_BUCKET, "ds/")}
    assert len(published) >= len(listed)
    copy = tmp_path / "restored"
    copy.mkdir()
    (copy / "manifest.sqlite3").write_bytes(
        s3.objects(S3_BUCKET, SNAPSHOT_DIR)[SNAPSHOT_DIR + "all.sqlite3"]
    )
    with Manifest.open(copy, create=False) as manifest:
        assert set(manifest.published(dataset)) == published
        snapshot_rows = manifest.records()
    assert all(r.ingested_rows and r.local_dropped_at is not None for r in snapshot_rows)


def test_library_sync_and_ingest_drops_local_copies_only_after_the_ingest(
    sim: Simulator, s3: S3Server, tmp_path: Path
) -> None:
    """`sync_and_ingest` is the CLI's `sync --ingest --drop-local`, for a library caller."""
    from cdnlogs.sync import sync_and_ingest

    out = tmp_path / "out"
    settings = _settings(sim, s3, out, ingest_after_sync=True, store_drop_local=True)
    at_sync: list[int] = []

    def synced(summary: SyncSummary) -> None:
        # Between the steps: every copy is still on disk, for the ingest to read.
        at_sync.append(sum(1 for r in _rows(out).values() if r.local_dropped_at is None))

    summary, ingested = sync_and_ingest(
        settings, make_provider(settings), now=NOW, on_synced=synced
    )
    listed = len(_listed(sim))
    assert summary.ok and summary.total("uploaded") == listed
    assert at_sync == [listed]
    assert ingested is not None and ingested.summary.files == listed
    assert ingested.dropped == listed
    rows = _rows(out).values()
    assert all(r.ingested_rows and r.local_dropped_at is not None for r in rows)
    # Without ingest_after_sync it is a plain sync, and drops at upload.
    again, nothing = sync_and_ingest(
        replace(settings, ingest_after_sync=False), make_provider(settings), now=NOW
    )
    assert nothing is None and again.total("fetched") == 0
