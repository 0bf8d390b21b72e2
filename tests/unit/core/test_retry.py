"""The retry policy: backoff table, cap, jitter bounds, refusals and the attempt limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.retry import RetryDecision, RetryPolicy
from connector.errors import ConfigurationError, CustomsRefused, CustomsUnavailable

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(jitter=0.0)


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80), (6, 160), (7, 320)],
)
def test_backoff_doubles_from_the_base_delay(attempts: int, delay: float) -> None:
    decision = NO_JITTER.decide(attempts, NOW, CustomsUnavailable(), random.Random(1))

    assert decision == RetryDecision(
        NOW + timedelta(seconds=delay),
        dead=False,
        reason=f"attempt {attempts} failed: customs_unavailable: " + CustomsUnavailable().message,
    )


def test_delay_is_capped() -> None:
    policy = RetryPolicy(max_attempts=100, jitter=0.0)

    assert policy.delay_s(8) == 640
    assert policy.delay_s(9) == 900
    assert policy.delay_s(5000) == 900
    decision = policy.decide(50, NOW, CustomsUnavailable(), random.Random(1))
    assert decision.retry_at == NOW + timedelta(seconds=900)


def test_refusal_is_dead_at_once() -> None:
    decision = RetryPolicy().decide(1, NOW, CustomsRefused("bad declaration"), random.Random(1))

    assert decision.dead
    assert decision.retry_at is None
    assert decision.reason == "customs_refused: bad declaration"


def test_max_attempts_is_dead() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert not policy.decide(2, NOW, CustomsUnavailable(), random.Random(1)).dead
    last = policy.decide(3, NOW, CustomsUnavailable("down"), random.Random(1))
    assert last.dead
    assert last.retry_at is None
    assert last.reason == "gave up after 3 attempts: customs_unavailable: down"


def test_other_errors_are_retried() -> None:
    decision = NO_JITTER.decide(1, NOW, ConfigurationError("no route"), random.Random(1))

    assert not decision.dead
    assert decision.retry_at == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay_s": -1},
        {"base_delay_s": 10, "max_delay_s": 5},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    attempts=st.integers(min_value=0, max_value=10_000),
    seed=st.integers(),
    base=st.floats(min_value=0, max_value=100),
    factor=st.floats(min_value=1, max_value=10),
    cap=st.floats(min_value=100, max_value=10_000),
    jitter=st.floats(min_value=0, max_value=0.99),
)
def test_delays_never_exceed_the_jittered_cap(
    attempts: int, seed: int, base: float, factor: float, cap: float, jitter: float
) -> None:
    policy = RetryPolicy(
        max_attempts=10_001, base_delay_s=base, factor=factor, max_delay_s=cap, jitter=jitter
    )

    decision = policy.decide(attempts, NOW, CustomsUnavailable(), random.Random(seed))

    assert decision.retry_at is not None
    delay = (decision.retry_at - NOW).total_seconds()
    assert 0 <= delay <= cap * (1 + jitter) + 1e-6
    assert delay >= policy.delay_s(attempts) * (1 - jitter) - 1e-6


@given(
    base=st.floats(min_value=0, max_value=100),
    factor=st.floats(min_value=1, max_value=10),
    cap=st.floats(min_value=100, max_value=10_000),
)
def test_delays_before_jitter_never_decrease(base: float, factor: float, cap: float) -> None:
    policy = RetryPolicy(base_delay_s=base, factor=factor, max_delay_s=cap)

    delays = [policy.delay_s(attempts) for attempts in range(200)]

    assert delays == sorted(delays)
    assert max(delays) <= cap
