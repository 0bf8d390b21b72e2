"""Receive a signed Customs response: verify, check, apply its decisions with signed notices.

:meth:`DecideService.receive` takes the body Customs POSTed for one destination and:

1. verifies its enveloped signature against that destination's pinned certificates
   (:func:`connector.core.signing.verify`, which parses with the hardened parser) and reads
   only the verified document (:func:`connector.core.decisions.parse_customs_response`);
2. refuses the whole response when it names another destination
   (:class:`~connector.errors.ResponseMisdirected`) or was issued outside the freshness window
   (:class:`~connector.errors.ResponseStale`);
3. checks each decision against the item it names (:func:`~connector.core.decisions.check_item`:
   unknown, another item id, another destination's item) and against the lifecycle
   (:func:`~connector.core.lifecycle.judge_decision`): a faulty decision is a logged problem,
   a repeat is counted, neither is applied;
4. builds and signs, off the event loop, the notice of every decision it expects to apply,
   with the connector's active key;
5. hands response and notices to :meth:`~connector.ports.ItemStore.apply_response`, one
   transaction: the response id is recorded (a second receipt raises
   :class:`~connector.errors.ResponseReplayed`), each decision is judged again on the locked
   item and applied with its event and its notice, or not at all.

So a notice exists exactly for an applied decision: one signed for a decision that a concurrent
response made a repeat (or illegal) meanwhile is dropped with it, and a decision judged a
repeat here is not sent to the store. Anything refused as a whole (signature, certificate,
schema of the envelope, destination, freshness, replay) raises a
:class:`~connector.errors.ConnectorError` and changes nothing. Items stay DECIDED: the notify
stage moves them to NOTIFIED when the notice is delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from cryptography import x509

from connector.core import decisions, lifecycle, notices, signing
from connector.core.decisions import CustomsResponse, DecisionProblem
from connector.core.notices import ItemNotice
from connector.errors import IllegalTransition, NotFound
from connector.ports import Clock, DecisionToApply, ItemStore, ReceivedResponse

__all__ = ["DecideOutcome", "DecideService", "Destination", "KeySource"]

#: The connector's current signing key (the key ring's active key).
KeySource = Callable[[], signing.SigningKey]

_log = structlog.get_logger("connector.decide")


@dataclass(frozen=True, slots=True)
class Destination:
    """What the decide stage trusts of one Customs destination."""

    id: str
    certificates: tuple[x509.Certificate, ...]
    """The pinned certificates its responses must be signed with."""
    countries: frozenset[str]
    """The destination countries it covers: a decision on another country's item is refused."""
    policy: signing.VerifyPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", signing.VerifyPolicy(self.certificates))


@dataclass(frozen=True, slots=True)
class DecideOutcome:
    """What one Customs response did."""

    destination: str
    response_id: str
    decisions: int  # in the document, refused ones included
    applied: tuple[ItemNotice, ...] = ()  # the stored notices, one per applied decision
    repeated: int = 0  # decisions the items had already
    problems: tuple[DecisionProblem, ...] = ()  # by index

    def as_dict(self) -> dict[str, object]:
        """The JSON answer of the responses route."""
        return {
            "destination": self.destination,
            "response_id": self.response_id,
            "decisions": self.decisions,
            "applied": len(self.applied),
            "repeated": self.repeated,
            "problems": [problem.as_dict() for problem in self.problems],
        }


