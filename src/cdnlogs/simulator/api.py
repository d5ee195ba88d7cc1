"""The simulated Aliyun API at ``/``: authentication, then the operations cdnlogs calls.

CDN (2018-05-10, legacy 2014-11-11), DCDN (2018-01-15) and VOD (2017-03-21): each product's log
listing and its hourly traffic and request series (``monitoring``), on one endpoint.

``ApiHandler.handle`` takes a parsed HTTP request and returns ``(status, headers, body)``; the
HTTP server only moves bytes. Authentication follows the documented algorithms (see
``signing``): RPC v1 HMAC-SHA1 via the ``Signature`` parameter, or ACS3-HMAC-SHA256 via the
``Authorization`` header, plus the 15-minute timestamp window, nonce reuse and an optional STS
token. Answers and errors use the provider's real JSON shapes and codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from cdnlogs.simulator import signing
from cdnlogs.simulator.catalog import Catalog, SimFile
from cdnlogs.simulator.faults import Faults
from cdnlogs.simulator.monitoring import Monitoring, Point

HOST_ID = "cdn.aliyuncs.com"
LOG_VERSIONS = ("2018-05-10", "2014-11-11")
#: The actions each API version answers.
ACTIONS: dict[str, tuple[str, ...]] = {
    "2018-05-10": (
        "DescribeCdnDomainLogs",
        "DescribeUserDomains",
        "DescribeDomainTrafficData",
        "DescribeDomainQpsData",
    ),
    "2014-11-11": ("DescribeCdnDomainLogs", "DescribeUserDomains"),
    "2018-01-15": (
        "DescribeDcdnDomainLog",
        "DescribeDcdnDomainTrafficData",
        "DescribeDcdnDomainQpsData",
    ),
    "2017-03-21": (
        "DescribeVodDomainLog",
        "DescribeVodDomainTrafficData",
        "DescribeVodDomainQpsData",
    ),
}
#: HostId and product of error answers, by version.
_HOSTS = {
    "2018-01-15": ("dcdn.aliyuncs.com", "dcdn"),
    "2017-03-21": ("vod.cn-shanghai.aliyuncs.com", "vod"),
}
#: Monitoring intervals (seconds) -> the longest span one call may ask for, and how far back.
_INTERVALS = {
    300: (timedelta(days=3), timedelta(days=93)),
    3600: (timedelta(days=31), timedelta(days=186)),
    86400: (timedelta(days=366), timedelta(days=366)),
}

#: Error code -> (HTTP status, message), as the provider documents them.
ERRORS: dict[str, tuple[int, str]] = {
    "Throttling": (400, "Request was denied due to request throttling."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidAccessKeyId.Inactive": (400, "Specified access key is disabled."),
    "SignatureDoesNotMatch": (400, "Specified signature does not match our calculation."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "MissingSecurityToken": (400, "SecurityToken is mandatory for this action."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "InvalidSecurityToken.Expired": (400, "Specified SecurityToken is expired."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource."),
    "Forbidden": (403, "User not authorized to operate on the specified resource."),
    "OperationDenied": (403, "Your account does not open CDN service yet."),
    "InvalidAction.NotFound": (
        404,
        "Specified api is not found, please check your url and method.",
    ),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "MissingParameter": (
        400,
        "The input parameter that is mandatory for processing is not supplied.",
    ),
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "InvalidDomain.NotFound": (404, "The domain provided does not exist in our records."),
    "InvalidStartTime.Malformed": (400, "Specified StartTime is malformed."),
    "InvalidEndTime.Malformed": (400, "Specified EndTime is malformed."),
    "InvalidStartTime.ValueNotSupported": (
        400,
        "The specified value of parameter StartTime is not supported.",
    ),
    "InvalidEndTime.Mismatch": (400, "Specified EndTime does not match the specified StartTime."),
    "InvalidLogDay.Malformed": (400, "Specified LogDay is malformed."),
    "MissingTimeParameter": (400, "The StartTime and EndTime must be both specified."),
    "InvalidTimeSpan": (400, "The time span exceeds the limit."),
    "InvalidInterval": (400, "The specified value of parameter Interval is not supported."),
}

_TIME_2018 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_TIME_2014 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TZ8 = timedelta(hours=8)


class Reject(Exception):
    """An API error answer: the provider's ``Code`` and, optionally, a specific message."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        default_status, default_message = ERRORS.get(code, (400, code))
        super().__init__(message or default_message)
        self.code = code
        self.message = message or default_message
        self.status = status or default_status


