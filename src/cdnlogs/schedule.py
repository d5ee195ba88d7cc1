"""``watch``'s clock: run a tick every interval, with jitter, never two at once.

Tick ``k`` is due at ``start + k * every`` plus a random delay in ``[0, jitter]`` (so many
instances started together do not call the API in step). Ticks run one after another in the
calling thread: a tick that overruns its slot makes the slots it covered be skipped (counted and
reported), never run late or alongside. The waiting is a plain ``sleep``, so a signal handler
that raises (SIGTERM as :class:`~cdnlogs.signals.Terminated`) ends the loop at once.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Schedule:
    """When ticks are due: ``every`` seconds apart, each delayed by up to ``jitter`` seconds."""

    every: float
    jitter: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.every <= 0:
            raise ValueError("the interval must be more than 0 seconds")
        if self.jitter < 0:
            raise ValueError("the jitter cannot be negative")

    def due(self, start: float, slot: int) -> float:
        """The monotonic time tick ``slot`` is due (its slot start plus a fresh jitter)."""
        delay = self.rng.uniform(0.0, self.jitter) if self.jitter else 0.0
        return start + slot * self.every + delay

    def next_slot(self, start: float, slot: int, now: float) -> int:
        """The first slot after ``slot`` whose start is still ahead of ``now``."""
        passed = math.floor((now - start) / self.every)
        return max(slot + 1, passed + 1)


def run_every(
    schedule: Schedule,
    tick: Callable[[int], None],
    *,
    on_skip: Callable[[int], None] | None = None,
    on_wait: Callable[[float], None] | None = None,
    max_ticks: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Call ``tick(n)`` (n = 1, 2, ...) on ``schedule`` until it raises or ``max_ticks`` ran.

    ``on_skip(count)`` hears of slots skipped because a tick overran them; ``on_wait(seconds)``
    of each wait before a tick. Returns the number of ticks run.
    """
    start = clock()
    slot = 0
    ran = 0
    while max_ticks is None or ran < max_ticks:
        wait = schedule.due(start, slot) - clock()
        if wait > 0:
            if on_wait is not None:
                on_wait(wait)
            sleep(wait)
        ran += 1
        tick(ran)
        following = schedule.next_slot(start, slot, clock())
        if following > slot + 1 and on_skip is not None:
            on_skip(following - slot - 1)
        slot = following
    return ran
