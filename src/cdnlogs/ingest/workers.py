"""Run tasks on a few threads, each with its own long-lived worker object, in completion order.

``ingest`` uses it to load several source files at once: DuckDB reads a ``.gz`` on one thread
(inflating and splitting lines cannot be shared out within one compressed stream), so two files
in flight keep two cores busy where one file leaves the second core half idle. Each thread gets
its own worker (a DuckDB connection to the shared database, with its own temp tables), made on
first use and closed at the end; the results come back to the calling thread, which alone
touches the ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Worker(Protocol):
    """What a per-thread worker must offer: stop a running task, and release itself."""

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


W = TypeVar("W", bound=Worker)


def run_on_workers(
    items: Iterable[T],
    task: Callable[[W, T], R],
    *,
    make_worker: Callable[[], W],
    jobs: int,
) -> Generator[tuple[T, R], None, None]:
    """Yield ``(item, task(worker, item))`` for every item, as each completes.

    With ``jobs`` <= 1 (or a single item) everything runs in the calling thread on one worker,
    in order. An exception raised by ``task`` propagates to the caller. If the caller stops
    early (an exception, Ctrl-C, closing the generator), items not started are cancelled,
    running ones are interrupted, and every worker is closed before this returns.
    """
    todo = list(items)
    if jobs <= 1 or len(todo) <= 1:
        worker = make_worker()
        try:
            for item in todo:
                yield item, task(worker, item)
        finally:
            worker.close()
        return

    local = threading.local()
    made: list[W] = []
    made_lock = threading.Lock()

    def run(item: T) -> R:
        worker: W | None = getattr(local, "worker", None)
        if worker is None:
            worker = make_worker()
            local.worker = worker
            with made_lock:
                made.append(worker)
        return task(worker, item)

    pool = ThreadPoolExecutor(max_workers=min(jobs, len(todo)), thread_name_prefix="cdnlogs")
    futures: dict[Future[R], T] = {}
    finished = False
    try:
        futures = {pool.submit(run, item): item for item in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()
        finished = True
    finally:
        if not finished:
            for future in futures:
                future.cancel()
            with made_lock:
                for worker in made:
                    worker.interrupt()
        pool.shutdown(wait=True, cancel_futures=True)
        for worker in made:
            worker.close()
