"""Find an Alibaba Cloud credential: the official default chain plus keys from the config file.

The order, first match wins (``--profile`` replaces the whole chain with that one profile):

1. ``ALIBABA_CLOUD_ACCESS_KEY_ID`` + ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
   (+ ``ALIBABA_CLOUD_SECURITY_TOKEN`` for STS);
2. the config file's ``[credentials]`` table (or a legacy aliyun.ini's ``[Credentials]``);
3. OIDC role (``ALIBABA_CLOUD_OIDC_TOKEN_FILE``, ``_ROLE_ARN``, ``_OIDC_PROVIDER_ARN``);
4. ``~/.aliyun/config.json``: profile ``ALIBABA_CLOUD_PROFILE`` or the file's ``current``;
5. ``~/.alibabacloud/credentials.ini`` (or ``ALIBABA_CLOUD_CREDENTIALS_FILE``): section
   ``ALIBABA_CLOUD_PROFILE`` or ``default``;
6. the ECS instance RAM role, only on an Alibaba Cloud ECS machine (DMI vendor) or when
   ``ALIBABA_CLOUD_ECS_METADATA`` names a role, and never when
   ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``: elsewhere the metadata call would only add a
   timeout and noise;
7. ``ALIBABA_CLOUD_CREDENTIALS_URI``.

This follows the official ``alibabacloud-credentials`` chain (same steps, same providers) with
the environment read at call time rather than at import, so ``--profile`` and tests work, and the
config file's keys placed after the environment (env > file, as for every other setting).

The SDK is imported inside :func:`resolve_credentials` only: it costs 0.4 s, and ``--help`` and
the analysis commands never need it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdnlogs.config import Settings, check_secret_file_mode
from cdnlogs.errors import CredentialsError
from cdnlogs.redact import redact_text

log = logging.getLogger(__name__)

DMI_DIR = Path("/sys/class/dmi/id")
ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


@dataclass(frozen=True)
class ResolvedCredentials:
    """The credential to call the API with, and where it came from (for ``-v`` logging)."""

    source: str
    access_key_id: str
    #: An ``alibabacloud_credentials.client.Client`` to pass as ``Config(credential=...)``.
    client: Any


# A step returns a provider, or None when its source is absent; it raises to report a source
# that exists but cannot be used. ``looked`` collects the "why not" for the hint.
_Step = tuple[str, Callable[[], Any]]


def resolve_credentials(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    dmi_dir: Path = DMI_DIR,
) -> ResolvedCredentials:
    """Walk the chain and return the first usable credential, or raise CredentialsError."""
    environ: Mapping[str, str] = os.environ if env is None else env
    _quiet_sdk_logging()
    from alibabacloud_credentials.client import Client

    steps = _profile_steps(settings.profile, environ) if settings.profile else None
    if steps is None:
        steps = _chain_steps(settings, environ, dmi_dir)
    looked: list[str] = []
    for where, make in steps:
        try:
            provider = make()
            if provider is None:
                looked.append(f"{where} (not set)")
                continue
            credential = provider.get_credentials()
        except Exception as exc:  # the SDK raises ValueError, CredentialException, OSError...
            looked.append(f"{where} ({_short(exc)})")
            continue
        access_key_id = credential.get_access_key_id() or ""
        log.info("using the credential from %s (access key %s)", where, _mask(access_key_id))
        return ResolvedCredentials(where, access_key_id, Client(provider=provider))
    if settings.profile:
        raise CredentialsError(
            f"profile {settings.profile!r} not found or not usable",
            hint="looked in: " + "; ".join(looked),
        )
    raise CredentialsError(
        "no Alibaba Cloud credential found",
        hint="looked in: "
        + "; ".join(looked)
        + f". Set {ENV_ID} and {ENV_SECRET}, add a [credentials] table to the config file,"
        " or run `aliyun configure`",
    )


def looks_like_ecs(dmi_dir: Path = DMI_DIR) -> bool:
    """True when the DMI tables say this machine is an Alibaba Cloud ECS instance."""
    for name in ("sys_vendor", "product_name"):
        try:
            text = (dmi_dir / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "alibaba" in text.lower():
            return True
    return False


def _chain_steps(settings: Settings, env: Mapping[str, str], dmi_dir: Path) -> list[_Step]:
    from alibabacloud_credentials.provider import (
        OIDCRoleArnCredentialsProvider,
        URLCredentialsProvider,
    )

    home = _home(env)
    profile = env.get("ALIBABA_CLOUD_PROFILE") or None
    file_where = (
        f"config file {settings.config_path} [credentials]"
        if settings.config_path
        else "config file [credentials]"
    )

    def from_env() -> Any:
        key_id, secret = env.get(ENV_ID), env.get(ENV_SECRET)
        if not key_id and not secret:
            return None
        if not key_id or not secret:
            raise ValueError(f"only one of {ENV_ID} / {ENV_SECRET} is set")
        return _static(key_id, secret, env.get(ENV_TOKEN))

    def from_file() -> Any:
        if not settings.access_key_id and not settings.access_key_secret:
            return None
        if not settings.access_key_id or not settings.access_key_secret:
            raise ValueError("needs both access_key_id and access_key_secret")
        return _static(settings.access_key_id, settings.access_key_secret, settings.security_token)

    def from_oidc() -> Any:
        names = (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            "ALIBABA_CLOUD_ROLE_ARN",
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        )
        if not all(env.get(n) for n in names):
            return None
        return OIDCRoleArnCredentialsProvider(
            oidc_token_file_path=env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"],
            role_arn=env["ALIBABA_CLOUD_ROLE_ARN"],
            oidc_provider_arn=env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"],
            role_session_name=env.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or None,
        )

    def from_uri() -> Any:
        uri = env.get("ALIBABA_CLOUD_CREDENTIALS_URI")
        return URLCredentialsProvider(uri=uri) if uri else None

    steps: list[_Step] = [
        (f"environment {ENV_ID}/{ENV_SECRET}", from_env),
        (file_where, from_file),
        ("OIDC role (ALIBABA_CLOUD_OIDC_TOKEN_FILE ...)", from_oidc),
    ]
    if env.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "").lower() != "true":
        steps.append(_cli_profile_step(home, profile))
    steps.append(_ini_profile_step(env, home, profile or "default"))
    steps.append(_ecs_step(env, dmi_dir))
    steps.append(("ALIBABA_CLOUD_CREDENTIALS_URI", from_uri))
    return steps


def _profile_steps(name: str, env: Mapping[str, str]) -> list[_Step]:
    """Only the named profile, from the CLI's config.json and then credentials.ini."""
    home = _home(env)
    return [_cli_profile_step(home, name), _ini_profile_step(env, home, name)]


