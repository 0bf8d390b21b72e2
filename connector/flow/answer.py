"""Referral answers: take the operator's answer, then forward it, signed, to Customs.

**Taking it** (:meth:`AnswerService.receive`, behind ``POST /v1/answers``): the body is parsed
with the hardened parser and read as a referral answer (schema-valid, or
:class:`~connector.errors.EnvelopeInvalid`); an answer naming another operator than the caller
is :class:`~connector.errors.Forbidden`. The value is rebuilt into the message Customs gets
(:func:`connector.core.referrals.referral_answer_xml`, unsigned): those bytes, and their
SHA-256, are what the store keeps and what "the same answer" means. One store transaction
(:meth:`~connector.ports.ItemStore.record_answer`) then checks the answer against the item's
pending referral, stores it, moves the item to FORWARDING with its event and queues one
``answer`` job in the outbox. The same answer again is a no-op with the same result; another
answer under the same id is refused. An operator's own signature on the body, if any, is not
carried on: the connector signs what it forwards.

**Forwarding it** (:meth:`AnswerForwardService.run_once`, a stage of its own beside the forward
stage, so an answer never waits behind a large backlog of declarations): due ``answer`` jobs
are claimed with a lease (renewed by a :class:`~connector.flow.forward.LeaseHeartbeat`); each
answer is signed with the connector's active key and sent on its own through the
:class:`~connector.ports.CustomsGateway` to the Customs destination that covers the item (the
same route as its declaration), under the answer id as idempotency key. Customs answers with a
signed declaration receipt whose ``DeclarationBatchId`` is the answer id (Customs deduplicates
answers on ``OperatorId`` and ``AnswerId``):

- accepted: the job is done, the item FORWARDED (awaiting the final decision); the signed
  answer and the receipt are kept with the answer as evidence;
- :class:`~connector.errors.CustomsRefused`: the job and the item are DEAD at once (listed with
  the dead letters, replayable by an admin);
- any other :class:`~connector.errors.ConnectorError`: retried per the
  :class:`~connector.core.retry.RetryPolicy`, DEAD after too many attempts.

A Customs decision that arrives while the answer is still on its way closes the job: Customs
has decided, with or without the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from lxml import etree

from connector.core import referrals, signing
from connector.core.retry import RetryPolicy
from connector.core.xmlsafe import parse_xml
from connector.errors import ConfigurationError, ConnectorError, Forbidden, StoreUnavailable
from connector.flow.forward import DEFAULT_LEASE_S, NO_ROUTE, LeaseHeartbeat
from connector.ports import (
    AnswerClaim,
    Clock,
    CustomsGateway,
    ItemStore,
    ReceivedAnswer,
    RecordedAnswer,
)

__all__ = [
    "DEFAULT_ANSWER_BATCH_SIZE",
    "AnswerForwardService",
    "AnswerOutcome",
    "AnswerRoute",
    "AnswerService",
    "KeySource",
    "answer_bytes",
]

DEFAULT_ANSWER_BATCH_SIZE = 50

#: The connector's current signing key.
KeySource = Callable[[], signing.SigningKey]
#: The Customs destination of a claimed answer's item, or None without a route.
AnswerRoute = Callable[[AnswerClaim], str | None]

_log = structlog.get_logger("connector.answer")


def answer_bytes(answer: referrals.ReferralAnswer) -> bytes:
    """The unsigned referral answer for Customs, serialized: what is stored and compared.

    Raises:
        InvalidMessage: see :func:`connector.core.referrals.referral_answer_xml`.
    """
    root = referrals.referral_answer_xml(answer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class AnswerService:
    """Takes operators' referral answers (``POST /v1/answers``)."""

    def __init__(
        self,
        store: ItemStore,
        clock: Clock,
        *,
        on_recorded: Callable[[], None] | None = None,
    ) -> None:
        """``on_recorded`` is called after a new answer is stored (wakes the forwarding)."""
        self._store = store
        self._clock = clock
        self._on_recorded = on_recorded

    async def receive(self, operator_id: str, body: bytes) -> RecordedAnswer:
        """Validate, check and store one answer of ``operator_id``; queue it for Customs.

        Raises:
            InvalidMessage: unsafe or malformed XML (an ``Xml*`` subclass), not a referral
                answer, or an answer that does not conform to its schema.
            Forbidden: the answer names another operator.
            NotFound: the operator has no such item, or no referral is pending on it.
            ReferralMismatch: another referral reference, or the wrong kind of answer.
            IllegalTransition: the answer id was used before for another answer.
            StoreUnavailable: nothing was stored.
        """
        answer, data = await asyncio.to_thread(_read, body)
        if answer.operator_id != operator_id:
            raise Forbidden(
                f"the answer is from operator {answer.operator_id[:64]}, not {operator_id}",
                operator_id=answer.operator_id[:64],
            )
        received = ReceivedAnswer(
            answer=answer,
            answer_xml=data,
            digest=hashlib.sha256(data).hexdigest(),
            received_at=self._clock.now(),
        )
        recorded = await self._store.record_answer(received)
        _log.info(
            "answer.received",
            operator_id=operator_id,
            answer_id=recorded.answer_id,
            item_reference=recorded.reference,
            referral_reference=recorded.referral_reference,
            duplicate=recorded.duplicate,
        )
        if not recorded.duplicate and self._on_recorded is not None:
            self._on_recorded()
        return recorded


