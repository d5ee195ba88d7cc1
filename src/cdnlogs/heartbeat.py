"""Heartbeats: healthchecks-style pings and a failure webhook. They never fail a run.

A dead-man's switch (healthchecks.io, its self-hosted twin, Cronitor, Uptime Kuma's push
monitors...) alerts when a job stops reporting. :func:`ping` calls ``URL/start`` when a run
begins, ``URL`` when it succeeds and ``URL/fail`` when it fails, posting a short plain-text
summary that healthchecks shows in its log. :func:`post_webhook` posts a JSON summary (with a
Slack-style ``text`` line) when a run fails.

Both use one attempt with a short timeout; any failure (connection refused, timeout, an
HTTP error) is logged as a warning and swallowed. The URLs are treated as secrets: a
healthchecks URL's path is its key and a webhook's query often holds a token, so messages name
the scheme and host only. Redirects are not followed, so a body never goes to another host.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import requests

from cdnlogs.__about__ import __version__
from cdnlogs.config import DEFAULT_HEARTBEAT_TIMEOUT_SECONDS
from cdnlogs.redact import redact_text

log = logging.getLogger(__name__)

Event = Literal["start", "success", "fail"]
#: healthchecks keeps the first 100 kB of a ping body; a summary needs far less.
MAX_BODY_BYTES = 10_000
USER_AGENT = f"cdnlogs/{__version__}"


def ping_target(base_url: str, event: Event) -> str:
    """``base_url`` with ``/start`` or ``/fail`` appended to its path (query kept)."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if event != "success":
        path += f"/{event}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def public_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what a message may show of a secret URL."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def ping(
    base_url: str,
    event: Event,
    *,
    body: str = "",
    timeout: float = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
) -> bool:
    """Ping the dead-man's switch for ``event``; True if it answered 2xx (never raises)."""
    data = redact_text(body).encode("utf-8")[:MAX_BODY_BYTES]
    return _post(
        ping_target(base_url, event),
        data,
        {"Content-Type": "text/plain; charset=utf-8"},
        what=f"ping ({event})",
        timeout=timeout,
    )


def post_webhook(
    url: str, payload: dict[str, Any], *, timeout: float = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS
) -> bool:
    """POST ``payload`` as JSON to ``url``; True if it answered 2xx (never raises)."""
    # Redacted as text: a value stops at a quote, so the JSON stays valid.
    data = redact_text(json.dumps(payload, default=str)).encode("utf-8")
    return _post(url, data, {"Content-Type": "application/json"}, what="webhook", timeout=timeout)


def _post(url: str, data: bytes, headers: dict[str, str], *, what: str, timeout: float) -> bool:
    where = public_origin(url)
    try:
        response = requests.post(
            url,
            data=data,
            headers={**headers, "User-Agent": USER_AGENT},
            timeout=(timeout, timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("%s to %s failed: %s (the run goes on)", what, where, type(exc).__name__)
        return False
    with response:
        if not 200 <= response.status_code < 300:
            log.warning(
                "%s to %s answered HTTP %d (the run goes on)", what, where, response.status_code
            )
            return False
    return True