class DecideService:
    """The decide stage for Customs responses pushed to the connector (STYLE.md 14)."""

    def __init__(
        self,
        store: ItemStore,
        clock: Clock,
        destinations: Collection[Destination],
        key: KeySource,
        *,
        window: timedelta = decisions.DEFAULT_FRESHNESS_WINDOW,
        on_applied: Callable[[], None] | None = None,
    ) -> None:
        """``on_applied`` is called after a response applied decisions (their notices are
        stored): the notify stage's wake-up."""
        self._store = store
        self._clock = clock
        self._destinations: Mapping[str, Destination] = {d.id: d for d in destinations}
        self._key = key
        self._window = window
        self._on_applied = on_applied

    @property
    def destinations(self) -> tuple[str, ...]:
        """The ids of the destinations whose responses are taken."""
        return tuple(self._destinations)

    async def receive(self, destination: str, body: bytes) -> DecideOutcome:
        """Verify, check and apply one signed Customs response from ``destination``.

        Raises:
            NotFound: no such Customs destination is configured.
            InvalidMessage: the body is not safe, well-formed XML (an ``Xml*`` subclass), not
                a customs response, or its envelope is invalid.
            SignatureInvalid: the signature is missing or does not verify.
            CertificateUntrusted: signed with a certificate not pinned for ``destination``.
            ResponseMisdirected, ResponseStale, ResponseReplayed: refused as a whole.
            StoreUnavailable: nothing was applied; Customs may send it again.
        """
        trusted = self._destinations.get(destination)
        if trusted is None:
            raise NotFound(f"no Customs destination {destination[:64]!r}")
        now = self._clock.now()
        response = await asyncio.to_thread(self._read, trusted, body)
        decisions.check_destination(response, destination)
        decisions.check_freshness(response, now, self._window)
        problems = list(response.problems)
        to_notify, repeated = await self._judge(response, trusted, problems)
        key = self._key()
        signed = await asyncio.to_thread(_sign_all, to_notify, key)
        received = ReceivedResponse(
            destination=destination,
            response_id=response.response_id,
            issued_at=response.issued_at,
            received_at=now,
            signed_xml=body,
            decision_count=len(response.decisions) + len(response.problems),
        )
        result = await self._store.apply_response(received, signed)
        if result.applied and self._on_applied is not None:
            self._on_applied()
        problems.extend(result.problems)
        problems.sort(key=lambda problem: problem.index)
        outcome = DecideOutcome(
            destination=destination,
            response_id=response.response_id,
            decisions=received.decision_count,
            applied=result.applied,
            repeated=repeated + len(result.repeated),
            problems=tuple(problems),
        )
        for problem in outcome.problems:
            _log.warning(
                "decide.decision_refused",
                destination=destination,
                response_id=response.response_id,
                index=problem.index,
                item_reference=problem.item_reference,
                code=problem.code,
                message=problem.message,
            )
        _log.info(
            "decide.response",
            destination=destination,
            response_id=response.response_id,
            decisions=outcome.decisions,
            applied=len(outcome.applied),
            repeated=outcome.repeated,
            refused=len(outcome.problems),
        )
        return outcome

    def _read(self, trusted: Destination, body: bytes) -> CustomsResponse:
        """Verify against the pinned certificates, then read the verified tree only."""
        verified = signing.verify(body, trusted.policy, at=self._clock.now())
        return decisions.parse_customs_response(verified.signed_xml)

    async def _judge(
        self, response: CustomsResponse, trusted: Destination, problems: list[DecisionProblem]
    ) -> tuple[list[tuple[int, ItemNotice]], int]:
        """The notices of the decisions expected to apply, and how many are repeats.

        Faulty decisions are appended to ``problems``.
        """
        targets = await self._store.decision_targets(
            [decision.item_reference for decision in response.decisions]
        )
        to_notify: list[tuple[int, ItemNotice]] = []
        repeated = 0
        for index, decision in response.indexed_decisions():
            target = targets.get(decision.item_reference)
            problem = decisions.check_item(
                index, decision, target.item if target else None, trusted.countries
            )
            if problem is not None:
                problems.append(problem)
                continue
            assert target is not None
            try:
                verdict = lifecycle.judge_decision(
                    target.item,
                    decision.code,
                    referral_reference=decision.referral_reference,
                    pending_referral=target.referral_reference,
                )
            except IllegalTransition as error:
                problems.append(
                    DecisionProblem(
                        index, decision.item_reference, decision.item_id, error.code, error.message
                    )
                )
                continue
            if verdict is lifecycle.Verdict.REPEAT:
                repeated += 1
                continue
            to_notify.append(
                (index, notices.notice_for(response, decision, target.item.operator_id))
            )
        return to_notify, repeated


def _sign_all(
    to_notify: Sequence[tuple[int, ItemNotice]], key: signing.SigningKey
) -> list[DecisionToApply]:
    """Build and sign each notice (CPU-bound: run in a worker thread)."""
    return [
        DecisionToApply(index, notice, signing.sign(notices.item_notice_xml(notice), key))
        for index, notice in to_notify
    ]
