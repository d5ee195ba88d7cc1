"""`cdnlogs demo`: the README's main-job command works from scratch and is re-runnable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cdnlogs.manifest import Manifest, Status


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDNLOGS_", "ALIBABA_"))}
    return subprocess.run(
        [sys.executable, "-m", "cdnlogs", "demo", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_demo_syncs_two_domains_and_a_rerun_fetches_nothing(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "a.example.com" in first.stdout and "b.example.com" in first.stdout
    assert "status" in first.stdout
    out = tmp_path / "cdnlogs-demo"  # the default --out, relative to the working directory
    with Manifest.open(out / ".cdnlogs", create=False) as manifest:
        rows = manifest.records()
    assert {r.domain for r in rows} == {"a.example.com", "b.example.com"}
    assert len(rows) >= 2 * 2 * 24 and all(r.status is Status.DONE for r in rows)
    assert all((out / (r.local_path or "")).is_file() for r in rows)

    second = _demo(tmp_path, "--json")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["fetched"] == 0 and summary["skipped"] == summary["listed"] == len(rows)


def test_demo_out_option(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--out", str(tmp_path / "elsewhere"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] and summary["fetched"] == summary["listed"] > 0
    assert not (tmp_path / "cdnlogs-demo").exists()


def test_the_next_steps_the_demo_prints_work(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    line = next(s for s in first.stdout.splitlines() if s.startswith("Next: "))
    commands = [part.split("`")[0] for part in line.split("`cdnlogs ")[1:]]
    assert [c.split()[0] for c in commands] == ["ingest", "report"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDNLOGS_", "ALIBABA_"))}
    for command in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "cdnlogs", *command.split()],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
