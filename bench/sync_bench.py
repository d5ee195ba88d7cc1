"""Benchmark `cdnlogs sync` against the original script's loop and the parallel ideal.

Not a test. Starts the built-in simulator in this process with a per-connection bandwidth cap
and a first-byte latency, serves N copies of one realistic ~5 MB gzip log from disk, and syncs
them three ways, each in its own subprocess (so peak RSS is that process's own, via wait4):

  (a) sequential: the original script's loop (requests .content -> .gz file -> gzip 8 KiB
      copy loop -> .txt), ported to Python 3;
  (b) parallel ideal: `curl -s URL | gzip -d > FILE` pipelines, CONCURRENCY at a time;
  (c) `cdnlogs sync --concurrency CONCURRENCY` (verification, fsync, ledger included).

Then one big file (1 GiB of gzip, --format gz so every byte is kept and the whole stream is
still inflated to verify it) synced alone, to show peak RSS does not follow file size.

    .venv/bin/python bench/sync_bench.py            # 96 x 5 MB at 20 MB/s, 50 ms; 1 GiB file
    .venv/bin/python bench/sync_bench.py --quick    # 24 files, 256 MiB big file
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdnlogs.config import Settings
from cdnlogs.providers import make_provider
from cdnlogs.simulator import Simulator, SimulatorConfig
from cdnlogs.simulator.loggen import generate_lines

DOMAIN = "bench.example.com"
MB = 1000 * 1000
MiB = 1024 * 1024

SEQUENTIAL_SCRIPT = textwrap.dedent(
    """
    # The original cdn.py download loop, ported to Python 3 (same structure and buffer size).
    import gzip, json, os, sys
    import requests

    class GZipTool:
        def __init__(self, bufSize=1024 * 8):
            self.bufSize = bufSize

        def decompress(self, gzFile, dst):
            fin = gzip.open(gzFile, "rb")
            fout = open(dst, "wb")
            while True:
                buf = fin.read(self.bufSize)
                if len(buf) < 1:
                    break
                fout.write(buf)
            fin.close()
            fout.close()

    jobs = json.load(open(sys.argv[1]))
    download_path = sys.argv[2]
    for name, url in jobs:
        filename = os.path.join(download_path, name)
        logname = filename[:-3] + ".txt"
        r = requests.get(url)
        with open(filename, "wb") as f:
            f.write(r.content)
        GZipTool().decompress(filename, logname)
        os.remove(filename)
    """
)

PIPELINE_SCRIPT = textwrap.dedent(
    """
    # The parallel ideal: curl | gzip -d pipelines, CONCURRENCY at a time.
    import json, subprocess, sys
    from concurrent.futures import ThreadPoolExecutor

    jobs = json.load(open(sys.argv[1]))
    out, workers = sys.argv[2], int(sys.argv[3])

    def fetch(job):
        name, url = job
        dst = f"{out}/{name[:-3]}.log"
        cmd = f"curl -sf '{url}' | gzip -d > '{dst}'"
        subprocess.run(["sh", "-c", cmd], check=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, jobs))
    """
)


@dataclass
class Measure:
    """Wall time and peak RSS of one subprocess."""

    label: str
    seconds: float
    peak_rss_mb: float
    stdout: str = ""


def run_measured(label: str, argv: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run ``argv``; wall time and the peak RSS of it and the children it waited for."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives this child's own rusage (ru_maxrss covers its waited-for descendants too),
    # unlike RUSAGE_CHILDREN, which is the maximum over every child so far.
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return Measure(label, seconds, usage.ru_maxrss / 1024, stdout)


def make_source(path: Path, target_bytes: int, hour: datetime) -> tuple[int, int]:
    """Write a realistic gzip log of about ``target_bytes``; return (gz bytes, plain bytes)."""
    if path.exists() and path.with_suffix(".plain").exists():
        return path.stat().st_size, int(path.with_suffix(".plain").read_text())
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    plain = written = 0
    seed = 0
    with path.open("wb") as out:
        while written < target_bytes:
            seed += 1
            block = "".join(generate_lines(DOMAIN, hour, 20_000, seed)).encode()
            plain += len(block)
            piece = compressor.compress(block)
            out.write(piece)
            written += len(piece)
        out.write(compressor.flush())
    path.with_suffix(".plain").write_text(str(plain))
    return path.stat().st_size, plain


def make_big(path: Path, source: Path, target_bytes: int) -> int:
    """A multi-member gzip of ``target_bytes`` made of copies of ``source`` (valid gzip)."""
    if path.exists() and path.stat().st_size >= target_bytes:
        return path.stat().st_size
    with path.open("wb") as out, source.open("rb") as src:
        data = src.read()
        while out.tell() < target_bytes:
            out.write(data)
    return path.stat().st_size


def file_name(start: datetime, n: int) -> str:
    """A LogName in the provider's +08:00 time, with a suffix when an hour has several files."""
    local = start + timedelta(hours=8)
    end = local + timedelta(hours=1)
    return f"{DOMAIN}_{local:%Y_%m_%d_%H%M%S}_{end:%H%M%S}_{n}.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 files and a 256 MiB big file")
    parser.add_argument("--files", type=int, default=None, help="number of files (default 96)")
    parser.add_argument("--file-mb", type=float, default=5.0, help="gzip MB per file")
    parser.add_argument("--bandwidth-mbps", type=float, default=20.0, help="MB/s per connection")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="first-byte latency")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--big-mib", type=int, default=None, help="big file size (default 1024)")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="keep sources here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    files = args.files or (24 if args.quick else 96)
    big_mib = args.big_mib or (256 if args.quick else 1024)
    bandwidth = args.bandwidth_mbps * MB
    latency = args.latency_ms / 1000

    work = args.workdir or Path(tempfile.gettempdir()) / "cdnlogs-bench"
    work.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    source = work / "source.gz"
    gz_size, plain_size = make_source(source, int(args.file_mb * MB), now)
    print(
        f"source: {gz_size / MB:.1f} MB gzip, {plain_size / MB:.1f} MB plain "
        f"({plain_size / gz_size:.1f}x); {files} files; {args.bandwidth_mbps:g} MB/s per "
        f"connection; {args.latency_ms:g} ms first byte; concurrency {args.concurrency}",
        flush=True,
    )

    figures: dict[str, object] = {}
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    config = SimulatorConfig(domains=(DOMAIN,), days=0, now=now)
    with Simulator(config) as sim:
        hours = [now - timedelta(hours=1 + i // 4) for i in range(files)]
        for i, start in enumerate(hours):
            sim.add_file(DOMAIN, start, name=file_name(start, i % 4), path=source)
        sim.faults.bandwidth_bytes_per_second = bandwidth
        sim.faults.first_byte_latency_seconds = latency
        settings = Settings(
            domains=[DOMAIN],
            endpoint=sim.endpoint,
            log_scheme="http",
            access_key_id=sim.access_key_id,
            access_key_secret=sim.access_key_secret,
        )
        listing = make_provider(settings).list_log_files(DOMAIN, now - timedelta(days=2), now)
        assert len(listing.files) == files, len(listing.files)
        jobs = work / "jobs.json"
        jobs.write_text(json.dumps([[f.name, f.url] for f in listing.files]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDNLOGS_")}
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = sim.access_key_id
        env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = sim.access_key_secret

        total_gz = gz_size * files
        bound = total_gz / (bandwidth * min(args.concurrency, files)) + latency * (
            files / min(args.concurrency, files)
        )
        results: list[Measure] = []
        (runs / "a").mkdir()
        seq = run_measured(
            "(a) sequential (original loop)",
            [sys.executable, "-c", SEQUENTIAL_SCRIPT, str(jobs), str(runs / "a")],
        )
        results.append(seq)
        shutil.rmtree(runs / "a")
        (runs / "b").mkdir()
        ideal = run_measured(
            f"(b) curl | gzip -d x{args.concurrency}",
            [
                sys.executable,
                "-c",
                PIPELINE_SCRIPT,
                str(jobs),
                str(runs / "b"),
                str(args.concurrency),
            ],
        )
        results.append(ideal)
        shutil.rmtree(runs / "b")
        cdnlogs_bin = [sys.executable, "-m", "cdnlogs"]
        sync_args = ["sync", "--domain", DOMAIN, "--since", "2d", "--endpoint", sim.endpoint]
        sync_args += ["--log-scheme", "http", "--concurrency", str(args.concurrency), "--json"]
        ours = run_measured(
            f"(c) cdnlogs sync x{args.concurrency}",
            [*cdnlogs_bin, *sync_args, "--out", str(runs / "c")],
            env=env,
        )
        results.append(ours)
        summary = json.loads(ours.stdout)
        assert summary["ok"] and summary["fetched"] == files, summary
        shutil.rmtree(runs / "c")
        # Same, keeping the .gz (still fully inflated to verify): what is left without writing
        # ~9x the bytes as plain text, i.e. whether the plain run is bound by the disk.
        ours_gz = run_measured(
            f"(c) cdnlogs sync x{args.concurrency} --format gz",
            [*cdnlogs_bin, *sync_args, "--format", "gz", "--out", str(runs / "cgz")],
            env=env,
        )
        results.append(ours_gz)
        shutil.rmtree(runs / "cgz")

        print(f"\n{'method':36} {'wall s':>8} {'peak RSS MB':>12} {'MB/s (gz)':>10}")
        for m in results:
            rate = total_gz / MB / m.seconds
            print(f"{m.label:36} {m.seconds:8.2f} {m.peak_rss_mb:12.1f} {rate:10.1f}")
        print(f"{'bandwidth bound':36} {bound:8.2f}")
        speedup = seq.seconds / ours.seconds
        vs_ideal = ours.seconds / ideal.seconds
        vs_bound = ours.seconds / bound
        print(
            f"\ncdnlogs sync is {speedup:.1f}x faster than (a) [goal >= 6x]; "
            f"{vs_ideal:.2f}x the time of (b) [goal <= 1.3x]; {vs_bound:.2f}x the bandwidth bound",
            flush=True,
        )
        figures.update(
            files=files,
            gz_mb_per_file=round(gz_size / MB, 2),
            plain_mb_per_file=round(plain_size / MB, 2),
            bandwidth_mb_s=args.bandwidth_mbps,
            latency_ms=args.latency_ms,
            concurrency=args.concurrency,
            sequential_s=round(seq.seconds, 2),
            pipelines_s=round(ideal.seconds, 2),
            cdnlogs_s=round(ours.seconds, 2),
            bound_s=round(bound, 2),
            speedup_vs_sequential=round(speedup, 2),
            ratio_vs_pipelines=round(vs_ideal, 2),
            cdnlogs_gz_s=round(ours_gz.seconds, 2),
            plain_gb_written=round(plain_size * files / 1e9, 2),
            rss_mb={m.label: round(m.peak_rss_mb, 1) for m in results},
        )

        if not args.skip_big:
            big = make_big(work / "big.gz", source, big_mib * MiB)
            sim.faults.bandwidth_bytes_per_second = None
            sim.faults.first_byte_latency_seconds = None
            big_start = now - timedelta(hours=30)
            sim.add_file(DOMAIN, big_start, name=file_name(big_start, 9), path=work / "big.gz")
            big_run = run_measured(
                "big file",
                [
                    *cdnlogs_bin,
                    *sync_args,
                    "--since",
                    "31h",
                    "--until",
                    "29h",
                    "--format",
                    "gz",
                    "--out",
                    str(runs / "big"),
                ],
                env=env,
            )
            big_summary = json.loads(big_run.stdout)
            assert big_summary["ok"] and big_summary["fetched"] == 1, big_summary
            assert (runs / "big").exists()
            shutil.rmtree(runs / "big")
            print(
                f"\nbig file: {big / MiB:.0f} MiB gzip ({big_summary['plain_bytes'] / MiB:.0f} "
                f"MiB inflated to verify), --format gz: {big_run.seconds:.1f} s, peak RSS "
                f"{big_run.peak_rss_mb:.1f} MB [goal < 200 MB]"
            )
            figures.update(
                big_mib=round(big / MiB),
                big_plain_mib=round(big_summary["plain_bytes"] / MiB),
                big_s=round(big_run.seconds, 2),
                big_rss_mb=round(big_run.peak_rss_mb, 1),
            )
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
