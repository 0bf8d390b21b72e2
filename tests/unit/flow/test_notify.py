"""The notify stage with fakes: stops first, refused notices dead at once, unavailable ones
retried then dead, a down webhook costs one request per run, the owner guard."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from connector.core.model import CustomsDecision, ItemState
from connector.core.retry import RetryPolicy
from connector.errors import StoreUnavailable, WebhookRefused, WebhookUnavailable
from connector.flow.notify import NotifyService
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.conftest import T0, item_id
from tests.integration.test_store_decisions import decision, forwarded, ref, response

D = CustomsDecision
URL = "https://op1.example/notices"
URL2 = "https://op2.example/notices"


class FakeWebhook:
    """Records every delivery; ``failures`` maps a URL to the error its deliveries raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self.failures: dict[str, Exception] = {}

    async def deliver(self, url: str, notice_id: str, signed_xml: bytes) -> None:
        self.calls.append((url, notice_id, signed_xml))
        failure = self.failures.get(url)
        if failure is not None:
            raise failure


async def decided(store: InMemoryItemStore, *codes: D, operator_id: str = "OP1") -> None:
    await forwarded(store, len(codes), operator_id)
    await store.apply_response(
        response(f"R-{operator_id}", len(codes)),
        [
            decision(f"R-{operator_id}", number, code, index=number, operator_id=operator_id)
            for number, code in enumerate(codes)
        ],
    )


def service(
    store: InMemoryItemStore,
    webhook: FakeWebhook,
    clock: FrozenClock,
    *,
    webhooks: dict[str, str] | None = None,
    owner: str = "w",
) -> NotifyService:
    return NotifyService(
        store,
        webhook,
        clock,
        owner,
        {"OP1": URL} if webhooks is None else webhooks,
        RetryPolicy(max_attempts=3, base_delay_s=10, jitter=0),
        concurrency=1,
        heartbeat_s=0,
        rng=random.Random(1),
    )


async def test_notices_are_posted_unchanged_stops_first_and_items_notified() -> None:
    store, webhook = InMemoryItemStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.RELEASE, D.HOLD, D.DO_NOT_LOAD)
    outcome = await service(store, webhook, clock).run_once()
    assert (outcome.claimed, outcome.delivered, outcome.retried, outcome.dead) == (3, 3, 0, 0)
    order = [notice_id for _, notice_id, _ in webhook.calls]
    assert order[0] == store.notices[2].notice.notice_id  # the DO_NOT_LOAD
    assert sorted(order) == sorted(s.notice.notice_id for s in store.notices)
    sent = {notice_id: body for _, notice_id, body in webhook.calls}
    for stored in store.notices:
        assert sent[stored.notice.notice_id] == stored.signed_xml
    assert {url for url, _, _ in webhook.calls} == {URL}
    for number in range(3):
        item = await store.get_item("OP1", item_id(number))
        assert item is not None
        assert item.state is ItemState.NOTIFIED
    assert (await service(store, webhook, clock).run_once()).claimed == 0


async def test_operators_without_a_webhook_are_left_to_the_feed() -> None:
    store, webhook = InMemoryItemStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.RELEASE, operator_id="OP2")
    assert (await service(store, webhook, clock).run_once()).claimed == 0
    assert (await service(store, webhook, clock, webhooks={}).run_once()).claimed == 0
    assert webhook.calls == []
    assert store.notices[0].status == "pending"


async def test_a_refused_notice_is_dead_at_once_and_stays_in_the_feed() -> None:
    store, webhook = InMemoryItemStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.HOLD)
    webhook.failures[URL] = WebhookRefused("HTTP 400: bad notice")
    outcome = await service(store, webhook, clock).run_once()
    assert (outcome.delivered, outcome.retried, outcome.dead) == (0, 0, 1)
    [dead] = await store.dead_notices()
    assert dead.attempts == 1
    assert dead.last_error is not None
    assert dead.last_error.startswith("webhook_refused: HTTP 400: bad notice")
    assert len(await store.notices_after("OP1", 0, 10)) == 1
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.state is ItemState.DECIDED


