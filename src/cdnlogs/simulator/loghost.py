"""The simulated OSS log host: signed, expiring download URLs for the gzip log files.

A LogPath is ``HOST:PORT/v1.l1cache/<uid>/<domain>/<YYYY_MM_DD>/<LogName>?Expires=..&
OSSAccessKeyId=..&Signature=..`` signed like an OSS V1 presigned GET. A tampered URL gets 403
``SignatureDoesNotMatch``, an expired one 403 ``AccessDenied`` "Request has expired.", an unknown
file 404 ``NoSuchKey``, all as OSS XML. Bodies are the raw gzip bytes (no Content-Encoding).
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qs, quote, unquote

from cdnlogs.simulator import signing
from cdnlogs.simulator.catalog import Catalog, SimFile
from cdnlogs.simulator.faults import Faults

PATH_PREFIX = "/v1.l1cache/"
#: Bodies up to this size go out in the same write as the headers (no Nagle/delayed-ACK stall).
SMALL_BODY = 256 * 1024
CHUNK = 256 * 1024


@dataclass
class HostState:
    """What the log host shares with the simulator."""

    catalog: Catalog
    faults: Faults
    uid: str
    oss_access_key_id: str
    oss_secret: str
    url_lifetime_seconds: float
    downloads: Counter[str] = field(default_factory=Counter)
    counter_lock: threading.Lock = field(default_factory=threading.Lock)

    def resource(self, sim_file: SimFile) -> str:
        """The (unquoted) path that the URL signature covers."""
        return f"{PATH_PREFIX}{self.uid}/{sim_file.domain}/{sim_file.day}/{sim_file.name}"

    def signed_path(self, sim_file: SimFile, netloc: str) -> str:
        """The scheme-less signed LogPath of ``sim_file`` as the API lists it."""
        lifetime = -3600 if self.faults.expire_urls else self.url_lifetime_seconds
        expires = int(time.time() + lifetime)
        signature = signing.oss_url_signature(self.oss_secret, expires, self.resource(sim_file))
        path = "/".join(
            [
                PATH_PREFIX.rstrip("/"),
                quote(self.uid, safe=""),
                quote(sim_file.domain, safe=""),
                sim_file.day,
                quote(sim_file.name, safe=""),
            ]
        )
        return (
            f"{netloc}{path}?Expires={expires}&OSSAccessKeyId={self.oss_access_key_id}"
            f"&Signature={quote(signature, safe='')}"
        )


@dataclass
class Reply:
    """A planned log-host answer, executed by the HTTP handler."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    sim_file: SimFile | None = None
    start: int = 0
    end: int = 0  # exclusive
    drop: bool = False
    truncate: bool = False
    corrupt: bool = False
    latency: float = 0.0
    rate: float | None = None
    complete: bool = False
    stall: bool = False


def oss_error(status: int, code: str, message: str, **extra: str) -> Reply:
    """An OSS-style XML error answer."""
    request_id = uuid.uuid4().hex[:24].upper()
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId>"
        f"<HostId>cdnlog-simulator.oss-cn-hangzhou.aliyuncs.com</HostId>{fields}</Error>"
    ).encode()
    return Reply(status, {"Content-Type": "application/xml", "x-oss-request-id": request_id}, body)


def plan(state: HostState, raw_path: str, query: str, range_header: str | None) -> Reply:
    """Decide the answer to ``GET raw_path?query`` (signature, expiry, existence, faults)."""
    parts = raw_path.split("/")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if len(parts) != 6 or "/".join(parts[:2]) + "/" != PATH_PREFIX:
        return oss_error(404, "NoSuchKey", "The specified key does not exist.")
    _, _, uid, domain, day, name = (unquote(p) for p in parts)
    resource = f"{PATH_PREFIX}{uid}/{domain}/{day}/{name}"
    if not {"Expires", "Signature", "OSSAccessKeyId"} <= params.keys():
        return oss_error(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
    try:
        expires = int(params["Expires"])
    except ValueError:
        return oss_error(403, "AccessDenied", "Invalid argument: Expires.")
    expected = signing.oss_url_signature(state.oss_secret, expires, resource)
    if params["OSSAccessKeyId"] != state.oss_access_key_id or not hmac.compare_digest(
        expected, params["Signature"]
    ):
        return oss_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            OSSAccessKeyId=state.oss_access_key_id,
        )
    now = int(time.time())
    if expires < now:
        return oss_error(
            403,
            "AccessDenied",
            "Request has expired.",
            Expires=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires)),
            ServerTime=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
        )
    sim_file = state.catalog.get(name)
    faults = state.faults
    if (
        sim_file is None
        or not sim_file.published
        or name in faults.missing
        or name in faults.hidden
        or sim_file.domain != domain
        or uid != state.uid
        or sim_file.day != day
    ):
        return oss_error(404, "NoSuchKey", "The specified key does not exist.", Key=name)
    latency = faults.latency_for(name)
    if faults.take("drop_next", name):
        return Reply(0, {}, drop=True, latency=latency)
    if faults.take("status_5xx_next", name):
        reply = oss_error(503, "ServiceUnavailable", "Please reduce your request rate.")
        reply.latency = latency
        return reply
    size = sim_file.size
    start, end, status = 0, size, 200
    headers = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes" if faults.range_support else "none",
        "ETag": f'"{sim_file.seed:016X}"',
        "Last-Modified": formatdate(sim_file.end.timestamp() + 1800, usegmt=True),
        "x-oss-request-id": uuid.uuid4().hex[:24].upper(),
    }
    if range_header and faults.range_support:
        parsed = _parse_range(range_header, size)
        if parsed is None:
            reply = oss_error(416, "InvalidRange", "The requested range cannot be satisfied.")
            reply.headers["Content-Range"] = f"bytes */{size}"
            return reply
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    return Reply(
        status,
        headers,
        sim_file=sim_file,
        start=start,
        end=end,
        truncate=faults.take("truncate_next", name),
        corrupt=faults.take("corrupt_next", name),
        stall=faults.take("stall_next", name),
        latency=latency,
        rate=faults.bandwidth_for(name),
        complete=end == size,
    )


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=N-`` or ``bytes=N-M`` -> ``(start, end_exclusive)``; None if unsatisfiable."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            return (max(0, size - length), size) if length > 0 and size > 0 else None
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return None
    return start, end


def body_chunks(reply: Reply) -> Iterator[bytes]:
    """The body bytes of a file reply, in chunks, with the corruption fault applied."""
    sim_file = reply.sim_file
    assert sim_file is not None
    end = reply.end
    if reply.truncate or reply.stall:
        # Half of what the headers promise: the client must notice the short body.
        end = reply.start + (reply.end - reply.start) // 2
    size = sim_file.size
    # The gzip trailer's CRC32 sits at [size-8, size-4): flipping it keeps the length while
    # making every decompressor report a CRC error.
    crc_lo, crc_hi = size - 8, size - 4
    for offset, chunk in _raw_chunks(sim_file, reply.start, end):
        if reply.corrupt and offset < crc_hi and offset + len(chunk) > crc_lo:
            data = bytearray(chunk)
            for pos in range(max(crc_lo, offset), min(crc_hi, offset + len(chunk))):
                data[pos - offset] ^= 0xFF
            chunk = bytes(data)
        yield chunk


def _raw_chunks(sim_file: SimFile, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    if sim_file.path is None:
        data = sim_file.gz
        assert data is not None
        for offset in range(start, end, CHUNK):
            yield offset, data[offset : min(end, offset + CHUNK)]
        return
    with sim_file.path.open("rb") as handle:
        handle.seek(start)
        offset = start
        while offset < end:
            chunk = handle.read(min(CHUNK, end - offset))
            if not chunk:
                return
            yield offset, chunk
            offset += len(chunk)


def send_file_body(
    sock: socket.socket, reply: Reply, head: bytes, write: Callable[[bytes], object]
) -> None:
    """Send the headers and the body of a file reply, honouring the rate cap."""
    sim_file = reply.sim_file
    assert sim_file is not None
    length = reply.end - reply.start
    plain = not (reply.truncate or reply.corrupt or reply.rate or reply.stall)
    if plain and length <= SMALL_BODY:
        write(head + b"".join(c for c in body_chunks(reply)))
        return
    write(head)
    if plain and sim_file.path is not None:
        # A big disk-backed file goes out with sendfile(): no copy through Python.
        with sim_file.path.open("rb") as handle:
            sock.sendfile(handle, reply.start, length)
        return
    started = time.monotonic()
    sent = 0
    for chunk in body_chunks(reply):
        if reply.rate:
            step = max(1, int(reply.rate / 20))
            for i in range(0, len(chunk), step):
                piece = chunk[i : i + step]
                write(piece)
                sent += len(piece)
                delay = started + sent / reply.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        else:
            write(chunk)
            sent += len(chunk)
    if reply.stall:
        # Hold the connection open without a byte more: the client's read blocks until its
        # read timeout, unless it hangs up (recv sees EOF) or the simulator stops.
        sock.settimeout(None)
        while sock.recv(4096):
            pass
