"""A lost ledger is rebuilt with `cdnlogs adopt OUT`, after which sync fetches nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAIN = "a.example.com"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # The hour this test starts in (not the module's import time: the CLI runs on the real clock).
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    config = SimulatorConfig(domains=(DOMAIN,), days=1, lines_per_file=20, now=now)
    with Simulator(config) as running:
        # A LogName with a tag after .gz, as seen in the provider's samples.
        start = now - timedelta(hours=3)
        tagged = (
            f"{DOMAIN}_{(start + timedelta(hours=8)):%Y_%m_%d_%H0000}_"
            f"{(start + timedelta(hours=9)):%H0000}.gz.ab12cd"
        )
        running.add_file(DOMAIN, start, name=tagged)
        yield running


def _cdnlogs(sim: Simulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret
    return subprocess.run(
        [sys.executable, "-m", "cdnlogs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("fmt", ["log", "gz"])
def test_adopt_rebuilds_a_lost_ledger(sim: Simulator, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    sync = ["sync", "--domain", DOMAIN, "--since", "20h", "--out", str(out), "--format", fmt]
    sync += ["--endpoint", sim.endpoint, "--log-scheme", "http", "--json"]
    first = _cdnlogs(sim, *sync)
    assert first.returncode == 0, first.stderr
    fetched = sum(sim.downloads.values())
    assert fetched >= 10
    assert any(".ab12cd" in p.name for p in out.rglob("*") if p.is_file())

    (out / ".cdnlogs" / "manifest.sqlite3").unlink()
    for extra in (out / ".cdnlogs").glob("manifest.sqlite3-*"):
        extra.unlink()
    adopt = _cdnlogs(sim, "adopt", str(out), "--out", str(out), "--json")
    assert adopt.returncode == 0, adopt.stderr

    again = _cdnlogs(sim, *sync)
    assert again.returncode == 0, again.stderr
    assert sum(sim.downloads.values()) == fetched  # nothing fetched twice, the tagged file too
