"""`--product dcdn|vod`: listing, paging, sync, errors and reconcile through DCDN's and VOD's APIs.

Against the simulator over real HTTP, with each product's official SDK client: DCDN's
DescribeDcdnDomainLog (2018-01-15, DomainName at the top) and VOD's DescribeVodDomainLog
(2017-03-21, PageInfos.PageNumber), and their own traffic and QPS series.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdnlogs.cli import main
from cdnlogs.config import load_settings
from cdnlogs.errors import ExitStatus
from cdnlogs.manifest import Manifest, Status
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.providers.products import PRODUCTS
from cdnlogs.simulator import Simulator, SimulatorConfig
from cdnlogs.simulator.catalog import log_name
from cdnlogs.simulator.loggen import generate_lines

DOMAIN = "v.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: The 24 hours up to 2 hours before NOW, in absolute times so that a test running across an
#: hour boundary judges the same hours (the simulator's files are pinned to NOW).
WINDOW = (
    "--since",
    f"{NOW - timedelta(hours=26):%Y-%m-%dT%H:%M:%SZ}",
    "--until",
    f"{NOW - timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ}",
    "--settle",
    "2h",
)
#: More than one page of 1000: the listing must page.
EXTRA_FILES = 1005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        domains=(DOMAIN,),
        days=1,
        lines_per_file=30,
        now=NOW,
        split_fraction=0.0,
        # no boundary spill: with 30 lines an hour, one large response moved by the
        # provider's lag can exceed an hour's tolerance (test_reconcile covers the spill)
        monitoring_lag_seconds=0,
    )
    with Simulator(config) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, sim: Simulator) -> Path:
    path = tmp_path / "cdnlogs.toml"
    path.write_text(
        f'endpoint = "{sim.endpoint}"\nlog_scheme = "http"\nout = "{tmp_path / "out"}"\n'
        "api_attempts = 2\n"
        f'[credentials]\naccess_key_id = "{sim.access_key_id}"\n'
        f'access_key_secret = "{sim.access_key_secret}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``cdnlogs argv`` through main(); return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize("product", ["dcdn", "vod"])
def test_sync_pages_and_downloads_through_the_product_api(
    sim: Simulator,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    product: str,
) -> None:
    spec = PRODUCTS[product]
    busy = NOW - timedelta(hours=6)
    for part in range(EXTRA_FILES):
        line = next(generate_lines(DOMAIN, busy, 1, seed=part))
        sim.add_file(DOMAIN, busy, name=log_name(DOMAIN, busy, part + 10), lines=[line])
    expected = {f.name for f in sim.files(DOMAIN) if f.start >= NOW - timedelta(hours=30)}
    assert len(expected) > 1000

    argv = ["sync", "--config", str(config), "--product", product, "--domain", DOMAIN]
    code, out, err = run(capsys, *argv, "--since", "30h", "--json")
    assert code == ExitStatus.OK, err
    assert json.loads(out)["fetched"] == len(expected)
    assert sim.api_calls[spec.log_action] == 2  # two pages of at most 1000
    assert sim.api_calls["DescribeCdnDomainLogs"] == 0
    assert sim.api_styles[("ACS3", spec.version)] == 2
    with Manifest.open(tmp_path / "out" / ".cdnlogs", create=False) as manifest:
        done = {r.log_name for r in manifest.records(DOMAIN, Status.DONE)}
    assert done == expected
    # Same layout as CDN: <domain>/<YYYY>/<MM>/<DD>/<stem>.log, dated in +08:00.
    sample = sim.files(DOMAIN)[3]
    local = sample.start.astimezone(PROVIDER_TZ)
    path = tmp_path / "out" / DOMAIN / f"{local:%Y/%m/%d}" / f"{sample.name[:-3]}.log"
    assert path.read_bytes() == gzip.decompress(sample.read_bytes())
    # A second run finds everything in the ledger and downloads nothing.
    sim.reset_counters()
    code, out, err = run(capsys, *argv, "--since", "30h", "--json")
    assert code == ExitStatus.OK, err
    assert (json.loads(out)["fetched"], sum(sim.downloads.values())) == (0, 0)


@pytest.mark.parametrize("fault", ["none", "hidden"])
@pytest.mark.parametrize("product", ["dcdn", "vod"])
def test_reconcile_uses_the_product_series(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str], product: str, fault: str
) -> None:
    spec = PRODUCTS[product]
    victim = sim.files(DOMAIN)[7]
    if fault == "hidden":
        sim.hide_file(victim.name)
    common = ["--config", str(config), "--product", product, "--domain", DOMAIN]
    code, _, err = run(capsys, "sync", *common, "--since", "30h", "--ingest")
    assert code == ExitStatus.OK, err
    code, out, err = run(capsys, "reconcile", *common, *WINDOW, "--json")
    doc = json.loads(out)
    assert doc["product"] == product
    assert sim.api_calls[spec.traffic.action] == 1
    assert sim.api_calls[spec.requests.action] == 1
    assert sim.api_calls["DescribeDomainTrafficData"] == 0
    if fault == "none":
        assert (code, doc["verdict"]) == (ExitStatus.OK, "ok"), err
        assert sum(h["requests"]["logged"] for h in doc["domains"][0]["hours"]) == 22 * 30
        return
    assert code == ExitStatus.SHORT
    assert doc["domains"][0]["short_hours"] == [victim.start.strftime("%Y-%m-%dT%H:%M:%SZ")]


@pytest.mark.parametrize("product", ["dcdn", "vod"])
def test_errors_carry_the_code_request_id_and_a_product_hint(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str], product: str
) -> None:
    common = ["--config", str(config), "--product", product]
    code, _, err = run(capsys, "list", *common, "--domain", "nope.example.com")
    assert code == ExitStatus.API
    assert err.startswith("Error: InvalidDomain.NotFound: ") and "(RequestId " in err
    assert f"hint: check the domain name in the {product.upper()} console" in err
    sim.faults.force_api_error("Forbidden.RAM")
    code, _, err = run(capsys, "list", *common, "--domain", DOMAIN)
    assert code == ExitStatus.API
    assert f"hint: the RAM user needs {product}:{PRODUCTS[product].log_action}" in err
    code, _, err = run(capsys, "list", *common, "--all-domains")
    assert code == ExitStatus.CONFIG
    assert "CDN domains only" in err


def test_each_product_has_its_endpoint_unless_one_is_given() -> None:
    env: dict[str, str] = {}
    assert load_settings({}, env=env).endpoint == "https://cdn.aliyuncs.com"
    assert load_settings({"product": "dcdn"}, env=env).endpoint == "https://dcdn.aliyuncs.com"
    vod = load_settings({}, env={"CDNLOGS_PRODUCT": "VOD"})
    assert (vod.product, vod.endpoint) == ("vod", "https://vod.cn-shanghai.aliyuncs.com")
    given = load_settings({"product": "vod", "endpoint": "http://127.0.0.1:9"}, env=env)
    assert given.endpoint == "http://127.0.0.1:9"
