"""Log providers: where listings of remote log files come from.

``make_provider(settings)`` is the one way the CLI and the sync code get a provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdnlogs.providers.base import MonitoringProvider, Provider

if TYPE_CHECKING:
    from cdnlogs.config import Settings


def make_provider(settings: Settings) -> Provider:
    """The Aliyun provider of ``settings.product``; resolves the credential now (fails early)."""
    from cdnlogs.providers.aliyun import AliyunCdnProvider

    return AliyunCdnProvider(settings)


def make_monitoring_provider(settings: Settings) -> MonitoringProvider:
    """The hourly traffic/request series of ``settings.product`` (for reconcile)."""
    from cdnlogs.providers.aliyun import AliyunCdnProvider

    return AliyunCdnProvider(settings)


__all__ = ["MonitoringProvider", "Provider", "make_monitoring_provider", "make_provider"]
