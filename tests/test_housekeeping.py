"""status, verify, prune and adopt: the library functions and the commands, on real files."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdnlogs.cli import main
from cdnlogs.config import DEFAULT_LAYOUT
from cdnlogs.errors import ExitStatus, UsageError
from cdnlogs.housekeeping import (
    HourRange,
    adopt_files,
    archive_status,
    hour_ranges,
    prune_archive,
    status_window,
    verify_archive,
)
from cdnlogs.lock import ArchiveLock
from cdnlogs.manifest import Manifest, RunRecord, Status
from cdnlogs.models import PROVIDER_TZ, LogFile
from cdnlogs.storage import relative_path

DOMAIN = "a.example.com"
NOW = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)


def status_of(ledger: Manifest, name: str) -> Status:
    """The ledger status of ``DOMAIN``'s file ``name`` (which must have a row)."""
    row = ledger.get(DOMAIN, name)
    assert row is not None, name
    return row.status


def hour(h: int, base: datetime = NOW) -> datetime:
    """The hour start ``h`` hours before ``base``'s hour."""
    return base.replace(minute=0, second=0, microsecond=0) - timedelta(hours=h)


def log_file(start: datetime, domain: str = DOMAIN, suffix: str = "") -> LogFile:
    local = start.astimezone(PROVIDER_TZ)
    end = local + timedelta(hours=1)
    name = f"{domain}_{local:%Y_%m_%d_%H%M%S}_{end:%H%M%S}{suffix}.gz"
    return LogFile(domain, name, "https://h/x?Signature=s", 0, start, start + timedelta(hours=1))


def store(manifest: Manifest, out: Path, f: LogFile, fmt: str = "log") -> Path:
    """Write a file as sync would and record it done."""
    text = f"line of {f.name}\n".encode() * 3
    gz = gzip.compress(text, mtime=0)
    body = text if fmt == "log" else gz
    rel = relative_path(DEFAULT_LAYOUT, f, fmt)
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    listed = LogFile(f.domain, f.name, f.url, len(gz), f.start, f.end)
    manifest.record_listed([listed])
    manifest.mark_done(
        f.domain,
        f.name,
        sha256=hashlib.sha256(gz).hexdigest(),
        plain_size=len(text),
        plain_checksum=f"crc32:{zlib.crc32(text):08x}",
        local_path=rel.as_posix(),
        fmt=fmt,
    )
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def ledger(out: Path):
    with Manifest.open(out / ".cdnlogs", clock=lambda: NOW) as manifest:
        yield manifest


# -- status ---------------------------------------------------------------------------------


def test_hour_ranges_collapse_consecutive_hours() -> None:
    hours = [hour(10), hour(9), hour(8), hour(5), hour(1), hour(1)]
    assert hour_ranges(hours) == [
        HourRange(hour(10), hour(7)),
        HourRange(hour(5), hour(4)),
        HourRange(hour(1), hour(0)),
    ]
    assert [r.hours for r in hour_ranges(hours)] == [3, 1, 1]


def test_status_window_defaults_to_the_lookback() -> None:
    assert status_window(now=NOW, since=None, lookback=timedelta(hours=72)) == (
        datetime(2026, 11, 25, 12, tzinfo=UTC),
        datetime(2026, 11, 28, 12, tzinfo=UTC),
    )
    since = datetime(2026, 11, 28, 2, 45, tzinfo=UTC)
    assert status_window(now=NOW, since=since, lookback=timedelta(hours=72))[0] == hour(10)


