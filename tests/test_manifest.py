"""The SQLite ledger: state transitions, schema checks, durability across a killed process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdnlogs.errors import ManifestError, SchemaVersionError
from cdnlogs.manifest import MANIFEST_NAME, SCHEMA_VERSION, Manifest, RunRecord, Status
from cdnlogs.models import LogFile

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
H0 = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def log_file(hour: int = 0, domain: str = "a.example.com", size: int = 100) -> LogFile:
    start = H0 + timedelta(hours=hour)
    local = start + timedelta(hours=8)
    name = f"{domain}_{local:%Y_%m_%d_%H0000}_{local + timedelta(hours=1):%H0000}.gz"
    return LogFile(
        domain, name, f"https://h/{name}?Signature=s", size, start, start + timedelta(hours=1)
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "out" / ".cdnlogs"


@pytest.fixture
def ledger(state_dir: Path):
    with Manifest.open(state_dir, clock=lambda: NOW) as manifest:
        yield manifest


def done(ledger: Manifest, f: LogFile, sha: str = "aa") -> None:
    ledger.mark_done(
        f.domain, f.name, sha256=sha, plain_size=10, local_path=f"x/{f.name}", fmt="log"
    )


def test_listed_files_become_pending_rows(ledger: Manifest) -> None:
    files = [log_file(h) for h in range(3)]
    ledger.record_listed(files)
    rows = ledger.records()
    assert [r.log_name for r in rows] == [f.name for f in files]
    assert {r.status for r in rows} == {Status.PENDING}
    assert rows[0].hour_start == H0 and rows[0].hour_end == H0 + timedelta(hours=1)
    assert rows[0].remote_size == 100 and rows[0].attempts == 0
    assert rows[0].first_seen == NOW and rows[0].hour_start.tzinfo is not None


def test_state_transitions(ledger: Manifest) -> None:
    f = log_file()
    ledger.record_listed([f])
    ledger.mark_failed(f.domain, f.name, "HTTP 500")
    ledger.mark_failed(f.domain, f.name, "truncated")
    row = ledger.get(f.domain, f.name)
    assert row is not None
    assert (row.status, row.attempts, row.last_error) == (Status.FAILED, 2, "truncated")
    ledger.mark_done(
        f.domain,
        f.name,
        sha256="ab",
        plain_size=5,
        local_path="p.log",
        fmt="log",
        plain_checksum="cd",
    )
    row = ledger.get(f.domain, f.name)
    assert row is not None
    assert row.status is Status.DONE and row.last_error is None and row.done_at == NOW
    assert (row.sha256, row.plain_checksum, row.plain_size, row.local_path, row.format) == (
        "ab",
        "cd",
        5,
        "p.log",
        "log",
    )
    ledger.mark_pending(f.domain, f.name, "missing on disk")
    row = ledger.get(f.domain, f.name)
    assert row is not None
    assert (row.status, row.last_error, row.local_path, row.sha256) == (
        Status.PENDING,
        "missing on disk",
        None,
        None,
    )
    ledger.mark_rejected(f.domain, f.name, "unsafe")
    assert ledger.records(status=Status.REJECTED)[0].last_error == "unsafe"


def test_marking_an_unknown_row_is_an_error(ledger: Manifest) -> None:
    with pytest.raises(ManifestError, match="no row"):
        ledger.mark_failed("a.example.com", "nope.gz", "x")


@pytest.mark.parametrize("final", ["done", "pruned", "rejected"])
def test_record_listed_never_touches_settled_rows(ledger: Manifest, final: str) -> None:
    f = log_file()
    ledger.record_listed([f])
    done(ledger, f)
    if final == "pruned":
        ledger.mark_pruned(f.domain, f.name)
    elif final == "rejected":
        ledger.mark_rejected(f.domain, f.name, "bad")
    before = ledger.get(f.domain, f.name)
    relisted = LogFile(f.domain, f.name, f.url, 999, f.start, f.end)
    ledger.record_listed([relisted])
    assert ledger.get(f.domain, f.name) == before


def test_record_listed_refreshes_pending_and_failed(ledger: Manifest) -> None:
    a, b = log_file(0), log_file(1)
    ledger.record_listed([a, b])
    ledger.mark_failed(b.domain, b.name, "boom")
    ledger.record_listed([LogFile(x.domain, x.name, x.url, 555, x.start, x.end) for x in (a, b)])
    rows = {r.log_name: r for r in ledger.records()}
    assert rows[a.name].remote_size == 555 and rows[a.name].status is Status.PENDING
    assert rows[b.name].remote_size == 555 and rows[b.name].status is Status.FAILED
    assert rows[b.name].attempts == 1


def test_records_filter_and_domains(ledger: Manifest) -> None:
    ledger.record_listed([log_file(0, "b.example.com"), log_file(0), log_file(1)])
    done(ledger, log_file(1))
    assert ledger.domains() == ["a.example.com", "b.example.com"]
    assert len(ledger.records(domain="a.example.com")) == 2
    assert [r.log_name for r in ledger.records(status=Status.DONE)] == [log_file(1).name]
    assert ledger.status_counts() == {
        "a.example.com": {Status.PENDING: 1, Status.DONE: 1},
        "b.example.com": {Status.PENDING: 1},
    }


def test_adopt_records_once(ledger: Manifest) -> None:
    f, g = log_file(0), log_file(1)
    ledger.record_listed([g])
    kwargs: dict[str, Any] = {"sha256": "s", "plain_size": 1, "local_path": "p", "fmt": "log"}
    assert ledger.record_adopted(f.domain, f.name, hour_start=f.start, hour_end=f.end, **kwargs)
    assert not ledger.record_adopted(f.domain, f.name, hour_start=f.start, hour_end=f.end, **kwargs)
    # A listed-but-not-fetched row is completed by the adopted file.
    assert ledger.record_adopted(g.domain, g.name, hour_start=g.start, hour_end=g.end, **kwargs)
    assert {r.status for r in ledger.records()} == {Status.DONE}
    ledger.mark_pruned(f.domain, f.name)
    assert not ledger.record_adopted(f.domain, f.name, hour_start=f.start, hour_end=f.end, **kwargs)
    row = ledger.get(f.domain, f.name)
    assert row is not None and row.status is Status.PRUNED


def test_ingest_bookkeeping(ledger: Manifest) -> None:
    a, b = log_file(0), log_file(1)
    ledger.record_listed([a, b])
    assert ledger.files_to_ingest() == []
    done(ledger, a, "sha-1")
    done(ledger, b, "sha-2")
    assert [r.log_name for r in ledger.files_to_ingest()] == [a.name, b.name]
    ledger.mark_ingested(a.domain, a.name, rows=7, rejects=1)
    row = ledger.get(a.domain, a.name)
    assert row is not None
    assert (row.ingested_rows, row.ingested_rejects, row.ingested_sha256) == (7, 1, "sha-1")
    assert [r.log_name for r in ledger.files_to_ingest()] == [b.name]
    # Re-fetched with different bytes: ingest again.
    done(ledger, a, "sha-3")
    assert [r.log_name for r in ledger.files_to_ingest()] == [a.name, b.name]


def test_runs(ledger: Manifest) -> None:
    assert ledger.last_successful_run("a.example.com") is None
    for minutes, ok in ((1, True), (2, True), (3, False)):
        ledger.record_run(
            RunRecord("a.example.com", NOW, NOW + timedelta(minutes=minutes), ok, "{}")
        )
    last = ledger.last_successful_run("a.example.com")
    assert last is not None and last.finished_at == NOW + timedelta(minutes=2) and last.ok
    assert ledger.domains() == ["a.example.com"]


def test_wal_and_durable_pragmas(ledger: Manifest, state_dir: Path) -> None:
    conn = sqlite3.connect(state_dir / MANIFEST_NAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    assert ledger._db().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_newer_schema_is_refused(state_dir: Path) -> None:
    Manifest.open(state_dir).close()
    conn = sqlite3.connect(state_dir / MANIFEST_NAME)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(SchemaVersionError) as info:
        Manifest.open(state_dir)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value) and info.value.hint


def test_version_1_ledger_is_upgraded_in_place(state_dir: Path) -> None:
    f = log_file()
    with Manifest.open(state_dir) as ledger:
        ledger.record_listed([f])
        ledger.mark_done(f.domain, f.name, sha256="ab", plain_size=5, local_path="p", fmt="log")
    # Make it what cdnlogs 0.1 wrote: no line-count columns, schema version 1.
    conn = sqlite3.connect(state_dir / MANIFEST_NAME)
    with conn:
        for column in ("plain_lines", "store_url", "store_etag", "local_dropped_at"):
            conn.execute(f"ALTER TABLE files DROP COLUMN {column}")
        conn.execute("UPDATE schema_version SET version = 1")
    conn.close()

    with Manifest.open(state_dir) as ledger:
        row = ledger.get(f.domain, f.name)
        assert row is not None and row.status is Status.DONE and row.sha256 == "ab"
        assert row.plain_lines is None  # not counted before: the ingest counts it itself
        ledger.mark_done(
            f.domain,
            f.name,
            sha256="cd",
            plain_size=5,
            local_path="p",
            fmt="log",
            lines=7,
        )
        row = ledger.get(f.domain, f.name)
        assert row is not None and row.plain_lines == 7
        ledger.mark_pending(f.domain, f.name, "missing on disk")
        row = ledger.get(f.domain, f.name)
        assert row is not None and row.plain_lines is None
    conn = sqlite3.connect(state_dir / MANIFEST_NAME)
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    conn.close()
    assert versions == [1, 2, 3]


def test_version_2_ledger_gains_the_store_columns(state_dir: Path) -> None:
    f = log_file()
    with Manifest.open(state_dir) as ledger:
        ledger.record_listed([f])
        ledger.mark_done(f.domain, f.name, sha256="ab", plain_size=5, local_path="p", fmt="log")
    # What cdnlogs wrote before --store: schema 2, no store columns.
    conn = sqlite3.connect(state_dir / MANIFEST_NAME)
    with conn:
        for column in ("store_url", "store_etag", "local_dropped_at"):
            conn.execute(f"ALTER TABLE files DROP COLUMN {column}")
        conn.execute("UPDATE schema_version SET version = 2")
    conn.close()
    with Manifest.open(state_dir) as ledger:
        row = ledger.get(f.domain, f.name)
        assert row is not None and row.status is Status.DONE and row.store_url is None
        assert row.local_copy
        ledger.mark_stored(f.domain, f.name, store_url="s3://bkt/raw/p", store_etag="e1")
        ledger.mark_local_dropped(f.domain, f.name)
        row = ledger.get(f.domain, f.name)
        assert row is not None and row.store_url == "s3://bkt/raw/p" and row.store_etag == "e1"
        assert row.local_dropped_at is not None and not row.local_copy
        snapshot = state_dir / "copy.sqlite3"
        ledger.snapshot(snapshot)
    with Manifest.open(state_dir) as ledger:
        ledger.mark_pending(f.domain, f.name, "verify: gone")
        row = ledger.get(f.domain, f.name)
        assert row is not None and row.store_url is None and row.local_dropped_at is None
    copy = sqlite3.connect(snapshot)
    assert copy.execute("SELECT store_url FROM files").fetchall() == [("s3://bkt/raw/p",)]
    assert copy.execute("SELECT MAX(version) FROM schema_version").fetchone() == (3,)
    copy.close()


def test_not_a_database_names_the_path(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / MANIFEST_NAME).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ManifestError, match=MANIFEST_NAME):
        Manifest.open(state_dir)


def test_foreign_sqlite_file_is_refused(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    conn = sqlite3.connect(state_dir / MANIFEST_NAME)
    with conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(ManifestError, match="not a cdnlogs ledger"):
        Manifest.open(state_dir)


def test_open_without_create_needs_a_ledger(state_dir: Path) -> None:
    with pytest.raises(ManifestError, match="no archive ledger") as info:
        Manifest.open(state_dir, create=False)
    assert info.value.hint and not state_dir.exists()


def test_closed_ledger_refuses_calls(state_dir: Path) -> None:
    manifest = Manifest.open(state_dir)
    manifest.close()
    manifest.close()
    with pytest.raises(ManifestError, match="closed"):
        manifest.records()


_KILLED_WRITER = """
import os, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from cdnlogs.manifest import Manifest
from cdnlogs.models import LogFile
m = Manifest.open(Path(sys.argv[1]))
start = datetime(2026, 11, 27, 17, tzinfo=UTC)
files = [LogFile("a.example.com", f"f{i}.gz", "u", 1, start, start) for i in range(50)]
m.record_listed(files)
for f in files[:20]:
    m.mark_done(f.domain, f.name, sha256="s", plain_size=1, local_path=f.name, fmt="log")
