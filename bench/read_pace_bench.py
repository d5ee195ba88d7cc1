"""Benchmark: does reading bodies with ``read1`` (the slow-link rules) cost sync any speed?

Not a test. The downloader used to read with ``raw.read(1 MiB)``, which blocks until a whole MiB
has arrived, so a trickling host could hold it forever; it now reads with ``read1`` (whatever
has arrived, up to 1 MiB) and checks the pace between reads. Smaller reads mean more Python
per byte, so this runs the same sync with the baseline tree and with this one, alternately,
against one in-process simulator: uncapped (loopback as fast as the CPU: the worst case for
small reads) and with the 20 MB/s per-connection cap of bench/sync_bench.py. Prints each run,
the medians and the ratio current / baseline.

    git archive <baseline-commit> src | tar -x -C /tmp/baseline
    .venv/bin/python bench/read_pace_bench.py --baseline-src /tmp/baseline/src
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdnlogs.simulator import Simulator, SimulatorConfig
from sync_bench import DOMAIN, MB, file_name, make_source, run_measured

CURRENT_SRC = Path(__file__).resolve().parent.parent / "src"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--baseline-src", type=Path, required=True, help="src/ of the baseline tree")
parser.add_argument("--files", type=int, default=12)
parser.add_argument("--file-mb", type=float, default=5.0)
parser.add_argument("--concurrency", type=int, default=4)
parser.add_argument("--rounds", type=int, default=3)


def main() -> None:
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / "cdnlogs-bench"
    work.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    source = work / "source.gz"
    gz_size, plain_size = make_source(source, int(args.file_mb * MB), now)
    print(
        f"{args.files} files of {gz_size / MB:.1f} MB gzip ({plain_size / MB:.1f} MB plain), "
        f"concurrency {args.concurrency}, {args.rounds} rounds alternating baseline/current",
        flush=True,
    )
    runs = work / "pace-runs"
    trees = {"baseline": args.baseline_src.resolve(), "current": CURRENT_SRC}
    config = SimulatorConfig(domains=(DOMAIN,), days=0, now=now)
    with Simulator(config) as sim:
        for i in range(args.files):
            start = now - timedelta(hours=1 + i // 4)
            sim.add_file(DOMAIN, start, name=file_name(start, i % 4), path=source)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
        base_env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
        base_env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret
        sync = [sys.executable, "-m", "cdnlogs", "sync", "--domain", DOMAIN, "--since", "2d"]
        sync += ["--endpoint", sim.endpoint, "--log-scheme", "http", "--json"]
        sync += ["--concurrency", str(args.concurrency)]
        for label, bandwidth in (("uncapped", None), ("20 MB/s per connection", 20 * MB)):
            sim.faults.bandwidth_bytes_per_second = bandwidth
            times: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, src in trees.items():
                    shutil.rmtree(runs, ignore_errors=True)
                    env = {**base_env, "PYTHONPATH": str(src)}
                    measure = run_measured(name, [*sync, "--out", str(runs)], env=env)
                    summary = json.loads(measure.stdout)
                    assert summary["ok"] and summary["fetched"] == args.files, summary
                    times[name].append(measure.seconds)
            base = statistics.median(times["baseline"])
            current = statistics.median(times["current"])
            print(f"\n{label}:")
            for name, values in times.items():
                print(f"  {name:9s} " + "  ".join(f"{v:6.2f}s" for v in values))
            print(f"  median baseline {base:.2f}s, current {current:.2f}s: {current / base:.2f}x")
    shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
