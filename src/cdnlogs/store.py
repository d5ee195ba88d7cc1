"""Object storage (S3, Alibaba OSS through its S3 API, any S3-compatible store) over s3fs.

The optional extra ``cdnlogs[s3]`` brings s3fs (fsspec, on aiobotocore); this module imports it
only when a store is opened, and nothing here uses DuckDB's httpfs (it cannot be installed
offline): DuckDB reads the store through ``con.register_filesystem(store.filesystem)``.

* :func:`parse_store_url` reads ``s3://bucket/prefix`` into a :class:`StoreUrl`;
* :func:`connection_from_settings` collects endpoint, region, addressing style and credentials;
  an ``aliyuncs.com`` endpoint gets what OSS needs by default: virtual-hosted addressing and
  ``request_checksum_calculation`` / ``response_checksum_validation`` = ``when_required``
  (botocore 1.36+ otherwise sends aws-chunked CRC uploads, which OSS rejects);
* :class:`ObjectStore` puts a local file to a deterministic key and verifies it, heads, lists,
  gets and deletes; every s3fs/botocore failure becomes a cdnlogs error naming the ``s3://``
  URL and the endpoint with any credential redacted (:func:`translate_error`).

Verification of a put: the object's size must equal the file's, and its ETag must equal the one
computed locally in the same read (the MD5 of the file for a single PUT; for a multipart upload,
the MD5 of the parts' MD5s and ``-N``, with the part size cdnlogs chose). A store whose ETag is
not an MD5 (SSE-KMS on AWS, some gateways) fails that comparison harmlessly: the object is then
read back and its SHA-256 compared with the file's, so a put is accepted only for exactly the
bytes sent. Conditional puts are never relied on (OSS may ignore ``If-None-Match``): every key
has exactly one writer, the worker whose shard owns the domain.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from cdnlogs.config import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_READ_TIMEOUT_SECONDS,
    DEFAULT_STORE_ATTEMPTS,
)
from cdnlogs.errors import (
    CdnLogsError,
    ConfigError,
    CredentialsError,
    StoreAccessError,
    StoreConfigError,
    StoreError,
    StoreUnreachableError,
)
from cdnlogs.storage import sha256_file

if TYPE_CHECKING:
    from cdnlogs.config import Settings

log = logging.getLogger(__name__)

SCHEME = "s3"
#: Part size of multipart uploads; files under twice this go as one PUT (s3fs's rule), read
#: into memory whole: with ``concurrency`` uploads at once that bounds the memory they take.
PART_SIZE = 16 * 1024 * 1024
#: Parts of one file uploaded at once.
PARTS_IN_FLIGHT = 2
#: S3's (and OSS's) limit on the parts of one multipart upload.
MAX_PARTS = 10_000
_READ_CHUNK = 1024 * 1024
_READ_BACK_CHUNK = 8 * 1024 * 1024

# S3 bucket names: 3-63 of lower-case letters, digits, dots and hyphens (OSS: no dots).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MD5_ETAG_RE = re.compile(r"[0-9a-f]{32}(-\d+)?")

_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "403",
    }
)
_REGION_CODES = frozenset(
    {
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraintException",
        "301",
    }
)
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "404"})


@dataclass(frozen=True)
class StoreUrl:
    """``s3://bucket/prefix``: where in a store something lives. ``prefix`` has no end slashes."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{SCHEME}://{self.bucket}/{self.prefix}" if self.prefix else self.root

    @property
    def root(self) -> str:
        """``s3://bucket`` alone."""
        return f"{SCHEME}://{self.bucket}"

    def key(self, relative: str | PurePosixPath = "") -> str:
        """The object key of ``relative`` under the prefix (``prefix/relative``)."""
        rel = PurePosixPath(relative).as_posix() if str(relative) else ""
        if rel in (".", ""):
            return self.prefix
        if rel.startswith("/") or any(p in ("..", ".") for p in PurePosixPath(rel).parts):
            raise StoreError(f"{rel!r} is not a plain relative key")
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, relative: str | PurePosixPath = "") -> str:
        """The ``s3://`` URL of ``relative`` under the prefix."""
        key = self.key(relative)
        return f"{self.root}/{key}" if key else self.root

    def fs_path(self, relative: str | PurePosixPath = "") -> str:
        """The ``bucket/key`` path s3fs takes."""
        key = self.key(relative)
        return f"{self.bucket}/{key}" if key else self.bucket

    def child(self, relative: str) -> StoreUrl:
        """The URL of a sub-prefix."""
        return StoreUrl(self.bucket, self.key(relative))


