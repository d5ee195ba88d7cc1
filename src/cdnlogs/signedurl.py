"""What a signed download URL says about itself: when it expires, and which host it is for.

A LogPath is an OSS presigned GET: ``scheme://host[:port]/path?Expires=..&OSSAccessKeyId=..&
Signature=..``. The query is a secret (see :mod:`cdnlogs.redact`); ``Expires`` is Unix seconds.
The plan (an expired URL is a re-list) and the downloader (no request with an expired URL, no
request to another host) both read URLs through here. A leaf module: it imports nothing else
of ours.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

#: The port a URL means when it names none.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_expires_at(url: str) -> float | None:
    """The ``Expires=`` of a signed URL as Unix seconds, or None when it has none (or junk)."""
    values = parse_qs(urlsplit(url).query).get("Expires")
    if not values:
        return None
    try:
        return float(values[0])
    except ValueError:
        return None


def url_origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, lower-cased, with the scheme's default port filled in.

    Two URLs with the same origin reach the same server the same way; a signed URL may only
    ever be sent to its own origin (an ``https`` URL is not the same origin as ``http``).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: no origin matches it
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def origin_text(url: str) -> str:
    """``scheme://host:port`` of ``url`` for messages (never the path or the query)."""
    scheme, host, port = url_origin(url)
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


__all__ = ["origin_text", "url_expires_at", "url_origin"]
