"""Notices to the operator's webhook on loopback: push, forward, the mock Customs decides and
calls back, the notify stage POSTs each signed notice to the mock operator (HTTPS), which
verifies it against the connector's published certificate."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from connector.adapters.webhooks import HttpNoticeWebhook
from connector.core.model import CustomsDecision, ItemState
from connector.core.retry import RetryPolicy
from connector.flow.notify import NotifyOutcome, NotifyService
from connector.peers.operator import MockOperator
from connector.peers.tls import LoopbackPki
from tests.integration.test_decisions_e2e import OTHER, Loop
from tests.integration.test_decisions_e2e import loop as loop
from tests.integration.test_forwarding_e2e import OPERATOR
from tests.integration.test_forwarding_e2e import rig as rig

D = CustomsDecision


class Hook:
    """The mock operator's webhook and a notify stage delivering to it."""

    def __init__(self, loop: Loop, operator: MockOperator, webhook: HttpNoticeWebhook) -> None:
        self.loop = loop
        self.operator = operator
        self.webhook = webhook

    def service(self, owner: str = "replica-1", *, concurrency: int = 4) -> NotifyService:
        return NotifyService(
            self.loop.rig.store,
            self.webhook,
            self.loop.rig.clock,
            owner,
            {OPERATOR: self.operator.url},
            RetryPolicy(max_attempts=5, base_delay_s=5, max_delay_s=60, jitter=0),
            concurrency=concurrency,
            lease_s=60,
            rng=random.Random(3),
        )

    async def drain(self, service: NotifyService | None = None) -> NotifyOutcome:
        """Run until a run claims nothing; the summed outcome."""
        service = service or self.service()
        total = NotifyOutcome()
        for _ in range(100):
            outcome = await service.run_once()
            assert outcome.error is None
            if not outcome.claimed:
                return total
            total = NotifyOutcome(
                total.claimed + outcome.claimed,
                total.delivered + outcome.delivered,
                total.retried + outcome.retried,
                total.dead + outcome.dead,
            )
        raise AssertionError("the notify stage did not drain")

    async def notices(self, reference: str) -> list[str]:
        return [s.notice.notice_id for s in await self.loop.rig.store.item_notices(reference)]


@pytest.fixture
async def hook(loop: Loop, tmp_path: Path) -> AsyncIterator[Hook]:
    pki = LoopbackPki.create(tmp_path / "operator-pki")
    operator = MockOperator(loop.rig.ring.published, ssl_context=pki.server_context())
    await operator.start()
    webhook = HttpNoticeWebhook(
        ssl_context=pki.client_context(), connect_timeout_s=2, total_timeout_s=2
    )
    try:
        yield Hook(loop, operator, webhook)
    finally:
        await webhook.close()
        await operator.stop()


async def test_every_decision_reaches_the_webhook_signed_and_the_items_are_notified(
    hook: Hook,
) -> None:
    loop = hook.loop
    references = await loop.forward(6, seed=21)
    theirs = await loop.forward(2, seed=22, operator=OTHER)
    loop.rig.customs.decide_as.update(dict(zip(references, list(D), strict=True)))
    status, answer = await loop.rig.customs.send_decisions(loop.url)
    assert (status, answer["applied"]) == (200, 8)
    outcome = await hook.drain()
    assert (outcome.claimed, outcome.delivered, outcome.retried, outcome.dead) == (6, 6, 0, 0)
    operator = hook.operator
    assert (len(operator.received), operator.duplicates, operator.refusals) == (6, 0, [])
    for reference in references:
        [stored] = await loop.rig.store.item_notices(reference)
        received = operator.received[stored.notice.notice_id]
        assert received.signed_xml == stored.signed_xml  # the stored bytes, unchanged
        assert received.notice.decision is stored.notice.decision
        assert received.signer_fingerprint == loop.rig.ring.active.fingerprint
        assert (stored.status, stored.attempts) == ("delivered", 1)
        state, _ = await loop.state(reference)
        assert state is ItemState.NOTIFIED
    # The operator without a webhook reads the feed; its notices are never claimed.
    for reference in theirs:
        [stored] = await loop.rig.store.item_notices(reference)
        assert (stored.status, stored.attempts) == ("pending", 0)
        assert (await loop.state(reference))[0] is ItemState.DECIDED
    assert len((await loop.feed(OTHER))["notices"]) == 2


