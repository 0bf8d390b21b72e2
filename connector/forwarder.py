"""The forward stage as the service runs it, put together from the settings.

:func:`open_forwarder` turns ``[signing]``, ``[forwarding]`` and ``[[destinations]]`` into a
:class:`~connector.flow.forward.ForwardService` over the real adapters: the key ring (its
active key signs; a rotation by ``keys rotate`` is followed within
:data:`KEY_REFRESH_SECONDS`), the :class:`~connector.core.routing.Router`, the HTTPS
:class:`~connector.adapters.customs_client.HttpCustomsGateway`, and a
:class:`~connector.adapters.loops.StageLoop` that runs it. Without destinations there is
nothing to forward to and :func:`open_forwarder` returns None: accepted items wait in the
outbox until a destination is configured (they are never dropped).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog
from cryptography import x509

from connector.adapters.customs_client import CustomsEndpoint, HttpCustomsGateway
from connector.adapters.keystore import KeyRing, load_certificate
from connector.adapters.loops import StageLoop
from connector.core import declarations, signing
from connector.core.retry import RetryPolicy
from connector.core.routing import CustomsRoute, Router
from connector.errors import ConfigurationError, SigningKeyUnavailable
from connector.flow.forward import ForwardOutcome, ForwardService
from connector.ports import Clock, CustomsGateway, ForwardClaim, ItemStore
from connector.settings import DestinationSettings, Settings

__all__ = [
    "KEY_REFRESH_SECONDS",
    "BatchBuilder",
    "Forwarder",
    "customs_endpoints",
    "open_forwarder",
    "router_for",
]

#: How often the key ring on disk is looked at for a rotation made by another process.
KEY_REFRESH_SECONDS: Final = 5.0

_log = structlog.get_logger("connector.forward")


def router_for(settings: Settings) -> Router:
    """The routes of the configured Customs destinations (agencies route separately)."""
    routes = [
        CustomsRoute(
            destination.id,
            frozenset(destination.countries),
            frozenset(destination.operators) if destination.operators else None,
        )
        for destination in settings.destinations
        if destination.kind == "customs"
    ]
    return Router(routes, ())


def _certificates(destination: DestinationSettings) -> tuple[x509.Certificate, ...]:
    return tuple(load_certificate(path) for path in destination.certificates)


def customs_endpoints(settings: Settings) -> dict[str, CustomsEndpoint]:
    """One HTTPS endpoint per configured Customs destination."""
    endpoints: dict[str, CustomsEndpoint] = {}
    for destination in settings.destinations:
        if destination.kind != "customs":
            continue
        passphrase = destination.client_key_passphrase
        endpoints[destination.id] = CustomsEndpoint(
            destination=destination.id,
            url=destination.url,
            ca_file=destination.ca_file,
            client_cert_file=destination.client_cert,
            client_key_file=destination.client_key,
            client_key_passphrase=(
                passphrase.get_secret_value().encode() if passphrase is not None else None
            ),
            customs_certificates=_certificates(destination),
            connect_timeout_s=destination.connect_timeout_seconds,
            total_timeout_s=destination.timeout_seconds,
            max_concurrency=destination.max_concurrency,
            fast_retries=destination.fast_retries,
        )
    return endpoints


class BatchBuilder:
    """``BuildBatch`` of the forward stage: a signed declaration batch for one destination.

    Signs with the key ring's active key; before a batch it follows a rotation on disk at
    most every ``refresh_s`` seconds (a failed refresh is logged and the current key signs).
    Thread-safe: the forward stage runs it in a worker thread, off the event loop.
    """

    def __init__(
        self,
        connector_id: str,
        ring: KeyRing,
        clock: Clock,
        *,
        refresh_s: float = KEY_REFRESH_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._connector_id = connector_id
        self._ring = ring
        self._clock = clock
        self._refresh_s = refresh_s
        self._next_refresh = time.monotonic() + refresh_s
        self._rng = rng

    def _key(self) -> signing.SigningKey:
        if self._refresh_s >= 0 and time.monotonic() >= self._next_refresh:
            self._next_refresh = time.monotonic() + self._refresh_s
            try:
                if self._ring.refresh():
                    _log.info("keys.rotation_followed", active=self._ring.active_id)
            except SigningKeyUnavailable as error:
                _log.error("keys.refresh_failed", error=error.message)
        return self._ring.active

    def __call__(self, claims: Sequence[ForwardClaim], destination: str) -> tuple[str, bytes]:
        now = self._clock.now()
        batch_id = declarations.new_declaration_batch_id(destination, now, self._rng)
        root = declarations.declaration_batch(
            batch_id,
            self._connector_id,
            destination,
            now,
            [
                declarations.Declared(
                    claim.reference,
                    claim.operator_id,
                    claim.version,
                    claim.item_xml,
                    claim.findings,
                )
                for claim in claims
            ],
        )
        return batch_id, signing.sign(root, self._key())


@dataclass
class Forwarder:
    """The forward stage with what it owns; :meth:`close` after :meth:`stop`."""

    service: ForwardService
    loop: StageLoop[ForwardOutcome]
    ring: KeyRing
    gateway: CustomsGateway

    def start(self) -> None:
        self.loop.start()

    def wake(self) -> None:
        """New work arrived: forward now rather than after the idle pause."""
        self.loop.wake()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the send in flight (within ``timeout_s``), then stop forwarding."""
        await self.loop.stop(timeout_s)

    async def close(self) -> None:
        await self.stop()
        if isinstance(self.gateway, HttpCustomsGateway):
            await self.gateway.close()


def _passphrase(settings: Settings) -> bytes:
    if settings.key_passphrase is None:
        raise ConfigurationError(
            "The signing keys are encrypted: set CONNECTOR_KEY_PASSPHRASE or key_passphrase_file.",
            key="key_passphrase",
        )
    return settings.key_passphrase.get_secret_value().encode()


def open_forwarder(
    settings: Settings,
    store: ItemStore,
    clock: Clock,
    owner: str,
    *,
    gateway: CustomsGateway | None = None,
    ring: KeyRing | None = None,
) -> Forwarder | None:
    """The configured forward stage (not started), or None without Customs destinations.

    ``gateway`` and ``ring`` replace the configured ones (tests, the demo).

    Raises:
        ConfigurationError: routes that conflict, TLS or certificate files that do not load,
            no key passphrase.
        SigningKeyUnavailable: the key ring cannot be read or its active key decrypted.
    """
    if not any(destination.kind == "customs" for destination in settings.destinations):
        return None
    keys_dir = settings.signing.keys_dir
    if ring is None:
        if keys_dir is None:  # settings validation requires it with destinations
            raise ConfigurationError("signing.keys_dir is required", key="signing.keys_dir")
        ring = KeyRing.load(Path(keys_dir), _passphrase(settings))
    router = router_for(settings)
    if gateway is None:
        gateway = HttpCustomsGateway(customs_endpoints(settings), clock)
    forwarding = settings.forwarding
    policy = RetryPolicy(
        max_attempts=forwarding.max_attempts,
        base_delay_s=forwarding.backoff_seconds,
        max_delay_s=forwarding.max_backoff_seconds,
    )

    def route(claim: ForwardClaim) -> str | None:
        return router.customs_for(claim.destination_country, claim.operator_id)

    service = ForwardService(
        store,
        gateway,
        clock,
        owner,
        BatchBuilder(settings.connector_id, ring, clock),
        route,
        policy,
        batch_size=forwarding.batch_size,
        lease_s=forwarding.lease_seconds,
    )
    loop: StageLoop[ForwardOutcome] = StageLoop(
        "forward",
        service.run_once,
        lambda outcome: outcome.claimed > 0 and outcome.error is None,
        idle_s=forwarding.idle_seconds,
    )
    return Forwarder(service, loop, ring, gateway)
