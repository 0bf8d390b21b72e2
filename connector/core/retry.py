"""The durable retry policy of the forward stage (tech-notes 18, STYLE.md 12).

A failed send of an outbox job asks :meth:`RetryPolicy.decide` what to do next and gets a
:class:`RetryDecision`: try again at ``retry_at`` (exponential backoff with jitter, capped at
``max_delay_s``) or give up (``dead``). Customs refusing a declaration gives up at once, since
sending the same thing again would not help; everything else (Customs unavailable, no route,
a signing key missing for a moment) is retried until ``max_attempts`` attempts have failed.

Pure: the time and the random source are arguments, so table tests can check every answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.errors import ConnectorError, CustomsRefused

__all__ = ["RetryDecision", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do with a job whose attempt failed: retry at ``retry_at``, or ``dead``."""

    retry_at: datetime | None
    dead: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: ``base_delay_s * factor ** (n - 1)`` after the n-th failure.

    The delay is capped at ``max_delay_s`` and then spread by ``jitter`` (0.2: anywhere from
    80 % to 120 % of it), so replicas retrying after one Customs outage do not all come back
    in the same second. After ``max_attempts`` failed attempts the job is dead.
    """

    max_attempts: int = 8
    base_delay_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 900.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("delays must satisfy 0 <= base_delay_s <= max_delay_s")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay_s(self, attempts_so_far: int) -> float:
        """The capped delay after ``attempts_so_far`` failed attempts, before jitter."""
        exponent = max(attempts_so_far - 1, 0)
        try:
            delay = self.base_delay_s * self.factor**exponent
        except OverflowError:
            return self.max_delay_s
        return min(float(delay), self.max_delay_s)

    def decide(
        self, attempts_so_far: int, now: datetime, error: ConnectorError, rng: random.Random
    ) -> RetryDecision:
        """The decision after the ``attempts_so_far``-th attempt failed with ``error``."""
        if isinstance(error, CustomsRefused):
            return RetryDecision(None, dead=True, reason=f"{error.code}: {error.message}")
        if attempts_so_far >= self.max_attempts:
            return RetryDecision(
                None,
                dead=True,
                reason=f"gave up after {attempts_so_far} attempts: {error.code}: {error.message}",
            )
        spread = rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        delay = max(self.delay_s(attempts_so_far) * (1 + spread), 0.0)
        return RetryDecision(
            now + timedelta(seconds=delay),
            dead=False,
            reason=f"attempt {attempts_so_far} failed: {error.code}: {error.message}",
        )
