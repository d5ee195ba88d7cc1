"""The Aliyun provider over real HTTP against the simulator, and the shape readers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cdnlogs.config import Settings
from cdnlogs.errors import ApiAuthError, ApiError, ApiNotFoundError, ApiThrottledError
from cdnlogs.providers import make_provider
from cdnlogs.providers.aliyun import AliyunCdnProvider, _Transient, classify
from cdnlogs.providers.aliyun_shapes import (
    has_log_payload,
    hour_from_name,
    parse_domain_page,
    parse_log_page,
    to_log_file,
    with_scheme,
)
from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAINS = ("a.example.com", "b.example.com")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(domains=DOMAINS, days=2, seed=7, lines_per_file=5)) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logging.getLogger("cdnlogs"), "propagate", True)
    sim.faults.clear()
    sim.reset_counters()
    yield
    sim.faults.clear()


class Sleeps(list[float]):
    """A recording sleep, so retry tests take no wall time."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def settings_for(sim: Simulator, **extra: object) -> Settings:
    settings = Settings(
        endpoint=sim.endpoint,
        log_scheme="http",
        access_key_id=sim.access_key_id,
        access_key_secret=sim.access_key_secret,
        api_rate=0,
    )
    for key, value in extra.items():
        setattr(settings, key, value)
    return settings


def provider_for(
    sim: Simulator, sleeps: Sleeps | None = None, **extra: object
) -> AliyunCdnProvider:
    return AliyunCdnProvider(
        settings_for(sim, **extra), sleep=sleeps if sleeps is not None else Sleeps()
    )


def window(days: int = 3) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=days), now


@pytest.mark.parametrize("api_version", ["2018-05-10", "2014-11-11"])
@pytest.mark.parametrize("algorithm", ["v3", "v2"])
def test_listing_matches_the_simulator_in_every_shape_and_signature(
    sim: Simulator, api_version: str, algorithm: str
) -> None:
    provider = provider_for(sim, api_version=api_version, signature_algorithm=algorithm)
    listing = provider.list_log_files("a.example.com", *window())
    expected = sim.files("a.example.com", published_only=True)
    assert sorted(f.name for f in listing.files) == sorted(f.name for f in expected)
    by_name = {f.name: f for f in expected}
    for log_file in listing.files:
        assert log_file.url.startswith(f"{sim.endpoint}/")  # http:// put in front
        assert log_file.size == by_name[log_file.name].size
        assert log_file.start == by_name[log_file.name].start
        assert log_file.start.tzinfo is not None
    assert listing.pages == 1
    assert len(listing.request_ids) == 1
    assert sim.api_calls["DescribeCdnDomainLogs"] == 1


@pytest.mark.parametrize("api_version", ["2018-05-10", "2014-11-11"])
def test_paging_over_more_than_a_thousand_files(sim: Simulator, api_version: str) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    for n in range(1100):
        sim.add_file("b.example.com", hour, name=f"b.example.com_bulk_{n:05d}.gz", gz=b"x" * 10)
    provider = provider_for(sim, api_version=api_version)
    listing = provider.list_log_files("b.example.com", *window())
    expected = {f.name for f in sim.files("b.example.com", published_only=True)}
    assert len(expected) > 1100
    assert {f.name for f in listing.files} == expected
    assert len(listing.files) == len(expected)  # each name once
    assert listing.pages == 2
    assert sim.api_calls["DescribeCdnDomainLogs"] == 2
    assert listing.duplicates == 0


@pytest.mark.parametrize(
    ("fault", "status"), [("throttle_next", 400), ("throttle_next", 429), ("api_5xx_next", 503)]
)
def test_transient_errors_are_retried_then_succeed(sim: Simulator, fault: str, status: int) -> None:
    setattr(sim.faults, fault, 2)
    sim.faults.throttle_status = status
    sleeps = Sleeps()
    listing = provider_for(sim, sleeps).list_log_files("a.example.com", *window())
    assert listing.files
    assert sim.api_calls["DescribeCdnDomainLogs"] == 3
    assert len(sleeps) == 2
    # Full jitter: each delay within [0, base * 2**(n-1)].
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[1] <= 1.0


