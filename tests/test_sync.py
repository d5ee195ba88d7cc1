"""cdnlogs sync against the simulator over real HTTP on 127.0.0.1: every failure path."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdnlogs.config import Settings
from cdnlogs.errors import LockedError
from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import Manifest, Status
from cdnlogs.models import Listing
from cdnlogs.providers import make_provider
from cdnlogs.retry import RetryPolicy
from cdnlogs.simulator import Simulator, SimulatorConfig
from cdnlogs.sync import SyncRun, SyncSummary
from cdnlogs.transfer import TransferConfig

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
FAST = TransferConfig(
    max_workers=4,
    chunk_size=2048,
    retry=RetryPolicy(attempts=4, base_delay_seconds=0.001, max_delay_seconds=0.01),
    connect_timeout_seconds=5,
    read_timeout_seconds=5,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(domains=(DOMAIN,), days=1, lines_per_file=60, now=NOW)
    with Simulator(config) as running:
        yield running


def _settings(sim: Simulator, out: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "domains": [DOMAIN],
        "out_dir": out,
        "endpoint": sim.endpoint,
        "log_scheme": "http",
        "access_key_id": sim.access_key_id,
        "access_key_secret": sim.access_key_secret,
        "since": "30h",
        "api_attempts": 2,
    }
    values.update(kw)
    return Settings(**values)


def _sync(sim: Simulator, out: Path, provider: Any = None, **kw: Any) -> SyncSummary:
    settings = _settings(sim, out, **kw)
    return SyncRun(settings, provider or make_provider(settings), config=FAST, now=NOW).run()


def _rows(out: Path) -> dict[str, Any]:
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        return {r.log_name: r for r in manifest.records()}


def _assert_archive_verifies(sim: Simulator, out: Path) -> int:
    """Every done row's file exists and is exactly the simulator's file, decompressed."""
    done = 0
    for name, row in _rows(out).items():
        if row.status is not Status.DONE:
            continue
        done += 1
        path = out / row.local_path
        gz = sim.file(name).read_bytes()
        if row.format == "gz":
            assert path.read_bytes() == gz
        else:
            assert path.read_bytes() == gzip.decompress(gz), name
        assert row.sha256 == hashlib.sha256(gz).hexdigest()
        # The line count the ingest relies on, taken while inflating (across resumes too).
        text = gzip.decompress(gz)
        lines = text.split(b"\n")[: -1 if text.endswith(b"\n") else None]
        assert row.plain_lines == len(lines), name
    assert list(out.rglob("*.part")) == []
    return done


def test_sync_then_rerun_fetches_nothing(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _sync(sim, out)
    listed = len(sim.files(DOMAIN, published_only=True))
    assert first.ok and first.total("listed") == listed and first.total("fetched") == listed
    assert _assert_archive_verifies(sim, out) == listed
    downloads = dict(sim.downloads)
    assert all(count == 1 for count in downloads.values())
    second = _sync(sim, out)
    assert second.ok and second.total("fetched") == 0 and second.total("skipped") == listed
    assert dict(sim.downloads) == downloads
    # Layout: domain/YYYY/MM/DD/<stem>.log in the provider's +08:00 date.
    any_file = sim.files(DOMAIN)[0]
    local = any_file.start.astimezone(timezone_plus8())
    expected = out / DOMAIN / f"{local:%Y/%m/%d}" / any_file.name.replace(".gz", ".log")
    assert expected.is_file()


def timezone_plus8() -> Any:
    from cdnlogs.models import PROVIDER_TZ

    return PROVIDER_TZ


def test_gz_format_keeps_downloads_exactly(sim: Simulator, tmp_path: Path) -> None:
    summary = _sync(sim, tmp_path / "out", format="gz")
    assert summary.ok
    assert _assert_archive_verifies(sim, tmp_path / "out") == summary.total("fetched") > 0


@pytest.mark.parametrize(
    ("switch", "range_support"),
    [
        ("status_5xx_next", True),
        ("truncate_next", True),
        ("truncate_next", False),
        ("corrupt_next", True),
        ("drop_next", True),
    ],
)
def test_transient_faults_are_retried(
    sim: Simulator, tmp_path: Path, switch: str, range_support: bool
) -> None:
    names = [f.name for f in sim.files(DOMAIN)[:3]]
    sim.faults.range_support = range_support
    for name in names:
        setattr(sim.faults.for_file(name), switch, 2)
    summary = _sync(sim, tmp_path / "out")
    assert summary.ok, summary.failed
    rows = _rows(tmp_path / "out")
    assert all(rows[n].status is Status.DONE for n in names)
    assert all(getattr(sim.faults.for_file(n), switch) == 0 for n in names)  # the faults fired
    _assert_archive_verifies(sim, tmp_path / "out")


class _ExpireFirstListing:
    """A provider whose first listing hands out already-expired URLs."""

    def __init__(self, inner: Any, sim: Simulator, times: int = 1) -> None:
        self.inner, self.sim, self.times = inner, sim, times
        self.retention_days = inner.retention_days
        self.listings = 0

    def list_domains(self) -> Any:
        return self.inner.list_domains()

    def list_log_files(self, domain: str, start: datetime, end: datetime) -> Listing:
        self.listings += 1
        self.sim.faults.expire_urls = self.listings <= self.times
        listing: Listing = self.inner.list_log_files(domain, start, end)
        return listing


def test_expired_urls_relist_once_then_succeed(sim: Simulator, tmp_path: Path) -> None:
    settings = _settings(sim, tmp_path / "out")
    provider = _ExpireFirstListing(make_provider(settings), sim)
    summary = SyncRun(settings, provider, config=FAST, now=NOW).run()
    assert summary.ok, summary.failed
    assert provider.listings == 2
    assert summary.domains[0].relisted
    assert summary.total("fetched") == summary.total("listed") > 0


def test_urls_that_stay_expired_fail_after_one_relist(sim: Simulator, tmp_path: Path) -> None:
    settings = _settings(sim, tmp_path / "out")
    provider = _ExpireFirstListing(make_provider(settings), sim, times=99)
    summary = SyncRun(settings, provider, config=FAST, now=NOW).run()
    assert provider.listings == 2
    assert not summary.ok
    assert len(summary.failed) == summary.total("listed")
    assert all("expired" in p.reason for p in summary.failed)
    assert all(r.status is Status.FAILED for r in _rows(tmp_path / "out").values())


def test_permanent_404_fails_that_file_and_keeps_the_others(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = sim.files(DOMAIN)[1].name
    sim.faults.missing.add(missing)
    summary = _sync(sim, out)
    assert not summary.ok
    assert [p.name for p in summary.failed] == [missing]
    assert "404" in summary.failed[0].reason
    rows = _rows(out)
    assert rows[missing].status is Status.FAILED and rows[missing].attempts == 1
    assert "404" in (rows[missing].last_error or "")
    assert _assert_archive_verifies(sim, out) == len(rows) - 1
    # The file comes back: the next run fetches exactly it.
    sim.faults.missing.clear()
    before = dict(sim.downloads)
    again = _sync(sim, out)
    assert again.ok and again.total("fetched") == 1
    assert sim.downloads[missing] == before.get(missing, 0) + 1
    assert _assert_archive_verifies(sim, out) == len(rows)


def test_late_arrivals_are_picked_up(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    hour = sim.files(DOMAIN)[2].start
    late = sim.add_file(DOMAIN, hour, name=None, lines=20, published=False)
    first = _sync(sim, out)
    assert first.ok and late.name not in _rows(out)
    sim.publish(late.name)
    second = _sync(sim, out)
    assert second.total("fetched") == 1
    assert _rows(out)[late.name].status is Status.DONE
    assert sim.downloads[late.name] == 1


def test_pruned_files_are_never_fetched_again(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = _sync(sim, out, retention="12h")
    assert summary.ok and summary.pruned > 0
    rows = _rows(out)
    pruned = [n for n, r in rows.items() if r.status is Status.PRUNED]
    assert len(pruned) == summary.pruned
    assert all(not (out / (rows[n].local_path or "x")).exists() for n in pruned)
    downloads = dict(sim.downloads)
    again = _sync(sim, out)
    assert again.total("fetched") == 0 and dict(sim.downloads) == downloads


@pytest.mark.parametrize(
    "name", ["../../escape.gz", ".hidden.gz", "x..y.gz", "sub%2Fdir.gz", "a\tb.gz"]
)
def test_hostile_names_are_rejected_and_nothing_escapes(
    sim: Simulator, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    hostile = sim.add_file(DOMAIN, sim.files(DOMAIN)[0].start, name=name, lines=5)
    before = set(tmp_path.rglob("*"))
    summary = _sync(sim, out)
    assert summary.ok  # a rejected name is reported, not a failure
    assert [p.name for p in summary.rejected] == [hostile.name]
    assert _rows(out)[hostile.name].status is Status.REJECTED
    assert sim.downloads[hostile.name] == 0
    created = set(tmp_path.rglob("*")) - before
    assert all(p.is_relative_to(out) for p in created)
    # Known rejections are not recorded or warned about again.
    again = _sync(sim, out)
    assert [p.name for p in again.rejected] == [hostile.name]


def test_a_symlink_planted_under_out_is_refused(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / DOMAIN).symlink_to(elsewhere)
    summary = _sync(sim, out)
    assert summary.total("fetched") == 0
    assert len(summary.rejected) == summary.total("listed")
    assert list(elsewhere.rglob("*")) == []


def test_a_second_sync_on_the_same_archive_is_refused(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with ArchiveLock(out / ".cdnlogs", purpose="sync"), pytest.raises(LockedError) as info:
        _sync(sim, out)
    assert "another cdnlogs sync" in str(info.value)
    assert sum(sim.downloads.values()) == 0
    assert _sync(sim, out).ok  # released: the next run works


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cdnlogs", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def _key_env(sim: Simulator) -> dict[str, str]:
    return {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sim.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sim.access_key_secret,
    }


def test_cli_json_summary_and_exit_5(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = sim.files(DOMAIN)[0].name
    sim.faults.missing.add(missing)
    args = ["sync", "--domain", DOMAIN, "--since", "30h", "--out", str(out), "--json"]
    args += ["--endpoint", sim.endpoint, "--log-scheme", "http"]
    proc = _cli(*args, env=_key_env(sim))
    assert proc.returncode == 5, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] is False
    assert [f["name"] for f in summary["failed"]] == [missing]
    assert summary["fetched"] == summary["listed"] - 1
    assert summary["bytes"] > 0 and summary["seconds"] >= 0
    assert "failed after retries" in proc.stderr
    assert "Signature=" not in proc.stdout + proc.stderr
    sim.faults.missing.clear()
    proc = _cli(*args, env=_key_env(sim))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fetched"] == 1


def test_cli_api_refusal_is_exit_4_and_bad_config_exit_3(sim: Simulator, tmp_path: Path) -> None:
    base = ["sync", "--domain", DOMAIN, "--out", str(tmp_path / "o")]
    base += ["--endpoint", sim.endpoint, "--log-scheme", "http"]
    wrong = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIwrong", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "x"}
    assert _cli(*base, env=wrong).returncode == 4
    bad = tmp_path / "bad.toml"
    bad.write_text('format = "zip"\n')
    assert _cli(*base, "--config", str(bad), env=_key_env(sim)).returncode == 3


def test_legacy_aliyun_ini_end_to_end(sim: Simulator, tmp_path: Path) -> None:
    ini = tmp_path / "aliyun.ini"
    ini.write_text(
        "[Credentials]\n"
        f"accesskeyid = {sim.access_key_id}\n"
        f"accesskeysecret={sim.access_key_secret}\n\n"
        "[Must]\nAction = DescribeCdnDomainLogs\n"
        f"DomainName = {DOMAIN}\n\n"
        "[Select]\nLogDay=\nPageSize=\nPageNumber=\n"
    )
    ini.chmod(0o600)
    out = tmp_path / "out"
    proc = _cli(
        "sync",
        "--config",
        str(ini),
        "--since",
        "30h",
        "--out",
        str(out),
        "--log-scheme",
        "http",
        "--json",
        env={"CDNLOGS_ENDPOINT": sim.endpoint},
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["fetched"] == summary["listed"] > 0
    assert _assert_archive_verifies(sim, out) == summary["fetched"]


def _done_in_ledger(out: Path) -> int:
    """Rows marked done, read while another process writes the ledger (WAL allows readers)."""
    path = out / ".cdnlogs" / "manifest.sqlite3"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT count(*) FROM files WHERE status = 'done'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or mid-creation
        return 0
    return int(row[0])


def test_sigkill_mid_sync_then_rerun_completes(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for sim_file in sim.files(DOMAIN):
        # Bigger files and a bandwidth cap, so the kill lands mid-transfer.
        sim.add_file(DOMAIN, sim_file.start, name=sim_file.name, lines=1500)
    sim.faults.bandwidth_bytes_per_second = 60_000
    args = ["sync", "--domain", DOMAIN, "--since", "30h", "--out", str(out)]
    args += ["--endpoint", sim.endpoint, "--log-scheme", "http", "--concurrency", "4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    env.update(_key_env(sim))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdnlogs", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 60
    try:
        # Kill once some files are recorded done and others are in flight (.part files exist).
        # The ledger is asked, not the disk: a file renamed into place is recorded a moment
        # later, by the thread that consumes the results.
        while time.monotonic() < deadline:
            if _done_in_ledger(out) >= 1 and list(out.rglob("*.part")):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    rows = _rows(out)
    total = len(sim.files(DOMAIN, published_only=True))
    done_before = {n for n, r in rows.items() if r.status is Status.DONE}
    assert 0 < len(done_before) < total
    assert list(out.rglob("*.part"))  # the kill left partial downloads behind...
    # ...but no row is done without its complete file.
    for name in done_before:
        assert (out / rows[name].local_path).read_bytes() == gzip.decompress(
            sim.file(name).read_bytes()
        )
    sim.faults.bandwidth_bytes_per_second = None
    downloads_before = dict(sim.downloads)
    summary = _sync(sim, out)
    assert summary.ok and summary.total("fetched") == total - len(done_before)
    assert _assert_archive_verifies(sim, out) == total  # also: no .part left anywhere
    for name in done_before:
        assert sim.downloads[name] == downloads_before[name] == 1  # never fetched twice
    files = [p for p in out.rglob("*") if p.is_file() and ".cdnlogs" not in p.parts]
    assert len(files) == total  # one local file per remote file, no duplicates


def _lock_is_free(out: Path) -> bool:
    try:
        with ArchiveLock(out / ".cdnlogs", purpose="test"):
            return True
    except LockedError:
        return False


def test_sigterm_mid_sync_stops_within_seconds_and_leaves_a_consistent_archive(
    sim: Simulator, tmp_path: Path
) -> None:
    """systemd, Kubernetes and `timeout` stop a job with SIGTERM: it is handled like Ctrl-C."""
    out = tmp_path / "out"
    files = sim.files(DOMAIN)
    for sim_file in files:
        sim.add_file(DOMAIN, sim_file.start, name=sim_file.name, lines=1500)
    sim.faults.bandwidth_bytes_per_second = 60_000
    stalled = files[0].name  # planned first: in flight from the start, and it never finishes
    sim.faults.for_file(stalled).stall_next = 1
    # Planned second: its request waits for response headers that come only after 60 s.
    sim.faults.for_file(files[1].name).first_byte_latency_seconds = 60
    args = ["sync", "--domain", DOMAIN, "--since", "30h", "--out", str(out)]
    args += ["--endpoint", sim.endpoint, "--log-scheme", "http", "--concurrency", "4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    # A stalled read would block this long; the signal must not wait for it.
    env.update(_key_env(sim), CDNLOGS_READ_TIMEOUT_SECONDS="30")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdnlogs", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if _done_in_ledger(out) >= 1 and list(out.rglob(f"{stalled[:-3]}*.part")):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert took < 5, f"took {took:.1f}s to stop"
    assert "Error" not in err and "Traceback" not in err
    assert list(out.rglob("*.part")) == []  # the in-flight files were abandoned and removed
    assert _lock_is_free(out)
    rows = _rows(out)
    done = {n for n, r in rows.items() if r.status is Status.DONE}
    total = len(sim.files(DOMAIN, published_only=True))
    assert 0 < len(done) < total and stalled not in done and files[1].name not in done
    assert {r.status for n, r in rows.items() if n not in done} == {Status.PENDING}
    for name in done:  # a done row always has its complete file
        gz = sim.file(name).read_bytes()
        assert gz is not None
        assert (out / rows[name].local_path).read_bytes() == gzip.decompress(gz)
    sim.faults.clear()
    summary = _sync(sim, out)
    assert summary.ok and summary.total("fetched") == total - len(done)
    assert _assert_archive_verifies(sim, out) == total


def test_a_trickling_file_fails_after_retries_and_the_rest_of_the_sync_finishes(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    slow = sim.files(DOMAIN)[2].name
    sim.faults.for_file(slow).bandwidth_bytes_per_second = 20  # a byte every 50 ms, forever
    config = tmp_path / "cdnlogs.toml"
    config.write_text("download_min_speed_seconds = 0.5\ndownload_attempts = 2\n")
    args = ["sync", "--domain", DOMAIN, "--since", "30h", "--out", str(out), "--json"]
    args += ["--endpoint", sim.endpoint, "--log-scheme", "http", "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    env.update(_key_env(sim), CDNLOGS_DOWNLOAD_MIN_SPEED_BYTES_PER_SECOND="1000")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cdnlogs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert time.monotonic() - started < 20
    assert proc.returncode == 5, proc.stderr
    summary = json.loads(proc.stdout)
    assert [f["name"] for f in summary["failed"]] == [slow]
    reason = summary["failed"][0]["reason"]
    assert "gave up after 2 attempts: too slow" in reason and "minimum 1000 B/s" in reason
    assert summary["fetched"] == summary["listed"] - 1
    assert _rows(out)[slow].status is Status.FAILED
    assert list(out.rglob("*.part")) == []
    assert _lock_is_free(out)