async def test_a_webhook_down_for_a_while_loses_nothing_and_repeats_only_by_notice_id(
    hook: Hook,
) -> None:
    loop, operator = hook.loop, hook.operator
    references = await loop.forward(5, seed=23)
    assert (await loop.rig.customs.send_decisions(loop.url))[0] == 200
    operator.mode = "down"
    first = await hook.drain()
    assert (first.claimed, first.delivered, first.retried) == (5, 0, 5)
    item_id = (await loop.rig.store.decision_targets(references[:1]))[references[0]].item.item_id
    async with loop.http.get(f"{loop.url}/v1/items/{item_id}", headers=loop.headers()) as r:
        view = await r.json()
    [notice] = view["notices"]
    assert (notice["delivery"], notice["attempts"]) == ("pending", 1)
    assert notice["last_error"].startswith("webhook_unavailable: ")
    loop.rig.clock.advance(5)
    operator.mode = "error"
    second = await hook.drain()
    assert (second.claimed, second.retried) == (5, 5)

    # A replica claims one notice, POSTs it and dies before recording it.
    operator.mode = "ok"
    loop.rig.clock.advance(10)
    store = loop.rig.store
    [crashed] = await store.claim_notices(
        "crashed", 1, 60, loop.rig.clock.now(), operators={OPERATOR}
    )
    await hook.webhook.deliver(operator.url, crashed.notice.notice_id, crashed.signed_xml)
    back = await hook.drain()
    assert (back.delivered, back.dead) == (4, 0)
    loop.rig.clock.advance(61)  # its lease runs out: sent again, same notice id
    again = await hook.drain()
    assert again.delivered == 1
    expected = {
        notice_id for reference in references for notice_id in await hook.notices(reference)
    }
    assert set(operator.received) == expected
    assert operator.duplicates == 1
    for reference in references:
        assert (await loop.state(reference))[0] is ItemState.NOTIFIED


async def test_a_stop_is_delivered_before_earlier_pending_releases(hook: Hook) -> None:
    loop, operator = hook.loop, hook.operator
    *released, stopped = await loop.forward(6, seed=24)
    decisions = dict.fromkeys(released, D.RELEASE)
    assert (await loop.rig.customs.send_decisions(loop.url, decisions))[0] == 200
    assert (await loop.rig.customs.send_decisions(loop.url, {stopped: D.DO_NOT_LOAD}))[0] == 200
    outcome = await hook.service(concurrency=1).run_once()
    assert outcome.delivered == 6
    [stop_id] = await hook.notices(stopped)
    assert operator.order[0] == stop_id
    assert operator.received[stop_id].notice.decision is D.DO_NOT_LOAD


async def test_hold_then_release_arrive_in_that_order(hook: Hook) -> None:
    loop, operator = hook.loop, hook.operator
    [held] = await loop.forward(1, seed=25)
    assert (await loop.rig.customs.send_decisions(loop.url, {held: D.HOLD}))[0] == 200
    assert (await loop.rig.customs.send_decisions(loop.url, {held: D.RELEASE}))[0] == 200
    outcome = await hook.drain()
    assert (outcome.claimed, outcome.delivered) == (2, 2)
    [target] = (await loop.rig.store.decision_targets([held])).values()
    assert [n.decision for n in operator.notices_of(target.item.item_id)] == [D.HOLD, D.RELEASE]
    assert await loop.state(held) == (ItemState.NOTIFIED, D.RELEASE)


async def test_a_refused_notice_is_dead_and_stays_in_the_feed(hook: Hook) -> None:
    loop, operator = hook.loop, hook.operator
    [reference] = await loop.forward(1, seed=26)
    assert (await loop.rig.customs.send_decisions(loop.url, {reference: D.HOLD}))[0] == 200
    operator.fail_next(1, "refuse")
    outcome = await hook.drain()
    assert (outcome.dead, outcome.retried) == (1, 0)
    [dead] = await loop.rig.store.dead_notices()
    assert dead.last_error is not None
    assert "HTTP 400" in dead.last_error
    assert [e["notice_id"] for e in (await loop.feed())["notices"]] == [dead.notice.notice_id]
    assert operator.received == {}
    loop.rig.clock.advance(timedelta(hours=1).total_seconds())
    assert (await hook.drain()).claimed == 0
