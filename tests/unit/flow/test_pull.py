"""The pull stage over the in-memory store and a scripted source: checkpointed, never stuck."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from connector.core.model import Intake, IntakeResult
from connector.errors import SourceUnavailable, StoreUnavailable, XmlTooLarge
from connector.flow.accept import AcceptService
from connector.flow.pull import PullService
from connector.ports import FetchedBatch, OperatorRecord
from connector.sample import generate_batch
from connector.testing import FrozenClock, InMemoryItemStore

OP = "DE-POST"


@dataclass
class ScriptedSource:
    """An operator feed as a list of batches; a cursor is the index of the last one taken.

    ``failures`` maps a fetch number (1-based) to an exception raised instead of answering.
    A refused batch is skipped the way real sources do: remembered and stepped over.
    """

    batches: list[bytes]
    failures: dict[int, Exception] = field(default_factory=dict)
    fetches: list[str | None] = field(default_factory=list)
    done_calls: list[tuple[str, bool, str]] = field(default_factory=list)
    skipped: set[int] = field(default_factory=set)

    async def fetch(self, cursor: str | None) -> FetchedBatch | None:
        self.fetches.append(cursor)
        failure = self.failures.get(len(self.fetches))
        if failure is not None:
            raise failure
        index = 0 if cursor is None else int(cursor) + 1
        while index in self.skipped:
            index += 1
        if index >= len(self.batches):
            return None
        return FetchedBatch(self.batches[index], cursor=str(index), name=f"batch-{index}.xml")

    async def done(
        self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
    ) -> None:
        self.done_calls.append((batch.cursor, ok, detail))
        if not ok:
            self.skipped.add(int(batch.cursor))


class FailingStore(InMemoryItemStore):
    """An in-memory store whose intake fails while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def record_intake(self, intake: Intake) -> tuple[IntakeResult, ...]:
        if self.down:
            raise StoreUnavailable("database is down")
        return await super().record_intake(intake)


@pytest.fixture
async def store() -> FailingStore:
    store = FailingStore()
    await store.upsert_operators((OperatorRecord(OP, "Deutsche Post"),))
    return store


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def pull(store: FailingStore, clock: FrozenClock) -> PullService:
    return PullService(store, AcceptService(store=store, clock=clock), clock)


def _batch(items: int, seed: int, operator_id: str = OP) -> bytes:
    return generate_batch(items, seed=seed, operator_id=operator_id).xml


async def test_batches_are_stored_in_order_and_the_cursor_follows(
    pull: PullService, store: FailingStore
) -> None:
    """Two batches are stored, each acknowledged to the source, and the cursor is the last."""
    source = ScriptedSource([_batch(3, 1), _batch(2, 2)])
    outcome = await pull.run_once(OP, source)
    assert outcome.ok
    assert (outcome.batches_stored, outcome.items_accepted, outcome.items_rejected) == (2, 5, 0)
    assert outcome.batches_refused == 0
    assert len(store.items) == 5
    assert await store.get_cursor(OP) == "1"
    assert source.fetches == [None, "0", "1"]
    assert [(cursor, ok) for cursor, ok, _ in source.done_calls] == [("0", True), ("1", True)]
    assert OP not in store.pull_errors
    assert outcome.summary().startswith("ok: 5 items accepted")


async def test_rejected_items_are_counted_and_the_rest_stored(
    pull: PullService, store: FailingStore
) -> None:
    """Items failing validation are counted as rejected; the batch is still stored and done."""
    sample = generate_batch(10, invalid_ratio=0.3, seed=5, operator_id=OP)
    outcome = await pull.run_once(OP, ScriptedSource([sample.xml]))
    assert outcome.items_rejected == len(sample.faults) == 3
    assert outcome.items_accepted == 7 == len(store.items)
    assert outcome.batches_stored == 1


async def test_a_second_run_finds_nothing_new(pull: PullService, store: FailingStore) -> None:
    """After a complete run the next one fetches once from the stored cursor and stores nothing."""
    source = ScriptedSource([_batch(2, 1)])
    await pull.run_once(OP, source)
    again = await pull.run_once(OP, source)
    assert again.ok
    assert again.batches_stored == 0
    assert source.fetches[-1] == "0"