def test_status_counts_gaps_and_last_sync(ledger: Manifest, out: Path) -> None:
    for h in (10, 9, 6, 3, 2):
        store(ledger, out, log_file(hour(h)))
    # A second file for hour 2 (the provider split it) and one still pending for hour 1.
    store(ledger, out, log_file(hour(2), suffix="_2"))
    ledger.record_listed([log_file(hour(1))])
    ledger.mark_pruned(DOMAIN, log_file(hour(10)).name)
    ledger.record_listed([log_file(hour(4), "b.example.com")])
    ledger.record_run(RunRecord(DOMAIN, NOW, NOW + timedelta(minutes=1), True, "{}"))
    ledger.record_run(RunRecord(DOMAIN, NOW, NOW + timedelta(minutes=5), False, "{}"))

    result = archive_status(ledger, window_start=hour(12), window_end=hour(0))
    assert [d.domain for d in result] == [DOMAIN, "b.example.com"]
    a, b = result
    assert a.counts[Status.DONE] == 5 and a.counts[Status.PRUNED] == 1
    assert a.counts[Status.PENDING] == 1 and a.counts[Status.FAILED] == 0
    assert a.hours_covered == 5  # 10 (pruned still counts as archived), 9, 6, 3, 2
    assert a.first_hour == hour(10) and a.last_hour == hour(2)
    assert a.gaps == [
        HourRange(hour(12), hour(10)),
        HourRange(hour(8), hour(6)),
        HourRange(hour(5), hour(3)),
        HourRange(hour(1), hour(0)),
    ]
    assert a.missing_hours == 7
    assert a.bytes_stored == sum(
        len(f"line of {log_file(hour(h), suffix=s).name}\n") * 3
        for h, s in ((9, ""), (6, ""), (3, ""), (2, ""), (2, "_2"))
    )
    assert a.last_sync == NOW + timedelta(minutes=1)
    assert b.hours_covered == 0 and b.missing_hours == 12 and b.last_sync is None
    only_b = archive_status(
        ledger, window_start=hour(2), window_end=hour(0), domains=["b.example.com"]
    )
    assert [d.domain for d in only_b] == ["b.example.com"]


# -- verify ---------------------------------------------------------------------------------


def test_verify_catches_deleted_and_corrupted_files(ledger: Manifest, out: Path) -> None:
    good = store(ledger, out, log_file(hour(5)))
    deleted = store(ledger, out, log_file(hour(4)))
    corrupt = store(ledger, out, log_file(hour(3)))
    gz_good = store(ledger, out, log_file(hour(2)), fmt="gz")
    gz_bad = store(ledger, out, log_file(hour(1)), fmt="gz")
    deleted.unlink()
    data = bytearray(corrupt.read_bytes())
    data[3] ^= 0x01  # same size, different bytes: only the checksum can tell
    corrupt.write_bytes(bytes(data))
    gz_bad.write_bytes(gz_bad.read_bytes()[:-4])

    result = verify_archive(ledger, out)
    assert (result.checked, result.ok) == (5, 2)
    reasons = {p.log_name: p.reason for p in result.problems}
    assert reasons == {
        log_file(hour(4)).name: "missing",
        log_file(hour(3)).name: "checksum mismatch",
        log_file(hour(1)).name: f"size {gz_bad.stat().st_size}, expected "
        f"{gz_bad.stat().st_size + 4}",
    }
    rows = {r.log_name: r for r in ledger.records()}
    for name in reasons:
        assert rows[name].status is Status.PENDING
        assert (rows[name].last_error or "").startswith("verify: ")
    assert rows[log_file(hour(5)).name].status is Status.DONE
    assert rows[log_file(hour(2)).name].status is Status.DONE
    assert good.exists() and gz_good.exists()
    # The bad ones are no longer "done": a second pass finds nothing wrong.
    again = verify_archive(ledger, out)
    assert (again.checked, again.ok, again.problems) == (2, 2, [])


def test_verify_without_fix_changes_nothing(ledger: Manifest, out: Path) -> None:
    store(ledger, out, log_file(hour(1))).unlink()
    result = verify_archive(ledger, out, fix=False)
    assert len(result.problems) == 1
    assert ledger.records()[0].status is Status.DONE


def test_verify_refuses_a_path_escaping_out(ledger: Manifest, out: Path, tmp_path: Path) -> None:
    f = log_file(hour(1))
    path = store(ledger, out, f)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    path.unlink()
    (outside / path.name).write_bytes(b"x")
    path.symlink_to(outside / path.name)
    result = verify_archive(ledger, out)
    assert result.problems[0].reason.startswith("unsafe local path")


