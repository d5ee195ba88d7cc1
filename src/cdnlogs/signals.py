"""SIGTERM handled like Ctrl-C, so systemd, Kubernetes and ``timeout`` stop a run cleanly.

Every clean-up path in cdnlogs (in-flight ``.part`` files removed, the ledger left consistent,
the lock released, no half-written Parquet file) already runs on ``KeyboardInterrupt``.
:class:`Terminated` is a ``KeyboardInterrupt``, so a SIGTERM takes exactly those paths; only
the exit status differs (143, the shell's 128 + 15, instead of 130).

The exception itself does not always survive to ``main()``: when DuckDB runs a statement in
the main thread, it runs the handler from its own signal check and reports "Query interrupted"
instead, dropping :class:`Terminated`. So the handler also records that SIGTERM arrived, and
:func:`sigterm_received` is what decides 143.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by SIGTERM."""


_received = threading.Event()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise Terminated(f"signal {signum}")


def sigterm_received() -> bool:
    """True when SIGTERM arrived during the last :func:`sigterm_as_interrupt` block."""
    return _received.is_set()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread.

    Outside the main thread (a library caller's worker) signals cannot be handled and this does
    nothing. The previous handler is restored on the way out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["Terminated", "sigterm_as_interrupt", "sigterm_received"]
