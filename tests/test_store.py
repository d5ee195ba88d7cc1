"""cdnlogs.store against a real S3 API server (moto on 127.0.0.1), and its pure rules."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdnlogs.config import Settings, load_settings
from cdnlogs.errors import (
    ConfigError,
    CredentialsError,
    StoreAccessError,
    StoreConfigError,
    StoreError,
    StoreUnreachableError,
)
from cdnlogs.storage import sha256_file
from cdnlogs.store import (
    ObjectStore,
    StoreUrl,
    connection_from_settings,
    local_digest,
    make_filesystem,
    open_store,
    parse_store_url,
    translate_error,
)
from tests.s3server import S3_BUCKET, S3Server


def _settings(s3: S3Server, url: str = f"s3://{S3_BUCKET}/raw", **kw: Any) -> Settings:
    return Settings(
        store=url, store_endpoint=s3.endpoint, store_region="us-east-1", store_attempts=2, **kw
    )


def test_parse_store_url() -> None:
    assert parse_store_url("s3://logs/cdn/raw/") == StoreUrl("logs", "cdn/raw")
    assert parse_store_url("s3://logs") == StoreUrl("logs", "")
    url = parse_store_url("s3://logs//a/b")
    assert str(url) == "s3://logs/a/b" and url.key("x/y.log") == "a/b/x/y.log"
    assert url.fs_path("x") == "logs/a/b/x" and url.url() == "s3://logs/a/b"
    for bad in ("logs/a", "http://logs/a", "s3://", "s3://Bad_Bucket/a", "s3://ab/../c"):
        with pytest.raises(ConfigError):
            parse_store_url(bad)
    with pytest.raises(ConfigError, match="never in the URL"):
        parse_store_url("s3://key:secret@logs/a")
    with pytest.raises(StoreError):
        StoreUrl("logs", "p").key("../escape")


def test_settings_take_store_from_env_and_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'store = "s3://from-file/p"\nstore_endpoint = "https://s3.oss-cn-hangzhou.aliyuncs.com"\n'
    )
    settings = load_settings({}, env={"CDNLOGS_STORE": "s3://from-env/q/"}, config_path=config)
    assert settings.store == "s3://from-env/q"
    assert settings.store_endpoint == "https://s3.oss-cn-hangzhou.aliyuncs.com"
    with pytest.raises(ConfigError, match="CDNLOGS_STORE"):
        load_settings({}, env={"CDNLOGS_STORE": "/not/a/url"})
    with pytest.raises(ConfigError, match="must not carry credentials"):
        load_settings({}, env={"CDNLOGS_STORE_ENDPOINT": "https://id:secret@oss.example"})


def test_aliyun_endpoint_defaults_to_what_oss_needs() -> None:
    settings = Settings(
        store="s3://bkt/p",
        store_endpoint="https://s3.oss-cn-hangzhou.aliyuncs.com",
        access_key_id="LTAIexample",
        access_key_secret="the-secret",
    )
    conn = connection_from_settings(settings)
    assert conn.addressing_style == "virtual" and conn.checksums_when_required
    assert conn.access_key_id == "LTAIexample" and conn.secret_access_key == "the-secret"
    assert "the-secret" not in repr(conn)
    fs = make_filesystem(conn)
    assert fs.config_kwargs["request_checksum_calculation"] == "when_required"
    assert fs.config_kwargs["response_checksum_validation"] == "when_required"
    assert fs.config_kwargs["s3"] == {"addressing_style": "virtual"}
    # Any other endpoint: botocore's defaults and the S3 credential chain.
    other = connection_from_settings(
        Settings(store="s3://bkt/p", store_endpoint="http://127.0.0.1:9")
    )
    assert other.addressing_style is None and not other.checksums_when_required
    assert other.access_key_id is None
    with pytest.raises(CredentialsError):
        connection_from_settings(Settings(store="s3://bkt", store_credentials="aliyun"))


class _NotSent(Exception):
    """Raised by the request hook: the request is inspected, never sent."""


def _requests_to(store: ObjectStore, action: Callable[[], object]) -> list[tuple[str, str, Any]]:
    """(method, URL, headers) of the requests botocore prepared for ``action``, as they would
    go on the wire (signed, checksummed, addressed); the first one is stopped before sending."""
    from fsspec.asyn import sync

    seen: list[tuple[str, str, Any]] = []

    def hook(request: Any, **_: Any) -> None:
        seen.append((request.method, request.url, dict(request.headers)))
        raise _NotSent

    client = sync(store.filesystem.loop, store.filesystem.set_session)
    client.meta.events.register("before-send.s3", hook)
    with pytest.raises(StoreError, match="_NotSent"):
        action()
    return seen


_OSS: dict[str, Any] = {
    "store": "s3://my-logs/raw",
    "store_endpoint": "https://s3.oss-cn-hangzhou.aliyuncs.com",
    "store_region": "cn-hangzhou",
    "access_key_id": "LTAIexample",
    "access_key_secret": "the-secret",
}


def test_an_oss_endpoint_sends_virtual_hosted_requests_without_checksums(tmp_path: Path) -> None:
    """What goes to OSS: bucket.s3.oss-<region>.aliyuncs.com, signed with the Alibaba AccessKey,
    and no CRC checksum headers (botocore 1.36+ adds them by default; OSS rejects them)."""
    local = tmp_path / "f.log"
    local.write_bytes(b"x" * 1000)

    def prepared(**kw: Any) -> tuple[str, str, Any]:
        store = open_store(Settings(**(_OSS | kw)))
        (request,) = _requests_to(store, lambda: store.put_file(local, "a/f.log"))
        return request

    method, url, headers = prepared()
    assert (method, url) == ("PUT", "https://my-logs.s3.oss-cn-hangzhou.aliyuncs.com/raw/a/f.log")
    assert b"Credential=LTAIexample/" in headers["Authorization"]
    sent = {k.lower(): v for k, v in headers.items()}
    assert not [k for k in sent if "checksum" in k], sent
    assert b"aws-chunked" not in (sent.get("content-encoding") or b"")
    # The same request to another endpoint: botocore's defaults, path-style for an explicit
    # endpoint and CRC checksums: what OSS would refuse.
    _, url, headers = prepared(
        store_endpoint="https://s3.eu-west-1.amazonaws.com",
        store_region="eu-west-1",
        store_credentials="aliyun",
    )
    assert url == "https://s3.eu-west-1.amazonaws.com/my-logs/raw/a/f.log"
    assert [k for k in headers if "checksum" in k.lower()]


def test_oss_settings_send_no_checksum_in_any_request_of_a_multipart_upload(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request of an upload (create, parts, complete) with the connection an OSS
    endpoint gets, sent to the S3 server on 127.0.0.1 (path-style: no DNS for bucket names)."""
    monkeypatch.setattr("cdnlogs.store.PART_SIZE", 5 * 1024 * 1024)
    local = tmp_path / "big.log"
    local.write_bytes(b"y" * (11 * 1024 * 1024))

    def checksummed(connection: Any) -> list[str]:
        store = ObjectStore(
            parse_store_url(f"s3://{S3_BUCKET}/raw"), connection, make_filesystem(connection)
        )
        s3.faults.requests.clear()
        assert store.put_file(local, "big.log").etag == local_digest(local).etag
        writes = [(m, h) for m, _, h in s3.faults.requests if m in ("PUT", "POST")]
        assert len(writes) == 1 + 3 + 1  # create, 3 parts, complete
        return [k for _, h in writes for k in h if "checksum" in k]

    oss = connection_from_settings(Settings(**_OSS))
    assert oss.checksums_when_required
    loopback = dataclasses.replace(
        oss,
        endpoint=s3.endpoint,
        region="us-east-1",
        addressing_style="path",
        access_key_id=None,
        secret_access_key=None,
    )
    assert checksummed(loopback) == []
    assert checksummed(dataclasses.replace(loopback, checksums_when_required=False))


