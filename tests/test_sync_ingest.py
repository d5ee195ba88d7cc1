"""`cdnlogs sync --ingest`: the sync fills the archive, then the dataset, idempotently."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAIN = "a.example.com"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(domains=(DOMAIN,), days=1, lines_per_file=40, now=NOW)
    with Simulator(config) as running:
        yield running


def _sync_ingest(sim: Simulator, out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret
    args = ["sync", "--ingest", "--json", "--domain", DOMAIN, "--since", "12h"]
    args += ["--out", str(out), "--endpoint", sim.endpoint, "--log-scheme", "http"]
    return subprocess.run(
        [sys.executable, "-m", "cdnlogs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _dataset_rows(out: Path) -> int:
    pattern = str(out / ".cdnlogs" / "dataset" / "domain=*" / "date=*" / "*.parquet")
    with duckdb.connect() as con:
        row = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()
    assert row is not None
    return int(row[0])


def test_sync_ingest_loads_every_fetched_line_once(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _sync_ingest(sim, out)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    fetched = summary["fetched"]
    assert fetched >= 10
    # Every line of every fetched file, counted independently from the served gzip bytes.
    served = [f for f in sim.files(DOMAIN) if sim.downloads[f.name]]
    lines = sum(len(gzip.decompress(f.read_bytes()).splitlines()) for f in served)
    ingest = summary["ingest"]
    assert ingest["files"] == fetched
    assert ingest["rows"] + ingest["rejects"] == lines
    assert _dataset_rows(out) == ingest["rows"]

    second = _sync_ingest(sim, out)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["fetched"] == 0
    assert again["ingest"]["files"] == 0
    assert _dataset_rows(out) == ingest["rows"]
