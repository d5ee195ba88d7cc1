"""Time parsing, redaction and the exit-status mapping of the error tree."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from cdnlogs import errors
from cdnlogs.redact import RedactingFilter, redact_text, redact_url
from cdnlogs.timeutil import hours_between, parse_provider_time, parse_when, resolve_window

NOW = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("36h", NOW - timedelta(hours=36)),
        ("7d", NOW - timedelta(days=7)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2026-11-01T00:00:00Z", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00:00+08:00", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("now", NOW),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7x", "", "2026-13-01"])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(errors.UsageError):
        parse_when(text, now=NOW)


def test_provider_times_in_every_documented_shape() -> None:
    assert parse_provider_time("2018-03-25T10:00:00Z") == datetime(2018, 3, 25, 10, tzinfo=UTC)
    assert parse_provider_time("2019-09-11T15:03Z") == datetime(2019, 9, 11, 15, 3, tzinfo=UTC)
    assert parse_provider_time("1521975600") == datetime(2018, 3, 25, 11, tzinfo=UTC)
    assert parse_provider_time("") is None


def test_hours_between_floors_the_start() -> None:
    hours = hours_between(NOW - timedelta(hours=2), NOW)
    assert hours == [datetime(2026, 11, 28, h, tzinfo=UTC) for h in (13, 14, 15)]


SIGNED = (
    "https://cdnlog2.aliyuncs.com/a.com/2018_03_25/a.com_2018_03_25_180000_190000.gz"
    "?Expires=1522659931&OSSAccessKeyId=LTAIstjGueo4ZEuA&Signature=suZFyJHoD3RzZqK%2Bcu6P4VaNAVI%3D"
)


def test_redact_text_removes_every_secret_value() -> None:
    out = redact_text(
        f"GET {SIGNED} failed; Authorization: ACS3-HMAC-SHA256 Credential=LTAIxyz,Sig"
    )
    assert "LTAIstjGueo4ZEuA" not in out
    assert "suZFyJHoD3RzZqK" not in out
    assert "1522659931" not in out
    assert "LTAIxyz" not in out
    assert "a.com_2018_03_25_180000_190000.gz" in out


def test_redact_url_drops_the_query() -> None:
    assert redact_url(SIGNED) == SIGNED.split("?")[0]


def test_redacting_filter_applies_to_log_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cdnlogs.test")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="cdnlogs.test"):
        logger.info("fetching %s", SIGNED)
    assert "suZFyJHoD3RzZqK" not in caplog.text
    assert "Signature=***" in caplog.text


def test_api_error_message_names_code_and_request_id() -> None:
    exc = errors.ApiNotFoundError(
        "The domain provided does not exist.", code="InvalidDomain.NotFound", request_id="R-1"
    )
    assert str(exc) == "InvalidDomain.NotFound: The domain provided does not exist. (RequestId R-1)"
    assert exc.exit_code == errors.ExitStatus.API


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.ConfigError, 3),
        (errors.CredentialsError, 3),
        (errors.ApiAuthError, 4),
        (errors.ApiThrottledError, 4),
        (errors.PartialSyncError, 5),
        (errors.UsageError, 2),
        (errors.ManifestError, 1),
    ],
)
def test_exit_codes(cls: type[errors.CdnLogsError], status: int) -> None:
    assert cls.exit_code == status


def test_plain_checksum_is_standard_crc32_streamed_or_whole(tmp_path) -> None:
    import zlib

    from cdnlogs.checksum import PlainChecksum, plain_checksum_file

    data = b"line one\n" * 100_000 + b"tail"
    running = PlainChecksum()
    for start in range(0, len(data), 65_537):
        running.update(data[start : start + 65_537])
    expected = f"crc32:{zlib.crc32(data):08x}"
    assert running.hexdigest() == expected
    path = tmp_path / "x.log"
    path.write_bytes(data)
    assert plain_checksum_file(path) == expected
    path.write_bytes(data[:-1] + b"X")
    assert plain_checksum_file(path) != expected


def test_every_window_is_the_last_default_up_to_until() -> None:
    """sync, list and reconcile: no --since means ``now - default``, whatever --until is."""
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    day = timedelta(hours=24)
    assert resolve_window(None, None, now=now, default=day) == (now - day, now)
    assert resolve_window(None, "2h", now=now, default=day) == (now - day, now - timedelta(hours=2))
    assert resolve_window("36h", "2h", now=now, default=day)[0] == now - timedelta(hours=36)
    with pytest.raises(errors.UsageError, match="the window is empty: --since 2026-11-27T12"):
        resolve_window(None, "30h", now=now, default=day)
