"""Alibaba Cloud CDN, DCDN and VOD over the official SDKs: listings, monitoring, retries, errors.

Calls go through ``call_api`` of the product's SDK client (a subclass of the generic
``alibabacloud_tea_openapi`` client, carrying the product's endpoint rules) so we get the raw
JSON body and can read both the 2018-05-10 and the legacy 2014-11-11 shapes
(:mod:`cdnlogs.providers.aliyun_shapes`). The SDK's own retries stay off: one retry loop here,
with :class:`cdnlogs.retry.RetryPolicy` (exponential backoff, full jitter, bounded in attempts
and time) and a client-side :class:`cdnlogs.retry.RateLimiter` under the account's 100 calls/s.

Errors are classified by the provider's ``Code`` (not by HTTP status, which the docs and the
gateways disagree on): throttling, 5xx and connection failures are retried; auth and permission
codes raise ApiAuthError, unknown domains ApiNotFoundError, anything else ApiError. All carry
the Code, Message and RequestId. This is the only module that imports the SDK (lazily).

The product (``settings.product``: cdn, dcdn, vod; see :mod:`cdnlogs.providers.products`)
picks the SDK package whose client class makes the calls, the API version and the actions;
paging, retries and error mapping are the same for all three. ``hourly_counts`` reads the
product's monitoring series (traffic and requests per hour) for ``reconcile``.
"""

from __future__ import annotations

import importlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cdnlogs.config import Settings
from cdnlogs.credentials import ResolvedCredentials, resolve_credentials
from cdnlogs.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    ApiThrottledError,
    ConfigError,
)
from cdnlogs.models import Domain, Listing
from cdnlogs.providers.aliyun_shapes import (
    has_log_payload,
    parse_domain_page,
    parse_log_page,
    parse_series,
    to_log_file,
)
from cdnlogs.providers.base import HourlyCounts
from cdnlogs.providers.products import CDN, Product, product_named
from cdnlogs.redact import redact_text
from cdnlogs.retry import RateLimiter, RetryPolicy
from cdnlogs.timeutil import ceil_hour, floor_hour, iso_utc

log = logging.getLogger(__name__)

#: The documented maximum page sizes.
LOG_PAGE_SIZE = 1000
DOMAIN_PAGE_SIZE = 500
#: DescribeCdnDomainLogs refuses a StartTime more than 31 days before now.
RETENTION_DAYS = 31
#: A guard against a server that never reports an end (10 million files).
MAX_PAGES = 10_000
#: Monitoring: one data point per hour; the API answers at most 31 days per call at 3600 s.
MONITORING_INTERVAL_SECONDS = 3600
MONITORING_SPAN = timedelta(days=31)
#: ... and keeps hourly data for 186 days.
MONITORING_RETENTION = timedelta(days=186)

_AUTH_PREFIXES = (
    "InvalidAccessKeyId",
    "InvalidAccessKeySecret",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidTimeStamp",
    "MissingSecurityToken",
    "InvalidSecurityToken",
    "Forbidden",
    "NoPermission",
    "OperationDenied",
    "InvalidCredentials",
    "UnsupportedSignature",
)
_NOT_FOUND_CODES = ("InvalidDomain.NotFound", "InvalidDomainName.NotFound", "DomainNotFound")
_TRANSIENT_CODES = (
    "ServiceUnavailable",
    "ServiceUnAvailable",
    "InternalError",
    "ServiceBusy",
    "SignatureNonceUsed",  # our nonce collided; a retry makes a fresh one
    "RequestTimeout",
)
_HINTS = {
    "SignatureDoesNotMatch": "check the AccessKey secret (and that nothing rewrites the request)",
    "InvalidAccessKeyId": "check the AccessKey id; an expired STS token also gives this",
    "InvalidTimeStamp": "check the system clock: the API allows about 15 minutes of skew",
    "InvalidSecurityToken": "the STS token is expired or does not match the AccessKey",
    "MissingSecurityToken": "an STS AccessKey needs ALIBABA_CLOUD_SECURITY_TOKEN",
    "Forbidden": "the RAM user needs cdn:DescribeCdnDomainLogs (and cdn:DescribeUserDomains)",
    "NoPermission": "the RAM user needs cdn:DescribeCdnDomainLogs (and cdn:DescribeUserDomains)",
    "OperationDenied": "the account has not opened the CDN service",
    "InvalidDomain.NotFound": "run `cdnlogs domains` to see the account's domains",
    "InvalidDomainName.NotFound": "run `cdnlogs domains` to see the account's domains",
}


