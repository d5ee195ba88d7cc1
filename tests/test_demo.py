"""`cdnlogs demo`: the README's main-job command works from scratch and is re-runnable."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from cdnlogs.cli.archive import how_to_run
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


def test_the_next_steps_the_demo_prints_work_where_cdnlogs_is_not_on_path(tmp_path: Path) -> None:
    """`make demo` runs `.venv/bin/cdnlogs demo`, outside an activated venv: the printed
    commands must run as printed, from the same directory, with the same PATH."""
    script = Path(sys.executable).parent / "cdnlogs"  # the console script pip installed
    venv_bin = str(script.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDNLOGS_", "ALIBABA_"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != venv_bin
    )
    relative = os.path.relpath(script, tmp_path)  # as make types it: a path from the cwd
    first = subprocess.run(
        [relative, "demo"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    line = next(s for s in first.stdout.splitlines() if s.startswith("Next: "))
    commands = [shlex.split(c) for c in re.findall(r"`([^`]+)`", line)]
    assert [c[0] for c in commands] == [relative, relative]
    assert [c[1] for c in commands] == ["ingest", "report"]
    for command in commands:
        proc = subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_how_to_run_names_what_works_here(tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "cdnlogs"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    python = str(bin_dir / "python")
    other = tmp_path / "elsewhere"
    other.mkdir()
    # On PATH and the same program: the short name.
    assert how_to_run(str(script), python, str(bin_dir)) == "cdnlogs"
    assert how_to_run("/x/cdnlogs/__main__.py", python, str(bin_dir)) == "cdnlogs"  # python -m
    # Not on PATH: the script as it was started, or this interpreter's -m.
    assert how_to_run("venv/bin/cdnlogs", python, str(other)) == "venv/bin/cdnlogs"
    assert how_to_run("/x/cdnlogs/__main__.py", python, str(other)) == f"{python} -m cdnlogs"
    # Another cdnlogs first on PATH is not this one.
    (other / "cdnlogs").write_text("#!/bin/sh\n")
    (other / "cdnlogs").chmod(0o755)
    assert how_to_run(str(script), python, f"{other}{os.pathsep}{bin_dir}") == str(script)
    assert how_to_run("/a b/cdnlogs", python, None) == "'/a b/cdnlogs'"