def parse_store_url(text: str) -> StoreUrl:
    """Read ``s3://bucket[/prefix]``; ConfigError naming what is wrong."""
    raw = text.strip()
    parts = urlsplit(raw)
    if parts.scheme.lower() != SCHEME or not parts.netloc:
        raise ConfigError(
            f"{raw!r} is not an s3://bucket/prefix URL",
            hint="e.g. s3://my-logs/cdn (Alibaba OSS too: set store_endpoint)",
        )
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "the store URL must be s3://bucket/prefix only (credentials go in the credential "
            "chain, never in the URL)"
        )
    bucket = parts.netloc
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(f"{bucket!r} is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ConfigError(f"the store prefix {parts.path!r} has a '.' or '..' component")
    return StoreUrl(bucket, "/".join(segments))


@dataclass(frozen=True)
class StoreConnection:
    """How to reach a store: everything s3fs needs besides the URL. Secrets stay out of repr."""

    endpoint: str | None = None
    region: str | None = None
    #: ``virtual`` or ``path``; None lets botocore choose.
    addressing_style: str | None = None
    #: Send and check request checksums only when an operation requires them (OSS needs this).
    checksums_when_required: bool = False
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    #: Where the credential came from, for messages (``the S3 credential chain`` ...).
    credential_source: str = "the S3 credential chain"
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    attempts: int = DEFAULT_STORE_ATTEMPTS

    @property
    def shown_endpoint(self) -> str:
        """The endpoint for messages: any user:password in it removed."""
        return redact_endpoint(self.endpoint) if self.endpoint else "the default AWS endpoint"


def is_aliyun_endpoint(endpoint: str | None) -> bool:
    """True for an Alibaba Cloud (OSS) endpoint such as ``https://s3.oss-cn-hangzhou.aliyuncs.com``."""
    if not endpoint:
        return False
    host = (urlsplit(endpoint).hostname or "").lower()
    return host == "aliyuncs.com" or host.endswith(".aliyuncs.com")


def redact_endpoint(endpoint: str) -> str:
    """``endpoint`` without a user:password part or a query string."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return "<unparsable endpoint>"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def connection_from_settings(settings: Settings) -> StoreConnection:
    """The store connection the settings describe (credentials resolved now).

    ``store_credentials``: ``s3`` leaves them to botocore's chain (``AWS_ACCESS_KEY_ID``,
    ``~/.aws/credentials``, ``AWS_PROFILE``, instance roles...); ``aliyun`` uses the Alibaba
    AccessKey cdnlogs calls the CDN API with (its credential chain, docs/configuration.md);
    ``auto`` picks ``aliyun`` for an ``aliyuncs.com`` endpoint and ``s3`` otherwise.
    """
    endpoint = settings.store_endpoint
    aliyun = is_aliyun_endpoint(endpoint)
    style = settings.store_addressing_style
    addressing = ("virtual" if aliyun else None) if style == "auto" else style
    mode = settings.store_credentials
    if mode == "auto":
        mode = "aliyun" if aliyun else "s3"
    key_id = secret = token = None
    source = "the S3 credential chain"
    if mode == "aliyun":
        key_id, secret, token, source = _aliyun_access_key(settings)
    return StoreConnection(
        endpoint=endpoint,
        region=settings.store_region,
        addressing_style=addressing,
        checksums_when_required=aliyun,
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        credential_source=source,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        read_timeout_seconds=settings.read_timeout_seconds,
        attempts=settings.store_attempts,
    )


def _aliyun_access_key(settings: Settings) -> tuple[str, str, str | None, str]:
    from cdnlogs.credentials import resolve_credentials

    resolved = resolve_credentials(settings)
    try:
        credential = resolved.client.get_credential()
    except Exception as exc:  # the SDK raises several kinds; none carries the secret
        raise CredentialsError(
            f"cannot read the Alibaba Cloud credential from {resolved.source}: {type(exc).__name__}"
        ) from exc
    key_id = credential.get_access_key_id()
    secret = credential.get_access_key_secret()
    if not key_id or not secret:
        raise CredentialsError(f"the credential from {resolved.source} has no AccessKey")
    return key_id, secret, credential.get_security_token() or None, resolved.source


def make_filesystem(connection: StoreConnection) -> Any:
    """An ``s3fs.S3FileSystem`` for ``connection`` (not shared with other instances).

    Listing caches are off: a sync lists what it just wrote, and a cached listing would hide it.
    """
    try:
        import s3fs
    except ImportError:
        raise ConfigError(
            "object storage needs the s3 extra, which is not installed",
            hint="pip install 'cdnlogs[s3]'",
        ) from None
    config: dict[str, Any] = {
        "connect_timeout": connection.connect_timeout_seconds,
        "read_timeout": connection.read_timeout_seconds,
        "retries": {"total_max_attempts": connection.attempts, "mode": "standard"},
    }
    if connection.addressing_style:
        config["s3"] = {"addressing_style": connection.addressing_style}
    if connection.checksums_when_required:
        config["request_checksum_calculation"] = "when_required"
        config["response_checksum_validation"] = "when_required"
    client: dict[str, Any] = {}
    if connection.endpoint:
        client["endpoint_url"] = connection.endpoint
    if connection.region:
        client["region_name"] = connection.region
    filesystem = s3fs.S3FileSystem(
        session=_new_session(),
        key=connection.access_key_id,
        secret=connection.secret_access_key,
        token=connection.session_token,
        client_kwargs=client,
        config_kwargs=config,
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    # botocore retries each request (5xx, throttling, connection errors); s3fs's own loop
    # around it (5 tries by default) would multiply the attempts and the wait.
    filesystem.retries = 1
    return filesystem


_loader_lock = threading.Lock()
_loader: Any = None


def _new_session() -> Any:
    """A fresh aiobotocore session (its own credential resolution) on a shared data loader.

    Reading botocore's S3 service model costs 0.2-0.5 s per session; the loader caches it, and
    holds no credential, so every store opened in one process shares it.
    """
    global _loader
    from aiobotocore.session import AioSession
    from botocore.loaders import create_loader

    with _loader_lock:
        if _loader is None:
            _loader = create_loader()
        session = AioSession()
        session.register_component("data_loader", _loader)
    return session


@dataclass(frozen=True)
class StoredObject:
    """One object in the store: its key (under the bucket), size and ETag (quotes removed)."""

    key: str
    size: int
    etag: str | None = None
    #: ``s3://bucket/key``: what the ledger records (self-describing, the bucket included).
    url: str = ""


@dataclass(frozen=True)
class LocalDigest:
    """What a local file's upload must produce: its size and expected ETag."""

    size: int
    etag: str
    part_size: int


