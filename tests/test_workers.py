"""run_on_workers: tasks on per-thread workers, results in completion order, clean stops."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from cdnlogs.ingest.workers import run_on_workers


@dataclass
class FakeWorker:
    """A worker that records what happened to it (the real one is a DuckDB connection)."""

    made_in: str = field(default_factory=lambda: threading.current_thread().name)
    stop: threading.Event = field(default_factory=threading.Event)
    closed: bool = False
    interrupted: bool = False

    def interrupt(self) -> None:
        self.interrupted = True
        self.stop.set()

    def close(self) -> None:
        self.closed = True


def test_jobs_run_at_the_same_time_each_thread_on_its_own_worker() -> None:
    made: list[FakeWorker] = []
    both_running = threading.Barrier(2, timeout=10)

    def make() -> FakeWorker:
        made.append(FakeWorker())
        return made[-1]

    def task(worker: FakeWorker, item: int) -> tuple[int, str]:
        if item < 2:
            both_running.wait()  # raises BrokenBarrierError unless two tasks overlap
        return item * 10, worker.made_in

    results = dict(run_on_workers(range(6), task, make_worker=make, jobs=2))

    assert {k: v[0] for k, v in results.items()} == {i: i * 10 for i in range(6)}
    assert len(made) == 2 and all(w.closed for w in made)
    # Each result was computed by a worker made in the thread that ran the task.
    assert {v[1] for v in results.values()} == {w.made_in for w in made}
    assert threading.current_thread().name not in {w.made_in for w in made}


def test_one_job_runs_in_order_in_the_calling_thread() -> None:
    made: list[FakeWorker] = []
    seen: list[str] = []

    def make() -> FakeWorker:
        made.append(FakeWorker())
        return made[-1]

    def task(worker: FakeWorker, item: str) -> str:
        seen.append(threading.current_thread().name)
        return item.upper()

    assert list(run_on_workers("abc", task, make_worker=make, jobs=1)) == [
        ("a", "A"),
        ("b", "B"),
        ("c", "C"),
    ]
    assert seen == [threading.current_thread().name] * 3
    assert len(made) == 1 and made[0].closed


def test_a_failing_task_stops_the_rest_and_closes_every_worker() -> None:
    made: list[FakeWorker] = []
    started: list[int] = []

    def make() -> FakeWorker:
        made.append(FakeWorker())
        return made[-1]

    def task(worker: FakeWorker, item: int) -> int:
        started.append(item)
        if item == 0:
            raise ValueError("boom")
        # Blocks until interrupted: proves the caller's stop reaches a running task.
        assert worker.stop.wait(timeout=10), "never interrupted"
        return item

    with pytest.raises(ValueError, match="boom"):
        for _ in run_on_workers(range(50), task, make_worker=make, jobs=2):
            pass

    assert made and all(w.closed for w in made)
    assert any(w.interrupted for w in made)
    assert len(started) < 50  # the items not started were cancelled


def test_the_caller_stopping_early_interrupts_running_tasks() -> None:
    made: list[FakeWorker] = []

    def make() -> FakeWorker:
        made.append(FakeWorker())
        return made[-1]

    def task(worker: FakeWorker, item: int) -> int:
        if item:
            assert worker.stop.wait(timeout=10), "never interrupted"
        return item

    results = run_on_workers([0, 1, 2], task, make_worker=make, jobs=2)
    assert next(results) == (0, 0)
    results.close()  # e.g. Ctrl-C in the loop that consumes the results

    assert all(w.closed for w in made)
    assert any(w.interrupted for w in made)