def test_put_verify_list_delete(s3: S3Server, tmp_path: Path) -> None:
    store = open_store(_settings(s3))
    store.check()
    local = tmp_path / "f.log"
    local.write_bytes(b"line\n" * 1000)
    stored = store.put_file(local, "a.example.com/2026/12/01/f.log")
    assert stored.key == "raw/a.example.com/2026/12/01/f.log" and stored.size == 5000
    assert stored.etag == hashlib.md5(local.read_bytes()).hexdigest()
    assert s3.objects(S3_BUCKET) == {stored.key: local.read_bytes()}
    # Same key again: overwritten, still one object (a rerun is idempotent).
    store.put_file(local, "a.example.com/2026/12/01/f.log")
    store.put_bytes("b/x.bin", b"\x00\x01")
    assert [o.key for o in store.list()] == ["raw/a.example.com/2026/12/01/f.log", "raw/b/x.bin"]
    assert store.head("nope") is None
    assert store.sha256("b/x.bin") == hashlib.sha256(b"\x00\x01").hexdigest()
    store.delete("b/x.bin")
    store.delete("b/x.bin")  # missing: not an error
    assert list(s3.objects(S3_BUCKET)) == [stored.key]
    fetched = tmp_path / "back"
    store.get_file("a.example.com/2026/12/01/f.log", fetched)
    assert fetched.read_bytes() == local.read_bytes()