@dataclass
class ApiRequest:
    """What the API needs from one HTTP request."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive)."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def form(self) -> dict[str, str]:
        """Parameters of an ``application/x-www-form-urlencoded`` body."""
        ctype = (self.header("content-type") or "").lower()
        if not self.body or "application/x-www-form-urlencoded" not in ctype:
            return {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class ApiState:
    """The mutable state the API shares with the simulator."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None
    catalog: Catalog
    faults: Faults
    #: Scheme-less signed LogPath of a file.
    log_path: Callable[[SimFile], str]
    #: The simulated "now" for listing rules (default window, 31-day limit).
    now: Callable[[], datetime]
    #: The provider's own traffic and request counts (the monitoring actions).
    monitoring: Monitoring
    timestamp_window_seconds: float = 900.0
    api_calls: Counter[str] = field(default_factory=Counter)
    #: API calls answered, by ``(signature, version)``: signature ``ACS3`` or ``RPC``.
    api_styles: Counter[tuple[str, str]] = field(default_factory=Counter)
    counter_lock: threading.Lock = field(default_factory=threading.Lock)
    _nonces: dict[str, float] = field(default_factory=dict)
    _nonce_lock: threading.Lock = field(default_factory=threading.Lock)

    def use_nonce(self, nonce: str) -> bool:
        """Record a nonce; False if it was seen inside the timestamp window."""
        now = time.monotonic()
        with self._nonce_lock:
            if len(self._nonces) > 10000:
                horizon = now - 2 * self.timestamp_window_seconds
                self._nonces = {k: t for k, t in self._nonces.items() if t > horizon}
            if nonce in self._nonces:
                return False
            self._nonces[nonce] = now
            return True


def new_request_id() -> str:
    """A fresh uppercase UUID, as the provider's RequestIds are."""
    return str(uuid.uuid4()).upper()


def error_body(code: str, message: str, request_id: str, version: str = "") -> dict[str, str]:
    """The provider's error JSON (HostId and product of the API ``version``'s product)."""
    host, product = _HOSTS.get(version, (HOST_ID, "Cdn"))
    return {
        "RequestId": request_id,
        "HostId": host,
        "Code": code,
        "Message": message,
        "Recommend": (
            "https://api.alibabacloud.com/troubleshoot?intl_lang=EN_US"
            f"&q={code}&product={product}&requestId={request_id}"
        ),
    }


def to_xml(root: str, value: Any) -> str:
    """Render a response dict as the provider's XML (lists repeat their element name)."""

    def render(name: str, item: Any) -> str:
        if isinstance(item, list):
            return "".join(render(name, x) for x in item)
        if isinstance(item, dict):
            inner = "".join(render(k, v) for k, v in item.items())
            return f"<{name}>{inner}</{name}>"
        text = "true" if item is True else "false" if item is False else str(item)
        return f"<{name}>{escape(text)}</{name}>"

    return f'<?xml version="1.0" encoding="UTF-8"?>{render(root, value)}'


