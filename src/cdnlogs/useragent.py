"""Browser, OS, device class and bot from a User-Agent, with ``ua-parser`` (uap-core's rules).

``ua-parser`` gives families (``Chrome``, ``iOS``, ``iPhone``, ``Spider`` for crawlers); the
device class (bot, mobile, tablet, desktop, other) is derived from them by the rules in
``device_class``. Each distinct User-Agent is parsed once (``cdnlogs.dims`` keeps the results).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import ua_parser

#: The device classes, in display order.
DEVICE_CLASSES = ("desktop", "mobile", "tablet", "bot", "other")
_MOBILE_OS = {"Android", "iOS", "HarmonyOS", "Windows Phone", "BlackBerry OS", "KaiOS", "Tizen"}
_DESKTOP_OS = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD"}
_TABLET_HINTS = ("ipad", "tablet", "kindle", "nexus 7", "nexus 9", "nexus 10", "sm-t", "sm-x")
#: Longest User-Agent parsed; longer ones are parsed by their first this-many characters
#: (the rules match near the start, and a 1 MB header must not cost a regex scan per rule).
MAX_PARSED_LENGTH = 2048


@dataclass(frozen=True)
class UaInfo:
    """What a User-Agent says about its client; ``None`` where the rules found nothing."""

    browser: str | None
    browser_major: str | None
    os: str | None
    device: str | None
    device_class: str
    is_bot: bool


def parser_label() -> str:
    """``ua-parser 1.0.2, rules ua-parser-builtins 202610``: which rules classified the agents."""
    rules = _version("ua-parser-builtins")
    return f"ua-parser {_version('ua-parser')}, rules ua-parser-builtins {rules}"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - installed with cdnlogs
        return "?"


def classify(user_agent: str | None) -> UaInfo:
    """Parse one User-Agent (``None``: the log had ``-``)."""
    if not user_agent:
        return UaInfo(None, None, None, None, "other", False)
    result = ua_parser.parse(user_agent[:MAX_PARSED_LENGTH])
    browser = result.user_agent
    os = result.os
    device = result.device
    browser_family = _known(browser.family if browser else None)
    os_family = _known(os.family if os else None)
    device_family = _known(device.family if device else None)
    brand = device.brand if device else None
    cls = device_class(browser_family, os_family, device_family, brand)
    return UaInfo(
        browser=browser_family,
        browser_major=browser.major if browser and browser_family else None,
        os=os_family,
        device=device_family,
        device_class=cls,
        is_bot=cls == "bot",
    )


def device_class(browser: str | None, os: str | None, device: str | None, brand: str | None) -> str:
    """bot (uap-core's ``Spider`` device), tablet, mobile, desktop, or other."""
    if device == "Spider" or brand == "Spider":
        return "bot"
    hints = f"{device or ''} {brand or ''}".lower()
    if any(hint in hints for hint in _TABLET_HINTS):
        return "tablet"
    if os in _MOBILE_OS or (device and os not in _DESKTOP_OS):
        return "mobile"
    if os in _DESKTOP_OS:
        return "desktop"
    return "other"


def _known(family: str | None) -> str | None:
    # uap-core says "Other" when no rule matched: keep that as unknown, not as a family.
    return None if family in (None, "", "Other") else family