@pytest.mark.parametrize(
    "poison",
    [b"<not-xml", _batch(2, 9, operator_id="PL-POCZTA")],
    ids=["malformed", "other-operator"],
)
async def test_a_poison_batch_is_refused_and_does_not_block_the_queue(
    pull: PullService, store: FailingStore, poison: bytes
) -> None:
    """An unusable batch is reported done(ok=False), recorded as the pull error, then skipped."""
    source = ScriptedSource([_batch(2, 1), poison, _batch(3, 2)])
    outcome = await pull.run_once(OP, source)
    assert outcome.ok
    assert (outcome.batches_stored, outcome.batches_refused) == (2, 1)
    assert outcome.items_accepted == 5 == len(store.items)
    assert [(cursor, ok) for cursor, ok, _ in source.done_calls] == [
        ("0", True),
        ("1", False),
        ("2", True),
    ]
    refused_detail = source.done_calls[1][2]
    code = "xml_malformed" if poison.startswith(b"<not") else "forbidden"
    assert refused_detail.startswith(f"{code}: ")
    assert await store.get_cursor(OP) == "2"
    error, _ = store.pull_errors[OP]
    assert error.startswith(f"batch-1.xml: {code}: ")
    assert "1 batches refused" in outcome.summary()


async def test_a_batch_the_source_refuses_itself_is_recorded(
    pull: PullService, store: FailingStore
) -> None:
    """An InvalidMessage from fetch (e.g. too large) counts as refused and the run goes on."""
    source = ScriptedSource([_batch(2, 1)], failures={1: XmlTooLarge("big.xml is too large")})
    outcome = await pull.run_once(OP, source)
    assert outcome.ok
    assert (outcome.batches_stored, outcome.batches_refused) == (1, 1)
    assert store.pull_errors[OP][0] == "xml_too_large: big.xml is too large"


async def test_an_unreachable_source_keeps_the_cursor_and_records_the_error(
    pull: PullService, store: FailingStore, clock: FrozenClock
) -> None:
    """SourceUnavailable ends the run quietly: cursor unchanged, error recorded and returned."""
    source = ScriptedSource(
        [_batch(2, 1), _batch(2, 2)], failures={2: SourceUnavailable("connection refused")}
    )
    outcome = await pull.run_once(OP, source)
    assert outcome.error == "source: source_unavailable: connection refused"
    assert not outcome.ok
    assert outcome.batches_stored == 1
    assert await store.get_cursor(OP) == "0"
    assert store.pull_errors[OP] == (outcome.error, clock.now())
    assert outcome.summary().startswith("error: source: source_unavailable")
    resumed = await pull.run_once(OP, source)
    assert resumed.ok
    assert resumed.batches_stored == 1
    assert await store.get_cursor(OP) == "1"
    assert OP not in store.pull_errors


async def test_a_store_failure_leaves_the_batch_unacknowledged(
    pull: PullService, store: FailingStore
) -> None:
    """StoreUnavailable on intake: nothing stored, cursor unchanged, batch not done, retried."""
    source = ScriptedSource([_batch(2, 1)])
    store.down = True
    outcome = await pull.run_once(OP, source)
    assert outcome.error == "store: store_unavailable: database is down"
    assert outcome.batches_stored == 0
    assert await store.get_cursor(OP) is None
    assert source.done_calls == []
    assert store.pull_errors[OP][0] == outcome.error
    assert store.items == {}
    store.down = False
    retried = await pull.run_once(OP, source)
    assert retried.batches_stored == 1
    assert await store.get_cursor(OP) == "0"
    assert source.done_calls == [("0", True, source.done_calls[0][2])]


async def test_a_run_stops_after_max_batches(store: FailingStore, clock: FrozenClock) -> None:
    """A run takes at most max_batches batches and says more may be waiting."""
    pull = PullService(store, AcceptService(store=store, clock=clock), clock, max_batches=2)
    source = ScriptedSource([_batch(1, seed) for seed in range(3)])
    outcome = await pull.run_once(OP, source)
    assert (outcome.batches_stored, outcome.more) == (2, True)
    assert await store.get_cursor(OP) == "1"
    assert "more waiting" in outcome.summary()
    rest = await pull.run_once(OP, source)
    assert (rest.batches_stored, rest.more) == (1, False)


async def test_a_failing_acknowledgement_stops_the_run_after_the_commit(
    pull: PullService, store: FailingStore
) -> None:
    """If done() fails after a commit, the items and cursor stay stored and the run stops."""

    class Unmovable(ScriptedSource):
        async def done(
            self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
        ) -> None:
            raise SourceUnavailable("cannot move batch-0.xml")

    source = Unmovable([_batch(2, 1), _batch(2, 2)])
    outcome = await pull.run_once(OP, source)
    assert outcome.batches_stored == 1
    assert outcome.error == "source: batch-0.xml: source_unavailable: cannot move batch-0.xml"
    assert await store.get_cursor(OP) == "0"
    assert len(store.items) == 2