def part_size_for(size: int) -> int:
    """The multipart part size cdnlogs uses for a file of ``size`` bytes (within MAX_PARTS)."""
    return max(PART_SIZE, math.ceil(size / MAX_PARTS))


def local_digest(path: Path) -> LocalDigest:
    """The size and S3-style ETag of ``path``, in one read.

    The ETag is the MD5 of the file when it goes as one PUT (under two parts' size, s3fs's
    rule), else the MD5 of the parts' binary MD5s followed by ``-<parts>``.
    """
    size = path.stat().st_size
    part = part_size_for(size)
    single = size < 2 * part
    # One PUT: the whole file's MD5; multipart: one MD5 per part (never both).
    step = size + 1 if single else part
    part_md5s: list[bytes] = []
    current = hashlib.md5(usedforsecurity=False)
    in_part = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            view = memoryview(chunk)
            while view:
                take = min(len(view), step - in_part)
                current.update(view[:take])
                in_part += take
                view = view[take:]
                if in_part == step:
                    part_md5s.append(current.digest())
                    current, in_part = hashlib.md5(usedforsecurity=False), 0
    if single:
        return LocalDigest(size, current.hexdigest(), part)
    if in_part:
        part_md5s.append(current.digest())
    joined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return LocalDigest(size, f"{joined}-{len(part_md5s)}", part)


