"""Remove secrets from URLs and text before they reach a log line or a message.

Signed LogPath URLs carry ``OSSAccessKeyId``, ``Signature`` and ``Expires`` in the query string,
and API URLs can carry ``AccessKeyId``/``Signature``/``SecurityToken``. Every message that may
contain a URL goes through :func:`redact_text`. [pip ``redact_auth_from_url``]
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

_SECRET_PARAMS = (
    "Signature",
    "OSSAccessKeyId",
    "Expires",
    "AccessKeyId",
    "AccessKeySecret",
    "SecurityToken",
    "security-token",
    "x-oss-signature",
    "x-oss-credential",
    "auth_key",
)
# Any `name=value` pair whose name is a secret parameter, in a query string or in free text.
_PARAM_RE = re.compile(
    r"(?i)\b(" + "|".join(re.escape(p) for p in _SECRET_PARAMS) + r")=([^&\s\"'<>]*)"
)
# An Authorization header value such as "ACS3-HMAC-SHA256 Credential=...,Signature=...".
_AUTH_RE = re.compile(r"(?i)(Credential=)([^,\s]*)")

REDACTED = "***"


def redact_text(text: str) -> str:
    """Return ``text`` with every secret-bearing query value replaced by ``***``."""
    text = _PARAM_RE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _AUTH_RE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_url(url: str) -> str:
    """Return ``url`` without its query string, the form used in messages about downloads."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.query:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