# -- prune ----------------------------------------------------------------------------------


def test_prune_goes_by_log_hour_not_mtime(ledger: Manifest, out: Path) -> None:
    old = store(ledger, out, log_file(hour(200)))
    recent = store(ledger, out, log_file(hour(5)))
    # mtimes say the opposite of the log hours: prune must not look at them.
    os.utime(old, (NOW.timestamp(), NOW.timestamp()))
    ancient = (NOW - timedelta(days=60)).timestamp()
    os.utime(recent, (ancient, ancient))
    stranger = out / DOMAIN / "2026" / "01" / "01" / "not-in-ledger.log"
    stranger.parent.mkdir(parents=True)
    stranger.write_text("keep me")
    os.utime(stranger, (ancient, ancient))

    dry = prune_archive(ledger, out, timedelta(days=7), NOW, dry_run=True)
    assert [f.log_name for f in dry.files] == [log_file(hour(200)).name]
    assert dry.bytes == old.stat().st_size and dry.dry_run
    assert old.exists() and status_of(ledger, log_file(hour(200)).name) is Status.DONE

    done = prune_archive(ledger, out, timedelta(days=7), NOW)
    assert [f.log_name for f in done.files] == [log_file(hour(200)).name]
    assert not old.exists() and not old.parent.exists()  # empty day folder removed
    assert recent.exists() and stranger.exists()
    rows = {r.log_name: r.status for r in ledger.records()}
    assert rows == {log_file(hour(200)).name: Status.PRUNED, log_file(hour(5)).name: Status.DONE}
    # A pruned file is never brought back by a later listing.
    ledger.record_listed([log_file(hour(200))])
    assert status_of(ledger, log_file(hour(200)).name) is Status.PRUNED
    assert prune_archive(ledger, out, timedelta(days=7), NOW).files == []


def test_prune_boundary_and_missing_file(ledger: Manifest, out: Path) -> None:
    # hour_end == cutoff is kept; one hour older goes, even if its file is already gone.
    store(ledger, out, log_file(hour(24)))
    store(ledger, out, log_file(hour(25))).unlink()
    result = prune_archive(ledger, out, timedelta(hours=23, minutes=30), NOW)
    assert [f.log_name for f in result.files] == [log_file(hour(25)).name]
    assert status_of(ledger, log_file(hour(25)).name) is Status.PRUNED
    with pytest.raises(UsageError):
        prune_archive(ledger, out, timedelta(0), NOW)


# -- adopt ----------------------------------------------------------------------------------


def old_script_dir(tmp_path: Path, hours: list[int], base: datetime = NOW) -> Path:
    """A `download/` folder as the original script left it: `<LogName minus .gz>.txt`."""
    download = tmp_path / "download"
    download.mkdir()
    for h in hours:
        name = log_file(hour(h, base)).name[:-3] + ".txt"
        (download / name).write_text(f"text of hour {h}\n")
    (download / ".download").write_text('["x.gz"]')
    (download / "README").write_text("not a log")
    (download / "other.txt").write_text("not a log either")
    return download


def test_adopt_old_script_txt_files(ledger: Manifest, out: Path, tmp_path: Path) -> None:
    download = old_script_dir(tmp_path, [3, 2, 1])
    result = adopt_files(ledger, download, out, layout=DEFAULT_LAYOUT)
    assert len(result.adopted) == 3 and result.skipped == []
    assert sorted(p.name for p in result.unrecognised) == ["README", "other.txt"]
    f = log_file(hour(1))
    row = ledger.get(DOMAIN, f.name)
    assert row is not None and row.status is Status.DONE and row.format == "log"
    assert (row.hour_start, row.hour_end) == (f.start, f.end)
    assert row.local_path == relative_path(DEFAULT_LAYOUT, f, "log").as_posix()
    assert (out / row.local_path).read_text() == "text of hour 1\n"
    assert row.plain_lines == 1  # counted like sync does, so ingest need not count it again
    assert (download / (f.name[:-3] + ".txt")).exists()  # copied, not moved
    # Sync would now list the same names and find nothing to fetch.
    ledger.record_listed([f])
    assert ledger.get(DOMAIN, f.name) == row
    assert verify_archive(ledger, out).problems == []
    again = adopt_files(ledger, download, out, layout=DEFAULT_LAYOUT)
    assert again.adopted == [] and len(again.skipped) == 3


