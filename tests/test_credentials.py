"""The credential chain over real files in a temporary HOME (the CLI-level env tests are in
test_cli_remote.py, in subprocesses, because the SDK reads its env vars at import)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from cdnlogs.config import Settings
from cdnlogs.credentials import looks_like_ecs, resolve_credentials
from cdnlogs.errors import CredentialsError


@pytest.fixture(autouse=True)
def _propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("cdnlogs"), "propagate", True)


def cli_config(home: Path, mode: int = 0o600) -> Path:
    path = home / ".aliyun" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    profiles = {
        "current": "main",
        "profiles": [
            {"name": "main", "mode": "AK", "access_key_id": "cli-main-id",
             "access_key_secret": "cli-main-secret"},
            {"name": "sts", "mode": "StsToken", "access_key_id": "cli-sts-id",
             "access_key_secret": "cli-sts-secret", "sts_token": "cli-token"},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(profiles), encoding="utf-8")
    path.chmod(mode)
    return path


def ini_file(home: Path) -> Path:
    path = home / ".alibabacloud" / "credentials.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[default]\ntype = access_key\naccess_key_id = ini-default-id\n"
        "access_key_secret = ini-default-secret\n\n"
        "[other]\ntype = access_key\naccess_key_id = ini-other-id\n"
        "access_key_secret = ini-other-secret\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def secret_of(resolved: object) -> tuple[str, str, str | None]:
    cred = resolved.client.get_credential()  # type: ignore[attr-defined]
    return cred.access_key_id, cred.access_key_secret, cred.security_token


def test_env_wins_over_file_and_profiles(tmp_path: Path) -> None:
    cli_config(tmp_path)
    settings = Settings(access_key_id="file-id", access_key_secret="file-secret")
    env = {
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token",
    }
    resolved = resolve_credentials(settings, env=env)
    assert secret_of(resolved) == ("env-id", "env-secret", "env-token")
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in resolved.source


def test_config_file_keys_win_over_profiles(tmp_path: Path) -> None:
    cli_config(tmp_path)
    settings = Settings(access_key_id="file-id", access_key_secret="file-secret")
    resolved = resolve_credentials(settings, env={"HOME": str(tmp_path)})
    assert secret_of(resolved) == ("file-id", "file-secret", None)


def test_cli_profile_current_then_named(tmp_path: Path) -> None:
    cli_config(tmp_path)
    env = {"HOME": str(tmp_path)}
    assert secret_of(resolve_credentials(Settings(), env=env))[0] == "cli-main-id"
    named = resolve_credentials(Settings(profile="sts"), env=env)
    assert secret_of(named) == ("cli-sts-id", "cli-sts-secret", "cli-token")
    via_env = resolve_credentials(Settings(), env={**env, "ALIBABA_CLOUD_PROFILE": "sts"})
    assert secret_of(via_env)[0] == "cli-sts-id"


def test_ini_profile_default_and_named(tmp_path: Path) -> None:
    ini_file(tmp_path)
    env = {"HOME": str(tmp_path)}
    assert secret_of(resolve_credentials(Settings(), env=env))[0] == "ini-default-id"
    assert secret_of(resolve_credentials(Settings(profile="other"), env=env))[0] == "ini-other-id"


def test_unknown_profile_is_a_credentials_error(tmp_path: Path) -> None:
    cli_config(tmp_path)
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(Settings(profile="nope"), env={"HOME": str(tmp_path)})
    assert "'nope'" in info.value.message
    assert "config.json" in (info.value.hint or "")
    assert info.value.exit_code == 3


def test_nothing_found_lists_every_place_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(Settings(), env={"HOME": str(tmp_path)}, dmi_dir=tmp_path / "no-dmi")
    assert time.monotonic() - started < 2.0  # no ECS metadata round trip off ECS
    hint = info.value.hint or ""
    for place in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "[credentials]",
        ".aliyun/config.json",
        ".alibabacloud/credentials.ini",
        "ECS instance RAM role (not an ECS instance)",
    ):
        assert place in hint


def test_half_set_env_is_reported(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "ALIBABA_CLOUD_ACCESS_KEY_ID": "only-id"}
    with pytest.raises(CredentialsError, match="no Alibaba Cloud credential") as info:
        resolve_credentials(Settings(), env=env)
    assert "only one of" in (info.value.hint or "")


def test_ecs_detection_from_dmi(tmp_path: Path) -> None:
    (tmp_path / "sys_vendor").write_text("Alibaba Cloud\n")
    assert looks_like_ecs(tmp_path)
    (tmp_path / "sys_vendor").write_text("QEMU\n")
    (tmp_path / "product_name").write_text("Standard PC\n")
    assert not looks_like_ecs(tmp_path)


def test_readable_profile_file_warns_without_leaking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cli_config(tmp_path, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="cdnlogs"):
        resolve_credentials(Settings(), env={"HOME": str(tmp_path)})
    assert "readable by group/others" in caplog.text
    assert "cli-main-secret" not in caplog.text
