"""Settings loading: precedence, TOML keys, the legacy aliyun.ini, validation, secrets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdnlogs.config import Settings, legacy_day_window, load_settings
from cdnlogs.errors import ConfigError, UsageError

# The aliyun.ini of the original script (original-script.txt section 2), filled in as a user would.
LEGACY_INI = """\
[Credentials]
accesskeyid = LTAI5tLegacyKeyId
accesskeysecret=legacy-secret-value

[Must]
Action = DescribeCdnDomainLogs
DomainName = www.example.com

[Select]
LogDay=2026-11-01
PageSize=
PageNumber=
"""


@pytest.fixture(autouse=True)
def _propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    # An in-process CLI run elsewhere may have set propagate=False on "cdnlogs"; caplog needs it.
    monkeypatch.setattr(logging.getLogger("cdnlogs"), "propagate", True)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    settings = load_settings({}, env={"HOME": str(tmp_path)})
    assert settings == Settings()
    assert settings.config_path is None


def test_toml_file_sets_every_kind_of_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        """
domains = ["a.example.com", "b.example.com"]
out = "~/archive"
endpoint = "http://127.0.0.1:8080/"
concurrency = 3
format = "gz"
log-scheme = "http"
api_version = "2014-11-11"
signature_algorithm = "ACS3-HMAC-SHA256"
lookback = "48h"
retention = "30d"
anonymize_ip = true
api_rate = 20
[credentials]
access_key_id = "id-from-file"
access_key_secret = "secret-from-file"
""",
    )
    settings = load_settings({}, env={"HOME": str(tmp_path)}, config_path=path)
    assert settings.config_path == path
    assert settings.domains == ["a.example.com", "b.example.com"]
    assert settings.out_dir == Path("~/archive").expanduser()
    assert settings.endpoint == "http://127.0.0.1:8080"
    assert settings.concurrency == 3
    assert settings.format == "gz"
    assert settings.log_scheme == "http"
    assert settings.api_version == "2014-11-11"
    assert settings.signature_algorithm == "v3"
    assert settings.lookback == "48h"
    assert settings.retention == "30d"
    assert settings.anonymize_ip is True
    assert settings.api_rate == 20.0
    assert settings.access_key_id == "id-from-file"
    assert settings.access_key_secret == "secret-from-file"
    assert "secret-from-file" not in repr(settings)


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'concurrency = 2\nformat = "gz"\ndomains = "f.example.com"\n')
    env = {
        "HOME": str(tmp_path),
        "CDNLOGS_CONCURRENCY": "4",
        "CDNLOGS_DOMAINS": "e1.example.com, e2.example.com",
        "CDNLOGS_OUT": str(tmp_path / "env-out"),
    }
    settings = load_settings({"concurrency": 6, "format": None}, env=env, config_path=path)
    assert settings.concurrency == 6  # flag
    assert settings.domains == ["e1.example.com", "e2.example.com"]  # env
    assert settings.out_dir == tmp_path / "env-out"  # env
    assert settings.format == "gz"  # file (flag not given)


def test_config_file_from_env_and_default_location(tmp_path: Path) -> None:
    chosen = write(tmp_path / "chosen.toml", "concurrency = 5\n")
    assert load_settings({}, env={"CDNLOGS_CONFIG": str(chosen)}).concurrency == 5
    default = tmp_path / ".config" / "cdnlogs" / "config.toml"
    default.parent.mkdir(parents=True)
    write(default, "concurrency = 7\n")
    settings = load_settings({}, env={"HOME": str(tmp_path)})
    assert settings.concurrency == 7
    assert settings.config_path == default


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings({}, env={}, config_path=tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="CDNLOGS_CONFIG"):
        load_settings({}, env={"CDNLOGS_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("concurency = 3\n", "unknown key 'concurency'"),
        ('concurrency = "many"\n', "key 'concurrency': expected a whole number"),
        ("concurrency = 0\n", "key 'concurrency': must be at least 1"),
        ("ingest_jobs = 0\n", "key 'ingest_jobs': must be at least 1"),
        ('format = "zip"\n', "key 'format': must be one of log, gz"),
        ('log_scheme = "ftp"\n', "key 'log_scheme'"),
        ('endpoint = "cdn.aliyuncs.com"\n', "key 'endpoint': needs a scheme"),
        ('lookback = "soon"\n', "key 'lookback'"),
        ('since = "yesterday"\n', "key 'since'"),
        ("domains = [1]\n", "key 'domains'"),
        ('[credentials]\npassword = "x"\n', "credentials.password"),
        ("concurrency = \n", "not valid TOML"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings({}, env={}, config_path=path)
    assert str(path) in info.value.message
    assert needle in info.value.message


def test_ingest_jobs_from_file_env_and_flag(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "ingest_jobs = 3\n")
    assert load_settings({}, env={}).ingest_jobs == 2
    assert load_settings({}, env={}, config_path=path).ingest_jobs == 3
    env = {"CDNLOGS_INGEST_JOBS": "1"}
    assert load_settings({}, env=env, config_path=path).ingest_jobs == 1
    assert load_settings({"ingest_jobs": 4}, env=env, config_path=path).ingest_jobs == 4


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="CDNLOGS_CONCURRENCY: expected a whole number"):
        load_settings({}, env={"CDNLOGS_CONCURRENCY": "lots"})
    with pytest.raises(ConfigError, match="CDNLOGS_ENDPOINT"):
        load_settings({}, env={"CDNLOGS_ENDPOINT": "127.0.0.1:80"})


def test_bad_flag_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--concurrency"):
        load_settings({"concurrency": 0}, env={})


def test_secrets_are_refused_as_flags() -> None:
    with pytest.raises(UsageError, match="command line"):
        load_settings({"access_key_secret": "s3cret"}, env={})


def test_secrets_are_not_read_from_cdnlogs_env() -> None:
    settings = load_settings({}, env={"CDNLOGS_ACCESS_KEY_SECRET": "s3cret"})
    assert settings.access_key_secret is None


def test_multiple_domain_flags_are_split_on_commas() -> None:
    settings = load_settings({"domains": ("a.example.com,b.example.com", "c.example.com")}, env={})
    assert settings.domains == ["a.example.com", "b.example.com", "c.example.com"]


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        load_settings({"nonsense": 1}, env={})


def test_legacy_ini_as_is(tmp_path: Path) -> None:
    path = write(tmp_path / "aliyun.ini", LEGACY_INI)
    settings = load_settings({}, env={}, config_path=path)
    assert settings.access_key_id == "LTAI5tLegacyKeyId"
    assert settings.access_key_secret == "legacy-secret-value"
    assert settings.domains == ["www.example.com"]
    # LogDay is the provider's +08:00 day: 2026-11-01 00:00 +08:00 is 2026-10-31 16:00 UTC.
    assert settings.since == "2026-10-31T16:00:00Z"
    assert settings.until == "2026-11-01T16:00:00Z"


def test_legacy_ini_detected_by_content_and_with_odd_case(tmp_path: Path) -> None:
    text = (
        "[credentials]\nAccessKeyId = id\nACCESSKEYSECRET = sec\n"
        "[MUST]\naction =\nDomainName = cdn.example.com\n"
        "[Select]\nStartTime = 2026-11-01T00:00:00Z\nEndTime=2026-11-01T05:00:00Z\n"
        "PageSize = 300\nPageNumber = 1\n"
    )
    path = write(tmp_path / "aliyun.conf", text)
    settings = load_settings({}, env={}, config_path=path)
    assert settings.access_key_id == "id"
    assert settings.domains == ["cdn.example.com"]
    assert settings.since == "2026-11-01T00:00:00Z"
    assert settings.until == "2026-11-01T05:00:00Z"


def test_legacy_ini_empty_template_means_unset(tmp_path: Path) -> None:
    template = (
        "[Credentials]\naccesskeyid =\naccesskeysecret=\n\n[Must]\nAction =\nDomainName =\n\n"
        "[Select]\nLogDay=\nPageSize=\nPageNumber=\n"
    )
    settings = load_settings({}, env={}, config_path=write(tmp_path / "aliyun.ini", template))
    assert settings.access_key_id is None
    assert settings.domains == []
    assert settings.since is None


def test_legacy_ini_flags_still_win(tmp_path: Path) -> None:
    path = write(tmp_path / "aliyun.ini", LEGACY_INI)
    settings = load_settings(
        {"since": "6h", "domains": ("x.example.com",)}, env={}, config_path=path
    )
    assert settings.since == "6h"
    assert settings.domains == ["x.example.com"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[Must]\nAction = DescribeUserDomains\n", "'Action'"),
        ("[Select]\nLogDay = 01/11/2026\n", "'LogDay'"),
        ("[Select]\nPageSize = lots\n", "'PageSize'"),
        ("[Select]\nRegion = cn\n", "'region'"),
        ("[Other]\nx = 1\n", "[Other]"),
        ("[Select]\nLogDay = 2026-11-01\nStartTime = 2026-11-01T00:00:00Z\n", "either"),
    ],
)
def test_legacy_ini_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "aliyun.ini", text)
    with pytest.raises(ConfigError) as info:
        load_settings({}, env={}, config_path=path)
    assert str(path) in info.value.message
    assert needle in info.value.message


def test_legacy_day_window_is_the_provider_day() -> None:
    start, end = legacy_day_window("2026-01-01")
    assert start == datetime(2025, 12, 31, 16, tzinfo=UTC)
    assert end == datetime(2026, 1, 1, 16, tzinfo=UTC)


def test_world_readable_secret_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "aliyun.ini", LEGACY_INI, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="cdnlogs.config"):
        load_settings({}, env={}, config_path=path)
    assert "readable by group/others" in caplog.text
    assert "legacy-secret-value" not in caplog.text


def test_private_secret_file_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "aliyun.ini", LEGACY_INI, mode=0o600)
    with caplog.at_level(logging.WARNING, logger="cdnlogs.config"):
        load_settings({}, env={}, config_path=path)
    assert caplog.text == ""


def test_file_without_secret_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "c.toml", "concurrency = 2\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="cdnlogs.config"):
        load_settings({}, env={}, config_path=path)
    assert caplog.text == ""


def test_download_pace_rules_from_file_and_env_with_documented_defaults(tmp_path: Path) -> None:
    from cdnlogs.sync import transfer_config

    defaults = load_settings({}, env={})
    assert (
        defaults.download_min_speed_bytes_per_second,
        defaults.download_min_speed_seconds,
        defaults.download_max_seconds,
    ) == (1024.0, 60.0, 3600.0)
    path = write(tmp_path / "c.toml", "download-min-speed-seconds = 5\ndownload_max_seconds = 0\n")
    env = {"CDNLOGS_DOWNLOAD_MIN_SPEED_BYTES_PER_SECOND": "2048"}
    settings = load_settings({}, env=env, config_path=path)
    config = transfer_config(settings)
    assert (
        config.min_speed_bytes_per_second,
        config.min_speed_seconds,
        config.max_attempt_seconds,
    ) == (2048.0, 5.0, 0.0)
    with pytest.raises(ConfigError, match="CDNLOGS_DOWNLOAD_MIN_SPEED_SECONDS: must be more"):
        load_settings({}, env={"CDNLOGS_DOWNLOAD_MIN_SPEED_SECONDS": "0"})
    with pytest.raises(ConfigError, match="CDNLOGS_DOWNLOAD_MAX_SECONDS: must be 0"):
        load_settings({}, env={"CDNLOGS_DOWNLOAD_MAX_SECONDS": "-1"})
