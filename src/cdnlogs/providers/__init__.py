"""Log providers: where listings of remote log files come from.

``make_provider(settings)`` is the one way the CLI and the sync code get a provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdnlogs.providers.base import Provider

if TYPE_CHECKING:
    from cdnlogs.config import Settings


def make_provider(settings: Settings) -> Provider:
    """The Aliyun CDN provider for ``settings``; resolves the credential now (fails early)."""
    from cdnlogs.providers.aliyun import AliyunCdnProvider

    return AliyunCdnProvider(settings)


__all__ = ["Provider", "make_provider"]
