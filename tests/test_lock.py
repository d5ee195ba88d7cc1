"""The archive lock, across real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cdnlogs.errors import LockedError
from cdnlogs.lock import ArchiveLock

_HOLDER = """
import sys, time
from pathlib import Path
from cdnlogs.lock import ArchiveLock
lock = ArchiveLock(Path(sys.argv[1]), purpose="sync")
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_second_holder_in_process_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "out" / ".cdnlogs"
    with ArchiveLock(state) as first:
        assert first.held
        with pytest.raises(LockedError) as info:
            ArchiveLock(state, purpose="prune").acquire()
        assert f"pid {os.getpid()}" in str(info.value)
        assert str(tmp_path / "out") in str(info.value)
    assert not first.held
    # Released: it can be taken again.
    with ArchiveLock(state):
        pass


def test_lock_held_by_another_process_then_freed_by_sigkill(tmp_path: Path) -> None:
    state = tmp_path / "out" / ".cdnlogs"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as info:
            ArchiveLock(state).acquire()
        message = str(info.value)
        assert message.startswith(f"another cdnlogs sync (pid {proc.pid}, started ")
        assert message.endswith(f"is using {tmp_path / 'out'}")
        assert info.value.hint
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # The kernel released the flock of the killed process: the stale file does not block.
    assert (state / "lock").exists()
    with ArchiveLock(state) as lock:
        assert lock.held