def test_throttling_that_never_ends_is_bounded(sim: Simulator) -> None:
    sim.faults.throttle_next = 50
    sleeps = Sleeps()
    provider = provider_for(sim, sleeps, api_attempts=3)
    with pytest.raises(ApiThrottledError) as info:
        provider.list_log_files("a.example.com", *window())
    assert sim.api_calls["DescribeCdnDomainLogs"] == 3
    assert len(sleeps) == 2
    assert info.value.code == "Throttling.User"
    assert info.value.request_id
    assert info.value.exit_code == 4


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("SignatureDoesNotMatch", ApiAuthError),
        ("InvalidAccessKeyId.NotFound", ApiAuthError),
        ("InvalidAccessKeyId.Inactive", ApiAuthError),
        ("InvalidTimeStamp.Expired", ApiAuthError),
        ("InvalidSecurityToken.Expired", ApiAuthError),
        ("MissingSecurityToken", ApiAuthError),
        ("Forbidden.RAM", ApiAuthError),
        ("Forbidden", ApiAuthError),
        ("OperationDenied", ApiAuthError),
        ("InvalidDomain.NotFound", ApiNotFoundError),
        ("InvalidParameter", ApiError),
        ("InvalidStartTime.ValueNotSupported", ApiError),
        ("InvalidAction.NotFound", ApiError),
    ],
)
def test_refusals_are_classified_by_code_and_not_retried(
    sim: Simulator, code: str, kind: type[ApiError]
) -> None:
    sim.faults.force_api_error(code)
    sleeps = Sleeps()
    with pytest.raises(ApiError) as info:
        provider_for(sim, sleeps).list_log_files("a.example.com", *window())
    assert type(info.value) is kind
    assert info.value.code == code
    assert info.value.request_id
    assert code in info.value.message
    assert info.value.request_id in info.value.message
    assert sim.api_calls["DescribeCdnDomainLogs"] == 1
    assert sleeps == []


@pytest.mark.parametrize("algorithm", ["v3", "v2"])
def test_wrong_secret_is_an_auth_error(sim: Simulator, algorithm: str) -> None:
    provider = provider_for(sim, access_key_secret="wrong", signature_algorithm=algorithm)
    with pytest.raises(ApiAuthError) as info:
        provider.list_domains()
    assert info.value.code == "SignatureDoesNotMatch"
    assert "wrong" not in info.value.message


def test_unknown_domain_is_not_found(sim: Simulator) -> None:
    with pytest.raises(ApiNotFoundError) as info:
        provider_for(sim).list_log_files("nope.example.com", *window())
    assert info.value.code == "InvalidDomain.NotFound"
    assert info.value.hint and "cdnlogs domains" in info.value.hint


