"""The in-memory fakes themselves: clocks and the bookkeeping the contract suite cannot see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.core.model import IncomingItem, Intake
from connector.core.references import digest, item_reference
from connector.testing import FrozenClock, InMemoryItemStore, SystemClock

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _item(index: int, content: bytes = b"") -> IncomingItem:
    xml = b"<Item>%d%s</Item>" % (index, content)
    return IncomingItem(index, f"RR{index:09d}DE", "DE", digest(xml), xml)


def _intake(
    *items: IncomingItem, batch_id: str = "B1", cursor: str | None = None, at: datetime = T0
) -> Intake:
    return Intake(
        "OP1", batch_id, at, digest(batch_id.encode()), len(items), items, (), "pull", cursor
    )


def test_frozen_clock_starts_at_a_fixed_utc_instant() -> None:
    """A FrozenClock starts at the same aware UTC time every time, and stays there."""
    clock = FrozenClock()

    assert clock.now() == FrozenClock().now() == T0
    assert clock.now().tzinfo is UTC
    assert clock.now() == clock.now()


def test_frozen_clock_moves_only_when_advanced() -> None:
    """advance() moves the clock by the given seconds and returns the new time."""
    clock = FrozenClock(T0)

    assert clock.advance(1.5) == T0 + timedelta(seconds=1.5)
    assert clock.now() == T0 + timedelta(seconds=1.5)


def test_system_clock_is_aware_utc() -> None:
    """The system clock tells the real time, timezone-aware in UTC."""
    before = datetime.now(UTC)

    now = SystemClock().now()

    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


async def test_fake_outbox_queues_each_new_item_once() -> None:
    """New items are queued in order; an amendment of a queued item does not queue it twice."""
    store = InMemoryItemStore()
    results = await store.record_intake(_intake(_item(0), _item(1)))
    await store.record_intake(_intake(_item(0), _item(1), batch_id="B2"))

    await store.amend_item("OP1", _item(0, b"v2"), 2, T0)

    assert store.outbox == [r.reference for r in results]


async def test_fake_cancel_unqueues_and_amend_requeues() -> None:
    """A cancelled item leaves the outbox; an amended one that had left it comes back."""
    store = InMemoryItemStore()
    await store.record_intake(_intake(_item(0), _item(1)))
    first, second = (item_reference("OP1", f"RR{i:09d}DE") for i in (0, 1))

    await store.cancel_item("OP1", _item(0).item_id, 1, "mistake", T0)
    store.outbox.remove(second)  # as if forwarded
    await store.amend_item("OP1", _item(1, b"v2"), 2, T0)

    assert first not in store.outbox
    assert store.outbox == [second]


async def test_fake_keeps_the_first_batch_and_clears_pull_errors() -> None:
    """A re-sent batch id keeps its first record; a successful pull clears the last error."""
    store = InMemoryItemStore()
    first = _intake(_item(0), cursor="c-1")
    await store.record_intake(first)
    await store.record_pull_error("OP1", "timeout", T0)
    assert store.pull_errors == {"OP1": ("timeout", T0)}

    await store.record_intake(_intake(_item(0), _item(1), cursor="c-2"))

    assert store.batches[("OP1", "B1")] is first
    assert store.pull_errors == {}
    assert await store.get_cursor("OP1") == "c-2"
