"""Damaged or impossible local state, made real: each is one clear line, a hint, exit 1, no loss.

A ledger path that is a directory, ``--out`` below a regular file, and a ledger that stops being
writable (a file size limit, RLIMIT_FSIZE, in the syncing process: writes past it fail with
EFBIG, as a full disk fails them with ENOSPC) before any log file does.
"""

from __future__ import annotations

import gzip
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import Manifest, Status
from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(domains=(DOMAIN,), days=1, lines_per_file=60, now=NOW)
    with Simulator(config) as running:
        yield running


def _run(
    *args: str,
    sim: Simulator | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    if sim is not None:
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
        env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret
    return subprocess.run(
        [sys.executable, "-m", "cdnlogs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=preexec_fn,
    )


def _sync_args(sim: Simulator, out: Path) -> list[str]:
    args = ["sync", "--domain", DOMAIN, "--since", "30h", "--out", str(out)]
    return [*args, "--endpoint", sim.endpoint, "--log-scheme", "http"]


def _assert_one_clear_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1 with an ``Error:`` line naming the cause and a ``hint:`` line; nothing else."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("Error: ") and lines[1].startswith("hint: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_ledger_path_that_is_a_directory_is_named_as_such_by_every_command(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ledger = out / ".cdnlogs" / "manifest.sqlite3"
    ledger.mkdir(parents=True)
    (ledger / "keep-me").write_text("something a person put here\n")
    for args in (
        ["status", "--out", str(out)],
        ["verify", "--out", str(out)],
        ["ingest", "--out", str(out)],
        _sync_args(sim, out),
    ):
        proc = _run(*args, sim=sim)
        _assert_one_clear_error(proc, f"the ledger {ledger} is a directory")
        assert "no archive ledger" not in proc.stderr  # something is there, and it is broken
        assert "adopt" in proc.stderr  # the way out
    assert (ledger / "keep-me").read_text() == "something a person put here\n"
    assert sum(sim.downloads.values()) == 0


def test_out_below_a_regular_file_is_named_with_what_is_in_the_way(
    sim: Simulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a directory\n")
    out = blocker / "archive"
    for args in (
        _sync_args(sim, out),
        ["status", "--out", str(out)],
        ["verify", "--out", str(out)],
        ["ingest", "--out", str(out)],
    ):
        proc = _run(*args, sim=sim)
        _assert_one_clear_error(proc, f"{blocker} is a regular file")
        assert "NotADirectoryError" not in proc.stderr
    assert blocker.read_text() == "not a directory\n"


#: Largest file the limited sync may write: the ledger's WAL outgrows it after a few files,
#: while every log file (about 10 KiB of text) stays well under it.
FILE_SIZE_LIMIT = 160 * 1024


def _limit_file_size() -> None:
    # Without SIG_IGN the kernel kills the process with SIGXFSZ instead of failing the write.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_a_ledger_that_cannot_grow_stops_the_sync_with_a_clear_error_and_loses_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ledger = out / ".cdnlogs" / "manifest.sqlite3"
    proc = _run(*_sync_args(sim, out), "--concurrency", "1", sim=sim, preexec_fn=_limit_file_size)
    _assert_one_clear_error(proc, f"cannot write the ledger {ledger}", "file size limit")
    assert "every file recorded so far is kept" in proc.stderr
    assert list(out.rglob("*.part")) == []
    with ArchiveLock(out / ".cdnlogs", purpose="test"):  # released
        pass
    # The ledger is intact: what it recorded as done is on disk and complete.
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        rows = manifest.records()
    total = len(sim.files(DOMAIN, published_only=True))
    done = [r for r in rows if r.status is Status.DONE]
    assert len(rows) == total and 0 < len(done) < total
    for row in done:
        gz = sim.file(row.log_name).gz
        assert row.local_path is not None and gz is not None
        assert (out / row.local_path).read_bytes() == gzip.decompress(gz)
    # With room again, the next run completes the archive without fetching a done file twice.
    proc = _run(*_sync_args(sim, out), sim=sim)
    assert proc.returncode == 0, proc.stderr
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        assert {r.status for r in manifest.records()} == {Status.DONE}
    assert all(sim.downloads[r.log_name] == 1 for r in done)
