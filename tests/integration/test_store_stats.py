"""ItemStore.item_stats (memory, SQLite, PostgreSQL): items per state, the oldest waiting."""

from __future__ import annotations

from datetime import timedelta

from connector.core.retry import RetryDecision
from tests.integration.conftest import T0, Store, make_intake


async def test_counts_per_state_and_the_oldest_waiting_item(store: Store) -> None:
    empty = await store.item_stats()
    assert (dict(empty.by_state), empty.oldest_waiting) == ({}, None)
    await store.record_intake(make_intake(3, batch_id="B1", received_at=T0))
    await store.record_intake(
        make_intake(
            tuple(make_intake(5).items[3:5]), batch_id="B2", received_at=T0 + timedelta(hours=1)
        )
    )
    claims = await store.claim_for_forwarding("w", 3, 60, T0 + timedelta(hours=2))
    dead = RetryDecision(retry_at=None, dead=True, reason="refused")
    await store.record_forward_failure(claims[:1], "w", "refused", dead, T0 + timedelta(hours=2))
    stats = await store.item_stats()
    assert dict(stats.by_state) == {"DEAD": 1, "FORWARDING": 2, "ACCEPTED": 2}
    assert stats.oldest_waiting == T0  # the two claimed from B1 still wait for Customs
