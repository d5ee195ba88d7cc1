"""`cdnlogs reconcile`: the judge (pure), then end to end over real HTTP against the simulator.

End-to-end runs sync and ingest a day of the simulator's files, then reconcile them against its
monitoring series (1.1 x response bytes with noise, requests counted 45 s late so a request of
an hour's last seconds spills into the next hour). A hidden or truncated file must make exactly
its hour fall short, with exit status 6.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdnlogs.cli import main
from cdnlogs.config import Settings
from cdnlogs.errors import ApiError, ExitStatus
from cdnlogs.logformat import parse_line
from cdnlogs.providers.aliyun import AliyunCdnProvider
from cdnlogs.providers.aliyun_shapes import parse_series
from cdnlogs.reconcile import (
    ReconcileOptions,
    Verdict,
    compare,
    judge_domain,
    settled_window,
)
from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: The 24 hours up to 2 hours before NOW, in absolute times so that a test running across an
#: hour boundary judges the same hours (the simulator's files are pinned to NOW).
WINDOW = (
    "--since",
    f"{NOW - timedelta(hours=26):%Y-%m-%dT%H:%M:%SZ}",
    "--until",
    f"{NOW - timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ}",
    "--settle",
    "2h",
)
#: Lines per simulated hour: enough that one large response spilling across an hour boundary
#: (the provider counts 45 s late) moves well under the 10% tolerance of an hour's bytes. With
#: 120 the spill reached 11% in some hours, so a complete archive failed at those hours.
LINES = 1200
H0 = datetime(2026, 11, 30, 16, tzinfo=UTC)  # 00:00 on 2026-12-01 in +08:00


# --- the judge ------------------------------------------------------------------------------


def test_compare_flags_short_and_over_outside_the_tolerance() -> None:
    assert compare(1000, 1.1, 1100.0, 0.1).verdict is Verdict.OK
    assert compare(1000, 1.1, 1100.0, 0.1).ratio == pytest.approx(1.0)
    assert compare(900, 1.1, 1100.0, 0.1).verdict is Verdict.OK  # ratio 0.9: on the edge
    assert compare(899, 1.1, 1100.0, 0.1).verdict is Verdict.SHORT
    assert compare(1099, 1.1, 1100.0, 0.1).verdict is Verdict.OK
    assert compare(1101, 1.1, 1100.0, 0.1).verdict is Verdict.OVER
    assert compare(0, 1.0, 50.0, 0.1).verdict is Verdict.SHORT
    assert compare(0, 1.0, None, 0.1).verdict is Verdict.OK  # nothing on either side
    assert compare(5, 1.0, None, 0.1).verdict is Verdict.NO_DATA
    assert compare(5, 1.0, 0.0, 0.1).verdict is Verdict.OVER


def _hours(n: int) -> list[datetime]:
    return [H0 + timedelta(hours=i) for i in range(n)]


def test_judge_flags_the_short_hour_and_sums_days_in_the_provider_timezone() -> None:
    hours = _hours(4)
    provider_requests = dict.fromkeys(hours, 100)
    provider_bytes = dict.fromkeys(hours, 110_000.0)
    logged_requests = {h: 100 for h in hours} | {hours[2]: 50}
    logged_bytes = {h: 100_000 for h in hours} | {hours[2]: 50_000}
    result = judge_domain(
        DOMAIN,
        hours,
        logged_requests=logged_requests,
        logged_bytes=logged_bytes,
        provider_requests=provider_requests,
        provider_bytes=provider_bytes,
    )
    assert [h.verdict for h in result.hours] == [Verdict.OK, Verdict.OK, Verdict.SHORT, Verdict.OK]
    assert [h.hour for h in result.short_hours] == [hours[2]]
    assert result.hours[2].bytes.ratio == pytest.approx(0.5)
    # 16:00Z is midnight in +08:00: all four hours are on the provider's 2026-12-01.
    assert [d.day.isoformat() for d in result.days] == ["2026-12-01"]
    assert result.days[0].verdict is Verdict.SHORT  # 350/400 is more than 5% short
    assert result.verdict is Verdict.SHORT
    assert result.ratio == pytest.approx(350_000 * 1.1 / 440_000)


def test_a_spill_between_neighbour_hours_passes_and_the_day_evens_it_out() -> None:
    hours = _hours(2)
    result = judge_domain(
        DOMAIN,
        hours,
        logged_requests={hours[0]: 104, hours[1]: 96},
        logged_bytes={hours[0]: 1040, hours[1]: 960},
        provider_requests={hours[0]: 100, hours[1]: 100},
        provider_bytes={hours[0]: 1100.0, hours[1]: 1100.0},
        options=ReconcileOptions(day_tolerance=0.001),
    )
    assert [h.verdict for h in result.hours] == [Verdict.OK, Verdict.OK]
    assert result.days[0].requests.ratio == pytest.approx(1.0)
    assert result.days[0].verdict is Verdict.OK


def test_small_hours_are_left_to_their_day() -> None:
    hours = _hours(3)
    result = judge_domain(
        DOMAIN,
        hours,
        logged_requests={hours[0]: 2, hours[1]: 100, hours[2]: 100},
        logged_bytes={hours[0]: 20, hours[1]: 1000, hours[2]: 1000},
        provider_requests={hours[0]: 5, hours[1]: 100, hours[2]: 100},
        provider_bytes={hours[0]: 55.0, hours[1]: 1100.0, hours[2]: 1100.0},
        options=ReconcileOptions(min_requests=20),
    )
    assert result.hours[0].verdict is Verdict.FEW
    assert result.days[0].verdict is Verdict.OK  # 202 of 205 requests: within 5%
    assert result.verdict is Verdict.FEW
    big_loss = judge_domain(
        DOMAIN,
        hours[:1],
        logged_requests={hours[0]: 0},
        logged_bytes={hours[0]: 0},
        provider_requests={hours[0]: 5},
        provider_bytes={hours[0]: 55.0},
        options=ReconcileOptions(min_requests=20),
    )
    assert big_loss.hours[0].verdict is Verdict.FEW  # too small to alert on alone


def test_settled_window_keeps_whole_hours_older_than_the_settle_time() -> None:
    now = datetime(2026, 12, 2, 7, 38, tzinfo=UTC)
    start, end = settled_window(
        now - timedelta(hours=72, minutes=10), now, now=now, settle=timedelta(hours=24)
    )
    assert start == datetime(2026, 11, 29, 7, tzinfo=UTC)  # the hour holding --since is in
    assert end == datetime(2026, 12, 1, 7, tzinfo=UTC)  # 07:00-08:00 is not settled yet


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        domains=(DOMAIN,),
        days=1,
        lines_per_file=LINES,
        now=NOW,
        split_fraction=0.0,
        monitoring_lag_seconds=45,
    )
    with Simulator(config) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, sim: Simulator) -> Path:
    path = tmp_path / "cdnlogs.toml"
    path.write_text(
        f'endpoint = "{sim.endpoint}"\nlog_scheme = "http"\nout = "{tmp_path / "out"}"\n'
        "api_attempts = 2\n"
        f'[credentials]\naccess_key_id = "{sim.access_key_id}"\n'
        f'access_key_secret = "{sim.access_key_secret}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``cdnlogs argv`` through main(); return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def sync(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> None:
    code, _, err = run(capsys, "sync", "--config", str(config), "--domain", DOMAIN, *extra)
    assert code == 0, err


def reconcile(
    capsys: pytest.CaptureFixture[str], config: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    argv = ["reconcile", "--config", str(config), *WINDOW, "--json"]
    code, out, err = run(capsys, *argv, *extra)
    return code, json.loads(out), err


def _served_lines(sim: Simulator, start: datetime, end: datetime) -> list[str]:
    lines: list[str] = []
    for sim_file in sim.files(DOMAIN):
        if start <= sim_file.start < end:
            lines += gzip.decompress(sim_file.read_bytes()).decode().splitlines()
    return lines


def _counted_by_now(sim: Simulator) -> int:
    """Lines the provider has counted by NOW: those logged more than the 45 s lag before it."""
    lines = _served_lines(sim, NOW - timedelta(days=2), NOW)
    return sum(parse_line(line).time + timedelta(seconds=45) < NOW for line in lines)


def test_a_complete_archive_passes_and_the_json_has_every_hour(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(capsys, config, "--since", "30h", "--ingest")
    code, doc, err = reconcile(capsys, config)
    assert code == ExitStatus.OK, err
    assert (doc["ok"], doc["verdict"], doc["product"]) == (True, "ok", "cdn")
    assert (doc["factor"], doc["tolerance"], doc["day_tolerance"]) == (1.1, 0.1, 0.05)
    start, end = (datetime.fromisoformat(doc[k].replace("Z", "+00:00")) for k in ("start", "end"))
    assert (start, end) == (NOW - timedelta(hours=26), NOW - timedelta(hours=2))
    (domain,) = doc["domains"]
    assert domain["domain"] == DOMAIN and domain["short_hours"] == []
    assert len(domain["hours"]) == 24
    hour = domain["hours"][5]
    assert set(hour) == {"hour", "local_hour", "files", "bytes", "requests", "verdict"}
    assert set(hour["bytes"]) == {"logged", "expected", "provider", "ratio", "verdict"}
    assert hour["local_hour"].endswith("+08:00") and hour["files"] == 1
    # The logged side is what the simulator served, counted independently here.
    lines = [parse_line(x) for x in _served_lines(sim, start, end)]
    assert sum(h["requests"]["logged"] for h in domain["hours"]) == len(lines)
    assert sum(h["bytes"]["logged"] for h in domain["hours"]) == sum(
        r.response_bytes or 0 for r in lines
    )
    # The provider's side carries the spill: some hour differs by a request, yet passes.
    spilled = [h for h in domain["hours"] if h["requests"]["provider"] != h["requests"]["logged"]]
    assert spilled and all(h["verdict"] == "ok" for h in spilled)
    assert domain["ratio"] == pytest.approx(1.0, abs=0.02)
    assert sim.api_calls["DescribeDomainTrafficData"] == 1
    assert sim.api_calls["DescribeDomainQpsData"] == 1


def test_the_table_lists_hours_and_days(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(capsys, config, "--since", "30h", "--ingest")
    code, out, err = run(capsys, "reconcile", "--config", str(config), *WINDOW)
    assert code == 0, err
    first = NOW - timedelta(hours=26)
    assert f"{first:%Y-%m-%d %H}:00" in out
    assert "per day (+08:00)" in out and "Overall: ok" in out


@pytest.mark.parametrize("fault", ["hidden", "truncated"])
def test_a_lost_file_makes_exactly_its_hour_fall_short(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    victim = sim.files(DOMAIN)[10]
    if fault == "hidden":
        sim.hide_file(victim.name)
    else:
        sim.truncate_file(victim.name, keep_lines=LINES * 2 // 3)  # two thirds of the hour's lines
    sync(capsys, config, "--since", "30h", "--ingest")
    code, doc, err = reconcile(capsys, config)
    assert code == ExitStatus.SHORT
    assert int(ExitStatus.SHORT) == 6  # documented in the README's exit table
    assert doc["ok"] is False and doc["verdict"] == "short"
    (domain,) = doc["domains"]
    assert domain["short_hours"] == [victim.start.strftime("%Y-%m-%dT%H:%M:%SZ")]
    (short,) = [h for h in domain["hours"] if h["verdict"] == "short"]
    assert short["requests"]["provider"] >= LINES
    assert short["requests"]["logged"] == (0 if fault == "hidden" else LINES * 2 // 3)
    assert short["files"] == (0 if fault == "hidden" else 1)
    assert f"{DOMAIN} {victim.start:%Y-%m-%dT%H}Z" in err
    assert "1 hour(s)" in err and "hint:" in err


def test_downloaded_but_not_ingested_hours_fall_short_with_an_ingest_hint(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(capsys, config, "--since", "30h")  # no --ingest
    code, doc, err = reconcile(capsys, config)
    assert code == ExitStatus.SHORT
    assert doc["domains"][0]["not_ingested"] == 22  # the window's hours that have files
    assert "run `cdnlogs ingest`" in err


def test_a_refused_monitoring_call_names_the_code_and_request_id(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(capsys, config, "--since", "30h", "--ingest")
    sim.faults.force_api_error("Forbidden.RAM")
    code, out, err = run(capsys, "reconcile", "--config", str(config), *WINDOW)
    assert code == ExitStatus.API
    assert out == ""
    (line, hint) = err.strip().splitlines()
    assert line.startswith("Error: Forbidden.RAM: ") and "(RequestId " in line
    assert hint == "hint: the RAM user needs cdn:DescribeDomainTrafficData"


def test_a_window_with_no_settled_hour_is_a_usage_error(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(capsys, config, "--since", "30h", "--ingest")
    code, _, err = run(capsys, "reconcile", "--config", str(config), "--since", "3h")
    assert code == ExitStatus.USAGE
    assert "no settled hour" in err and "reconcile_settle" in err
    assert sim.api_calls["DescribeDomainTrafficData"] == 0


def test_factor_and_tolerance_come_from_env_and_flags(
    sim: Simulator,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sync(capsys, config, "--since", "30h", "--ingest")
    # A factor of 1.0 leaves every hour ~9% short of the provider's 1.1x traffic ...
    monkeypatch.setenv("CDNLOGS_RECONCILE_FACTOR", "1.0")
    monkeypatch.setenv("CDNLOGS_RECONCILE_TOLERANCE", "0.05")
    code, doc, _ = reconcile(capsys, config)
    assert code == ExitStatus.SHORT and doc["factor"] == 1.0
    assert len(doc["domains"][0]["short_hours"]) >= 15  # a big spilled response may save one
    assert doc["domains"][0]["short_days"]  # but not a whole day
    # ... which a wide enough tolerance (the flag beats the environment) accepts.
    code, doc, err = reconcile(capsys, config, "--tolerance", "0.3", "--day-tolerance", "0.3")
    assert code == ExitStatus.OK, err
    assert doc["tolerance"] == 0.3


def test_hourly_counts_ask_at_most_31_days_per_call(sim: Simulator) -> None:
    settings = Settings(
        endpoint=sim.endpoint,
        access_key_id=sim.access_key_id,
        access_key_secret=sim.access_key_secret,
    )
    provider = AliyunCdnProvider(settings)
    start = NOW - timedelta(days=40, minutes=30)
    counts = provider.hourly_counts(DOMAIN, start, NOW)
    assert sim.api_calls["DescribeDomainTrafficData"] == 2  # 31 days, then the other 9
    assert sim.api_calls["DescribeDomainQpsData"] == 2
    assert counts.start == NOW - timedelta(days=40, hours=1)  # whole hours
    assert len(counts.requests) == len(counts.bytes) == 40 * 24 + 1
    # Every line of the day's files once, but those of the last 45 s: counted 45 s late, they
    # belong to an hour that is not over yet.
    assert sum(counts.requests.values()) == _counted_by_now(sim)
    assert len(counts.request_ids) == 4


def test_series_reader_takes_strings_and_numbers_and_refuses_other_answers() -> None:
    hour = "2026-12-01T03:00:00Z"
    as_strings = {"TrafficDataPerInterval": {"DataModule": [{"TimeStamp": hour, "Value": "12"}]}}
    as_numbers = {"QpsDataPerInterval": {"DataModule": {"TimeStamp": hour, "Acc": 7.0}}}
    when = datetime(2026, 12, 1, 3, tzinfo=UTC)
    assert parse_series(as_strings, "TrafficDataPerInterval", "Value") == {when: 12.0}
    assert parse_series(as_numbers, "QpsDataPerInterval", "Acc") == {when: 7.0}
    blank = {"QpsDataInterval": {"DataModule": [{"TimeStamp": hour, "AccValue": ""}]}}
    assert parse_series(blank, "QpsDataInterval", "AccValue") == {}
    with pytest.raises(ApiError, match="without QpsDataInterval"):
        parse_series({"RequestId": "R"}, "QpsDataInterval", "AccValue")


def test_hourly_counts_older_than_the_provider_keeps_are_asked_from_its_oldest_hour(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        endpoint=sim.endpoint,
        access_key_id=sim.access_key_id,
        access_key_secret=sim.access_key_secret,
    )
    counts = AliyunCdnProvider(settings).hourly_counts(DOMAIN, NOW - timedelta(days=200), NOW)
    assert min(counts.requests) >= NOW - timedelta(days=186)  # no InvalidStartTime error
    assert sum(counts.requests.values()) == _counted_by_now(sim)
    assert "keeps hourly counts for 186 days" in caplog.text
