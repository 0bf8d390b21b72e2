"""The outbound stages as the service runs them, put together from the settings.

:func:`open_forwarder` turns ``[signing]``, ``[forwarding]`` and ``[[destinations]]`` into a
:class:`~connector.flow.forward.ForwardService` over the real adapters: the key ring (its
active key signs; a rotation by ``keys rotate`` is followed within
:data:`KEY_REFRESH_SECONDS`), the :class:`~connector.core.routing.Router`, the HTTPS
:class:`~connector.adapters.customs_client.HttpCustomsGateway`, and a
:class:`~connector.adapters.loops.StageLoop` that runs it. With agency destinations
(``kind = "agency"``) a :class:`~connector.flow.copy.CopyService` sends their minimized
copies (:class:`CopyBuilder`) through the same gateway, in a loop of its own. A third loop
deletes the evidence older than ``forwarding.evidence_retention_days``
(:class:`EvidencePurge`, hourly). A fourth loop runs the
:class:`~connector.flow.answer.AnswerForwardService`: it signs operators' referral answers
and POSTs each to its destination's ``answers_url`` (default: the declarations ``url``)
through a gateway of its own (:func:`answer_endpoints`). Without Customs destinations there
is nothing to forward to and :func:`open_forwarder` returns None: accepted items wait in the
outbox until a destination is configured (they are never dropped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import structlog
from cryptography import x509

from connector.adapters.customs_client import CustomsEndpoint, HttpCustomsGateway
from connector.adapters.keystore import KeyRing, load_certificate
from connector.adapters.loops import StageLoop
from connector.core import agency, declarations, signing
from connector.core.retry import RetryPolicy
from connector.core.routing import AgencyRoute, CustomsRoute, Router, hs_codes_of
from connector.errors import ConfigurationError, SigningKeyUnavailable
from connector.flow.answer import AnswerForwardService, AnswerOutcome
from connector.flow.copy import CopyOutcome, CopyService
from connector.flow.forward import ForwardOutcome, ForwardService
from connector.ports import Clock, CopyClaim, CustomsGateway, ForwardClaim, ItemStore
from connector.settings import DestinationSettings, Settings

__all__ = [
    "KEY_REFRESH_SECONDS",
    "PURGE_INTERVAL_SECONDS",
    "BatchBuilder",
    "CopyBuilder",
    "EvidencePurge",
    "Forwarder",
    "answer_endpoints",
    "customs_endpoints",
    "open_forwarder",
    "router_for",
]

#: How often the key ring on disk is looked at for a rotation made by another process.
KEY_REFRESH_SECONDS: Final = 5.0
#: How often the evidence past its retention is deleted.
PURGE_INTERVAL_SECONDS: Final = 3600.0

_log = structlog.get_logger("connector.forward")


def router_for(settings: Settings) -> Router:
    """The routes of the configured destinations: Customs, and the agencies' subscriptions
    (an agency without countries gets the items of every country)."""
    routes = [
        CustomsRoute(
            destination.id,
            frozenset(destination.countries),
            frozenset(destination.operators) if destination.operators else None,
        )
        for destination in settings.destinations
        if destination.kind == "customs"
    ]
    agencies = [
        AgencyRoute(
            destination.id,
            frozenset(destination.hs_chapters),
            frozenset(destination.countries) if destination.countries else None,
            tuple(destination.fields),
        )
        for destination in settings.destinations
        if destination.kind == "agency"
    ]
    return Router(routes, agencies)


def _certificates(destination: DestinationSettings) -> tuple[x509.Certificate, ...]:
    return tuple(load_certificate(path) for path in destination.certificates)


def customs_endpoints(settings: Settings) -> dict[str, CustomsEndpoint]:
    """One HTTPS endpoint per configured destination, Customs and agencies alike (an agency
    answers a copy with a signed receipt naming the agency, as Customs does a batch)."""
    endpoints: dict[str, CustomsEndpoint] = {}
    for destination in settings.destinations:
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


def answer_endpoints(settings: Settings) -> dict[str, CustomsEndpoint]:
    """The Customs endpoints with the URL referral answers are POSTed to: ``answers_url``,
    else the declarations ``url`` (Customs tells the messages apart by their root)."""
    by_id = {destination.id: destination for destination in settings.destinations}
    return {
        destination: dataclasses.replace(
            endpoint, url=by_id[destination].answers_url or endpoint.url
        )
        for destination, endpoint in customs_endpoints(settings).items()
        if by_id[destination].kind == "customs"
    }


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
        self._lock = threading.Lock()

    def signing_key(self) -> signing.SigningKey:
        """The key ring's active key, after following a rotation on disk when it is time."""
        with self._lock:
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
        return batch_id, signing.sign(root, self.signing_key())


class CopyBuilder:
    """``BuildCopy`` of the copy stage: a signed, minimized agency copy for one agency.

    The allow-list is the agency's route in ``router``; ``batches`` supplies the signing key
    (the same key and rotation as the declarations). Thread-safe like :class:`BatchBuilder`.

    Raises (on call):
        ConfigurationError: the agency has no route any more (its copies are retried, then
            dead), or a malformed allow-list path.
    """

    def __init__(
        self,
        connector_id: str,
        router: Router,
        batches: BatchBuilder,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._connector_id = connector_id
        self._router = router
        self._batches = batches
        self._clock = clock
        self._rng = rng

    def __call__(self, claims: Sequence[CopyClaim], agency_id: str) -> tuple[str, bytes]:
        route = self._router.agencies.get(agency_id)
        if route is None:
            raise ConfigurationError(
                f"no_route: agency {agency_id} is not configured", agency=agency_id
            )
        now = self._clock.now()
        copy_id = agency.new_agency_copy_id(agency_id, now, self._rng)
        declared = [
            declarations.Declared(claim.reference, claim.operator_id, claim.version, claim.item_xml)
            for claim in claims
        ]
        root = agency.agency_copy(
            copy_id, self._connector_id, agency_id, now, declared, route.fields
        )
        return copy_id, signing.sign(root, self._batches.signing_key())


class EvidencePurge:
    """Deletes the evidence sent more than ``retention_days`` ago; one :meth:`run_once` is one
    sweep (the service runs it hourly)."""

    def __init__(self, store: ItemStore, clock: Clock, retention_days: int) -> None:
        self._store = store
        self._clock = clock
        self._retention = timedelta(days=retention_days)

    async def run_once(self) -> int:
        """Delete what is past its retention; how many evidence rows went."""
        cutoff = self._clock.now() - self._retention
        purged = await self._store.purge_evidence(cutoff)
        if purged:
            _log.info("evidence.purged", rows=purged, before=cutoff.isoformat())
        return purged


@dataclass
class Forwarder:
    """The outbound stages with what they own; :meth:`close` after :meth:`stop`."""

    service: ForwardService
    loop: StageLoop[ForwardOutcome]
    ring: KeyRing
    gateway: CustomsGateway
    copier: CopyService | None = None
    """The agency copy stage (None without agency destinations)."""
    copy_loop: StageLoop[CopyOutcome] | None = None
    purge_loop: StageLoop[int] | None = None
    answerer: AnswerForwardService | None = None
    """The stage that forwards operators' referral answers to Customs."""
    answer_loop: StageLoop[AnswerOutcome] | None = None
    answer_gateway: CustomsGateway | None = None
    """Posts to each destination's ``answers_url`` (the same gateway class, other URLs)."""

    def _loops(self) -> list[StageLoop[Any]]:
        loops = (self.loop, self.copy_loop, self.purge_loop, self.answer_loop)
        return [loop for loop in loops if loop is not None]

    def wake_answers(self) -> None:
        """A referral answer was stored: send it now rather than after the idle pause."""
        if self.answer_loop is not None:
            self.answer_loop.wake()

    def start(self) -> None:
        for loop in self._loops():
            loop.start()

    def wake(self) -> None:
        """New work arrived: forward now rather than after the idle pause."""
        self.loop.wake()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the sends in flight (within ``timeout_s``), then stop forwarding."""
        await asyncio.gather(*(loop.stop(timeout_s) for loop in self._loops()))

    async def close(self) -> None:
        await self.stop()
        if isinstance(self.gateway, HttpCustomsGateway):
            await self.gateway.close()
        if self.answer_gateway is not self.gateway and isinstance(
            self.answer_gateway, HttpCustomsGateway
        ):
            await self.answer_gateway.close()


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
    """The configured outbound stages (not started), or None without Customs destinations:
    forwarding, agency copies (with agency destinations) and the hourly evidence purge.

    ``gateway`` and ``ring`` replace the configured ones (tests, the demo); a given
    ``gateway`` also takes the referral answers.

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
    configured_gateway = gateway is not None
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

    def agencies(claim: ForwardClaim) -> tuple[str, ...]:
        if not router.agencies:
            return ()
        return router.agencies_for(claim.destination_country, hs_codes_of(claim.item_xml))

    batches = BatchBuilder(settings.connector_id, ring, clock)
    service = ForwardService(
        store,
        gateway,
        clock,
        owner,
        batches,
        route,
        policy,
        agencies=agencies,
        batch_size=forwarding.batch_size,
        lease_s=forwarding.lease_seconds,
    )
    copier: CopyService | None = None
    copy_loop: StageLoop[CopyOutcome] | None = None
    if router.agencies:
        copier = CopyService(
            store,
            gateway,
            clock,
            owner,
            CopyBuilder(settings.connector_id, router, batches, clock),
            policy,
            batch_size=forwarding.batch_size,
            lease_s=forwarding.lease_seconds,
        )
        copy_loop = StageLoop(
            "copy",
            copier.run_once,
            lambda outcome: outcome.claimed > 0 and outcome.error is None,
            idle_s=forwarding.idle_seconds,
        )

    def copies_queued(outcome: ForwardOutcome) -> None:
        if copy_loop is not None and outcome.sent:
            copy_loop.wake()

    loop: StageLoop[ForwardOutcome] = StageLoop(
        "forward",
        service.run_once,
        lambda outcome: outcome.claimed > 0 and outcome.error is None,
        idle_s=forwarding.idle_seconds,
        on_outcome=copies_queued,
        workers=forwarding.concurrency,
    )
    purge = EvidencePurge(store, clock, forwarding.evidence_retention_days)
    purge_loop: StageLoop[int] = StageLoop(
        "evidence-purge",
        purge.run_once,
        lambda _: False,
        idle_s=PURGE_INTERVAL_SECONDS,
        error_backoff_s=300.0,
    )
    answer_gateway = (
        gateway if configured_gateway else HttpCustomsGateway(answer_endpoints(settings), clock)
    )
    answerer = AnswerForwardService(
        store,
        answer_gateway,
        clock,
        owner,
        batches.signing_key,
        lambda claim: router.customs_for(claim.destination_country, claim.operator_id),
        policy,
        lease_s=forwarding.lease_seconds,
    )
    answer_loop: StageLoop[AnswerOutcome] = StageLoop(
        "answer",
        answerer.run_once,
        lambda outcome: outcome.claimed > 0 and outcome.error is None,
        idle_s=forwarding.idle_seconds,
    )
    return Forwarder(
        service,
        loop,
        ring,
        gateway,
        copier,
        copy_loop,
        purge_loop,
        answerer,
        answer_loop,
        answer_gateway,
    )