def test_old_start_is_clamped_with_a_warning(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(days=40)
    with caplog.at_level(logging.WARNING, logger="cdnlogs"):
        listing = provider_for(sim).list_log_files("a.example.com", start, now)
    assert listing.clamped_from == start
    assert listing.start >= now - timedelta(days=31)
    assert listing.start - (now - timedelta(days=31)) <= timedelta(hours=1)
    assert "31-day window" in caplog.text
    assert {f.name for f in listing.files} == {
        f.name for f in sim.files("a.example.com", published_only=True)
    }


def test_connection_failures_are_retried_then_reported(sim: Simulator) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    provider = provider_for(
        sim, sleeps, endpoint=f"http://127.0.0.1:{port}", api_attempts=3, connect_timeout_seconds=1
    )
    with pytest.raises(ApiThrottledError, match="cannot reach") as info:
        provider.list_domains()
    assert len(sleeps) == 2
    assert info.value.exit_code == 4
    # One short line naming the cause, not the SDK's wrapped request URL.
    assert f"cannot reach http://127.0.0.1:{port}: connection refused" in info.value.message
    assert "PageSize" not in info.value.message and "\n" not in info.value.message


def test_rate_limit_spaces_calls(sim: Simulator) -> None:
    sleeps = Sleeps()
    provider = provider_for(sim, sleeps, api_rate=2.0)
    for _ in range(3):
        provider.list_domains()
    # Token bucket at 2/s with a fake sleep: the 2nd call waits ~0.5 s, the 3rd ~1 s.
    assert len(sleeps) == 2
    assert sum(sleeps) == pytest.approx(1.5, abs=0.2)


def test_list_domains_via_make_provider(sim: Simulator) -> None:
    provider = make_provider(settings_for(sim))
    assert [d.name for d in provider.list_domains()] == list(DOMAINS)
    assert provider.retention_days == 31


def test_list_domains_pages_at_500() -> None:
    names = tuple(f"d{n:03d}.example.com" for n in range(620))
    config = SimulatorConfig(domains=names, days=1, lines_per_file=1)
    with Simulator(config) as many:
        provider = provider_for(many)
        domains = provider.list_domains()
        assert [d.name for d in domains] == sorted(names)
        assert many.api_calls["DescribeUserDomains"] == 2


def test_sts_token_from_the_config_file() -> None:
    with Simulator(SimulatorConfig(domains=DOMAINS, days=1, security_token="sts-token")) as sts:
        assert provider_for(sts, security_token="sts-token").list_domains()
        with pytest.raises(ApiAuthError) as info:
            provider_for(sts).list_domains()
        assert info.value.code == "MissingSecurityToken"


# --- shapes (pure) --------------------------------------------------------------------------


ENTRY = {
    "LogName": "example.com_2015_05_23_1100_1200.gz",
    "LogPath": "cdnlog.example.com/example.com/2015_05_23/x.gz?OSSAccessKeyId=k&Signature=s",
    "LogSize": 257,
    "StartTime": "2015-05-23T03:00:00Z",
    "EndTime": "2015-05-23T04:00:00Z",
}


def test_2014_shape_with_paging_inside_the_model_and_items() -> None:
    body = {
        "RequestId": "R",
        "DomainLogModel": {
            "DomainName": "example.com",
            "PageNumber": 2,
            "TotalCount": 1001,
            "Items": {"DomainLogDetail": ENTRY},  # one object, not a list
        },
    }
    page = parse_log_page(body)
    assert page.entries == [ENTRY]
    assert (page.total, page.page_number) == (1001, 2)
    assert has_log_payload(body)


def test_2018_shape_with_page_number_spelling_and_epoch_times() -> None:
    entry = {**ENTRY, "StartTime": "1432350000", "EndTime": "1432353600"}
    body = {
        "DomainLogDetails": {
            "DomainLogDetail": [
                {
                    "PageInfos": {"PageNumber": "3", "PageSize": 1000, "Total": "2500"},
                    "LogInfos": {"LogInfoDetail": [entry]},
                }
            ]
        }
    }
    page = parse_log_page(body)
    assert (page.total, page.page_number, len(page.entries)) == (2500, 3, 1)
    log_file = to_log_file(page.entries[0], domain="example.com", scheme="https")
    assert log_file.start == datetime(2015, 5, 23, 3, tzinfo=UTC)
    assert log_file.url.startswith("https://cdnlog.example.com/")


def test_missing_times_come_from_the_name_in_plus_eight() -> None:
    assert hour_from_name("example.com_2015_05_23_1100_1200.gz") == datetime(
        2015, 5, 23, 3, tzinfo=UTC
    )
    assert hour_from_name("a.b.com_2020_12_03_040000_050000_xx.gz") == datetime(
        2020, 12, 2, 20, tzinfo=UTC
    )
    entry = {k: v for k, v in ENTRY.items() if k not in ("StartTime", "EndTime")}
    log_file = to_log_file(entry, domain="example.com", scheme="http")
    assert log_file.end - log_file.start == timedelta(hours=1)


def test_scheme_kept_or_added() -> None:
    assert with_scheme("https://h/x?Signature=s", "http") == "https://h/x?Signature=s"
    assert with_scheme("http://h/x", "https") == "http://h/x"
    assert with_scheme(" h/x ", "https") == "https://h/x"


def test_bad_entry_is_an_api_error() -> None:
    with pytest.raises(ApiError):
        to_log_file({"LogName": "x.gz"}, domain="d", scheme="https")


def test_error_code_in_a_200_body_is_classified() -> None:
    assert not has_log_payload({"Code": "Forbidden.RAM", "RequestId": "R"})
    error = classify("Forbidden.RAM", "no", request_id="R", status=200)
    assert isinstance(error, ApiAuthError)
    # Throttling and a gateway error are retried (a _Transient), not raised as they come.
    throttled = classify("Throttling.Api", "slow", status=200)
    assert isinstance(throttled, _Transient)
    assert (throttled.code, throttled.status) == ("Throttling.Api", 200)
    gateway = classify(None, "gateway", status=502)
    assert isinstance(gateway, _Transient)
    assert (gateway.code, gateway.status) == (None, 502)


def test_domain_page_reader() -> None:
    body = {
        "TotalCount": 2,
        "Domains": {"PageData": {"DomainName": "x.com", "DomainStatus": "online"}},
    }
    page = parse_domain_page(body)
    assert page.total == 2
    assert page.domains[0].name == "x.com"
    assert page.domains[0].status == "online"


@pytest.mark.parametrize("algorithm", ["v3", "v2"])
def test_an_error_code_inside_an_http_200_is_an_error(sim: Simulator, algorithm: str) -> None:
    sim.faults.force_api_error("InvalidDomain.NotFound", status=200)
    provider = provider_for(sim, signature_algorithm=algorithm)
    with pytest.raises(ApiNotFoundError) as info:
        provider.list_log_files("a.example.com", *window())
    assert info.value.code == "InvalidDomain.NotFound" and info.value.request_id


def test_throttling_inside_an_http_200_is_retried(sim: Simulator) -> None:
    sim.faults.force_api_error("Throttling.User", times=1, status=200)
    sleeps = Sleeps()
    listing = provider_for(sim, sleeps).list_log_files("a.example.com", *window())
    assert listing.files and len(sleeps) == 1
    assert sim.api_calls["DescribeCdnDomainLogs"] == 2