def _cli_profile_step(home: Path, profile: str | None) -> _Step:
    path = home / ".aliyun" / "config.json"
    label = f"profile {profile!r}" if profile else "its current profile"

    def make() -> Any:
        from alibabacloud_credentials.provider import CLIProfileCredentialsProvider

        if not path.is_file():
            raise _Absent("not found")
        check_secret_file_mode(path)
        return CLIProfileCredentialsProvider(profile_name=profile, profile_file=str(path))

    return (f"{path} ({label})", make)


def _ini_profile_step(env: Mapping[str, str], home: Path, section: str) -> _Step:
    configured = env.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
    path = Path(configured) if configured else home / ".alibabacloud" / "credentials.ini"

    def make() -> Any:
        from alibabacloud_credentials.provider import ProfileCredentialsProvider

        if not path.is_file():
            raise _Absent("not found")
        check_secret_file_mode(path)
        return ProfileCredentialsProvider(profile_file=str(path), profile_name=section)

    return (f"{path} [{section}]", make)


def _ecs_step(env: Mapping[str, str], dmi_dir: Path) -> _Step:
    role = env.get("ALIBABA_CLOUD_ECS_METADATA") or None

    def make() -> Any:
        if env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() == "true":
            raise ValueError("disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED")
        if role is None and not looks_like_ecs(dmi_dir):
            raise ValueError("not an ECS instance")
        from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider

        return EcsRamRoleCredentialsProvider(role_name=role, async_update_enabled=False)

    return ("ECS instance RAM role", make)


class _Absent(Exception):
    """A source that is simply not there (as opposed to present but broken)."""


def _static(key_id: str, secret: str, token: str | None) -> Any:
    from alibabacloud_credentials.provider import (
        StaticAKCredentialsProvider,
        StaticSTSCredentialsProvider,
    )

    if token:
        return StaticSTSCredentialsProvider(
            access_key_id=key_id, access_key_secret=secret, security_token=token
        )
    return StaticAKCredentialsProvider(access_key_id=key_id, access_key_secret=secret)


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _mask(access_key_id: str) -> str:
    # An AccessKeyId is not a secret, but keep only enough of it to tell keys apart.
    return access_key_id[:4] + "***" if len(access_key_id) > 8 else "***"


def _short(exc: BaseException) -> str:
    text = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return text if len(text) <= 160 else text[:157] + "..."


_QUIET = False


def _quiet_sdk_logging() -> None:
    """Silence the SDK's own stderr handlers; failures reach the user through our hint."""
    global _QUIET
    if _QUIET:
        return
    # The credentials package attaches a StreamHandler at INFO to its "credentials" logger on
    # import, which would print ECS-metadata tracebacks and refresh chatter on every run.
    import alibabacloud_credentials.provider  # noqa: F401  (attaches those handlers)

    for name in ("credentials", "alibabacloud_credentials", "Tea", "darabonba"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [logging.NullHandler()]
        logger.propagate = False
    _QUIET = True