class ObjectStore:
    """A prefix of a bucket, through s3fs. Thread-safe (s3fs runs its calls on one loop)."""

    def __init__(self, url: StoreUrl, connection: StoreConnection, filesystem: Any) -> None:
        self.url = url
        self.connection = connection
        #: The ``s3fs.S3FileSystem``: DuckDB takes it through ``register_filesystem``.
        self.filesystem = filesystem

    def __repr__(self) -> str:
        return f"ObjectStore({self.url}, endpoint={self.connection.shown_endpoint})"

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> None:
        """Fail fast when the bucket is missing, denied, elsewhere or unreachable."""
        try:
            self.filesystem.call_s3("head_bucket", Bucket=self.url.bucket)
        except Exception as exc:
            raise self.error(exc, "") from exc

    # -- objects --------------------------------------------------------------------------

    def put_file(self, local: Path, relative: str | PurePosixPath) -> StoredObject:
        """Upload ``local`` to ``prefix/relative`` (overwriting), verify it, return it.

        Raises StoreError (or a subclass) when the upload fails or the object is not exactly
        the file's bytes.
        """
        digest = local_digest(local)
        path = self.url.fs_path(relative)
        try:
            self.filesystem.put_file(
                str(local), path, chunksize=digest.part_size, max_concurrency=PARTS_IN_FLIGHT
            )
            stored = self._head_path(path)
        except Exception as exc:
            raise self.error(exc, relative) from exc
        if stored is None:
            raise StoreError(f"{self.url.url(relative)} is missing right after its upload")
        self._verify(stored, digest, relative, lambda: sha256_file(local))
        return stored

    def _verify(
        self,
        stored: StoredObject,
        digest: LocalDigest,
        relative: str | PurePosixPath,
        local_sha256: Callable[[], str],
    ) -> None:
        where = self.url.url(relative)
        if stored.size != digest.size:
            raise StoreError(
                f"{where} holds {stored.size} bytes after upload, expected {digest.size}"
            )
        if stored.etag is not None and stored.etag.lower() == digest.etag:
            return
        # Not an MD5 ETag, or a different one: only the bytes themselves can tell.
        log.info("%s: ETag %s is not %s; reading the object back", where, stored.etag, digest.etag)
        if self.sha256(relative) != local_sha256():
            raise StoreError(f"{where} does not hold the bytes uploaded (read back differs)")

    def head(self, relative: str | PurePosixPath) -> StoredObject | None:
        """The object at ``prefix/relative``, or None when there is none."""
        try:
            return self._head_path(self.url.fs_path(relative))
        except Exception as exc:
            raise self.error(exc, relative) from exc

    def _head_path(self, path: str) -> StoredObject | None:
        try:
            info = self.filesystem.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        return _stored(path, info)

    def sha256(self, relative: str | PurePosixPath) -> str:
        """SHA-256 of the object's bytes, read in ranges (memory stays flat for any size).

        Plain ranged GETs: s3fs's file object would pin the HEAD's ETag with If-Match, which
        is the very value in doubt here.
        """
        path = self.url.fs_path(relative)
        digest = hashlib.sha256()
        try:
            size = int(self.filesystem.info(path)["size"])
            for start in range(0, size, _READ_BACK_CHUNK):
                end = min(start + _READ_BACK_CHUNK, size)
                digest.update(self.filesystem.cat_file(path, start=start, end=end))
        except Exception as exc:
            raise self.error(exc, relative) from exc
        return digest.hexdigest()

    def get_file(self, relative: str | PurePosixPath, local: Path) -> None:
        """Download the object to ``local`` (the caller picks a temporary name and renames)."""
        try:
            self.filesystem.get_file(self.url.fs_path(relative), str(local))
        except Exception as exc:
            raise self.error(exc, relative) from exc

    def put_bytes(self, relative: str | PurePosixPath, data: bytes) -> StoredObject:
        """Write a small object in one PUT and verify its MD5 ETag or read it back."""
        path = self.url.fs_path(relative)
        try:
            self.filesystem.pipe_file(path, data)
            stored = self._head_path(path)
        except Exception as exc:
            raise self.error(exc, relative) from exc
        if stored is None:
            raise StoreError(f"{self.url.url(relative)} is missing right after its upload")
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self._verify(
            stored,
            LocalDigest(len(data), md5, 0),
            relative,
            lambda: hashlib.sha256(data).hexdigest(),
        )
        return stored

    def list(self, relative: str | PurePosixPath = "") -> Iterator[StoredObject]:
        """Every object under ``prefix/relative`` (recursively), sorted by key."""
        base = self.url.fs_path(relative)
        try:
            found = self.filesystem.find(base, detail=True)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self.error(exc, relative) from exc
        for path in sorted(found):
            info = found[path]
            if info.get("type") == "file":
                yield _stored(path, info)

    def delete(self, relative: str | PurePosixPath) -> None:
        """Delete the object at ``prefix/relative``; a missing object is not an error."""
        try:
            self.filesystem.rm_file(self.url.fs_path(relative))
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self.error(exc, relative) from exc

    def relative_of(self, url: str) -> str | None:
        """The path under this store's prefix of an ``s3://`` URL, or None if it is elsewhere."""
        base = self.url.url() + "/"
        if not url.startswith(base) or len(url) == len(base):
            return None
        return url[len(base) :]

    # -- errors ---------------------------------------------------------------------------

    def error(self, exc: BaseException, relative: str | PurePosixPath) -> CdnLogsError:
        """``exc`` from s3fs/botocore as a cdnlogs error naming the URL (see translate_error)."""
        return translate_error(
            exc, self.url.url(relative) if str(relative) else str(self.url), self.connection
        )