def test_multipart_etag_matches_what_the_store_computes(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5 MiB parts (S3's minimum) so a 12 MiB file goes as a 3-part multipart upload.
    monkeypatch.setattr("cdnlogs.store.PART_SIZE", 5 * 1024 * 1024)
    local = tmp_path / "big.log"
    local.write_bytes(bytes(range(256)) * (12 * 4096))
    digest = local_digest(local)
    assert digest.etag.endswith("-3")
    stored = open_store(_settings(s3)).put_file(local, "big.log")
    assert stored.etag == digest.etag
    assert s3.objects(S3_BUCKET)["raw/big.log"] == local.read_bytes()


def test_an_etag_that_is_not_an_md5_is_settled_by_reading_back(
    s3: S3Server, tmp_path: Path
) -> None:
    store = open_store(_settings(s3))
    local = tmp_path / "f.log"
    local.write_bytes(b"abc\n" * 500)
    s3.faults.rewrite_etag = "kms-opaque-etag"  # as SSE-KMS or a gateway would answer
    stored = store.put_file(local, "f.log")
    assert stored.etag == "kms-opaque-etag"
    # Same size, other bytes: the read-back tells them apart.
    local.write_bytes(b"xyz\n" * 500)
    with pytest.raises(StoreError, match="does not hold the bytes uploaded"):
        store._verify(stored, local_digest(local), "f.log", lambda: sha256_file(local))


def test_put_fails_on_500s_after_the_retries(s3: S3Server, tmp_path: Path) -> None:
    local = tmp_path / "f.log"
    local.write_bytes(b"x" * 100)
    store = open_store(_settings(s3))
    s3.faults.put_errors = 1  # one 500: botocore's retry gets through
    store.put_file(local, "ok.log")
    assert s3.faults.errors_sent == 1
    s3.faults.put_errors = 5  # more than store_attempts = 2
    with pytest.raises(StoreError, match=r"s3://cdnlogs-test/raw/bad.log .*InternalError"):
        store.put_file(local, "bad.log")
    assert "raw/bad.log" not in s3.objects(S3_BUCKET)


def test_missing_bucket_is_a_config_error(s3: S3Server) -> None:
    store = open_store(_settings(s3, "s3://no-such-bucket/p"))
    with pytest.raises(StoreConfigError, match="bucket 'no-such-bucket' does not exist") as info:
        store.check()
    assert info.value.exit_code == 3


def test_denied_is_an_access_error(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto checks signatures against its IAM from now on: the test key is unknown there.
    monkeypatch.setattr("moto.settings.INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(StoreAccessError, match="access to s3://cdnlogs-test/raw denied") as info:
        open_store(_settings(s3)).check()
    assert "InvalidAccessKeyId" in info.value.message or "403" in info.value.message
    assert info.value.exit_code == 4 and "testing-secret" not in str(info.value)


def test_unreachable_endpoint(s3: S3Server) -> None:
    settings = Settings(
        store="s3://bkt/p",
        store_endpoint="http://127.0.0.1:9",  # the discard port: nothing listens
        store_attempts=1,
        connect_timeout_seconds=2,
    )
    with pytest.raises(StoreUnreachableError) as info:
        ObjectStore(
            parse_store_url("s3://bkt/p"),
            connection_from_settings(settings),
            make_filesystem(connection_from_settings(settings)),
        ).check()
    assert "s3://bkt/p at http://127.0.0.1:9" in str(info.value)
    assert info.value.exit_code == 4


def test_wrong_region_names_the_region() -> None:
    from botocore.exceptions import ClientError

    error = ClientError(
        {
            "Error": {"Code": "PermanentRedirect", "Message": "use the right endpoint"},
            "ResponseMetadata": {
                "HTTPStatusCode": 301,
                "HTTPHeaders": {"x-amz-bucket-region": "eu-west-1"},
            },
        },
        "HeadBucket",
    )
    wrapped = OSError("s3fs says")
    wrapped.__cause__ = error
    conn = connection_from_settings(Settings(store="s3://bkt/p", store_region="us-east-1"))
    result = translate_error(wrapped, "s3://bkt/p", conn)
    assert isinstance(result, StoreConfigError) and result.exit_code == 3
    assert "another region than us-east-1" in result.message
    assert result.hint == "set store_region = 'eu-west-1' and a store_endpoint of that region"


def test_without_the_s3_extra_a_store_url_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdnlogs.cli import main

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as when cdnlogs is installed without [s3]
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIexample")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "the-secret")
    monkeypatch.setenv("CDNLOGS_ENDPOINT", "http://127.0.0.1:9")  # never reached: store first
    for args in (
        ["query", "SELECT 1", "--dataset", "s3://bkt/ds"],
        ["sync", "--domain", "a.example.com", "--out", str(tmp_path), "--store", "s3://bkt/r"],
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        err = capsys.readouterr().err
        assert info.value.code == 3, err
        assert err == (
            "Error: object storage needs the s3 extra, which is not installed\n"
            "hint: pip install 'cdnlogs[s3]'\n"
        )
