"""Benchmark `cdnlogs sync --store` against `cdnlogs sync` to local disk, side by side.

Not a test. One process serves both the built-in simulator (API + log host) and moto's S3
server (ThreadedMotoServer on 127.0.0.1), and each sync runs as its own `python -m cdnlogs`
child on the same simulated files:

  (a) `sync` to local disk (the baseline);
  (b) `sync --store s3://bench/raw-N` (the same, plus upload and verify of every file);
  (c) `sync --store ... --drop-local` (uploaded, then the local copies deleted);
  each in `--format log` and `--format gz`, `--repeat` times, alternating, best and median;
  (a) and (b) are run a second time on the same archive (nothing new: the fixed cost).

moto is pure Python in this process and keeps objects in RAM, so the absolute store figures
say little about OSS or S3: the ratio (b)/(a) is what the store path adds on this machine.

    .venv/bin/python bench/store_bench.py                  # 48 files x 20,000 lines
    .venv/bin/python bench/store_bench.py --quick          # 12 files x 5,000 lines
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

DOMAIN = "bench.example.com"
BUCKET = "bench"


def _child(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cdnlogs", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"cdnlogs {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=48, help="files (one per hour)")
    parser.add_argument("--lines", type=int, default=20_000, help="lines per file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="12 files x 5,000 lines, 2 runs")
    opts = parser.parse_args()
    if opts.quick:
        opts.hours, opts.lines, opts.repeat = 12, 5_000, 2

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from cdnlogs.simulator import Simulator, SimulatorConfig

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3_endpoint = f"http://{host}:{port}"
    keys = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        **{k.lower(): v for k, v in keys.items()},
    ).create_bucket(Bucket=BUCKET)
    days = (opts.hours + 23) // 24
    config = SimulatorConfig(
        domains=(DOMAIN,), days=days, lines_per_file=opts.lines, now=now, split_fraction=0.0
    )
    print(f"generating {opts.hours} files x {opts.lines:,} lines ...", flush=True)
    with (
        Simulator(config) as sim,
        tempfile.TemporaryDirectory(prefix="cdnlogs-store-bench-") as tmp,
    ):
        start = now - timedelta(hours=opts.hours)
        files = [f for f in sim.files(DOMAIN) if f.start >= start]
        gz_bytes = sum(f.size for f in files)
        plain_bytes = sum(len(__import__("gzip").decompress(f.gz)) for f in files)
        print(f"{len(files)} files, {gz_bytes / 1e6:.1f} MB gzip, {plain_bytes / 1e6:.1f} MB text")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CDNLOGS_", "AWS_"))}
        env |= keys | {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": sim.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sim.access_key_secret,
            "CDNLOGS_STORE_ENDPOINT": s3_endpoint,
            "CDNLOGS_STORE_REGION": "us-east-1",
        }
        base = [
            "sync", "--domain", DOMAIN, "--endpoint", sim.endpoint, "--log-scheme", "http",
            "--since", start.isoformat(), "--until", now.isoformat(),
            "--concurrency", str(opts.concurrency),
        ]  # fmt: skip
        results: dict[str, list[float]] = {}
        run = 0
        for _ in range(opts.repeat):
            for fmt in ("log", "gz"):
                for method in ("local", "store", "store --drop-local"):
                    run += 1
                    out = Path(tmp) / f"out-{run}"
                    # A fresh prefix each run: every file is uploaded, none is already there.
                    extra = [] if method == "local" else ["--store", f"s3://{BUCKET}/raw-{run}"]
                    if method.endswith("--drop-local"):
                        extra.append("--drop-local")
                    seconds, summary = _child(
                        [*base, "--out", str(out), "--format", fmt, *extra], env
                    )
                    assert summary["fetched"] == len(files), summary
                    if method != "local":
                        assert summary["uploaded"] == len(files), summary
                    results.setdefault(f"{method} ({fmt})", []).append(seconds)
                    print(f"  {method:20s} {fmt}: {seconds:6.2f} s", flush=True)
                    if method == "store --drop-local":
                        continue
                    # The same run again: nothing to fetch, so what is left is fixed cost
                    # (start-up, listing, the ledger; with a store its check and snapshot).
                    seconds, summary = _child(
                        [*base, "--out", str(out), "--format", fmt, *extra], env
                    )
                    assert summary["fetched"] == 0, summary
                    results.setdefault(f"{method} rerun ({fmt})", []).append(seconds)
    moto.stop()
    print()
    print("| method | best s | median s | vs local (same format) |")
    print("|---|---:|---:|---:|")
    for name, times in results.items():
        fmt = name.rsplit("(", 1)[1].rstrip(")")
        baseline = "local rerun" if "rerun" in name else "local"
        local = statistics.median(results[f"{baseline} ({fmt})"])
        print(
            f"| {name} | {min(times):.2f} | {statistics.median(times):.2f} |"
            f" {statistics.median(times) / local:.2f}x |"
        )


if __name__ == "__main__":
    main()
