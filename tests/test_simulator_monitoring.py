"""The simulator's monitoring series and DCDN/VOD listings, read by each official SDK's own models.

The typed clients (cdn20180510, dcdn20180115, vod20170321) deserialize the answers into their
response models, so a wrong field name or nesting shows up as a missing value here.
"""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alibabacloud_cdn20180510 import models as cdn_models
from alibabacloud_cdn20180510.client import Client as CdnClient
from alibabacloud_dcdn20180115 import models as dcdn_models
from alibabacloud_dcdn20180115.client import Client as DcdnClient
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vod20170321 import models as vod_models
from alibabacloud_vod20170321.client import Client as VodClient

from cdnlogs.logformat import parse_line
from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        domains=(DOMAIN,),
        days=1,
        lines_per_file=50,
        now=NOW,
        split_fraction=0.0,
        monitoring_lag_seconds=0,
    )
    with Simulator(config) as running:
        yield running


def _config(sim: Simulator) -> Config:
    return Config(
        access_key_id=sim.access_key_id,
        access_key_secret=sim.access_key_secret,
        endpoint=sim.netloc,
        protocol="http",
    )


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _logged(sim: Simulator, hour: datetime) -> tuple[int, int]:
    """(requests, response bytes) the simulator's files hold for the UTC ``hour``."""
    requests = nbytes = 0
    for sim_file in sim.files(DOMAIN):
        for line in gzip.decompress(sim_file.read_bytes()).decode().splitlines():
            record = parse_line(line)
            if record.ts.replace(minute=0, second=0) == hour:
                requests += 1
                nbytes += record.response_bytes or 0
    return requests, nbytes


def test_cdn_series_are_1_1_times_the_logged_bytes_and_the_logged_requests(
    sim: Simulator,
) -> None:
    client = CdnClient(_config(sim))
    hour = NOW - timedelta(hours=5)
    window = {
        "domain_name": DOMAIN,
        "start_time": iso(hour),
        "end_time": iso(hour + timedelta(hours=3)),
    }
    traffic = client.describe_domain_traffic_data(
        cdn_models.DescribeDomainTrafficDataRequest(interval="3600", **window)
    ).body
    qps = client.describe_domain_qps_data(
        cdn_models.DescribeDomainQpsDataRequest(interval="3600", **window)
    ).body
    points = traffic.traffic_data_per_interval.data_module
    assert [p.time_stamp for p in points] == [iso(hour + timedelta(hours=i)) for i in range(3)]
    requests, nbytes = _logged(sim, hour)
    assert isinstance(points[0].value, str)  # bytes as a string, as documented
    assert float(points[0].value) == pytest.approx(nbytes * 1.1, rel=0.011)
    assert qps.qps_data_interval.data_module[0].acc_value == str(requests) == "50"
    assert float(qps.qps_data_interval.data_module[0].value) == pytest.approx(50 / 3600, abs=1e-3)


def test_hidden_and_truncated_files_still_count_in_the_series(sim: Simulator) -> None:
    client = CdnClient(_config(sim))
    hidden, truncated = sim.files(DOMAIN)[3], sim.files(DOMAIN)[4]
    sim.hide_file(hidden.name)
    sim.truncate_file(truncated.name, keep_lines=10)
    try:
        request = cdn_models.DescribeDomainQpsDataRequest(
            domain_name=DOMAIN,
            start_time=iso(hidden.start),
            end_time=iso(truncated.end),
            interval="3600",
        )
        points = client.describe_domain_qps_data(request).body.qps_data_interval.data_module
        assert [p.acc_value for p in points] == ["50", "50"]
        listed = client.describe_cdn_domain_logs(
            cdn_models.DescribeCdnDomainLogsRequest(
                domain_name=DOMAIN, start_time=iso(hidden.start), end_time=iso(truncated.end)
            )
        ).body.domain_log_details.domain_log_detail[0]
        (entry,) = listed.log_infos.log_info_detail
        assert entry.log_name == truncated.name
        served = sim.file(truncated.name)
        assert entry.log_size == served.size  # LogSize matches the shortened file
        assert len(gzip.decompress(served.read_bytes()).splitlines()) == 10
    finally:
        sim.faults.hidden.discard(hidden.name)


def test_dcdn_series_and_listing_in_the_dcdn_shapes(sim: Simulator) -> None:
    client = DcdnClient(_config(sim))
    hour = NOW - timedelta(hours=8)
    window = {
        "domain_name": DOMAIN,
        "start_time": iso(hour),
        "end_time": iso(hour + timedelta(hours=1)),
    }
    traffic = client.describe_dcdn_domain_traffic_data(
        dcdn_models.DescribeDcdnDomainTrafficDataRequest(interval="3600", **window)
    ).body
    (point,) = traffic.traffic_data_per_interval.data_module
    assert isinstance(point.traffic, float)
    assert point.traffic == pytest.approx(_logged(sim, hour)[1] * 1.1, rel=0.011)
    qps = client.describe_dcdn_domain_qps_data(
        dcdn_models.DescribeDcdnDomainQpsDataRequest(interval="3600", **window)
    ).body
    assert qps.qps_data_per_interval.data_module[0].acc == 50
    listing = client.describe_dcdn_domain_log(
        dcdn_models.DescribeDcdnDomainLogRequest(page_size=10, **window)
    ).body
    assert listing.domain_name == DOMAIN  # at the top level in DCDN's answer
    detail = listing.domain_log_details.domain_log_detail[0]
    assert (detail.page_infos.page_index, detail.page_infos.total) == (1, 1)