class _Transient(Exception):
    """A failure worth retrying; carries what the final ApiThrottledError will report."""

    def __init__(
        self, message: str, code: str | None, request_id: str | None, status: int | None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.status = status


def classify(
    code: str | None,
    message: str,
    *,
    request_id: str | None = None,
    status: int | None = None,
    product: Product = CDN,
    action: str | None = None,
) -> ApiError | _Transient:
    """Map a provider error to the exception to raise (or a _Transient to retry).

    ``action`` (the call that failed) makes a permission hint name the RAM action it needs.
    """
    code = code or None
    if code and (code.startswith("Throttling") or code in _TRANSIENT_CODES):
        return _Transient(message, code, request_id, status)
    hint = next((h for prefix, h in _HINTS.items() if code and code.startswith(prefix)), None)
    if hint is not None and product is not CDN:
        # `cdnlogs domains` lists CDN domains only.
        hint = hint.replace("CDN", product.title)
        if "cdnlogs domains" in hint:
            hint = f"check the domain name in the {product.title} console"
    if action and code and code.startswith(("Forbidden", "NoPermission")):
        hint = f"the RAM user needs {product.name}:{action}"
    kwargs: dict[str, Any] = {"code": code, "request_id": request_id, "status": status}
    if code and code.startswith(_AUTH_PREFIXES):
        return ApiAuthError(message, hint=hint, **kwargs)
    if code and (code in _NOT_FOUND_CODES or (code.endswith(".NotFound") and "Domain" in code)):
        return ApiNotFoundError(message, hint=hint, **kwargs)
    if status is not None and status >= 500:
        return _Transient(message, code, request_id, status)
    if code is None and status is None:
        return _Transient(message, code, request_id, status)
    return ApiError(message, hint=hint, **kwargs)


class AliyunCdnProvider:
    """The Provider of Alibaba Cloud CDN, DCDN or VOD (``settings.product``).

    CDN: DescribeCdnDomainLogs and DescribeUserDomains; DCDN: DescribeDcdnDomainLog; VOD:
    DescribeVodDomainLog. Also a MonitoringProvider (``hourly_counts``).
    """

    retention_days: int = RETENTION_DAYS

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: ResolvedCredentials | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.product = product_named(settings.product)
        self.credentials = credentials or resolve_credentials(settings)
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._rng = rng
        self.policy = RetryPolicy(
            attempts=settings.api_attempts, max_elapsed_seconds=settings.api_max_wait_seconds
        )
        self.limiter = RateLimiter(rate=settings.api_rate, clock=clock, sleep=sleep)
        self._client = self._make_client()

    # --- Provider ---------------------------------------------------------------------------

    def list_domains(self) -> list[Domain]:
        """Every domain of the account, across all pages of DescribeUserDomains."""
        if self.product is not CDN:
            raise ConfigError(
                f"--all-domains lists CDN domains only, not {self.product.title} ones",
                hint="name the domains with --domain (or `domains` in the config file)",
            )
        domains: dict[str, Domain] = {}
        page_number = 1
        received = 0
        while page_number <= MAX_PAGES:
            body = self.call(
                "DescribeUserDomains",
                {"PageSize": str(DOMAIN_PAGE_SIZE), "PageNumber": str(page_number)},
            )
            page = parse_domain_page(body)
            if not page.domains:
                break
            received += len(page.domains)
            for domain in page.domains:
                domains.setdefault(domain.name, domain)
            if page.total is not None and received >= page.total:
                break
            if page.total is None and len(page.domains) < DOMAIN_PAGE_SIZE:
                break
            page_number += 1
        return sorted(domains.values(), key=lambda d: d.name)

    def list_log_files(self, domain: str, start: datetime, end: datetime) -> Listing:
        """Every log file of ``domain`` in ``[start, end)``, across all pages.

        A ``start`` older than the provider keeps is moved forward (``Listing.clamped_from``)
        with a warning instead of failing the whole run.
        """
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        listing = Listing(domain=domain, start=start, end=end)
        oldest = ceil_hour(self._now() - timedelta(days=self.retention_days))
        if start < oldest:
            log.warning(
                "%s: start %s is older than the provider's %d-day window; listing from %s",
                domain,
                iso_utc(start),
                self.retention_days,
                iso_utc(oldest),
            )
            listing.clamped_from = start
            listing.start = start = oldest
        if end <= start:
            return listing

        seen: set[str] = set()
        received = 0
        for page_number in range(1, MAX_PAGES + 1):
            body = self.call(
                self.product.log_action,
                {
                    "DomainName": domain,
                    "StartTime": iso_utc(start),
                    "EndTime": iso_utc(end),
                    "PageSize": str(LOG_PAGE_SIZE),
                    "PageNumber": str(page_number),
                },
                expect_payload=True,
                version=self.log_version,
            )
            listing.pages += 1
            if body.get("RequestId"):
                listing.request_ids.append(str(body["RequestId"]))
            page = parse_log_page(body)
            if not page.entries:
                break
            received += len(page.entries)
            for entry in page.entries:
                log_file = to_log_file(entry, domain=domain, scheme=self.settings.log_scheme)
                if log_file.name in seen:
                    # Files published while we page shift later pages; count each name once.
                    listing.duplicates += 1
                    continue
                seen.add(log_file.name)
                listing.files.append(log_file)
            if page.total is not None and received >= page.total:
                break
            if page.total is None and len(page.entries) < LOG_PAGE_SIZE:
                break
        else:
            raise ApiError(f"{domain}: listing did not end after {MAX_PAGES} pages")
        listing.files.sort(key=lambda f: (f.start, f.name))
        log.info(
            "%s: %d files in %d pages (%d duplicates)",
            domain,
            len(listing.files),
            listing.pages,
            listing.duplicates,
        )
        return listing

    @property
    def log_version(self) -> str:
        """The log listing's API version: ``api_version`` for CDN (2014 is CDN's legacy)."""
        return self.settings.api_version if self.product is CDN else self.product.version

    # --- MonitoringProvider -------------------------------------------------------------------

    def hourly_counts(self, domain: str, start: datetime, end: datetime) -> HourlyCounts:
        """The product's traffic and request series of ``domain``, per UTC hour in [start, end).

        ``start``/``end`` are moved to hour boundaries; calls cover at most 31 days each, as
        the API allows at Interval 3600. A start older than the 186 days the provider keeps
        hourly data is moved forward with a warning: the older hours have no data point.
        """
        start = floor_hour(start.astimezone(UTC))
        end = ceil_hour(end.astimezone(UTC))
        counts = HourlyCounts(domain=domain, start=start, end=end)
        oldest = ceil_hour(self._now() - MONITORING_RETENTION)
        if start < oldest:
            log.warning(
                "%s: the provider keeps hourly counts for %d days; asking from %s, not %s",
                domain,
                MONITORING_RETENTION.days,
                iso_utc(oldest),
                iso_utc(start),
            )
            start = oldest
        traffic: dict[datetime, float] = {}
        requests: dict[datetime, float] = {}
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + MONITORING_SPAN)
            params = {
                "DomainName": domain,
                "StartTime": iso_utc(chunk_start),
                "EndTime": iso_utc(chunk_end),
                "Interval": str(MONITORING_INTERVAL_SECONDS),
            }
            for series, target in (
                (self.product.traffic, traffic),
                (self.product.requests, requests),
            ):
                body = self.call(series.action, params, version=self.product.version)
                if body.get("RequestId"):
                    counts.request_ids.append(str(body["RequestId"]))
                for hour, value in parse_series(body, series.container, series.field).items():
                    if chunk_start <= hour < chunk_end:
                        target[hour] = target.get(hour, 0.0) + value
            chunk_start = chunk_end
        counts.bytes = traffic
        counts.requests = {hour: round(value) for hour, value in requests.items()}
        return counts

    # --- one API call, with retries ---------------------------------------------------------

    def call(
        self,
        action: str,
        params: dict[str, str],
        *,
        expect_payload: bool = False,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Call ``action`` with retries; return the JSON body or raise an ApiError subclass.

        ``version`` defaults to the log listing's (``settings.api_version`` for CDN).
        """
        delays = self.policy.delays(clock=self._clock, rng=self._rng)
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            try:
                return self._call_once(
                    action, params, expect_payload=expect_payload, version=version
                )
            except _Transient as failure:
                delay = next(delays, None)
                if delay is None:
                    raise ApiThrottledError(
                        f"{failure.message} (still failing after {attempt} attempts)",
                        code=failure.code,
                        request_id=failure.request_id,
                        status=failure.status,
                        hint="the API is throttling or unavailable; try again later",
                    ) from None
                log.info(
                    "%s: %s%s; retry %d in %.2f s",
                    action,
                    f"{failure.code}: " if failure.code else "",
                    failure.message,
                    attempt,
                    delay,
                )
                self._sleep(delay)

    def _call_once(
        self, action: str, params: dict[str, str], *, expect_payload: bool, version: str | None
    ) -> dict[str, Any]:
        from alibabacloud_tea_openapi import utils_models as models
        from darabonba.runtime import RuntimeOptions

        api_params = models.Params(
            action=action,
            version=version or self.log_version,
            protocol=self._protocol,
            pathname="/",
            method="POST",
            auth_type="AK",
            style="RPC",
            req_body_type="formData",
            body_type="json",
        )
        request = models.OpenApiRequest(query=dict(params))
        started = time.monotonic()
        log.debug("%s %s", action, redact_text(json.dumps(params, sort_keys=True)))
        try:
            response = self._client.call_api(api_params, request, RuntimeOptions())
        except Exception as exc:
            raise self._translate(exc, action) from None
        body = response.get("body") if isinstance(response, dict) else None
        if not isinstance(body, dict):
            raise _Transient(
                "the API answered with a body that is not a JSON object", None, None, 200
            )
        request_id = body.get("RequestId")
        code = body.get("Code")
        # Some gateways put an error Code into an HTTP 200 body.
        if code and not (expect_payload and has_log_payload(body)) and "Domains" not in body:
            error = classify(
                str(code),
                str(body.get("Message") or ""),
                request_id=request_id,
                status=200,
                product=self.product,
                action=action,
            )
            raise error
        log.info(
            "%s %s -> RequestId %s (%.3f s)",
            action,
            " ".join(f"{k}={v}" for k, v in params.items() if k not in ("PageSize",)),
            request_id,
            time.monotonic() - started,
        )
        return body

    def _translate(self, exc: Exception, action: str) -> ApiError | _Transient:
        """Turn an SDK or transport exception into ours."""
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

        inner = getattr(exc, "inner_exception", None)
        if isinstance(exc, AlibabaCloudException):
            data = exc.data if isinstance(getattr(exc, "data", None), dict) else {}
            code = data.get("Code") or data.get("code") or exc.code
            message = data.get("Message") or data.get("message") or str(exc.message or "")
            request_id = data.get("RequestId") or data.get("requestId") or exc.request_id
            status = getattr(exc, "status_code", None)
            return classify(
                str(code) if code and code != "None" else None,
                redact_text(str(message)),
                request_id=str(request_id) if request_id and request_id != "None" else None,
                status=status if isinstance(status, int) else None,
                product=self.product,
                action=action,
            )
        cause = inner if isinstance(inner, BaseException) else exc
        # Transport failures (refused, reset, timeout) and unreadable bodies: retry.
        return _Transient(
            f"cannot reach {self.settings.endpoint}: {transport_reason(cause)}", None, None, None
        )

    # --- SDK client -------------------------------------------------------------------------

    def _make_client(self) -> Any:
        """The product's official SDK client (a tea-openapi client with the product's rules)."""
        from alibabacloud_tea_openapi import utils_models as models

        client_class = importlib.import_module(f"{self.product.sdk_module}.client").Client

        parts = urlsplit(self.settings.endpoint)
        self._protocol = parts.scheme.upper()
        config = models.Config(
            credential=self.credentials.client,
            endpoint=parts.netloc,
            protocol=parts.scheme,
            read_timeout=int(self.settings.read_timeout_seconds * 1000),
            connect_timeout=int(self.settings.connect_timeout_seconds * 1000),
            signature_algorithm="v2" if self.settings.signature_algorithm == "v2" else None,
        )
        return client_class(config)


# What a transport failure boils down to, in words, for the one-line error. The SDK wraps
# urllib3's errors in messages that repeat the whole request URL; the user needs the cause.
_TRANSPORT_REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("Temporary failure in name resolution", "host name not found"),
    ("timed out", "timed out"),
    ("Connection reset", "connection reset"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
    ("SSLError", "TLS error"),
    ("RemoteDisconnected", "connection closed without a response"),
)


def transport_reason(cause: BaseException) -> str:
    """A short, redacted reason for a transport failure (no request URL, no query string)."""
    text = f"{type(cause).__name__}: {cause}"
    for needle, reason in _TRANSPORT_REASONS:
        if needle in text:
            return reason
    text = redact_text(text.split(" with url:", 1)[0])
    return text if len(text) <= 200 else text[:197] + "..."
