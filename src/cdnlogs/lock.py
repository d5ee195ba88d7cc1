"""The archive lock: one writer (sync, ingest, compact, verify, prune, adopt) per archive.

The library's entry points take it themselves (``SyncRun.run``, ``ingest_archive``,
``run_ingest``, ``compact_archive``, ``run_compact``, ``housekeeping.run_verify``/``run_prune``/
``run_adopt``), so a library caller gets the CLI's guarantee; the CLI only calls them. It is
not reentrant: a second acquire in the same process, even of another ArchiveLock object on the
same archive, raises LockedError like one from another process.

An ``fcntl.flock`` on ``OUT/.cdnlogs/lock``. The kernel drops a flock when the process that
holds it dies, however it dies (SIGKILL, OOM, power loss), so a stale lock never blocks the
next run: there is no pid file to clean up and no "is that pid still alive" guess. The file
holds the holder's pid, host, command and start time only to word the message a second
process gets.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cdnlogs.errors import LockedError, ManifestError
from cdnlogs.storage import make_directory
from cdnlogs.timeutil import iso_utc

LOCK_NAME = "lock"


class ArchiveLock:
    """An exclusive, non-blocking lock on one archive; use as a context manager.

    :param state_dir: ``OUT/.cdnlogs`` (created if missing).
    :param purpose: the command taking the lock, for the message another process gets.
    """

    def __init__(self, state_dir: Path, *, purpose: str = "sync") -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_NAME
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise LockedError naming the holder."""
        if self._fd is not None:
            raise ManifestError(f"the archive lock {self.path} is already held by this object")
        make_directory(self.state_dir)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ManifestError(f"cannot open the archive lock {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    _locked_message(holder, self.state_dir.parent),
                    hint="wait for it to finish; a killed process releases the lock by itself",
                ) from None
            raise ManifestError(f"cannot lock {self.path}: {exc}") from exc
        self._fd = fd
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": self.purpose,
            "started": iso_utc(datetime.now(UTC)),
        }
        # Rewritten in place under the lock; readers only use it for a message.
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)

    def release(self) -> None:
        """Let go of the lock (idempotent). The file stays: deleting it would race a waiter."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> ArchiveLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _locked_message(holder: dict[str, object], out_dir: Path) -> str:
    purpose = holder.get("purpose") or "process"
    details = []
    if holder.get("pid"):
        pid = f"pid {holder['pid']}"
        if holder.get("host") and holder["host"] != socket.gethostname():
            pid += f" on {holder['host']}"
        details.append(pid)
    if holder.get("started"):
        details.append(f"started {holder['started']}")
    detail = f" ({', '.join(details)})" if details else ""
    return f"another cdnlogs {purpose}{detail} is using {out_dir}"