def test_vod_listing_says_page_number_and_series_have_vod_fields(sim: Simulator) -> None:
    client = VodClient(_config(sim))
    start, end = NOW - timedelta(hours=10), NOW - timedelta(hours=4)
    window = {"domain_name": DOMAIN, "start_time": iso(start), "end_time": iso(end)}
    listing = client.describe_vod_domain_log(
        vod_models.DescribeVodDomainLogRequest(page_size=4, page_number=2, **window)
    ).body
    detail = listing.domain_log_details.domain_log_detail[0]
    assert (detail.page_infos.page_number, detail.page_infos.total) == (2, 6)
    assert detail.domain_name == DOMAIN and len(detail.log_infos.log_info_detail) == 2
    traffic = client.describe_vod_domain_traffic_data(
        vod_models.DescribeVodDomainTrafficDataRequest(interval="3600", **window)
    ).body
    values = [float(p.value) for p in traffic.traffic_data_per_interval.data_module]
    assert len(values) == 6 and float(traffic.total_traffic) == pytest.approx(sum(values), abs=3)
    qps = client.describe_vod_domain_qps_data(
        vod_models.DescribeVodDomainQpsDataRequest(interval="3600", **window)
    ).body
    assert {p.acc_value for p in qps.qps_data_interval.data_module} == {"50"}


@pytest.mark.parametrize(
    ("start_offset", "end_offset", "interval", "code"),
    [
        (timedelta(days=32), timedelta(0), "3600", "InvalidTimeSpan"),
        (timedelta(days=4), timedelta(0), "300", "InvalidTimeSpan"),
        (timedelta(days=200), timedelta(days=190), "3600", "InvalidStartTime.ValueNotSupported"),
        (timedelta(hours=2), timedelta(0), "60", "InvalidInterval"),
        (timedelta(0), timedelta(hours=2), "3600", "InvalidEndTime.Mismatch"),
    ],
)
def test_monitoring_limits_are_enforced_with_the_documented_codes(
    sim: Simulator, start_offset: timedelta, end_offset: timedelta, interval: str, code: str
) -> None:
    client = CdnClient(_config(sim))
    request = cdn_models.DescribeDomainTrafficDataRequest(
        domain_name=DOMAIN,
        start_time=iso(NOW - start_offset),
        end_time=iso(NOW - end_offset),
        interval=interval,
    )
    with pytest.raises(AlibabaCloudException) as info:
        client.describe_domain_traffic_data(request)
    assert info.value.code == code
    assert info.value.data["RequestId"]


def test_a_dcdn_error_names_the_dcdn_host(sim: Simulator) -> None:
    client = DcdnClient(_config(sim))
    request = dcdn_models.DescribeDcdnDomainQpsDataRequest(domain_name="nope.example.com")
    with pytest.raises(AlibabaCloudException) as info:
        client.describe_dcdn_domain_qps_data(request)
    assert info.value.code == "InvalidDomain.NotFound"
    assert info.value.data["HostId"] == "dcdn.aliyuncs.com"


def test_simulate_command_hides_and_truncates_files(tmp_path: Path) -> None:
    domain = "x.example.com"
    with Simulator(SimulatorConfig(domains=(domain,), days=1, seed=1)) as local:
        files = local.files(domain)
    hidden, truncated = files[3], files[4]
    argv = [sys.executable, "-m", "cdnlogs", "simulate", "--days", "1", "--domains", domain]
    argv += ["--hide-file", hidden.name, "--truncate-file", truncated.name]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            endpoint = proc.stdout.readline().split(" at ")[1].split()[0]
            secret = proc.stdout.readline().split("ALIBABA_CLOUD_ACCESS_KEY_SECRET=")[1].split()[0]
            client = CdnClient(
                Config(
                    access_key_id="LTAI5tSimulatorDemoKey",
                    access_key_secret=secret,
                    endpoint=endpoint.removeprefix("http://"),
                    protocol="http",
                )
            )
            request = cdn_models.DescribeCdnDomainLogsRequest(domain_name=domain)
            detail = client.describe_cdn_domain_logs(request).body.domain_log_details
            sizes = {
                e.log_name: e.log_size
                for e in detail.domain_log_detail[0].log_infos.log_info_detail
            }
            assert hidden.name not in sizes
            assert 0 < sizes[truncated.name] < truncated.size
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    bad = subprocess.run(
        [*argv[:8], "--hide-file", "nope.gz"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "the simulator has no file 'nope.gz'" in bad.stderr
