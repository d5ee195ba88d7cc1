"""Shared click options and the one place a command turns its flags into Settings."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from cdnlogs.cli.context import AppContext
from cdnlogs.config import Settings, is_store_url, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """``--config FILE`` (TOML, or a legacy aliyun.ini)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Config file: TOML, or the legacy aliyun.ini. [env: CDNLOGS_CONFIG]",
    )(func)


def grouped(key: str, names: tuple[str, ...]) -> Callable[[F], F]:
    """Hand the options ``names`` to the command as one keyword ``key``: a dict of them."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def collect(*args: Any, **kwargs: Any) -> Any:
            kwargs[key] = {name: kwargs.pop(name) for name in names}
            return command(*args, **kwargs)

        return cast(F, collect)

    return decorate


#: The flags ``api_options`` adds; the command receives them together as ``api``.
API_FLAGS = ("endpoint", "log_scheme", "profile", "api_version", "signature_algorithm", "product")


def api_options(func: F) -> F:
    """Options that say where and how to call the provider's API (plus ``--config``).

    The command gets them as one keyword, ``api``: a dict of Settings field names to values
    (``None`` = not given), to pass on as ``make_settings(config_path, **api, ...)``.
    """

    func = grouped("api", API_FLAGS)(func)
    func = click.option(
        "--endpoint",
        default=None,
        help="API endpoint with scheme, e.g. http://127.0.0.1:8080. [env: CDNLOGS_ENDPOINT]",
    )(func)
    func = click.option(
        "--log-scheme",
        type=click.Choice(["https", "http"]),
        default=None,
        help="Scheme put in front of a scheme-less LogPath (default https). "
        "[env: CDNLOGS_LOG_SCHEME]",
    )(func)
    func = click.option(
        "--profile",
        default=None,
        help="Profile of ~/.aliyun/config.json or ~/.alibabacloud/credentials.ini to use.",
    )(func)
    func = click.option(
        "--api-version",
        type=click.Choice(["2018-05-10", "2014-11-11"]),
        default=None,
        help="DescribeCdnDomainLogs version (default 2018-05-10). [env: CDNLOGS_API_VERSION]",
    )(func)
    func = click.option(
        "--product",
        type=click.Choice(["cdn", "dcdn", "vod"]),
        default=None,
        help="Which product's API lists the logs: cdn (default), dcdn or vod; each has its own "
        "endpoint by default. [env: CDNLOGS_PRODUCT]",
    )(func)
    func = click.option(
        "--signature-algorithm",
        type=click.Choice(["v3", "v2"]),
        default=None,
        help="v3 = ACS3-HMAC-SHA256 (default), v2 = RPC HMAC-SHA1. "
        "[env: CDNLOGS_SIGNATURE_ALGORITHM]",
    )(func)
    return config_option(func)


def out_option(func: F) -> F:
    """``--out DIR``: the archive root."""
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Archive directory (default ./cdn-logs). [env: CDNLOGS_OUT]",
    )(func)


def store_option(func: F) -> F:
    """``--store s3://bucket/prefix``: the object store holding the raw archive."""
    return click.option(
        "--store",
        default=None,
        metavar="S3_URL",
        help="Object store for the raw archive, s3://bucket/prefix (S3 or Alibaba OSS; "
        "needs cdnlogs[s3]). [env: CDNLOGS_STORE]",
    )(func)


def shard_options(func: F) -> F:
    """``--shard K/N`` and ``--shards N`` (K from ``$JOB_COMPLETION_INDEX``)."""
    func = click.option(
        "--shards",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Split the domains into N shards and take shard $JOB_COMPLETION_INDEX "
        "(a Kubernetes Indexed Job). [env: CDNLOGS_SHARDS]",
    )(func)
    return click.option(
        "--shard",
        default=None,
        metavar="K/N",
        help="Take only the domains whose stable hash falls in shard K (0-based) of N. "
        "[env: CDNLOGS_SHARD]",
    )(func)


def domain_option(func: F) -> F:
    """``--domain D`` (repeatable, or comma-separated) and ``--all-domains``."""
    func = click.option(
        "--all-domains",
        is_flag=True,
        help="Every domain of the account (DescribeUserDomains).",
    )(func)
    return click.option(
        "--domain",
        "domains",
        multiple=True,
        metavar="DOMAIN",
        help="Domain to work on; repeat or comma-separate for several. [env: CDNLOGS_DOMAINS]",
    )(func)


def _split_domains(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    return tuple(name.strip() for item in value for name in item.split(",") if name.strip())


def domain_filter_option(help_text: str) -> Callable[[F], F]:
    """``--domain D`` that narrows what a local command looks at (repeatable, or comma-separated).

    ``domain_option`` is the one for commands that call the API (it adds ``--all-domains``).
    """

    def decorate(func: F) -> F:
        return click.option(
            "--domain",
            "domains",
            multiple=True,
            metavar="DOMAIN",
            callback=_split_domains,
            help=help_text,
        )(func)

    return decorate


def window_options(func: F) -> F:
    """``--since WHEN`` and ``--until WHEN`` (ISO-8601 UTC, or relative like ``36h``, ``7d``)."""
    func = click.option(
        "--until",
        default=None,
        metavar="WHEN",
        help="End of the window: ISO-8601 (UTC if no offset) or relative like 2h. Default: now.",
    )(func)
    return click.option(
        "--since",
        default=None,
        metavar="WHEN",
        help="Start of the window: ISO-8601 (UTC if no offset) or relative like 36h, 7d.",
    )(func)


def json_option(func: F) -> F:
    """``--json``: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(
        func
    )


def _raise_verbosity(ctx: click.Context, _param: click.Parameter, count: int) -> None:
    if not count:
        return
    # The group already installed the redacting handler; a command-level -v only lowers the
    # level, so `cdnlogs list -v` and `cdnlogs -v list` behave the same.
    level = logging.INFO if count == 1 else logging.DEBUG
    logger = logging.getLogger("cdnlogs")
    logger.setLevel(min(logger.getEffectiveLevel(), level))
    app = ctx.find_object(AppContext)
    if app is not None:
        app.verbose = max(app.verbose, count)


def verbose_option(func: F) -> F:
    """``-v/--verbose`` after the command name too (same meaning as on the group)."""
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_raise_verbosity,
        help="More log output (-v info, -vv debug); secrets and signed URLs are redacted.",
    )(func)


def make_settings(config_path: Path | None = None, **flags: Any) -> Settings:
    """Build Settings from this command's flags (``None`` = not given) over env and file.

    Flags are switches or values: ``None``, ``False`` and an empty tuple all mean "not given",
    so a default never hides the environment or the config file.
    """
    return load_settings(flags, env=os.environ, config_path=config_path)


class DatasetLocation(click.ParamType):  # type: ignore[type-arg]
    """A ``--dataset`` value: a local directory (a Path) or an ``s3://bucket/prefix`` (a str)."""

    name = "DIR|s3://BUCKET/PREFIX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if is_store_url(value):
            return value.strip()
        return click.Path(path_type=Path, file_okay=False).convert(value, param, ctx)


#: The type of every command's ``--dataset`` option.
DATASET_LOCATION = DatasetLocation()