def test_adopt_move_gz_domain_filter_and_bad_gzip(
    ledger: Manifest, out: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src" / "nested"
    src.mkdir(parents=True)
    good = log_file(hour(2))
    (src / good.name).write_bytes(gzip.compress(b"a\n" * 10) + gzip.compress(b"b\n"))
    (src / log_file(hour(3)).name).write_bytes(gzip.compress(b"x" * 1000)[:-10])
    other = log_file(hour(2), "b.example.com")
    (src / (other.name[:-3] + ".log")).write_text("b\n")
    result = adopt_files(
        ledger, tmp_path / "src", out, layout=DEFAULT_LAYOUT, domains=[DOMAIN], move=True
    )
    assert [a.log_name for a in result.adopted] == [good.name]
    assert result.adopted[0].action == "moved" and not (src / good.name).exists()
    reasons = sorted(reason for _, reason in result.skipped)
    assert reasons == [
        "corrupt gzip: the stream ends inside a member",
        "domain b.example.com not selected",
    ]
    row = ledger.get(DOMAIN, good.name)
    assert row is not None and row.format == "gz" and row.plain_size == 22
    plain = b"a\n" * 10 + b"b\n"
    assert row.plain_checksum == f"crc32:{zlib.crc32(plain):08x}"
    assert row.plain_lines == 11  # across both gzip members
    assert verify_archive(ledger, out).problems == []


def test_adopt_in_place_inside_out(ledger: Manifest, out: Path) -> None:
    # An archive whose ledger was lost: its own files are recorded where they are.
    f = log_file(hour(1))
    path = out / "legacy" / (f.name[:-3] + ".txt")
    path.parent.mkdir()
    path.write_text("x\n")
    result = adopt_files(ledger, out, out, layout=DEFAULT_LAYOUT)
    assert [(a.action, a.local_path) for a in result.adopted] == [
        ("recorded", f"legacy/{path.name}")
    ]
    assert ledger.records()[0].local_path == f"legacy/{path.name}"


# -- the commands ---------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_status_without_a_ledger(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, stdout, err = run(capsys, "status", "--out", str(tmp_path / "nothing"))
    assert code == ExitStatus.ERROR and stdout == ""
    assert "Error: no archive ledger at" in err and "hint:" in err


def test_commands_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The commands use the real clock, so the files are placed relative to it.
    now = datetime.now(UTC)
    out = tmp_path / "out"
    download = old_script_dir(tmp_path, [30, 20, 3, 2], base=now)

    code, stdout, _ = run(capsys, "adopt", str(download), "--out", str(out), "--json")
    assert code == ExitStatus.OK
    adopted = json.loads(stdout)
    assert (adopted["adopted"], adopted["skipped"], adopted["unrecognised"]) == (4, 0, 2)

    code, stdout, _ = run(capsys, "status", "--out", str(out), "--since", "2d", "--json")
    assert code == ExitStatus.OK
    status = json.loads(stdout)
    (dom,) = status["domains"]
    assert dom["domain"] == DOMAIN and dom["counts"]["done"] == 4
    assert dom["hours_covered"] == 4 and dom["missing_hours"] == 48 - 4
    assert sum(g["hours"] for g in dom["gaps"]) == 44 and len(dom["gaps"]) == 4
    assert all(set(g) == {"start", "end", "hours"} for g in dom["gaps"])
    # --domain takes a comma-separated list, like sync's
    both = f"{DOMAIN}, other.example.com"
    code, stdout, _ = run(capsys, "status", "--out", str(out), "--domain", both, "--json")
    assert code == ExitStatus.OK
    listed = {d["domain"]: d["counts"].get("done", 0) for d in json.loads(stdout)["domains"]}
    assert listed == {DOMAIN: 4, "other.example.com": 0}

    code, stdout, _ = run(capsys, "status", "--out", str(out))
    assert code == ExitStatus.OK and DOMAIN in stdout and "no file yet for" in stdout

    code, stdout, _ = run(capsys, "verify", "--out", str(out), "--json")
    assert code == ExitStatus.OK and json.loads(stdout)["ok"] == 4

    victim = log_file(hour(2, now))
    (out / relative_path(DEFAULT_LAYOUT, victim, "log")).unlink()
    code, stdout, err = run(capsys, "verify", "--out", str(out), "--json")
    assert code == ExitStatus.PARTIAL
    report = json.loads(stdout)
    assert report["bad"] == 1 and report["problems"][0]["reason"] == "missing"
    assert "1 of 4 files missing or corrupt" in err

    code, stdout, _ = run(capsys, "prune", "--out", str(out), "--keep", "1d", "--dry-run", "--json")
    assert code == ExitStatus.OK
    dry = json.loads(stdout)
    # Only hour 30 ended more than a day ago.
    assert dry["dry_run"] and [f["log_name"] for f in dry["pruned"]] == [
        log_file(hour(30, now)).name
    ]
    assert len(list(out.rglob("*.log"))) == 3

    code, stdout, _ = run(capsys, "prune", "--out", str(out), "--keep", "1d")
    assert code == ExitStatus.OK and "Deleted 1 files" in stdout
    assert len(list(out.rglob("*.log"))) == 2

    code, _, err = run(capsys, "prune", "--out", str(out))
    assert code == ExitStatus.USAGE and "--keep" in err


def test_commands_respect_the_lock(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    Manifest.open(out / ".cdnlogs").close()
    with ArchiveLock(out / ".cdnlogs", purpose="sync"):
        code, _, err = run(capsys, "verify", "--out", str(out))
    assert code == ExitStatus.ERROR and "another cdnlogs sync" in err


@pytest.mark.parametrize("command", ["status", "verify", "prune", "adopt"])
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, stdout, _ = run(capsys, command, "--help")
    assert code == ExitStatus.OK and "--out" in stdout and "Usage:" in stdout


def test_library_entry_points_take_the_archive_lock(tmp_path: Path) -> None:
    """verify, prune, adopt, ingest and compact from the library refuse to run beside a holder."""
    from cdnlogs.compaction import compact_archive, run_compact
    from cdnlogs.config import Settings
    from cdnlogs.errors import LockedError
    from cdnlogs.housekeeping import run_adopt, run_prune, run_verify
    from cdnlogs.ingest import ingest_archive, run_ingest

    out = tmp_path / "out"
    with Manifest.open(out / ".cdnlogs") as manifest:
        store(manifest, out, log_file(hour(100)))
    settings = Settings(out_dir=out)
    (tmp_path / "old").mkdir()
    calls = {
        "verify": lambda: run_verify(settings),
        "prune": lambda: run_prune(settings, timedelta(days=1), now=NOW),
        "adopt": lambda: run_adopt(settings, tmp_path / "old"),
        "ingest": lambda: ingest_archive(settings, now=NOW),
        "run_ingest": lambda: run_ingest(settings, now=NOW),
        "compact": lambda: compact_archive(settings, now=NOW),
        "run_compact": lambda: run_compact(settings, now=NOW),
    }
    refused = []
    with ArchiveLock(out / ".cdnlogs", purpose="sync"):
        for name, call in calls.items():
            with contextlib.suppress(LockedError):
                call()
                continue
            refused.append(name)
    assert refused == list(calls)
    with Manifest.open(out / ".cdnlogs") as manifest:  # nothing was changed
        assert [r.status for r in manifest.records()] == [Status.DONE]
    # Without a holder they run, and release the lock (the next one gets it).
    assert run_verify(settings).ok == 1
    assert run_prune(settings, timedelta(days=1), now=NOW).files
    assert run_adopt(settings, tmp_path / "old").adopted == []
