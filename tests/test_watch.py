"""``cdnlogs watch`` in a real subprocess against the simulator: ticks, the lock, SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import Manifest, Status
from cdnlogs.simulator import Simulator, SimulatorConfig
from cdnlogs.simulator.catalog import log_name
from cdnlogs.timeutil import iso_utc

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
SINCE = iso_utc(NOW - timedelta(hours=6))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        domains=(DOMAIN,),
        days=1,
        lines_per_file=30,
        now=NOW,
        split_fraction=0.0,
        # no boundary spill: with 30 lines an hour, one large response moved by the
        # provider's lag can exceed an hour's tolerance (test_reconcile covers the spill)
        monitoring_lag_seconds=0,
    )
    with Simulator(config) as running:
        yield running


class Watch:
    """A ``cdnlogs watch`` subprocess whose output is read as it comes (threads)."""

    def __init__(
        self, sim: Simulator, out: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")} | (env or {})
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
        env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret
        args = ["watch", "--domain", DOMAIN, "--since", SINCE, "--out", str(out)]
        args += ["--endpoint", sim.endpoint, "--log-scheme", "http", *extra]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cdnlogs", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=_collect, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=_collect, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        return "".join(self.stderr)

    def wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            if self.proc.poll() is not None:
                self.finish()
                pytest.fail(f"watch exited {self.proc.returncode} before {what}: {self.err}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"timed out waiting for {what}: {self.err}")
            time.sleep(0.02)

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.finish()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish()


def _collect(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def _ledger_count(out: Path, sql: str) -> int:
    """A count read while watch writes the ledger (WAL allows readers)."""
    path = out / ".cdnlogs" / "manifest.sqlite3"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _runs(out: Path) -> int:
    return _ledger_count(out, "SELECT count(*) FROM runs")


def _exit_status(prom: Path) -> float:
    for family in text_string_to_metric_families(prom.read_text()):
        for sample in family.samples:
            if sample.name == "cdnlogs_last_run_exit_status":
                assert sample.labels == {"command": "sync"}
                return sample.value
    raise AssertionError("no exit status in the metrics file")


def test_two_ticks_then_sigterm_mid_download_exits_143_with_no_half_file(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prom = tmp_path / "cdnlogs.prom"
    # Late, big files: published after the second tick, then served slowly, so the
    # third tick is downloading them when SIGTERM arrives.
    late = []
    for hours in (2, 3, 4):
        start = NOW - timedelta(hours=hours)
        name = log_name(DOMAIN, start, 7)
        late.append(sim.add_file(DOMAIN, start, name=name, lines=3000, published=False))
    watch = Watch(sim, out, "--every", "1s", "--metrics-file", str(prom))
    try:
        watch.wait_for("two ticks", lambda: _runs(out) >= 2)
        assert _exit_status(prom) == 0
        sim.faults.bandwidth_bytes_per_second = 40_000
        for sim_file in late:
            sim.publish(sim_file.name)
        watch.wait_for("a download in flight", lambda: bool(list(out.rglob("*.part"))))
        code = watch.terminate()
    finally:
        watch.kill()
    assert code == 143, watch.err
    assert "tick 1: 6 fetched" in watch.out
    assert "tick 2: 0 fetched, 6 already present" in watch.out
    assert sim.api_calls["DescribeCdnDomainLogs"] >= 3  # every tick listed the window again
    assert not list(out.rglob("*.part"))  # the in-flight downloads were removed
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        rows = {r.log_name: r for r in manifest.records()}
    for sim_file in late:  # listed, and never done without its complete file
        row = rows[sim_file.name]
        assert row.status is not Status.DONE or (out / str(row.local_path)).stat().st_size > 0
    assert any(rows[f.name].status is not Status.DONE for f in late)
    assert _exit_status(prom) == 143  # the cut tick was reported as such


def test_sigterm_between_ticks_exits_at_once_and_ticks_ingest(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    watch = Watch(sim, out, "--every", "1h", "--ingest")
    try:
        watch.wait_for("the wait for the next tick", lambda: "watch: next tick at " in watch.err)
        started = time.monotonic()
        code = watch.terminate()
    finally:
        watch.kill()
    assert code == 143, watch.err
    assert time.monotonic() - started < 5
    assert "tick 1: 6 fetched" in watch.out
    assert "ingested 6 file(s), 180 rows" in watch.out
    assert _runs(out) == 1


def test_a_locked_archive_skips_the_tick_and_max_ticks_ends_watch(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    lock = ArchiveLock(out / ".cdnlogs", purpose="sync")
    lock.acquire()
    try:
        watch = Watch(sim, out, "--every", "1s", "--max-ticks", "2")
        watch.wait_for("a skipped tick", lambda: "tick 1 skipped" in watch.err)
    finally:
        lock.release()
    try:
        code = watch.finish()
    finally:
        watch.kill()
    assert code == 0, watch.err
    assert "watch: tick 1 skipped: another cdnlogs sync" in watch.err
    assert "tick 2: 6 fetched" in watch.out
    assert _runs(out) == 1


def test_a_tick_reconciles_after_sync_and_ingest_and_reports_a_short_hour(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prom = tmp_path / "cdnlogs.prom"
    victim = next(f for f in sim.files(DOMAIN) if f.start == NOW - timedelta(hours=4))
    sim.hide_file(victim.name)
    watch = Watch(
        sim,
        out,
        "--every",
        "1s",
        "--max-ticks",
        "1",
        "--ingest",
        "--reconcile",
        "--metrics-file",
        str(prom),
        env={"CDNLOGS_RECONCILE_SETTLE": "2h"},
    )
    try:
        code = watch.finish(timeout=120)
    finally:
        watch.kill()
    assert code == 6, watch.err  # the last tick's status: its reconcile fell short
    assert "tick 1: 5 fetched" in watch.out and "ingested 5 file(s)" in watch.out
    assert f"tick 1: reconcile short: {DOMAIN} " in watch.out
    assert "(1 short)" in watch.out
    assert "watch: tick 1 reconcile failed (exit 6): 1 hour(s)" in watch.err
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    assert samples[("cdnlogs_last_run_exit_status", (("command", "sync"),))] == 0
    assert samples[("cdnlogs_last_run_exit_status", (("command", "reconcile"),))] == 6
    assert samples[("cdnlogs_reconcile_short_hours", (("domain", DOMAIN),))] == 1
    # One judged hour is hidden, so its requests (30 lines a file) are missing. (The bytes
    # ratio depends on how big the hidden hour's responses happen to be, which changes with the
    # hour the test runs in, so only its presence is checked.)
    assert samples[("cdnlogs_reconcile_requests_ratio", (("domain", DOMAIN),))] < 0.95
    assert 0 < samples[("cdnlogs_reconcile_ratio", (("domain", DOMAIN),))] < 1.05
