"""The notify stage as the service runs it, put together from the settings.

:func:`open_notifier` turns ``[notify]`` and the operators' ``webhook_url`` into a
:class:`~connector.flow.notify.NotifyService` over the HTTP
:class:`~connector.adapters.webhooks.HttpNoticeWebhook`, and a
:class:`~connector.adapters.loops.StageLoop` that runs it; the decide stage wakes it when a
Customs response applied decisions. Without an enabled operator that has a webhook there is
nothing to deliver and :func:`open_notifier` returns None: every operator reads its notices
from ``GET /v1/notices``.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.adapters.loops import StageLoop
from connector.adapters.webhooks import HttpNoticeWebhook
from connector.core.retry import RetryPolicy
from connector.flow.notify import NotifyOutcome, NotifyService
from connector.ports import Clock, ItemStore, NoticeWebhook
from connector.settings import Settings

__all__ = ["Notifier", "open_notifier", "webhooks_of"]


def webhooks_of(settings: Settings) -> dict[str, str]:
    """The webhook URL of each enabled operator that has one, by operator id."""
    webhooks: dict[str, str] = {}
    for operator in settings.operators:
        if operator.enabled and operator.webhook_url is not None:
            webhooks[operator.id] = operator.webhook_url
    return webhooks


@dataclass
class Notifier:
    """The notify stage with what it owns; :meth:`close` after :meth:`stop`."""

    service: NotifyService
    loop: StageLoop[NotifyOutcome]
    webhook: NoticeWebhook

    def start(self) -> None:
        self.loop.start()

    def wake(self) -> None:
        """New notices were stored: deliver now rather than after the idle pause."""
        self.loop.wake()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the deliveries in flight (within ``timeout_s``), then stop."""
        await self.loop.stop(timeout_s)

    async def close(self) -> None:
        await self.stop()
        if isinstance(self.webhook, HttpNoticeWebhook):
            await self.webhook.close()


def open_notifier(
    settings: Settings,
    store: ItemStore,
    clock: Clock,
    owner: str,
    *,
    webhook: NoticeWebhook | None = None,
) -> Notifier | None:
    """The configured notify stage (not started), or None when no operator has a webhook.

    ``webhook`` replaces the HTTP one (tests, the demo).

    Raises:
        ConfigurationError: ``notify.ca_file`` does not load.
    """
    webhooks = webhooks_of(settings)
    if not webhooks:
        return None
    notify = settings.notify
    if webhook is None:
        webhook = HttpNoticeWebhook(
            ca_file=notify.ca_file,
            connect_timeout_s=notify.connect_timeout_seconds,
            total_timeout_s=notify.timeout_seconds,
            max_concurrency=notify.concurrency,
            user_agent=f"ead-connector/{settings.connector_id}",
        )
    service = NotifyService(
        store,
        webhook,
        clock,
        owner,
        webhooks,
        RetryPolicy(
            max_attempts=notify.max_attempts,
            base_delay_s=notify.backoff_seconds,
            max_delay_s=notify.max_backoff_seconds,
        ),
        batch_size=notify.batch_size,
        concurrency=notify.concurrency,
        lease_s=notify.lease_seconds,
    )
    loop: StageLoop[NotifyOutcome] = StageLoop(
        "notify",
        service.run_once,
        lambda outcome: outcome.claimed > 0 and outcome.error is None,
        idle_s=notify.idle_seconds,
    )
    return Notifier(service, loop, webhook)
