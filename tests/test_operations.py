"""Unattended operation over real HTTP: status --check, the metrics file, pings and the webhook.

The simulator serves the API and the log files on 127.0.0.1; a small HTTP server on 127.0.0.1
stands in for healthchecks and for a webhook receiver.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cdnlogs.check import check_window
from cdnlogs.cli import main
from cdnlogs.config import Settings
from cdnlogs.errors import ExitStatus
from cdnlogs.manifest import Manifest
from cdnlogs.metrics import FAMILIES, Metrics, write_metrics
from cdnlogs.providers import make_provider
from cdnlogs.schedule import Schedule, run_every
from cdnlogs.simulator import Simulator, SimulatorConfig
from cdnlogs.sync import SyncRun
from cdnlogs.timeutil import iso_utc

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
PING_KEY = "5f3c1f0e-secret-check-uuid"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        domains=(DOMAIN,), days=2, lines_per_file=30, now=NOW, split_fraction=0.0
    )
    with Simulator(config) as running:
        yield running


@dataclass
class Received:
    method: str
    path: str
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP server recording every request; answers ``status``."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            box[0].requests.append(Received("POST", self.path, body))
            self.send_response(box[0].status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(url=f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the real CLI entry point in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err


def _sync_args(sim: Simulator, out: Path, *extra: str) -> list[str]:
    return [
        "sync",
        "--domain",
        DOMAIN,
        "--since",
        iso_utc(NOW - timedelta(hours=30)),
        "--out",
        str(out),
        "--endpoint",
        sim.endpoint,
        "--log-scheme",
        "http",
        "--json",
        *extra,
    ]


@pytest.fixture
def keys(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sim.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sim.access_key_secret)
    monkeypatch.setenv("CDNLOGS_DOWNLOAD_ATTEMPTS", "2")


def _sync_library(sim: Simulator, out: Path) -> None:
    settings = Settings(
        domains=[DOMAIN],
        out_dir=out,
        endpoint=sim.endpoint,
        log_scheme="http",
        access_key_id=sim.access_key_id,
        access_key_secret=sim.access_key_secret,
        since="30h",
    )
    assert SyncRun(settings, make_provider(settings), now=NOW).run().ok


def _hour_file(sim: Simulator, hours_ago: int) -> str:
    start = NOW - timedelta(hours=hours_ago)
    return next(f.name for f in sim.files(DOMAIN) if f.start == start)


# --- status --check -----------------------------------------------------------------------


def test_check_passes_on_a_complete_fresh_archive_and_status_is_unchanged(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    _sync_library(sim, out)
    since = iso_utc(NOW - timedelta(hours=30))
    code, plain, _ = _run(["status", "--out", str(out), "--since", since], capsys)
    assert code == 0 and "check:" not in plain
    code, text, _ = _run(["status", "--out", str(out), "--since", since, "--check"], capsys)
    assert code == 0
    assert text.startswith(plain.rstrip("\n"))  # the table as without --check, then one line
    assert "check: ok" in text
    code, raw, _ = _run(
        ["status", "--out", str(out), "--since", since, "--check", "--json"], capsys
    )
    assert code == 0
    check = json.loads(raw)["check"]
    assert check == {
        "ok": True,
        "settled_window": {
            "start": since,
            "end": iso_utc(datetime.now(UTC).replace(minute=0, second=0) - timedelta(hours=24)),
        },
        "problems": [],
    }


def test_check_flags_exactly_the_settled_hours_without_a_file(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    _sync_library(sim, out)  # the 30 hours before NOW
    since = iso_utc(NOW - timedelta(hours=32))  # two hours before what was synced
    args = ["status", "--out", str(out), "--since", since, "--check", "--json"]
    code, raw, err = _run(args, capsys)
    assert code == ExitStatus.INCOMPLETE
    assert int(ExitStatus.INCOMPLETE) == 6  # documented in docs/operations.md
    problems = json.loads(raw)["check"]["problems"]
    assert [(p["domain"], p["kind"]) for p in problems] == [(DOMAIN, "missing-hours")]
    assert problems[0]["message"].startswith("2 settled hour(s) have no file")
    assert iso_utc(NOW - timedelta(hours=32))[:13] in problems[0]["message"]
    assert "archive check failed: 1 problem(s)" in err
    # Quiet domains: allow two hours without traffic.
    code, _, _ = _run([*args, "--config", str(_toml(tmp_path, "check_max_gap_hours = 2"))], capsys)
    assert code == 0
    # Hours still within the settle delay are never flagged.
    code, _, _ = _run([*args, "--config", str(_toml(tmp_path, 'check_settle = "33h"'))], capsys)
    assert code == 0


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "check.toml"
    path.write_text(text + "\n")
    return path


def test_check_flags_failed_files(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: None
) -> None:
    out = tmp_path / "out"
    broken = _hour_file(sim, 3)  # not settled yet: only the failure is a problem
    sim.faults.missing.add(broken)
    assert _run(_sync_args(sim, out), capsys)[0] == ExitStatus.PARTIAL
    code, text, _ = _run(["status", "--out", str(out), "--since", "30h", "--check"], capsys)
    assert code == ExitStatus.INCOMPLETE
    assert f"{DOMAIN}: 1 file(s) failed: {broken}" in text
    # A sync run with a failed file is not a successful sync: the domain is stale too.
    assert f"{DOMAIN}: no successful sync recorded" in text


def test_check_flags_a_stale_sync_and_a_domain_never_synced(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    _sync_library(sim, out)
    args = ["status", "--out", str(out), "--since", "30h", "--check", "--json"]
    assert _run(args, capsys)[0] == 0
    monkeypatch.setenv("CDNLOGS_CHECK_STALE_AFTER", "1s")
    time.sleep(1.1)
    code, raw, _ = _run(args, capsys)
    assert code == ExitStatus.INCOMPLETE
    [problem] = json.loads(raw)["check"]["problems"]
    assert problem["kind"] == "stale" and "more than 0m" in problem["message"]
    monkeypatch.delenv("CDNLOGS_CHECK_STALE_AFTER")
    monkeypatch.setenv("CDNLOGS_DOMAINS", f"{DOMAIN},new.example.com")
    code, raw, _ = _run(args, capsys)
    assert code == ExitStatus.INCOMPLETE
    kinds = {(p["domain"], p["kind"]) for p in json.loads(raw)["check"]["problems"]}
    assert ("new.example.com", "stale") in kinds and (DOMAIN, "stale") not in kinds


# --- the metrics file ---------------------------------------------------------------------


def _metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the file, parsed by prometheus-client's own text parser."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


SYNC = (("command", "sync"),)
INGEST = (("command", "ingest"),)
DOM = (("domain", DOMAIN),)


def test_metrics_file_after_failed_then_successful_runs(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: None
) -> None:
    out = tmp_path / "out"
    prom_dir = tmp_path / "textfile"
    prom_dir.mkdir()
    prom = prom_dir / "cdnlogs.prom"
    # A run refused by the API still writes the file: that is when it matters.
    sim.faults.force_api_error("InvalidAccessKeyId.NotFound", times=10, status=404)
    code, _, _ = _run([*_sync_args(sim, out), "--metrics-file", str(prom)], capsys)
    assert code == ExitStatus.API
    first = _metrics(prom)
    assert first[("cdnlogs_last_run_exit_status", SYNC)] == 4
    assert ("cdnlogs_last_run_success_timestamp_seconds", SYNC) not in first
    sim.faults.clear()

    broken = _hour_file(sim, 5)
    sim.faults.missing.add(broken)
    started = time.time()
    code, raw, _ = _run([*_sync_args(sim, out), "--metrics-file", str(prom)], capsys)
    assert code == ExitStatus.PARTIAL
    summary = json.loads(raw)
    partial = _metrics(prom)
    assert partial[("cdnlogs_last_run_exit_status", SYNC)] == 5
    assert partial[("cdnlogs_last_run_files_failed", SYNC)] == 1
    assert partial[("cdnlogs_files_failed", DOM)] == 1
    assert partial[("cdnlogs_files_downloaded_total", DOM)] == summary["fetched"] == 29
    assert partial[("cdnlogs_bytes_downloaded_total", DOM)] == summary["bytes"] > 0
    assert ("cdnlogs_last_success_timestamp_seconds", DOM) not in partial
    assert partial[("cdnlogs_files", (*DOM, ("status", "failed")))] == 1
    assert started - 1 <= partial[("cdnlogs_last_run_timestamp_seconds", SYNC)] <= time.time()
    assert partial[("cdnlogs_last_run_duration_seconds", SYNC)] >= 0

    sim.faults.missing.clear()
    code, _, _ = _run([*_sync_args(sim, out), "--metrics-file", str(prom)], capsys)
    assert code == 0
    ok = _metrics(prom)
    assert ok[("cdnlogs_last_run_exit_status", SYNC)] == 0
    assert ok[("cdnlogs_files_failed", DOM)] == 0
    assert ok[("cdnlogs_files_downloaded_total", DOM)] == 30  # a counter: 29 + 1
    assert ok[("cdnlogs_gap_hours", DOM)] == 0
    success = ok[("cdnlogs_last_success_timestamp_seconds", DOM)]
    assert started <= success <= time.time()
    assert ok[("cdnlogs_last_run_success_timestamp_seconds", SYNC)] >= success

    # ingest writes its own command's samples into the same file; sync's stay.
    code, _, _ = _run(["ingest", "--out", str(out), "--metrics-file", str(prom)], capsys)
    assert code == 0
    both = _metrics(prom)
    assert both[("cdnlogs_last_run_exit_status", INGEST)] == 0
    assert both[("cdnlogs_last_run_exit_status", SYNC)] == 0
    assert (
        both[("cdnlogs_last_run_timestamp_seconds", SYNC)]
        == ok[("cdnlogs_last_run_timestamp_seconds", SYNC)]
    )
    assert both[("cdnlogs_files_downloaded_total", DOM)] == 30
    # Written by rename: nothing but the .prom file is left in the collector's directory.
    assert [p.name for p in prom_dir.iterdir()] == ["cdnlogs.prom"]


def test_a_run_keeps_families_it_does_not_write_and_help_is_declared(tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    reconcile = Metrics("reconcile")
    reconcile.set("cdnlogs_reconcile_ratio", 0.97, domain=DOMAIN)
    write_metrics(prom, reconcile)
    sync = Metrics("sync")
    sync.set("cdnlogs_last_run_exit_status", 0)
    write_metrics(prom, sync)
    text = prom.read_text()
    samples = _metrics(prom)
    assert samples[("cdnlogs_reconcile_ratio", DOM)] == 0.97
    assert samples[("cdnlogs_last_run_exit_status", SYNC)] == 0
    assert "# TYPE cdnlogs_files_downloaded_total counter" not in text  # only what was set
    with pytest.raises(ValueError, match="takes labels"):
        sync.set("cdnlogs_gap_hours", 1)
    for name, family in FAMILIES.items():
        assert family.help.endswith(".") and name.startswith("cdnlogs_")
        assert name.endswith("_total") == (family.kind == "counter")


def test_an_unwritable_metrics_file_only_warns(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: None
) -> None:
    prom = tmp_path / "no-such-dir" / "cdnlogs.prom"
    code, _, err = _run([*_sync_args(sim, tmp_path / "out"), "--metrics-file", str(prom)], capsys)
    assert code == 0
    assert "cannot write the metrics file" in err and "the run goes on" in err


# --- pings and the webhook ----------------------------------------------------------------


def test_pings_start_then_success(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: None,
    receiver: Receiver,
) -> None:
    url = f"{receiver.url}/{PING_KEY}"
    code, _, err = _run([*_sync_args(sim, tmp_path / "out"), "--ping-url", url], capsys)
    assert code == 0, err
    assert receiver.paths() == [f"/{PING_KEY}/start", f"/{PING_KEY}"]
    body = receiver.requests[1].body.decode()
    assert body.startswith("cdnlogs sync ok on ") and "30 fetched" in body


def test_pings_fail_and_webhook_gets_a_json_summary_without_secrets(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: None,
    receiver: Receiver,
) -> None:
    broken = _hour_file(sim, 2)
    sim.faults.missing.add(broken)
    ping = f"{receiver.url}/{PING_KEY}"
    hook = f"{receiver.url}/robot/send?access_token=hooksecret123"
    args = [*_sync_args(sim, tmp_path / "out"), "--ping-url", ping, "--notify-webhook", hook]
    code, out, err = _run(args, capsys)
    assert code == ExitStatus.PARTIAL
    assert receiver.paths() == [
        f"/{PING_KEY}/start",
        f"/{PING_KEY}/fail",
        "/robot/send?access_token=hooksecret123",
    ]
    assert b"(exit 5)" in receiver.requests[1].body
    payload = json.loads(receiver.requests[2].body)
    assert payload["command"] == "sync" and payload["ok"] is False
    assert payload["exit_status"] == 5
    assert "1 of 30 listed files failed" in payload["error"]
    assert payload["text"].startswith("cdnlogs sync failed on ")
    assert [f["name"] for f in payload["summary"]["failed"]] == [broken]
    everything = b"".join(r.body for r in receiver.requests).decode() + out + err
    assert sim.access_key_secret not in everything
    assert "Signature=" not in everything and "OSSAccessKeyId=" not in everything
    assert "hooksecret123" not in out + err and PING_KEY not in out + err


def test_a_ping_server_that_is_down_or_refuses_does_not_fail_the_run(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: None,
    receiver: Receiver,
) -> None:
    down = f"http://127.0.0.1:{_free_port()}/{PING_KEY}"
    code, _, err = _run([*_sync_args(sim, tmp_path / "a"), "--ping-url", down], capsys)
    assert code == 0
    assert "ping (start) to http://127.0.0.1:" in err and "the run goes on" in err
    assert "ping (success) to" in err and PING_KEY not in err
    receiver.status = 500
    hook = f"{receiver.url}/hook?token=t0ken"
    sim.faults.missing.add(_hour_file(sim, 2))
    code, _, err = _run([*_sync_args(sim, tmp_path / "b"), "--notify-webhook", hook], capsys)
    assert code == ExitStatus.PARTIAL  # the run's own status, not the webhook's
    assert "webhook to " + receiver.url + " answered HTTP 500" in err and "t0ken" not in err


def test_a_ping_url_that_is_not_http_is_refused_without_echoing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        ["sync", "--domain", DOMAIN, "--out", str(tmp_path), "--ping-url", "ftp://k3y@x/y"], capsys
    )
    assert code == ExitStatus.USAGE
    assert "--ping-url: must be an http:// or https:// URL" in err and "k3y" not in err


# --- the schedule -------------------------------------------------------------------------


def test_schedule_skips_ticks_a_long_tick_overran_and_keeps_its_grid() -> None:
    clock = [100.0]
    ticks: list[tuple[int, float]] = []
    skipped: list[int] = []
    durations = {1: 1.0, 2: 25.0, 3: 1.0}

    def tick(number: int) -> None:
        ticks.append((number, clock[0]))
        clock[0] += durations[number]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    ran = run_every(
        Schedule(every=10.0),
        tick,
        on_skip=skipped.append,
        max_ticks=3,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    assert ran == 3
    # Tick 2 ran 110..135: the slots at 120 and 130 are skipped, tick 3 runs at 140.
    assert ticks == [(1, 100.0), (2, 110.0), (3, 140.0)]
    assert skipped == [2]


def test_jitter_delays_each_tick_within_its_bound() -> None:
    schedule = Schedule(every=60.0, jitter=5.0)
    dues = [schedule.due(0.0, slot) - slot * 60.0 for slot in range(200)]
    assert all(0.0 <= d <= 5.0 for d in dues) and len(set(dues)) > 100


def test_ledger_run_totals_sum_every_run(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _sync_library(sim, out)
    _sync_library(sim, out)
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        files, nbytes = manifest.run_totals()[DOMAIN]
    window = [f for f in sim.files(DOMAIN) if f.start >= NOW - timedelta(hours=30)]
    assert files == len(window) == 30 and nbytes == sum(f.size for f in window)


# --- reconcile's metrics ------------------------------------------------------------------


def test_reconcile_writes_its_ratio_and_a_later_sync_keeps_it(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: None
) -> None:
    out = tmp_path / "out"
    prom = tmp_path / "cdnlogs.prom"
    sync = [*_sync_args(sim, out), "--ingest", "--metrics-file", str(prom)]
    assert _run(sync, capsys)[0] == 0
    window = ["--since", iso_utc(NOW - timedelta(hours=30)), "--settle", "2h"]
    reconcile = ["reconcile", "--out", str(out), "--endpoint", sim.endpoint, *window]
    code, _, err = _run([*reconcile, "--metrics-file", str(prom)], capsys)
    assert code == 0, err
    ok = _metrics(prom)
    assert ok[("cdnlogs_reconcile_ratio", DOM)] == pytest.approx(1.0, abs=0.05)
    assert ok[("cdnlogs_reconcile_requests_ratio", DOM)] == pytest.approx(1.0, abs=0.05)
    assert ok[("cdnlogs_reconcile_short_hours", DOM)] == 0
    assert ok[("cdnlogs_last_run_exit_status", (("command", "reconcile"),))] == 0
    assert ok[("cdnlogs_last_run_exit_status", SYNC)] == 0  # sync's samples were kept
    assert _run(sync, capsys)[0] == 0
    kept = _metrics(prom)
    assert kept[("cdnlogs_reconcile_ratio", DOM)] == ok[("cdnlogs_reconcile_ratio", DOM)]


def test_watch_reconcile_needs_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        ["watch", "--domain", DOMAIN, "--out", str(tmp_path), "--reconcile"], capsys
    )
    assert code == ExitStatus.USAGE
    assert "--reconcile compares the dataset with the provider: it needs --ingest" in err


def test_check_window_judges_whole_settled_hours_inside_the_look_back() -> None:
    now = datetime(2026, 12, 2, 7, 38, tzinfo=UTC)
    start, end = check_window(
        now=now, since=None, lookback=timedelta(hours=72), settle=timedelta(hours=24)
    )
    # Sync lists [now - 72h, now): the hour 07:00 of 11-29 starts before that, so it is left out.
    assert start == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert end == datetime(2026, 12, 1, 7, tzinfo=UTC)  # 07:00-08:00 ended less than 24 h ago
    aligned = datetime(2026, 11, 30, 3, tzinfo=UTC)
    assert check_window(now=now, since=aligned, lookback=timedelta(0), settle=timedelta(0)) == (
        aligned,
        datetime(2026, 12, 2, 7, tzinfo=UTC),
    )
    # A settle longer than the window leaves nothing to judge (an empty window, not an error).
    assert (
        check_window(now=now, since=None, lookback=timedelta(hours=6), settle=timedelta(hours=24))
        == (datetime(2026, 12, 2, 2, tzinfo=UTC),) * 2
    )


def test_a_run_without_hooks_loads_neither_requests_nor_prometheus_client(tmp_path: Path) -> None:
    """ingest stays free of the HTTP stack; the hooks' libraries load only when asked for."""
    code = (
        "import sys\n"
        "from cdnlogs.cli import main\n"
        f"sys.argv = ['cdnlogs', 'ingest', '--out', {str(tmp_path / 'out')!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('requests', 'prometheus_client')\n"
        "print('loaded=' + ','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.splitlines()[-1] == "loaded="
    with_hook = code.replace("'--out'", "'--metrics-file', 'm.prom', '--out'")
    done = subprocess.run(
        [sys.executable, "-c", with_hook], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stderr.splitlines()[-1] == "loaded=prometheus_client"
    assert (tmp_path / "m.prom").exists()