def _stored(path: str, info: dict[str, Any]) -> StoredObject:
    """A StoredObject from s3fs's ``info`` of ``bucket/key``."""
    etag = info.get("ETag") or info.get("etag")
    return StoredObject(
        key=path.split("/", 1)[1],
        url=f"{SCHEME}://{path}",
        size=int(info.get("size") or info.get("Size") or 0),
        etag=str(etag).strip('"') if etag else None,
    )


def open_store(settings: Settings, url: StoreUrl | str | None = None) -> ObjectStore:
    """The store at ``url`` (default: the ``store`` setting) with the settings' connection."""
    if url is None:
        if not settings.store:
            raise ConfigError("no store configured", hint="pass --store s3://bucket/prefix")
        url = settings.store
    parsed = parse_store_url(url) if isinstance(url, str) else url
    connection = connection_from_settings(settings)
    return ObjectStore(parsed, connection, make_filesystem(connection))


# -- translating failures --------------------------------------------------------------------


def _client_error(exc: BaseException) -> Any:
    """The botocore ClientError or BotoCoreError behind ``exc`` (s3fs wraps them), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__
        if module.startswith(("botocore", "aiohttp")):
            return current
        current = current.__cause__ or current.__context__
    return None


def translate_error(exc: BaseException, where: str, connection: StoreConnection) -> CdnLogsError:
    """An s3fs/botocore failure as a cdnlogs error whose one line names ``where``.

    No such bucket or the wrong region: StoreConfigError (exit 3); denied: StoreAccessError (4);
    unreachable: StoreUnreachableError (4); missing credentials: CredentialsError (3); anything
    else: StoreError (4). Messages never contain a credential or a signed URL's query.
    """
    if isinstance(exc, CdnLogsError):
        return exc
    endpoint = connection.shown_endpoint
    cause = _client_error(exc)
    name = type(cause).__name__ if cause is not None else type(exc).__name__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or "").strip()
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        request_id = (response.get("ResponseMetadata") or {}).get("RequestId")
        detail = f"{code}: {message}" if message and message != code else code or f"HTTP {status}"
        if request_id:
            detail += f" (RequestId {request_id})"
        if code in _NO_BUCKET_CODES:
            bucket = urlsplit(where).netloc
            return StoreConfigError(
                f"bucket {bucket!r} does not exist at {endpoint} ({where}): {detail}",
                hint="create it, or fix the store URL / store_endpoint",
            )
        if code in _REGION_CODES:
            region = (
                (response.get("ResponseMetadata") or {})
                .get("HTTPHeaders", {})
                .get("x-amz-bucket-region")
            )
            return StoreConfigError(
                f"{where} is in another region than {connection.region or 'the default'}"
                f" at {endpoint}: {detail}",
                # botocore has already retried in the region S3 named: the endpoint is the
                # other region's (a regional endpoint, as OSS's always are).
                hint=f"set store_region = {region!r} and a store_endpoint of that region"
                if region
                else "set store_region and store_endpoint to the bucket's region",
            )
        if code in _DENIED_CODES:
            return StoreAccessError(
                f"access to {where} denied at {endpoint}: {detail}",
                hint=f"check the credential ({connection.credential_source}) and its "
                "permissions on the bucket",
            )
        return StoreError(f"the store refused a call on {where} at {endpoint}: {detail}")
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return CredentialsError(
            f"no credential for the store {where}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile), or "
            "store_credentials = 'aliyun' to use the Alibaba Cloud AccessKey",
        )
    if name in (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "FSTimeoutError",
    ) or isinstance(exc, ConnectionError | TimeoutError):
        return StoreUnreachableError(
            f"cannot reach the store {where} at {endpoint} ({name})",
            hint="check store_endpoint, the network, and that the store is up",
        )
    if isinstance(exc, PermissionError):
        return StoreAccessError(f"access to {where} denied at {endpoint}: {exc}")
    text = str(exc).split("\n", 1)[0]
    return StoreError(f"store call on {where} at {endpoint} failed: {name}: {text}")