print("ready", flush=True)
time.sleep(60)
"""


def test_reopen_after_a_killed_process_keeps_done_rows(state_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(state_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with Manifest.open(state_dir) as manifest:
        counts = manifest.status_counts()["a.example.com"]
    assert counts == {Status.DONE: 20, Status.PENDING: 30}


def test_usable_from_several_threads(ledger: Manifest) -> None:
    files = [log_file(h) for h in range(40)]
    ledger.record_listed(files)
    errors: list[BaseException] = []

    def worker(part: list[LogFile]) -> None:
        try:
            for f in part:
                done(ledger, f)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(files[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.status_counts() == {"a.example.com": {Status.DONE: 40}}


def test_a_full_ledger_is_named_as_full_and_keeps_every_committed_row(state_dir: Path) -> None:
    # SQLite's own "database or disk is full" (SQLITE_FULL), from a page cap on this connection:
    # the same result code a full filesystem gives (ENOSPC), so the same translation applies.
    with Manifest.open(state_dir, clock=lambda: NOW) as manifest:
        manifest.record_listed([log_file(0)])
        assert manifest._conn is not None
        pages = manifest._conn.execute("PRAGMA page_count").fetchone()[0]
        manifest._conn.execute(f"PRAGMA max_page_count = {pages}")
        many = [log_file(h, domain=f"d{h}-{'x' * 200}.example.com") for h in range(200)]
        with pytest.raises(ManifestError) as info:
            manifest.record_listed(many)
        assert str(info.value).startswith(f"cannot write the ledger {state_dir / MANIFEST_NAME}")
        assert "no space left (database or disk is full)" in str(info.value)
        assert info.value.hint is not None and "free space" in info.value.hint
        assert [r.log_name for r in manifest.records()] == [log_file(0).name]  # rolled back
