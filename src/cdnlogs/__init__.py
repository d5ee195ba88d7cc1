"""cdnlogs: a complete, verified local archive of Alibaba Cloud CDN offline logs."""

from cdnlogs.__about__ import __version__
from cdnlogs.config import Settings
from cdnlogs.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    ApiThrottledError,
    CdnLogsError,
    ConfigError,
    CredentialsError,
    ExitStatus,
    ManifestError,
    ParseError,
    TransferError,
)
from cdnlogs.models import Domain, Listing, LogFile

__all__ = [
    "ApiAuthError",
    "ApiError",
    "ApiNotFoundError",
    "ApiThrottledError",
    "CdnLogsError",
    "ConfigError",
    "CredentialsError",
    "Domain",
    "ExitStatus",
    "Listing",
    "LogFile",
    "ManifestError",
    "ParseError",
    "Settings",
    "TransferError",
    "__version__",
]
