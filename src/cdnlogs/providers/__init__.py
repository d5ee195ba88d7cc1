"""Log providers: where listings of remote log files come from."""

from cdnlogs.providers.base import Provider

__all__ = ["Provider"]
