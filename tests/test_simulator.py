"""The simulator over real HTTP on 127.0.0.1, driven by the official SDK and by raw requests."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from alibabacloud_cdn20180510 import models as cdn_models
from alibabacloud_cdn20180510.client import Client as CdnClient
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
from darabonba.runtime import RuntimeOptions

from cdnlogs.simulator import Simulator, SimulatorConfig, signing
from cdnlogs.simulator.catalog import log_name
from cdnlogs.simulator.faults import Faults
from cdnlogs.simulator.loggen import generate_lines

NOW = datetime(2026, 3, 10, 5, 30, tzinfo=UTC)
DOMAINS = ("a.example.com", "b.example.com")


@pytest.fixture(scope="module")
def sim_module() -> Iterator[Simulator]:
    with Simulator(
        SimulatorConfig(domains=DOMAINS, days=2, seed=7, lines_per_file=40, now=NOW)
    ) as sim:
        yield sim


@pytest.fixture
def sim(sim_module: Simulator) -> Simulator:
    sim_module.faults.clear()
    sim_module.reset_counters()
    return sim_module


def client(sim: Simulator, *, secret: str | None = None, **extra: object) -> CdnClient:
    return CdnClient(
        Config(
            access_key_id=sim.access_key_id,
            access_key_secret=secret or sim.access_key_secret,
            endpoint=sim.netloc,
            protocol="http",
            **extra,
        )
    )


def logs(c: CdnClient, domain: str, **kw: object) -> dict[str, Any]:
    request = cdn_models.DescribeCdnDomainLogsRequest(domain_name=domain, **kw)
    body: dict[str, Any] = c.describe_cdn_domain_logs(request).body.to_map()
    return body


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def rpc_params(
    sim: Simulator, action: str = "DescribeCdnDomainLogs", **extra: str
) -> dict[str, str]:
    params = {
        "Action": action,
        "Version": "2018-05-10",
        "Format": "JSON",
        "AccessKeyId": sim.access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": str(uuid.uuid4()),
        "Timestamp": iso(datetime.now(UTC)),
        **extra,
    }
    params["Signature"] = signing.rpc_signature("GET", params, sim.access_key_secret)
    return params


# -- the official SDK ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v1"])
def test_sdk_lists_logs_and_domains(sim, algorithm):
    extra = {"signature_algorithm": algorithm} if algorithm else {}
    c = client(sim, **extra)
    start = NOW.replace(minute=0) - timedelta(hours=6)
    body = logs(c, "a.example.com", start_time=iso(start), end_time=iso(NOW), page_size=1000)
    detail = body["DomainLogDetails"]["DomainLogDetail"][0]
    expected = [f for f in sim.files("a.example.com") if start <= f.start < NOW]
    infos = detail["LogInfos"]["LogInfoDetail"]
    assert [i["LogName"] for i in infos] == [f.name for f in expected]
    assert [i["LogSize"] for i in infos] == [f.size for f in expected]
    assert detail["DomainName"] == "a.example.com"
    assert detail["LogCount"] == len(expected)
    assert detail["PageInfos"] == {"PageIndex": 1, "PageSize": 1000, "Total": len(expected)}
    first = infos[0]
    assert first["StartTime"] == iso(expected[0].start)
    assert first["EndTime"] == iso(expected[0].end)
    assert first["LogPath"].startswith(f"{sim.netloc}/v1.l1cache/")
    assert "://" not in first["LogPath"]
    assert len(body["RequestId"]) == 36 and body["RequestId"] == body["RequestId"].upper()

    domains = c.describe_user_domains(cdn_models.DescribeUserDomainsRequest()).body.to_map()
    assert [d["DomainName"] for d in domains["Domains"]["PageData"]] == list(DOMAINS)
    assert (domains["TotalCount"], domains["PageNumber"], domains["PageSize"]) == (2, 1, 20)
    assert sim.api_calls["DescribeCdnDomainLogs"] == 1
    assert sim.api_calls["DescribeUserDomains"] == 1


def test_sdk_default_window_is_last_24_hours(sim):
    body = logs(client(sim), "b.example.com", page_size=1000)
    detail = body["DomainLogDetails"]["DomainLogDetail"][0]
    expected = [f for f in sim.files("b.example.com") if NOW - timedelta(hours=24) <= f.start]
    assert detail["PageInfos"]["Total"] == len(expected) >= 24


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v1"])
def test_generic_call_api_legacy_2014_version(sim, algorithm):
    extra = {"signature_algorithm": algorithm} if algorithm else {}
    api = OpenApiClient(
        Config(
            access_key_id=sim.access_key_id,
            access_key_secret=sim.access_key_secret,
            endpoint=sim.netloc,
            protocol="http",
            **extra,
        )
    )
    params = Params(
        action="DescribeCdnDomainLogs",
        version="2014-11-11",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    day = (NOW - timedelta(days=1)).astimezone(UTC) + timedelta(hours=8)
    log_day = day.strftime("%Y-%m-%d")
    request = OpenApiRequest(query={"DomainName": "a.example.com", "LogDay": log_day})
    body = api.call_api(params, request, RuntimeOptions())["body"]
    expected = [f for f in sim.files("a.example.com") if f.day == day.strftime("%Y_%m_%d")]
    assert body["TotalCount"] == len(expected) >= 24
    assert (body["PageNumber"], body["PageSize"]) == (1, 300)
    model = body["DomainLogModel"]
    assert model["DomainName"] == "a.example.com"
    names = [d["LogName"] for d in model["DomainLogDetails"]["DomainLogDetail"]]
    assert names == [f.name for f in expected]


def test_sdk_wrong_secret_and_unknown_key_are_refused(sim):
    with pytest.raises(AlibabaCloudException) as info:
        logs(client(sim, secret="wrong"), "a.example.com")
    assert info.value.code == "SignatureDoesNotMatch"
    assert info.value.status_code == 400
    bad_key = CdnClient(
        Config(
            access_key_id="LTAIunknown",
            access_key_secret=sim.access_key_secret,
            endpoint=sim.netloc,
            protocol="http",
            signature_algorithm="v2",
        )
    )
    with pytest.raises(AlibabaCloudException) as info:
        logs(bad_key, "a.example.com")
    assert (info.value.code, info.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)


def test_sdk_sees_throttling_then_success(sim):
    sim.faults.throttle_next = 2
    c = client(sim)
    for _ in range(2):
        with pytest.raises(AlibabaCloudException) as info:
            logs(c, "a.example.com")
        assert (info.value.code, info.value.status_code) == ("Throttling.User", 400)
    assert logs(c, "a.example.com")["DomainLogDetails"]
    assert sim.api_calls["DescribeCdnDomainLogs"] == 3


def _throttle_once(faults: Faults, status: int) -> None:
    faults.throttle_next, faults.throttle_status = 1, status


@pytest.mark.parametrize(
    ("setup", "code", "status"),
    [
        (lambda f: setattr(f, "api_5xx_next", 1), "ServiceUnavailable", 503),
        (lambda f: f.force_api_error("Forbidden.RAM"), "Forbidden.RAM", 403),
        (lambda f: _throttle_once(f, 429), "", 429),
    ],
)
def test_api_fault_switches(sim, setup, code, status):
    setup(sim.faults)
    response = requests.get(sim.endpoint + "/", params=rpc_params(sim, DomainName="a.example.com"))
    assert response.status_code == status
    assert response.json()["Code"] == (code or "Throttling.User")
    again = requests.get(sim.endpoint + "/", params=rpc_params(sim, DomainName="a.example.com"))
    assert again.status_code == 200


def test_sts_token_required_when_configured():
    config = SimulatorConfig(domains=("a.example.com",), days=1, now=NOW, security_token="tok-1")
    with Simulator(config) as sim:
        for algorithm in (None, "v2"):
            extra = {"signature_algorithm": algorithm} if algorithm else {}
            ok = client(sim, security_token="tok-1", **extra)
            assert logs(ok, "a.example.com")["DomainLogDetails"]
            with pytest.raises(AlibabaCloudException) as info:
                logs(client(sim, **extra), "a.example.com")
            assert info.value.code == "MissingSecurityToken"
            with pytest.raises(AlibabaCloudException) as info:
                logs(client(sim, security_token="tok-2", **extra), "a.example.com")
            assert info.value.code == "InvalidSecurityToken.Malformed"


# -- raw requests: tampering, replay, time window, errors ------------------------------------


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == code
    assert body["RequestId"] == body["RequestId"].upper() and len(body["RequestId"]) == 36
    return body


def test_rpc_get_and_post_form_are_accepted(sim):
    get = requests.get(sim.endpoint + "/", params=rpc_params(sim, DomainName="a.example.com"))
    assert get.status_code == 200
    params = {k: v for k, v in rpc_params(sim, DomainName="a.example.com").items()}
    del params["Signature"]
    params["Signature"] = signing.rpc_signature("POST", params, sim.access_key_secret)
    post = requests.post(sim.endpoint + "/", data=params)
    assert post.status_code == 200, post.text
    assert post.json()["DomainLogDetails"]["DomainLogDetail"][0]["DomainName"] == "a.example.com"
    # The method is part of the string to sign: a GET signature does not verify as POST.
    wrong = requests.post(sim.endpoint + "/", data=rpc_params(sim, DomainName="a.example.com"))
    assert_error(wrong, 400, "SignatureDoesNotMatch")


def test_rpc_tampered_parameter_is_rejected(sim):
    params = rpc_params(sim, DomainName="a.example.com")
    params["DomainName"] = "b.example.com"
    assert_error(requests.get(sim.endpoint + "/", params=params), 400, "SignatureDoesNotMatch")


def test_rpc_replayed_nonce_is_rejected(sim):
    params = rpc_params(sim, DomainName="a.example.com")
    assert requests.get(sim.endpoint + "/", params=params).status_code == 200
    assert_error(requests.get(sim.endpoint + "/", params=params), 400, "SignatureNonceUsed")


def test_rpc_old_timestamp_is_rejected(sim):
    old = iso(datetime.now(UTC) - timedelta(minutes=16))
    params = rpc_params(sim, DomainName="a.example.com", Timestamp=old)
    assert_error(requests.get(sim.endpoint + "/", params=params), 400, "InvalidTimeStamp.Expired")


def acs3_headers(sim: Simulator, query: dict[str, str], **override: str) -> dict[str, str]:
    headers = {
        "host": sim.netloc,
        "x-acs-action": "DescribeCdnDomainLogs",
        "x-acs-version": "2018-05-10",
        "x-acs-date": iso(datetime.now(UTC)),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        **override,
    }
    canonical = signing.acs3_canonical_request(
        "POST", "/", query, headers.items(), headers, headers["x-acs-content-sha256"]
    )
    signature = signing.acs3_signature(canonical, sim.access_key_secret)
    headers["Authorization"] = signing.acs3_authorization(sim.access_key_id, headers, signature)
    return headers


def test_acs3_tampering_is_rejected(sim):
    query = {"DomainName": "a.example.com"}
    headers = acs3_headers(sim, query)
    ok = requests.post(sim.endpoint + "/", params=query, headers=headers)
    assert ok.status_code == 200, ok.text
    assert_error(
        requests.post(sim.endpoint + "/", params=query, headers=headers), 400, "SignatureNonceUsed"
    )
    tampered = acs3_headers(sim, query)
    resp = requests.post(
        sim.endpoint + "/", params={"DomainName": "b.example.com"}, headers=tampered
    )
    assert_error(resp, 400, "SignatureDoesNotMatch")
    old = acs3_headers(sim, query, **{"x-acs-date": iso(datetime.now(UTC) - timedelta(hours=1))})
    resp = requests.post(sim.endpoint + "/", params=query, headers=old)
    assert_error(resp, 400, "InvalidTimeStamp.Expired")
    body = acs3_headers(sim, query)
    resp = requests.post(sim.endpoint + "/", params=query, headers=body, data=b"x=1")
    assert_error(resp, 400, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({}, 400, "MissingParameter"),
        ({"DomainName": "nope.example.com"}, 404, "InvalidDomain.NotFound"),
        (
            {"DomainName": "a.example.com", "StartTime": "2026-03-09"},
            400,
            "InvalidStartTime.Malformed",
        ),
        ({"DomainName": "a.example.com", "EndTime": "yesterday"}, 400, "InvalidEndTime.Malformed"),
        (
            {
                "DomainName": "a.example.com",
                "StartTime": "2026-03-09T05:00:00Z",
                "EndTime": "2026-03-09T05:00:00Z",
            },
            400,
            "InvalidEndTime.Mismatch",
        ),
        (
            {"DomainName": "a.example.com", "StartTime": "2026-02-01T00:00:00Z"},
            400,
            "InvalidStartTime.ValueNotSupported",
        ),
        ({"DomainName": "a.example.com", "PageSize": "1001"}, 400, "InvalidParameter"),
        (
            {"DomainName": "a.example.com", "Action": "DescribeNothing"},
            404,
            "InvalidAction.NotFound",
        ),
    ],
)
def test_request_errors(sim, extra, status, code):
    action = extra.pop("Action", "DescribeCdnDomainLogs")
    response = requests.get(sim.endpoint + "/", params=rpc_params(sim, action, **extra))
    assert_error(response, status, code)
    assert sim.api_calls[action] == 1


def test_xml_format(sim):
    params = rpc_params(sim, "DescribeUserDomains", Format="XML")
    response = requests.get(sim.endpoint + "/", params=params)
    assert response.headers["Content-Type"] == "text/xml;charset=utf-8"
    assert b"<DescribeUserDomainsResponse>" in response.content
    assert response.content.count(b"<PageData>") == 2


def test_paging_over_more_than_1000_files():
    config = SimulatorConfig(
        domains=("p.example.com",), days=30, seed=3, lines_per_file=2, now=NOW, split_fraction=1.0
    )
    with Simulator(config) as sim:
        everything = sim.files("p.example.com")
        assert len(everything) > 1000
        c = client(sim)
        start = iso(NOW - timedelta(days=30, hours=1))
        seen: list[str] = []
        for page in (1, 2, 3):
            body = logs(
                c,
                "p.example.com",
                start_time=start,
                end_time=iso(NOW),
                page_size=1000,
                page_number=page,
            )
            detail = body["DomainLogDetails"]["DomainLogDetail"][0]
            assert detail["PageInfos"]["Total"] == len(everything)
            assert detail["PageInfos"]["PageIndex"] == page
            seen += [i["LogName"] for i in detail["LogInfos"]["LogInfoDetail"]]
        assert seen == [f.name for f in everything]


# -- catalog and determinism -----------------------------------------------------------------


def test_same_seed_same_files_and_split_hours_have_suffixes():
    def make(seed: int) -> Simulator:
        return Simulator(SimulatorConfig(domains=("a.example.com",), days=3, seed=seed, now=NOW))

    one, two, other = make(5), make(5), make(6)
    names = [f.name for f in one.files("a.example.com")]
    assert names == [f.name for f in two.files("a.example.com")]
    assert one.files("a.example.com")[3].gz == two.files("a.example.com")[3].gz
    assert one.files("a.example.com")[3].gz != other.files("a.example.com")[3].gz
    split = [n for n in names if n.rsplit(".", 1)[0].count("_") == 6]
    assert 0 < len(split) < len(names) / 2
    hours = {f.start for f in one.files("a.example.com")}
    assert len(hours) == 72
    assert max(hours) == datetime(2026, 3, 10, 4, tzinfo=UTC)


def test_log_name_uses_beijing_time():
    start = datetime(2026, 3, 9, 16, tzinfo=UTC)
    assert log_name("x.com", start) == "x.com_2026_03_10_000000_010000.gz"
    assert log_name("x.com", start, 2) == "x.com_2026_03_10_000000_010000_2.gz"


def test_construction_is_lazy():
    # No file is generated before it is asked for (bench/generator_bench.py measures the speed).
    sim = Simulator(SimulatorConfig(days=31))
    assert all(f._gz is None for f in sim.files("a.example.com"))


# -- the log host ------------------------------------------------------------------------------


def first_file(sim: Simulator):
    return sim.files("a.example.com")[-1]


def test_download_gives_the_exact_gzip_bytes(sim):
    f = first_file(sim)
    response = requests.get(sim.url(f), stream=True)
    raw = response.raw.read(decode_content=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in response.headers
    assert int(response.headers["Content-Length"]) == len(raw) == f.size
    assert raw == f.gz
    lines = gzip.decompress(raw).decode().splitlines()
    assert len(lines) == f.line_count
    assert sim.downloads[f.name] == 1


def test_log_path_from_the_api_downloads(sim):
    body = logs(client(sim), "a.example.com", page_size=1)
    info = body["DomainLogDetails"]["DomainLogDetail"][0]["LogInfos"]["LogInfoDetail"][0]
    response = requests.get("http://" + info["LogPath"])
    assert response.status_code == 200
    assert len(response.content) == info["LogSize"]


def oss_code(response: requests.Response) -> str:
    text = response.text
    return text.split("<Code>")[1].split("</Code>")[0]


def test_tampered_expired_and_unknown_urls(sim):
    f = first_file(sim)
    url = sim.url(f)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    expires = int(query["Expires"][0])
    tampered = url.replace(f"Expires={expires}", f"Expires={expires + 1}")
    response = requests.get(tampered)
    assert (response.status_code, oss_code(response)) == (403, "SignatureDoesNotMatch")
    other = sim.files("a.example.com")[0]
    response = requests.get(url.replace(f.name, other.name))
    assert (response.status_code, oss_code(response)) == (403, "SignatureDoesNotMatch")
    sim.faults.expire_urls = True
    response = requests.get(sim.url(f))
    assert (response.status_code, oss_code(response)) == (403, "AccessDenied")
    assert "Request has expired." in response.text
    sim.faults.expire_urls = False
    sim.faults.missing.add(f.name)
    response = requests.get(sim.url(f))
    assert (response.status_code, oss_code(response)) == (404, "NoSuchKey")
    assert sim.downloads[f.name] == 0


def test_range_requests(sim):
    f = first_file(sim)
    data = f.gz
    assert data is not None
    response = requests.get(sim.url(f), headers={"Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-{f.size - 1}/{f.size}"
    assert response.content == data[100:]
    assert sim.downloads[f.name] == 1
    partial = requests.get(sim.url(f), headers={"Range": "bytes=0-9"})
    assert (partial.status_code, partial.content) == (206, data[:10])
    assert sim.downloads[f.name] == 1
    assert requests.get(sim.url(f), headers={"Range": f"bytes={f.size}-"}).status_code == 416
    sim.faults.range_support = False
    full = requests.get(sim.url(f), headers={"Range": "bytes=100-"})
    assert (full.status_code, full.content) == (200, data)
    assert sim.downloads[f.name] == 2


def test_truncate_corrupt_drop_and_5xx_faults(sim):
    f = first_file(sim)
    sim.faults.for_file(f.name).truncate_next = 1
    response = requests.get(sim.url(f), stream=True)
    assert response.headers["Content-Length"] == str(f.size)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _ = response.content  # urllib3 notices the short body

    sim.faults.corrupt_next = 1
    corrupt = requests.get(sim.url(f)).content
    assert len(corrupt) == f.size and corrupt != f.gz
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(corrupt)

    sim.faults.for_file(f.name).drop_next = 1
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sim.url(f))

    sim.faults.status_5xx_next = 1
    assert requests.get(sim.url(f)).status_code == 503
    assert requests.get(sim.url(f)).content == f.gz
    # Global switch fired for this file; other files were never affected.
    assert sim.downloads[f.name] == 2


def test_latency_and_bandwidth(sim):
    f = sim.add_file(
        "a.example.com", NOW - timedelta(hours=30), name="big.example.gz", gz=os.urandom(60_000)
    )
    sim.faults.for_file(f.name).first_byte_latency_seconds = 0.2
    started = time.perf_counter()
    assert requests.get(sim.url(f)).status_code == 200
    assert time.perf_counter() - started >= 0.2
    sim.faults.bandwidth_bytes_per_second = 200_000
    started = time.perf_counter()
    assert len(requests.get(sim.url(f)).content) == 60_000
    assert time.perf_counter() - started >= 0.2 + 0.25


def test_late_file_is_listed_only_after_publish(sim):
    start = NOW.replace(minute=0) - timedelta(hours=3)
    late = sim.add_file(
        "b.example.com", start, name=log_name("b.example.com", start, 9), lines=5, published=False
    )
    c = client(sim)
    window = {"start_time": iso(start), "end_time": iso(start + timedelta(hours=1))}

    def names() -> list[str]:
        body = logs(c, "b.example.com", **window)
        infos = body["DomainLogDetails"]["DomainLogDetail"][0]["LogInfos"]["LogInfoDetail"]
        return [i["LogName"] for i in infos]

    assert late.name not in names()
    assert requests.get(sim.url(late)).status_code == 404
    sim.publish(late.name)
    assert late.name in names()
    assert len(gzip.decompress(requests.get(sim.url(late)).content).splitlines()) == 5


def test_disk_backed_file_streams(sim, tmp_path):
    path = tmp_path / "big.gz"
    payload = gzip.compress(os.urandom(1_500_000), compresslevel=1, mtime=0)
    path.write_bytes(payload)
    f = sim.add_file("a.example.com", NOW - timedelta(hours=40), name="disk.gz", path=path)
    assert f.gz is None and f.size == len(payload)
    response = requests.get(sim.url(f))
    assert response.content == payload
    assert sim.downloads["disk.gz"] == 1


# -- generated content --------------------------------------------------------------------------


def test_generated_lines_look_like_aliyun_logs():
    lines = list(generate_lines("a.example.com", datetime(2026, 1, 1, 16, tzinfo=UTC), 20000, 1))
    assert lines[0].startswith("[2/Jan/2026:00:00:00 +0800] ")
    assert lines[-1].startswith("[2/Jan/2026:00:59:")
    normal = [ln for ln in lines if ln.count('"') == 8]
    assert len(normal) > 0.98 * len(lines)
    odd_quotes = [ln for ln in lines if ln.count('"') > 8]
    assert 0.002 * len(lines) < len(odd_quotes) < 0.01 * len(lines)
    fields = normal[0].split('"')
    assert fields[3].split(" ")[1].startswith(("http://a.example.com/", "https://a.example.com/"))
    tail = fields[4].split()
    assert tail[0].isdigit() and tail[3] in ("HIT", "MISS")
    assert fields[-1].strip() in ("https", "http", "quic")
    dash_times = [ln for ln in lines if ln.split(" ")[4] == "-"]
    assert 0 < len(dash_times) < 0.005 * len(lines)  # a handful of "-" in numeric fields
    assert any(":" in ln.split(" ")[2] for ln in lines)  # some IPv6 clients
    assert lines == list(
        generate_lines("a.example.com", datetime(2026, 1, 1, 16, tzinfo=UTC), 20000, 1)
    )


# -- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_simulate_command_serves_until_interrupted(sig):
    with subprocess.Popen(
        [sys.executable, "-m", "cdnlogs", "simulate", "--days", "1", "--domains", "x.example.com"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            second = process.stdout.readline()
            endpoint = first.split(" at ")[1].split()[0]
            assert f"CDNLOGS_ENDPOINT={endpoint}" in second
            assert "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI5tSimulatorDemoKey" in second
            secret = second.split("ALIBABA_CLOUD_ACCESS_KEY_SECRET=")[1].split()[0]
            c = CdnClient(
                Config(
                    access_key_id="LTAI5tSimulatorDemoKey",
                    access_key_secret=secret,
                    endpoint=endpoint.removeprefix("http://"),
                    protocol="http",
                )
            )
            detail = logs(c, "x.example.com")["DomainLogDetails"]["DomainLogDetail"][0]
            assert detail["LogCount"] > 0
            process.send_signal(sig)
            _, err = process.communicate(timeout=10)
            assert process.returncode == 0, err
            assert "simulator stopped" in err
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