def _read(body: bytes) -> tuple[referrals.ReferralAnswer, bytes]:
    answer = referrals.parse_referral_answer(parse_xml(body))
    return answer, answer_bytes(answer)


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """What one answer forwarding run did (counts of answers)."""

    claimed: int = 0
    sent: int = 0  # accepted by Customs, items FORWARDED
    retried: int = 0
    dead: int = 0
    error: str | None = None  # why the run stopped early (the store was unreachable)


@dataclass
class _Tally:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0

    def outcome(self, error: str | None = None) -> AnswerOutcome:
        return AnswerOutcome(self.claimed, self.sent, self.retried, self.dead, error)


class AnswerForwardService:
    """Forwards stored referral answers to Customs; :meth:`run_once` is its entry point."""

    def __init__(
        self,
        store: ItemStore,
        gateway: CustomsGateway,
        clock: Clock,
        owner: str,
        key: KeySource,
        route: AnswerRoute,
        policy: RetryPolicy | None = None,
        *,
        batch_size: int = DEFAULT_ANSWER_BATCH_SIZE,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``gateway`` posts to each destination's answers URL; ``key`` is the connector's
        active signing key; ``heartbeat_s`` as for the forward stage."""
        self._store = store
        self._gateway = gateway
        self._clock = clock
        self._owner = owner
        self._key = key
        self._route = route
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._heartbeat_s = lease_s / 3 if heartbeat_s is None else heartbeat_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    async def run_once(self) -> AnswerOutcome:
        """Claim due answers and send each; failures are recorded, never raised.

        A store failure ends the run with ``outcome.error``; claims not yet recorded stay
        claimed until their lease expires and are then sent again (same answer id).
        """
        tally = _Tally()
        try:
            claims = await self._store.claim_answers(
                self._owner, self._batch_size, self._lease_s, self._clock.now()
            )
            tally.claimed = len(claims)
            if claims:
                async with LeaseHeartbeat(
                    self._store,
                    self._clock,
                    self._owner,
                    self._lease_s,
                    self._heartbeat_s,
                    stage="answer",
                ) as heartbeat:
                    heartbeat.hold(claim.outbox_id for claim in claims)
                    for claim in claims:
                        await self._send(claim, tally)
                        heartbeat.release((claim.outbox_id,))
        except StoreUnavailable as error:
            _log.warning("answer.store_unavailable", error=str(error))
            return tally.outcome(str(error))
        outcome = tally.outcome()
        if outcome.claimed:
            _log.info(
                "answer.run",
                claimed=outcome.claimed,
                sent=outcome.sent,
                retried=outcome.retried,
                dead=outcome.dead,
            )
        return outcome

    def _sign(self, claim: AnswerClaim) -> bytes:
        return signing.sign(parse_xml(claim.answer_xml), self._key())

    async def _send(self, claim: AnswerClaim, tally: _Tally) -> None:
        destination = self._route(claim)
        if destination is None:
            error = ConfigurationError(f"{NO_ROUTE}: no Customs route for the item")
            await self._fail(claim, NO_ROUTE, error, tally)
            return
        try:
            signed_xml = await asyncio.to_thread(self._sign, claim)
            receipt = await self._gateway.send(destination, claim.answer_id, signed_xml)
        except StoreUnavailable:
            raise
        except ConnectorError as error:
            _log.warning(
                "answer.send_failed",
                destination=destination,
                answer_id=claim.answer_id,
                error=str(error),
            )
            await self._fail(claim, f"{destination}: {error.code}: {error.message}", error, tally)
            return
        if await self._store.record_answer_sent(
            claim, self._owner, signed_xml, receipt, self._clock.now()
        ):
            tally.sent += 1

    async def _fail(
        self, claim: AnswerClaim, message: str, error: ConnectorError, tally: _Tally
    ) -> None:
        now = self._clock.now()
        decision = self._policy.decide(claim.attempts + 1, now, error, self._rng)
        recorded = await self._store.record_answer_failure(
            [claim], self._owner, message, decision, now
        )
        if decision.dead:
            tally.dead += recorded
            _log.error("answer.dead", answer_id=claim.answer_id, why=message)
        else:
            tally.retried += recorded