class ApiHandler:
    """Authenticate and answer one API request."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def handle(self, request: ApiRequest) -> tuple[int, dict[str, str], bytes]:
        """Answer ``request``: ``(status, headers, body)``; never raises for a bad request."""
        request_id = new_request_id()
        params = dict(request.query)
        params.update(request.form())
        acs3 = (request.header("authorization") or "").startswith(signing.ACS3_ALGORITHM)
        action = (request.header("x-acs-action") if acs3 else None) or params.get("Action", "")
        version = (request.header("x-acs-version") if acs3 else None) or params.get("Version", "")
        xml = params.get("Format", "").upper() == "XML"
        try:
            try:
                if acs3:
                    self._verify_acs3(request)
                else:
                    self._verify_rpc(request.method, params)
                self._inject_faults()
                status, body = 200, self._dispatch(action, version, params)
            finally:
                with self.state.counter_lock:
                    self.state.api_calls[action or "(none)"] += 1
                    self.state.api_styles["ACS3" if acs3 else "RPC", version] += 1
        except Reject as exc:
            status, body = exc.status, error_body(exc.code, exc.message, request_id, version)
            root = "Error"
        else:
            body = {"RequestId": request_id, **body}
            root = f"{action}Response"
        headers = {"x-acs-request-id": request_id}
        if xml:
            headers["Content-Type"] = "text/xml;charset=utf-8"
            return status, headers, to_xml(root, body).encode()
        headers["Content-Type"] = "application/json;charset=utf-8"
        return status, headers, json.dumps(body, separators=(",", ":")).encode()

    # -- authentication ---------------------------------------------------------------------

    def _check_key(self, access_key_id: str) -> None:
        if not hmac.compare_digest(access_key_id, self.state.access_key_id):
            raise Reject("InvalidAccessKeyId.NotFound")

    def _check_time(self, stamp: str) -> None:
        try:
            if not _TIME_2018.match(stamp):
                raise ValueError(stamp)
            when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise Reject("InvalidTimeStamp.Format") from None
        # The signature's clock is always the real one, even when the catalog's "now" is fixed.
        if abs(time.time() - when.timestamp()) > self.state.timestamp_window_seconds:
            raise Reject("InvalidTimeStamp.Expired")

    def _check_token(self, token: str | None) -> None:
        expected = self.state.security_token
        if expected is None:
            return
        if not token:
            raise Reject("MissingSecurityToken")
        if not hmac.compare_digest(token, expected):
            raise Reject("InvalidSecurityToken.Malformed")

    def _check_nonce(self, nonce: str) -> None:
        if not self.state.use_nonce(nonce):
            raise Reject("SignatureNonceUsed")

    def _verify_rpc(self, method: str, params: Mapping[str, str]) -> None:
        if "Signature" not in params:
            raise Reject("IncompleteSignature", "The request is not signed: Signature is missing.")
        for name in ("AccessKeyId", "SignatureNonce", "Timestamp"):
            if not params.get(name):
                raise Reject("MissingParameter", f"The input parameter {name} is mandatory.")
        if params.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
            raise Reject("InvalidParameter", "Specified SignatureMethod is not supported.")
        if params.get("SignatureVersion", "1.0") != "1.0":
            raise Reject("InvalidParameter", "Specified SignatureVersion is not supported.")
        self._check_key(params["AccessKeyId"])
        self._check_time(params["Timestamp"])
        expected = signing.rpc_signature(method, params, self.state.access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise Reject("SignatureDoesNotMatch")
        self._check_token(params.get("SecurityToken"))
        self._check_nonce(params["SignatureNonce"])

    def _verify_acs3(self, request: ApiRequest) -> None:
        auth = signing.parse_acs3_authorization(request.header("authorization") or "")
        if auth is None:
            raise Reject("IncompleteSignature", "The Authorization header is malformed.")
        signed = set(auth.signed_headers)
        required = {"host", "x-acs-action", "x-acs-version", "x-acs-date"}
        required |= {"x-acs-signature-nonce", "x-acs-content-sha256"}
        present = {k.lower() for k, _ in request.headers}
        required |= {h for h in present if h.startswith("x-acs-")}
        if "content-type" in present:
            required.add("content-type")
        missing = sorted(required - signed)
        if missing:
            raise Reject("IncompleteSignature", f"Headers must be signed: {', '.join(missing)}.")
        self._check_key(auth.credential)
        self._check_time(request.header("x-acs-date") or "")
        payload = request.header("x-acs-content-sha256") or ""
        if not hmac.compare_digest(payload, hashlib.sha256(request.body).hexdigest()):
            raise Reject("SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body.")
        query = dict(request.query)
        variants = (False, True) if "" in query.values() else (False,)
        for bare in variants:
            canonical = signing.acs3_canonical_request(
                request.method,
                request.path,
                query,
                request.headers,
                auth.signed_headers,
                payload,
                bare_empty=bare,
            )
            expected = signing.acs3_signature(canonical, self.state.access_key_secret)
            if hmac.compare_digest(expected, auth.signature):
                break
        else:
            raise Reject("SignatureDoesNotMatch")
        self._check_token(request.header("x-acs-security-token"))
        self._check_nonce(request.header("x-acs-signature-nonce") or "")

    # -- faults and dispatch ---------------------------------------------------------------

    def _inject_faults(self) -> None:
        faults = self.state.faults
        if faults.take("throttle_next"):
            raise Reject("Throttling.User", status=faults.throttle_status)
        if faults.take("api_5xx_next"):
            raise Reject("ServiceUnavailable")
        if faults.take("api_error_next"):
            raise Reject(faults.api_error_code, status=faults.api_error_status)

    def _dispatch(self, action: str, version: str, params: Mapping[str, str]) -> dict[str, Any]:
        if not action:
            raise Reject("MissingParameter", "The input parameter Action is mandatory.")
        if not any(action in actions for actions in ACTIONS.values()):
            raise Reject("InvalidAction.NotFound")
        if not version:
            raise Reject("MissingParameter", "The input parameter Version is mandatory.")
        if version not in ACTIONS:
            raise Reject("InvalidVersion")
        if action not in ACTIONS[version]:
            raise Reject("InvalidAction.NotFound")
        if action == "DescribeUserDomains":
            return self._user_domains(params)
        if action.endswith(("TrafficData", "QpsData")):
            return self._monitoring(action, params)
        if version == "2014-11-11":
            return self._domain_logs_2014(params)
        if action == "DescribeDcdnDomainLog":
            return self._domain_logs_2018(params, domain_at_top=True)
        if action == "DescribeVodDomainLog":
            return self._domain_logs_2018(params, page_key="PageNumber")
        return self._domain_logs_2018(params)

    # -- operations ------------------------------------------------------------------------

    def _domain(self, params: Mapping[str, str]) -> str:
        domain = params.get("DomainName", "").strip()
        if not domain:
            raise Reject("MissingParameter", "The input parameter DomainName is mandatory.")
        if domain not in self.state.catalog.domains:
            raise Reject("InvalidDomain.NotFound")
        return domain

    def _window(
        self, params: Mapping[str, str], pattern: re.Pattern[str]
    ) -> tuple[datetime, datetime]:
        now = self.state.now()
        start = _parse_time(params.get("StartTime"), pattern, "InvalidStartTime.Malformed")
        end = _parse_time(params.get("EndTime"), pattern, "InvalidEndTime.Malformed")
        if start is None and end is None:
            start, end = now - timedelta(hours=24), now
        elif start is None:
            assert end is not None
            start = end - timedelta(hours=24)
        elif end is None:
            end = now
        if end <= start:
            raise Reject("InvalidEndTime.Mismatch")
        if now - start > timedelta(days=31):
            raise Reject("InvalidStartTime.ValueNotSupported")
        return start, end

    def _published(self, domain: str) -> list[SimFile]:
        missing = self.state.faults.missing  # listed even though downloads stay 404
        hidden = self.state.faults.hidden  # lost: never listed
        return [
            f
            for f in self.state.catalog.files(domain)
            if (f.published or f.name in missing) and f.name not in hidden
        ]

    def _details(self, files: Sequence[SimFile]) -> list[dict[str, Any]]:
        return [
            {
                "LogName": f.name,
                "LogPath": self.state.log_path(f),
                "LogSize": f.size,
                "StartTime": _iso(f.start),
                "EndTime": _iso(f.end),
            }
            for f in files
        ]

    def _domain_logs_2018(
        self, params: Mapping[str, str], *, domain_at_top: bool = False, page_key: str = "PageIndex"
    ) -> dict[str, Any]:
        """CDN 2018's listing; DCDN puts DomainName at the top, VOD says PageNumber."""
        domain = self._domain(params)
        start, end = self._window(params, _TIME_2018)
        size, number = _paging(params, default=300, maximum=1000)
        files = [f for f in self._published(domain) if start <= f.start < end]
        page = files[(number - 1) * size : number * size]
        detail: dict[str, Any] = {} if domain_at_top else {"DomainName": domain}
        detail["LogCount"] = len(page)
        detail["PageInfos"] = {page_key: number, "PageSize": size, "Total": len(files)}
        detail["LogInfos"] = {"LogInfoDetail": self._details(page)}
        body: dict[str, Any] = {"DomainName": domain} if domain_at_top else {}
        body["DomainLogDetails"] = {"DomainLogDetail": [detail]}
        return body

    def _monitoring(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """A traffic or QPS series in the shape of ``action``'s product (see ``monitoring``)."""
        domain = self._domain(params)
        now = self.state.now()
        start = _parse_time(params.get("StartTime"), _TIME_2018, "InvalidStartTime.Malformed")
        end = _parse_time(params.get("EndTime"), _TIME_2018, "InvalidEndTime.Malformed")
        if (start is None) != (end is None):
            raise Reject("MissingTimeParameter")
        try:
            seconds = int(params.get("Interval") or 300)
        except ValueError:
            raise Reject("InvalidInterval") from None
        if seconds not in _INTERVALS:
            raise Reject("InvalidInterval")
        longest, kept = _INTERVALS[seconds]
        if start is None or end is None:
            start, end = now - timedelta(hours=24), now
        if end <= start:
            raise Reject("InvalidEndTime.Mismatch")
        if end - start > longest:
            raise Reject("InvalidTimeSpan")
        if now - start > kept:
            raise Reject("InvalidStartTime.ValueNotSupported")
        points = self.state.monitoring.series(domain, start, end, timedelta(seconds=seconds))
        dcdn = "Dcdn" in action
        traffic = action.endswith("TrafficData")
        modules = [
            _traffic_point(p, dcdn=dcdn) if traffic else _qps_point(p, seconds, dcdn=dcdn)
            for p in points
        ]
        if traffic:
            container = "TrafficDataPerInterval"
        else:
            container = "QpsDataPerInterval" if dcdn else "QpsDataInterval"
        body: dict[str, Any] = {
            "DomainName": domain,
            "StartTime": _iso(start),
            "EndTime": _iso(end),
            "DataInterval": str(seconds),
            container: {"DataModule": modules},
        }
        if traffic and "Vod" in action:
            body["TotalTraffic"] = str(round(sum(p.traffic for p in points)))
        return body

    def _domain_logs_2014(self, params: Mapping[str, str]) -> dict[str, Any]:
        domain = self._domain(params)
        size, number = _paging(params, default=300, maximum=1000)
        log_day = params.get("LogDay", "").strip()
        files = self._published(domain)
        if log_day and not (params.get("StartTime") or params.get("EndTime")):
            if not _DAY.match(log_day):
                raise Reject("InvalidLogDay.Malformed")
            files = [f for f in files if f"{f.start + _TZ8:%Y-%m-%d}" == log_day]
        elif params.get("StartTime") or params.get("EndTime"):
            start, end = self._window(params, _TIME_2014)
            files = [f for f in files if start <= f.start < end]
        else:
            # No LogDay and no times: the current day, in the provider's +08:00.
            today = f"{self.state.now() + _TZ8:%Y-%m-%d}"
            files = [f for f in files if f"{f.start + _TZ8:%Y-%m-%d}" == today]
        page = files[(number - 1) * size : number * size]
        return {
            "PageNumber": number,
            "PageSize": size,
            "TotalCount": len(files),
            "DomainLogModel": {
                "DomainName": domain,
                "DomainLogDetails": {"DomainLogDetail": self._details(page)},
            },
        }

    def _user_domains(self, params: Mapping[str, str]) -> dict[str, Any]:
        size, number = _paging(params, default=20, maximum=500)
        names = self.state.catalog.domains
        wanted = [n.strip() for n in params.get("DomainName", "").split(",") if n.strip()]
        if wanted:
            kind = params.get("DomainSearchType", "fuzzy_match")
            names = [n for n in names if any(_domain_matches(n, w, kind) for w in wanted)]
        status = params.get("DomainStatus", "")
        if status and status != "online":
            names = []
        page = names[(number - 1) * size : number * size]
        return {
            "PageNumber": number,
            "PageSize": size,
            "TotalCount": len(names),
            "Domains": {"PageData": [_domain_record(n, i) for i, n in enumerate(page)]},
        }


def _traffic_point(point: Point, *, dcdn: bool) -> dict[str, Any]:
    stamp = _iso(point.start)
    if dcdn:  # DCDN's traffic points are numbers, split by static/dynamic content
        value = round(point.traffic, 2)
        return {
            "TimeStamp": stamp,
            "Traffic": value,
            "StaticHttpTraffic": 0.0,
            "StaticHttpsTraffic": value,
            "DynamicHttpTraffic": 0.0,
            "DynamicHttpsTraffic": 0.0,
        }
    text = str(round(point.traffic))  # CDN and VOD: bytes as a string
    return {
        "TimeStamp": stamp,
        "Value": text,
        "DomesticValue": text,
        "OverseasValue": "0",
        "HttpsValue": text,
        "HttpsDomesticValue": text,
        "HttpsOverseasValue": "0",
    }


def _qps_point(point: Point, seconds: int, *, dcdn: bool) -> dict[str, Any]:
    stamp = _iso(point.start)
    qps = round(point.requests / seconds, 3)
    if dcdn:
        return {
            "TimeStamp": stamp,
            "Qps": qps,
            "Acc": point.requests,
            "StaticHttpsQps": qps,
            "StaticHttpsAcc": point.requests,
            "StaticHttpQps": 0.0,
            "StaticHttpAcc": 0,
            "DynamicHttpQps": 0.0,
            "DynamicHttpAcc": 0,
            "DynamicHttpsQps": 0.0,
            "DynamicHttpsAcc": 0,
        }
    return {
        "TimeStamp": stamp,
        "Value": str(qps),
        "AccValue": str(point.requests),
        "DomesticValue": str(qps),
        "AccDomesticValue": str(point.requests),
        "OverseasValue": "0",
        "AccOverseasValue": "0",
        "HttpsValue": str(qps),
        "HttpsAccValue": str(point.requests),
    }


def _domain_matches(name: str, pattern: str, kind: str) -> bool:
    if kind == "full_match":
        return name == pattern
    if kind == "pre_match":
        return name.startswith(pattern)
    if kind == "suf_match":
        return name.endswith(pattern)
    return pattern in name


def _domain_record(name: str, index: int) -> dict[str, Any]:
    return {
        "DomainName": name,
        "Cname": f"{name}.w.kunlunsl.com",
        "CdnType": "web",
        "DomainStatus": "online",
        "GmtCreated": "2024-03-01T08:00:00Z",
        "GmtModified": "2024-03-02T09:30Z",
        "Description": "",
        "Coverage": "domestic",
        "SslProtocol": "on",
        "Sandbox": "",
        "ResourceGroupId": "rg-simulator",
        "DomainId": 100000 + index,
        "Sources": {
            "Source": [
                {
                    "Content": "origin.example.net",
                    "Type": "domain",
                    "Port": 443,
                    "Priority": "20",
                    "Weight": "10",
                }
            ]
        },
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None, pattern: re.Pattern[str], code: str) -> datetime | None:
    if text is None or text == "":
        return None
    if not pattern.match(text):
        raise Reject(code)
    try:
        fmt = "%Y-%m-%dT%H:%M:%SZ" if text.count(":") == 2 else "%Y-%m-%dT%H:%MZ"
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise Reject(code) from None


def _paging(params: Mapping[str, str], *, default: int, maximum: int) -> tuple[int, int]:
    try:
        size = int(params.get("PageSize") or default)
        number = int(params.get("PageNumber") or 1)
    except ValueError:
        raise Reject("InvalidParameter", "PageSize and PageNumber must be integers.") from None
    if not 1 <= size <= maximum:
        raise Reject("InvalidParameter", f"PageSize must be between 1 and {maximum}.")
    if number < 1:
        raise Reject("InvalidParameter", "PageNumber must be 1 or more.")
    return size, number