async def test_an_unavailable_webhook_is_retried_with_backoff_then_dead() -> None:
    store, webhook = InMemoryItemStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.RELEASE, D.RELEASE, D.RELEASE)
    webhook.failures[URL] = WebhookUnavailable("connection refused")
    notify = service(store, webhook, clock)
    first = await notify.run_once()
    # One request found the webhook down; the other two notices count the same failure.
    assert (first.claimed, first.retried, len(webhook.calls)) == (3, 3, 1)
    assert {s.last_error for s in store.notices} == {"webhook_unavailable: connection refused"}
    assert (await notify.run_once()).claimed == 0  # backing off
    clock.advance(10)
    assert (await notify.run_once()).retried == 3
    clock.advance(20)
    last = await notify.run_once()
    assert (last.dead, [s.status for s in store.notices]) == (3, ["dead"] * 3)
    assert [s.attempts for s in store.notices] == [3, 3, 3]


async def test_the_webhook_back_delivers_what_waited() -> None:
    store, webhook = InMemoryItemStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.HOLD)
    await store.apply_response(response("R2", 1, 20), [decision("R2", 0, D.RELEASE)])
    webhook.failures[URL] = WebhookUnavailable("HTTP 503")
    notify = service(store, webhook, clock)
    assert (await notify.run_once()).claimed == 1  # the HOLD only: the RELEASE waits for it
    del webhook.failures[URL]
    clock.advance(10)
    assert (await notify.run_once()).delivered == 1
    assert (await notify.run_once()).delivered == 1
    delivered = [c[1] for c in webhook.calls[1:]]
    assert delivered == [s.notice.notice_id for s in store.notices]
    assert [s.notice.decision for s in store.notices] == [D.HOLD, D.RELEASE]
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert (item.state, item.decision) == (ItemState.NOTIFIED, D.RELEASE)


async def test_one_operator_down_does_not_hold_back_another() -> None:
    store, webhook = InMemoryItemStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.RELEASE, D.RELEASE)
    await decided(store, D.RELEASE, operator_id="OP2")
    webhook.failures[URL] = WebhookUnavailable("timeout")
    outcome = await service(store, webhook, clock, webhooks={"OP1": URL, "OP2": URL2}).run_once()
    assert (outcome.delivered, outcome.retried) == (1, 2)
    [theirs] = await store.item_notices(ref(0, "OP2"))
    assert theirs.status == "delivered"


class BrokenStore(InMemoryItemStore):
    async def record_notice_delivered(self, *args: object, **kwargs: object) -> int:
        raise StoreUnavailable("database down")


async def test_a_store_failure_ends_the_run_and_the_claim_is_sent_again_later() -> None:
    store, webhook = BrokenStore(), FakeWebhook()
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, D.RELEASE)
    outcome = await service(store, webhook, clock).run_once()
    assert outcome.error == "database down"
    assert store.notices[0].status == "claimed"
    clock.advance(120)  # the lease runs out: another replica sends it again, same notice id
    other = InMemoryItemStore.record_notice_delivered
    store.record_notice_delivered = lambda *a, **k: other(store, *a, **k)  # type: ignore[method-assign]
    again = await service(store, webhook, clock, owner="v").run_once()
    assert again.delivered == 1
    assert [c[1] for c in webhook.calls] == [store.notices[0].notice.notice_id] * 2


class DyingWebhook(FakeWebhook):
    """Delivers ``lives`` notices, then the process dies (the run is cancelled mid-send)."""

    def __init__(self, lives: int) -> None:
        super().__init__()
        self.lives = lives

    async def deliver(self, url: str, notice_id: str, signed_xml: bytes) -> None:
        if len(self.calls) == self.lives:
            raise asyncio.CancelledError  # what a killed process never gets to record
        await super().deliver(url, notice_id, signed_xml)


async def test_deliveries_are_recorded_in_chunks_so_a_crash_resends_few() -> None:
    store, webhook = InMemoryItemStore(), DyingWebhook(lives=40)
    clock = FrozenClock(T0 + timedelta(hours=1))
    await decided(store, *([D.RELEASE] * 60))
    with pytest.raises(asyncio.CancelledError):
        await service(store, webhook, clock).run_once()  # concurrency 1: chunks of 16
    delivered = [s for s in store.notices if s.status == "delivered"]
    assert len(delivered) == 32  # two whole chunks recorded before the crash
    assert {s.notice.notice_id for s in delivered} <= {c[1] for c in webhook.calls}
    clock.advance(120)  # the lease runs out: only the unrecorded ones go again
    again = FakeWebhook()
    outcome = await service(store, again, clock, owner="v").run_once()
    assert outcome.delivered == 28
    assert len({c[1] for c in again.calls} & {c[1] for c in webhook.calls}) == 8
    assert all(s.status == "delivered" for s in store.notices)
