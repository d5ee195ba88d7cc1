"""Shared click options and the one place a command turns its flags into Settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cdnlogs.config import Settings, load_settings

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


def api_options(func: F) -> F:
    """Options that say where and how to call the provider's API."""
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


def make_settings(config_path: Path | None = None, **flags: Any) -> Settings:
    """Build Settings from this command's flags (``None`` = not given) over env and file."""
    return load_settings(flags, env=os.environ, config_path=config_path)
