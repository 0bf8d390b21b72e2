"""Per-operator request rate limit: a token bucket per operator, in memory.

Each operator may make ``rate`` requests per second on average, in bursts of up to
``burst``. A request over the limit is answered 429 ``too_many_requests`` with
``Retry-After``; nothing of it is read or stored. The buckets live in one process: with
several replicas each enforces the limit on the requests it receives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from connector.errors import ConfigurationError

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by operator id: :meth:`take` spends a token or says how long to wait."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigurationError(
                f"a rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}",
                key="http.rate_limit_per_second",
            )
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend a token of ``key``: 0.0 when allowed, else the seconds until one is free."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate
