"""Shared fixtures: a clean environment for every test, and a real S3 API server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # moto and boto3 are imported only by the tests that use the server
    from tests.s3server import S3Server

_CLEARED_PREFIXES = ("ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_", "CDNLOGS_", "AWS_")


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No credential or cdnlogs variable leaks in from the developer's shell, and HOME is empty."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in ("ACCESS_KEY_ID", "ACCESS_KEY_SECRET"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    yield


@pytest.fixture(autouse=True)
def rollups_of_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' data files are small: give them rollups anyway, so the rollup path is what
    the report tests exercise (in this process; a `python -m cdnlogs` child keeps the real
    threshold). test_report_panels checks the real threshold."""
    monkeypatch.setattr("cdnlogs.rollup.MIN_ROLLUP_BYTES", 0)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 (a free port), started once for the session."""
    from tests.s3server import S3Server

    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server emptied, faults off, bucket ``S3_BUCKET`` created, the AWS chain's env set."""
    from tests.s3server import S3_BUCKET

    if not s3_server.running:  # a test stopped it to play a dead store
        s3_server.start()
    s3_server.reset()
    s3_server.create_bucket(S3_BUCKET)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
