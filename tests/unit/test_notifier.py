"""The notify stage assembled from the settings, and woken by applied decisions."""

from __future__ import annotations

from connector.core.model import CustomsDecision
from connector.flow.decide import DecideService, Destination
from connector.notifier import open_notifier, webhooks_of
from connector.settings import validate_settings
from connector.testing import FrozenClock, InMemoryItemStore
from tests.unit.flow.test_decide import CONNECTOR, CUSTOMS, DESTINATION, Rig


async def test_only_enabled_operators_with_a_webhook_are_notified() -> None:
    configured = validate_settings(
        {
            "operators": [
                {"id": "OP1", "token_sha256": "1" * 64, "webhook_url": "https://op1/notices"},
                {"id": "OP2", "token_sha256": "2" * 64},
                {
                    "id": "OP3",
                    "token_sha256": "3" * 64,
                    "enabled": False,
                    "webhook_url": "https://op3/notices",
                },
            ],
            "notify": {"batch_size": 7, "idle_seconds": 0.5},
        }
    )
    assert webhooks_of(configured) == {"OP1": "https://op1/notices"}
    notifier = open_notifier(configured, InMemoryItemStore(), FrozenClock(), "w")
    assert notifier is not None
    try:
        assert notifier.service.operators == ("OP1",)
        assert not notifier.loop.running
    finally:
        await notifier.close()
    feed_only = validate_settings({"operators": [{"id": "OP2", "token_sha256": "2" * 64}]})
    assert open_notifier(feed_only, InMemoryItemStore(), FrozenClock(), "w") is None


async def test_an_applied_decision_wakes_the_notify_stage_and_a_repeat_does_not() -> None:
    rig = Rig()
    woken: list[None] = []
    rig.service = DecideService(
        rig.store,
        rig.clock,
        [Destination(DESTINATION, (CUSTOMS.certificate,), frozenset({"DE"}))],
        lambda: CONNECTOR,
        on_applied=lambda: woken.append(None),
    )
    await rig.forwarded(1)
    await rig.service.receive(DESTINATION, rig.body((1, CustomsDecision.HOLD)))
    assert len(woken) == 1
    await rig.service.receive(DESTINATION, rig.body((1, CustomsDecision.HOLD)))
    assert len(woken) == 1
