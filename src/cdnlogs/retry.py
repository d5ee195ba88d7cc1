"""Retry budgets: exponential backoff with full jitter, bounded in attempts and in time.

Shared by the API client and the downloader so both back off the same way. Pure apart from
the injected ``sleep``/``clock``/``rng``, which tests replace.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DEFAULT_ATTEMPTS = 6
DEFAULT_BASE_DELAY_SECONDS = 0.5
DEFAULT_MAX_DELAY_SECONDS = 20.0
DEFAULT_MAX_ELAPSED_SECONDS = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    ``attempts`` counts the first try. The delay before retry ``n`` (1-based) is drawn
    uniformly from ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter"), so many
    clients that failed together do not retry together.
    """

    attempts: int = DEFAULT_ATTEMPTS
    base_delay_seconds: float = DEFAULT_BASE_DELAY_SECONDS
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS
    max_elapsed_seconds: float = DEFAULT_MAX_ELAPSED_SECONDS

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The jittered delay before retry ``retry_number`` (1-based)."""
        cap = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (retry_number - 1))
        return (rng or random).uniform(0.0, cap)

    def delays(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> Iterator[float]:
        """Yield the delay before each retry, stopping when attempts or time run out."""
        started = clock()
        for retry_number in range(1, self.attempts):
            delay = self.delay(retry_number, rng)
            if clock() - started + delay > self.max_elapsed_seconds:
                return
            yield delay


@dataclass
class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second on average."""

    rate: float
    burst: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _next_free: float = field(default=0.0, init=False, repr=False)

    def acquire(self) -> None:
        """Block until a call may be made."""
        if self.rate <= 0:
            return
        interval = 1.0 / self.rate
        with self._lock:
            now = self.clock()
            # Allow up to `burst` calls back to back after an idle period.
            start = max(self._next_free, now - interval * (self.burst - 1))
            self._next_free = start + interval
            wait = start - now
        if wait > 0:
            self.sleep(wait)
