"""Settings: one dataclass, loaded once in the CLI with flags > env > file > defaults.

The loader (``load_settings``) reads a TOML file or a legacy ``aliyun.ini`` and the
``CDNLOGS_*`` environment variables. It is filled in by the foundation work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ENDPOINT = "https://cdn.aliyuncs.com"
DEFAULT_OUT_DIR = Path("./cdn-logs")
DEFAULT_LOOKBACK = "72h"
DEFAULT_CONCURRENCY = 8
DEFAULT_LAYOUT = "{domain}/{YYYY}/{MM}/{DD}/{stem}{ext}"
DEFAULT_API_RATE = 50.0  # calls per second; the account quota is 100/s shared with other tools
DEFAULT_CONFIG_PATH = Path("~/.config/cdnlogs/config.toml")


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
    api_rate: float = DEFAULT_API_RATE
    api_attempts: int = 6
    api_max_wait_seconds: float = 120.0
    download_attempts: int = 5
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    #: Extra request parameters from a legacy aliyun.ini ``[Select]`` section (LogDay, ...).
    legacy_params: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """Where the ledger, the lock and the dataset live: ``OUT/.cdnlogs``."""
        return self.out_dir / ".cdnlogs"

    @property
    def dataset_dir(self) -> Path:
        """The Parquet dataset root."""
        return self.dataset if self.dataset is not None else self.state_dir / "dataset"


def load_settings(
    overrides: Mapping[str, object],
    *,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Build Settings from defaults < config file < ``CDNLOGS_*`` env < ``overrides`` (flags).

    ``overrides`` maps Settings field names to values given on the command line; ``None``
    values mean "not given". Raises ConfigError naming the file and key on bad input.
    """
    # Placeholder until the foundation loader lands: defaults < flags only.
    settings = Settings()
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings
