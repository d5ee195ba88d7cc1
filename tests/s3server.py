"""A real S3 API server for tests: moto's ThreadedMotoServer on 127.0.0.1, a free port.

It speaks the S3 wire protocol to s3fs/botocore like any store would. :class:`S3Faults` are
switches a test flips at run time, applied by a WSGI layer in front of moto:

* ``put_errors``: answer this many object PUTs (or multipart part uploads) with
  ``500 InternalError`` before storing anything; ``put_errors_after`` lets that many through first;
* ``hold_after_put``: the PUT number N (1-based) is stored, then its response is held until
  ``release`` is set: the client's process can be killed between "in the store" and "recorded";
* ``rewrite_etag``: answer every HEAD with this ETag (a store whose ETags are not MD5s);
* ``bucket_regions``: bucket -> region, buckets this endpoint does not serve: every request for
  one is answered as a regional endpoint answers it (AWS, OSS), ``301 PermanentRedirect`` with
  ``x-amz-bucket-region`` (no body for a HEAD), whatever region it was signed for;
* ``kill_at_put``: PUT number N kills the server: that request and every later one on an open
  connection is cut off without an answer, and the listening socket is closed (connections
  are refused), as when the store's process dies. ``S3Server.start()`` brings it back on a new
  port with its objects (moto keeps them in this process).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY = "testing-key"
SECRET_KEY = "testing-secret"
#: The bucket the ``s3`` fixture (conftest.py) creates empty for each test.
S3_BUCKET = "cdnlogs-test"

_StartResponse = Callable[..., Any]
_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>req-{n}</RequestId></Error>"
)


@dataclass
class S3Faults:
    """Fault switches (see the module docstring)."""

    put_errors: int = 0
    put_errors_after: int = 0
    hold_after_put: int | None = None
    kill_at_put: int | None = None
    rewrite_etag: str | None = None
    bucket_regions: dict[str, str] = field(default_factory=dict)
    killed: bool = False
    #: The path (``/bucket/key``) of the PUT being held.
    held_path: str | None = None
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    puts_seen: int = 0
    errors_sent: int = 0
    #: (method, path, headers) of every S3 request, headers lower-cased without the ``HTTP_``.
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def clear(self) -> None:
        """Every switch off, counters at zero."""
        self.put_errors = self.put_errors_after = self.puts_seen = self.errors_sent = 0
        self.hold_after_put = self.kill_at_put = self.rewrite_etag = None
        self.bucket_regions = {}
        self.killed = False
        self.held_path = None
        self.requests = []
        self.held.clear()
        self.release.set()
        self.release = threading.Event()


class _FaultLayer:
    def __init__(self, app: Any, faults: S3Faults, kill: Callable[[], None]) -> None:
        self.app = app
        self.faults = faults
        self.kill = kill
        self.lock = threading.Lock()

    def _cut(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        # werkzeug's dev server hands the connection over for upgrades: close it unanswered.
        conn = environ.get("werkzeug.socket")
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return []

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        faults = self.faults
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if faults.killed:
            return self._cut(environ, start_response)
        headers = {
            k.removeprefix("HTTP_").lower().replace("_", "-"): str(v)
            for k, v in environ.items()
            if k.startswith("HTTP_")
        }
        faults.requests.append((environ["REQUEST_METHOD"], path, headers))
        if faults.bucket_regions:
            redirect = self._wrong_region(environ, path, faults.bucket_regions, start_response)
            if redirect is not None:
                return redirect
        if faults.rewrite_etag is not None and environ["REQUEST_METHOD"] == "HEAD":
            return self.app(environ, self._etag_rewriter(start_response, faults.rewrite_etag))  # type: ignore[no-any-return]
        is_object_put = environ["REQUEST_METHOD"] == "PUT" and path.strip("/").count("/") >= 1
        if not is_object_put:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        with self.lock:
            faults.puts_seen += 1
            number = faults.puts_seen
            failing = faults.put_errors > 0 and number > faults.put_errors_after
            if failing:
                faults.put_errors -= 1
                faults.errors_sent += 1
            if faults.kill_at_put == number:
                faults.killed = True
        if faults.killed:
            threading.Thread(target=self.kill, daemon=True).start()
            return self._cut(environ, start_response)
        if failing:
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            return self._error(start_response, "500 Internal Server Error", "InternalError", "x")
        if faults.hold_after_put != number:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        faults.held_path = path
        faults.held.set()  # the object is in the store; the client has no answer yet
        faults.release.wait(timeout=60)
        start_response(captured["status"], captured["headers"])
        return [body]

    @staticmethod
    def _wrong_region(
        environ: dict[str, Any],
        path: str,
        regions: dict[str, str],
        start_response: _StartResponse,
    ) -> list[bytes] | None:
        """A regional endpoint's answer for a bucket of another region (path-style requests)."""
        region = regions.get(path.strip("/").split("/", 1)[0])
        if region is None:
            return None
        message = (
            "The bucket you are attempting to access must be addressed using the specified "
            "endpoint."
        )
        body = (
            b""
            if environ["REQUEST_METHOD"] == "HEAD"
            else _ERROR_XML.format(
                code="PermanentRedirect", message=message, n=threading.get_ident()
            ).encode()
        )
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(
            "301 Moved Permanently",
            [
                ("Content-Type", "application/xml"),
                ("Content-Length", str(len(body))),
                ("x-amz-bucket-region", region),
            ],
        )
        return [body]

    @staticmethod
    def _etag_rewriter(start_response: _StartResponse, etag: str) -> _StartResponse:
        def rewrite(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, f'"{etag}"' if k.lower() == "etag" else v) for k, v in headers]
            return start_response(status, headers, exc_info)

        return rewrite

    @staticmethod
    def _error(start_response: _StartResponse, status: str, code: str, message: str) -> list[bytes]:
        body = _ERROR_XML.format(code=code, message=message, n=threading.get_ident()).encode()
        start_response(
            status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]


class S3Server:
    """moto on 127.0.0.1:<free port>, with fault switches; start once, reset per test."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.faults = S3Faults()
        self.running = False
        self._stop_lock = threading.Lock()

    def start(self) -> None:
        self._server.start()
        inner = self._server._server  # werkzeug's server: wrap its WSGI app with the faults
        assert inner is not None
        self.faults.killed = False
        inner.app = _FaultLayer(inner.app, self.faults, self.stop)
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.running = True

    def stop(self) -> None:
        """Stop serving and close the listening socket (new connections are refused)."""
        self.faults.release.set()
        with self._stop_lock:
            if self.running:
                inner = self._server._server
                self._server.stop()
                if inner is not None:
                    inner.server_close()
                self.running = False

    def reset(self) -> None:
        """Forget every bucket and object, and clear the faults (~20 ms)."""
        self.faults.clear()
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    def client(self) -> Any:
        """A boto3 client for the test's own checks (not the code under test)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix``: key -> bytes."""
        client = self.client()
        result: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                result[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return result

    def env(self) -> dict[str, str]:
        """The environment a client process needs: the S3 credential chain's variables."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
