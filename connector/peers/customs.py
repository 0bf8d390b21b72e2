"""A mock Customs risk engine: an HTTPS (mTLS) server that takes signed declaration batches.

``POST /v1/declarations`` with a signed declaration batch (``application/xml``):

1. the client certificate is checked by the TLS handshake when the server context requires one;
2. the body is parsed with :func:`connector.core.xmlsafe.parse_xml`, its signature verified
   against the *currently* trusted connector certificates (:meth:`MockCustoms.trust`,
   :meth:`MockCustoms.distrust`: a key rotation can be played at runtime), and the verified
   tree validated against ``declaration-batch-1.xsd``. A signature in the exact form the
   connector signs is verified on the parsed tree itself (:func:`_verify_in_place`); any other
   goes through :func:`connector.core.signing.verify`, which accepts or names the fault;
3. a new batch id: each declaration is stored under ``(ItemReference, Version)``; one seen
   before counts as a duplicate and is not stored again. A batch id seen before with the same
   declarations is not processed again and gets a ``duplicate`` receipt; with other
   declarations it is refused (``409 batch_id_reused``): a batch id names one batch only;
4. the answer is ``200`` with a declaration receipt signed with the mock's own key.

The mock also plays a border agency: an ``AgencyCopy`` (agency-copy-1.xsd) POSTed to the same
route is verified and validated the same way, stored in :attr:`MockCustoms.copies` (its
``Agency`` must be ``destination`` when one is given) and answered with a signed receipt whose
``DeclarationBatchId`` is the copy's ``CopyBatchId`` and whose ``Destination`` is the agency.

A bad signature or an invalid document is ``400 application/problem+json`` with the error's
``code``. Failure modes, for tests (:attr:`MockCustoms.mode`, or :meth:`MockCustoms.fail_next`
for the next requests only): ``ok``; ``down`` (the connection is aborted without an answer);
``slow`` (the answer comes after ``slow_s``); ``error`` (500); ``throttle`` (429 with
``Retry-After: retry_after_s``); ``refuse`` (400 ``declaration_refused``); ``bad_signature``
(the batch is processed, the receipt's signature does not verify); ``wrong_batch`` (the batch
is processed, the receipt names another batch id).

Everything received stays inspectable (:attr:`MockCustoms.received`, :attr:`MockCustoms.items`).

Decisions go back by callback (:meth:`MockCustoms.send_decisions` POSTs one signed customs
response to the connector) or by poll (:meth:`MockCustoms.queue_decisions` appends it to the
feed ``GET /v1/responses?after=CURSOR``, which answers the next signed response with its
position in ``X-Next-Cursor``, or 204 when there is nothing after the cursor).

Referral answers: a ``ReferralAnswer`` (referral-answer-1.xsd) POSTed to ``/v1/answers`` (or
to the declarations route) is verified against the trusted connector certificates like a
batch, validated, and must answer a referral this mock issued on that item (``400
referral_unknown`` otherwise). It is stored once per (OperatorId, AnswerId) in
:attr:`MockCustoms.answers` and answered with a signed receipt whose ``DeclarationBatchId``
is the answer id (``duplicate`` for an answer received before). The item is then undecided
again: the next :meth:`~MockCustoms.send_decisions` or :meth:`~MockCustoms.queue_decisions`
re-decides it, finally: RELEASE, unless :attr:`MockCustoms.decide_as` names a final decision
for it (the referral that asked is not repeated).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import ssl
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, cast, get_args

import aiohttp
import cryptography.exceptions
import structlog
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from connector.core import receipts, referrals, signing
from connector.core.decisions import CustomsResponse, Decision, customs_response_xml
from connector.core.model import CustomsDecision
from connector.core.referrals import ReferralAnswer
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import DEFAULT_LIMITS, parse_xml
from connector.errors import (
    ConfigurationError,
    ConnectorError,
    EnvelopeInvalid,
    InvalidMessage,
    SignatureInvalid,
)
from connector.peers.risk import ItemFacts, RiskRules, facts_of
from connector.peers.serving import start_site
from connector.ports import Clock

__all__ = [
    "ANSWERS_PATH",
    "DECLARATIONS_PATH",
    "MODES",
    "RESPONSES_PATH",
    "MockCustoms",
    "Mode",
    "ReceivedAnswer",
    "ReceivedBatch",
    "ReceivedCopy",
    "ReceivedDeclaration",
]

DECLARATIONS_PATH: Final = "/v1/declarations"
ANSWERS_PATH: Final = "/v1/answers"
RESPONSES_PATH: Final = "/v1/responses"
_INTERIM: Final = frozenset({CustomsDecision.REQUEST_INFO, CustomsDecision.REQUEST_SCREENING})
Mode = Literal["ok", "down", "slow", "error", "throttle", "refuse", "bad_signature", "wrong_batch"]
MODES: Final[frozenset[str]] = frozenset(get_args(Mode))

_BATCH_NS: Final = MessageKind.DECLARATION_BATCH.namespace
_COPY_NS: Final = MessageKind.AGENCY_COPY.namespace
_B_REFERENCE: Final = f"{{{_BATCH_NS}}}ItemReference"
_B_VERSION: Final = f"{{{_BATCH_NS}}}Version"
_B_OPERATOR: Final = f"{{{_BATCH_NS}}}OperatorId"
_B_ITEM: Final = f"{{{_BATCH_NS}}}Item"
_B_ITEM_ID: Final = f"{{{_BATCH_NS}}}ItemId"
_B_DESTINATION: Final = f"{{{_BATCH_NS}}}Transport/{{{_BATCH_NS}}}DestinationCountry"
_DS: Final = signing.DS_NS
_EXC_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
_ENVELOPED: Final = f"{_DS}enveloped-signature"
_SHA256: Final = DigestAlgorithm.SHA256.value
_ECDSA_SHA256: Final = SignatureMethod.ECDSA_SHA256.value
_RSA_SHA256: Final = SignatureMethod.RSA_SHA256.value
_log = structlog.get_logger("connector.peers.customs")


@dataclass(frozen=True, slots=True)
class ReceivedDeclaration:
    """One declaration as the mock stored it."""

    declaration_batch_id: str
    reference: str
    version: int
    operator_id: str
    item_id: str
    destination_country: str | None


@dataclass(frozen=True, slots=True)
class ReceivedBatch:
    """One declaration batch the mock accepted (the first time its id came)."""

    declaration_batch_id: str
    destination: str
    received_at: datetime
    customs_reference: str
    declarations: tuple[ReceivedDeclaration, ...]
    signer_fingerprint: str
    """The trusted connector certificate that verified the batch."""
    client_fingerprint: str | None
    """SHA-256 of the TLS client certificate, when one was presented."""
    idempotency_key: str | None
    signed_xml: bytes


@dataclass(frozen=True, slots=True)
class ReceivedCopy:
    """One agency copy the mock accepted (the first time its id came)."""

    copy_batch_id: str
    agency: str
    received_at: datetime
    items: dict[tuple[str, int], tuple[tuple[str, str], ...]]
    """(ItemReference, Version) -> the copied ``(path, value)`` fields."""
    signer_fingerprint: str
    signed_xml: bytes


@dataclass(frozen=True, slots=True)
class ReceivedAnswer:
    """One referral answer the mock accepted (the first time its id came)."""

    answer: ReferralAnswer
    item_reference: str
    received_at: datetime
    signer_fingerprint: str
    """The trusted connector certificate that verified the answer."""
    signed_xml: bytes


@dataclass(frozen=True, slots=True)
class _CheckedCopy:
    copy_id: str
    agency: str
    items: dict[tuple[str, int], tuple[tuple[str, str], ...]]
    signer_fingerprint: str


@dataclass(frozen=True, slots=True)
class _Checked:
    batch_id: str
    destination: str
    declarations: tuple[ReceivedDeclaration, ...]
    signer_fingerprint: str


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class MockCustoms:
    """The mock Customs server on ``host`` (loopback) and ``port`` (0: any free port).

    ``signing_key`` signs the receipts (pin its certificate in the connector's endpoint);
    ``trusted`` are the connector certificates batches must be signed with; ``ssl_context``
    is a server context, e.g. ``LoopbackPki.server_context(require_client_cert=True)``.
    ``destination``, when given, is the only batch Destination accepted.
    """

    def __init__(
        self,
        signing_key: signing.SigningKey,
        trusted: Iterable[x509.Certificate],
        *,
        ssl_context: ssl.SSLContext,
        host: str = "127.0.0.1",
        port: int = 0,
        destination: str | None = None,
        clock: Clock | None = None,
        slow_s: float = 30.0,
        retry_after_s: int = 1,
        max_body_bytes: int = DEFAULT_LIMITS.max_bytes,
    ) -> None:
        self.signing_key = signing_key
        self._trusted: dict[str, x509.Certificate] = {}
        for certificate in trusted:
            self.trust(certificate)
        self._ssl_context = ssl_context
        self.host = host
        self.port = port
        self.destination = destination
        self.clock: Clock = clock or _SystemClock()
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.max_body_bytes = max_body_bytes
        self._mode: Mode = "ok"
        self._next: deque[Mode] = deque()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._sequence = 0
        # What came in, for tests and the demo:
        self.requests = 0
        """Every request to the declarations route, failed ones included."""
        self.batches: list[str] = []
        """Batch ids accepted, each once, in order of first receipt."""
        self.resent_batches = 0
        """Requests whose batch id had been accepted before (answered ``duplicate``)."""
        self.declarations: dict[tuple[str, int], str] = {}
        """(ItemReference, Version) -> ItemId of every declaration stored."""
        self.duplicates = 0
        """Declarations of new batches whose (ItemReference, Version) was stored before."""
        self.received: dict[str, ReceivedBatch] = {}
        """Accepted batches by id."""
        self.items: dict[str, ReceivedDeclaration] = {}
        """The highest version of each ItemReference."""
        self.refusals: list[str] = []
        """The problem code of every 4xx answer, in order."""
        self.rules = RiskRules()
        """The risk engine's rules (:mod:`connector.peers.risk`)."""
        self.decide_as: dict[str, CustomsDecision] = {}
        """Decisions forced per ItemReference, over the rules (tests)."""
        self.decided: dict[str, CustomsDecision] = {}
        """The last decision sent per ItemReference."""
        self._facts: dict[str, dict[str, ItemFacts]] = {}
        self._responses = 0
        self._referrals = 0
        self.copies: dict[str, ReceivedCopy] = {}
        """Accepted agency copies by copy batch id."""
        self.referrals: dict[str, str] = {}
        """ReferralReference -> ItemReference of every referral sent."""
        self.answers: dict[tuple[str, str], ReceivedAnswer] = {}
        """Accepted referral answers by (OperatorId, AnswerId)."""
        self.answer_requests = 0
        """Requests carrying a referral answer, failed ones included."""
        self.feed: list[bytes] = []
        """The signed responses served by ``GET /v1/responses``; position N has cursor N+1."""
        self._answered: set[str] = set()  # ItemReferences to re-decide after an answer

    def __repr__(self) -> str:
        return f"MockCustoms({self.url if self._runner else 'stopped'}, mode={self._mode})"

    # --- control --------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """How every request is answered once the :meth:`fail_next` queue is empty."""
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._mode = _checked_mode(mode)

    def fail_next(self, n: int, mode: Mode) -> None:
        """Answer the next ``n`` requests in ``mode``, then go back to :attr:`mode`."""
        self._next.extend([_checked_mode(mode)] * n)

    def trust(self, certificate: x509.Certificate) -> None:
        """Accept batches signed with ``certificate`` (from now on)."""
        self._trusted[signing.fingerprint(certificate)] = certificate

    def distrust(self, certificate: x509.Certificate) -> None:
        """Refuse batches signed with ``certificate`` (from now on)."""
        self._trusted.pop(signing.fingerprint(certificate), None)

    @property
    def trusted(self) -> tuple[x509.Certificate, ...]:
        """The connector certificates accepted now."""
        return tuple(self._trusted.values())

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate receipts are signed with: pin it in the connector."""
        return self.signing_key.certificate

    def stats(self) -> dict[str, object]:
        """What it received so far: requests, batches, declarations stored, duplicates."""
        return {
            "requests": self.requests,
            "batches": len(self.batches),
            "declarations": len(self.declarations),
            "duplicates": self.duplicates,
        }

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``https://host:port`` (after :meth:`start`)."""
        return f"https://{self.host}:{self.port}"

    @property
    def declarations_url(self) -> str:
        """The URL declaration batches are POSTed to (``CustomsEndpoint.url``)."""
        return self.url + DECLARATIONS_PATH

    @property
    def answers_url(self) -> str:
        """The URL referral answers are POSTed to (a destination's ``answers_url``)."""
        return self.url + ANSWERS_PATH

    @property
    def feed_url(self) -> str:
        """The URL the connector polls for responses (a destination's ``responses_url``)."""
        return self.url + RESPONSES_PATH

    async def start(self) -> str:
        """Listen; returns the base URL (:attr:`url`) with the port actually bound."""
        if self._runner is not None:
            raise ConfigurationError("The mock Customs is running already.")
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(DECLARATIONS_PATH, self._declarations)
        app.router.add_post(ANSWERS_PATH, self._declarations)
        app.router.add_get(RESPONSES_PATH, self._responses_feed)
        runner, self.port = await start_site(app, self.host, self.port, self._ssl_context)
        self._runner = runner
        self._stopping = asyncio.Event()
        _log.info("mock_customs.started", url=self.url)
        return self.url

    async def stop(self) -> None:
        """Stop listening; slow requests in flight are cut off."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._stopping.set()
            await runner.cleanup()

    async def __aenter__(self) -> MockCustoms:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- decisions ------------------------------------------------------------------------

    @property
    def undecided(self) -> tuple[str, ...]:
        """The ItemReferences received and not yet decided, in order of receipt."""
        return tuple(reference for reference in self.items if reference not in self.decided)

    def decision_for(self, reference: str, code: CustomsDecision | None = None) -> Decision:
        """The decision on a received item: ``code``, else :attr:`decide_as`, else the rules.

        Raises:
            KeyError: the item was never received.
        """
        declaration = self.items[reference]
        batch = self.received[declaration.declaration_batch_id]
        reason = "decided by the test"
        if code is None and reference in self._answered:
            forced = self.decide_as.get(reference)
            code = forced if forced is not None and forced not in _INTERIM else None
            reason = "decided after the referral answer"
            if code is None:
                code = CustomsDecision.RELEASE
        if code is None:
            code = self.decide_as.get(reference)
        if code is None:
            code, reason = self.rules.decide(self._item_facts(batch)[reference])
        interim = code in _INTERIM
        return Decision(
            item_reference=reference,
            item_id=declaration.item_id,
            code=code,
            reason=reason,
            customs_reference=batch.customs_reference,
            required_action="answer the referral" if interim else None,
            referral_reference=self._next_referral() if interim else None,
        )

    def _next_referral(self) -> str:
        self._referrals += 1
        return f"RF-MOCK-{self._referrals:08d}"

    def _item_facts(self, batch: ReceivedBatch) -> dict[str, ItemFacts]:
        """The rules' facts of each item of a stored batch (parsed once)."""
        facts = self._facts.get(batch.declaration_batch_id)
        if facts is None:
            root = parse_xml(batch.signed_xml)
            facts = {
                (node.findtext(f"{{{_BATCH_NS}}}ItemReference") or ""): facts_of(
                    _child(node, "Item")
                )
                for node in _child(root, "Declarations")
            }
            self._facts[batch.declaration_batch_id] = facts
        return facts

    def customs_response(
        self,
        decisions: Sequence[Decision],
        *,
        response_id: str | None = None,
        issued_at: datetime | None = None,
        destination: str | None = None,
        key: signing.SigningKey | None = None,
    ) -> bytes:
        """A customs response carrying ``decisions``, signed (by default with the mock's key,
        now, to :attr:`destination`, with a new response id)."""
        self._responses += 1
        now = self.clock.now()
        response = CustomsResponse(
            response_id=response_id or f"RSP-MOCK-{now:%Y%m%d%H%M%S}-{self._responses:06d}",
            destination=destination or self.destination or "",
            declaration_batch_id=None,
            issued_at=issued_at or now.replace(microsecond=0),
            decisions=tuple(decisions),
        )
        return signing.sign(customs_response_xml(response), key or self.signing_key)

    def responses_url(self, connector_url: str, destination: str | None = None) -> str:
        """The connector's callback route for this destination."""
        return f"{connector_url.rstrip('/')}/v1/customs/{destination or self.destination}/responses"

    async def send_decisions(
        self,
        connector_url: str,
        decide: Mapping[str, CustomsDecision] | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST one signed response to the connector: a decision on each item received and
        not yet decided, or on exactly the items of ``decide`` (a later decision, e.g. RELEASE
        after HOLD). Returns the HTTP status and the JSON answer; on 200 the items count as
        decided (:attr:`decided`)."""
        references = list(decide) if decide is not None else list(self.undecided)
        if not references:
            return 204, {}
        decisions = [
            self.decision_for(reference, (decide or {}).get(reference)) for reference in references
        ]
        body = self.customs_response(decisions)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.responses_url(connector_url),
                data=body,
                headers={"Content-Type": "application/xml"},
                ssl=ssl_context if ssl_context is not None else True,
            ) as answer,
        ):
            status = answer.status
            payload: dict[str, Any] = await answer.json(content_type=None)
        if status == 200:
            self._sent(decisions)
        _log.info("mock_customs.decisions_sent", status=status, decisions=len(decisions))
        return status, payload

    def queue_decisions(self, decide: Mapping[str, CustomsDecision] | None = None) -> int:
        """Like :meth:`send_decisions`, but the signed response waits in the feed for the
        connector to poll it. Returns how many decisions it carries (0: nothing queued)."""
        references = list(decide) if decide is not None else list(self.undecided)
        if not references:
            return 0
        decisions = [
            self.decision_for(reference, (decide or {}).get(reference)) for reference in references
        ]
        self.feed.append(self.customs_response(decisions))
        self._sent(decisions)
        _log.info("mock_customs.decisions_queued", decisions=len(decisions), feed=len(self.feed))
        return len(decisions)

    def _sent(self, decisions: Sequence[Decision]) -> None:
        """The decisions reached the connector: they count as decided, referrals as open."""
        for decision in decisions:
            self.decided[decision.item_reference] = decision.code
            self._answered.discard(decision.item_reference)
            if decision.referral_reference is not None:
                self.referrals[decision.referral_reference] = decision.item_reference

    async def _responses_feed(self, request: web.Request) -> web.Response:
        """``GET /v1/responses?after=N``: the response at position N (0-based), or 204."""
        after = request.query.get("after", "0")
        position = int(after) if after.isdigit() else 0
        if position >= len(self.feed):
            return web.Response(status=204)
        response = web.Response(
            body=self.feed[position], content_type="application/xml", charset="utf-8"
        )
        response.headers["X-Next-Cursor"] = str(position + 1)
        return response

    # --- the route ------------------------------------------------------------------------

    async def _declarations(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        mode = self._next.popleft() if self._next else self._mode
        if mode == "down":
            return self._abort(request)
        if mode == "slow":
            try:
                await asyncio.wait_for(self._stopping.wait(), self.slow_s)
            except TimeoutError:
                pass
            else:
                return self._abort(request)
        if mode == "error":
            return _problem(500, "internal_error", "The mock Customs failed (mode error).")
        if mode == "throttle":
            response = _problem(429, "too_many_requests", "Slow down (mode throttle).")
            response.headers["Retry-After"] = str(self.retry_after_s)
            return response
        if mode == "refuse":
            return self._refuse(400, "declaration_refused", "Refused by the mock (mode refuse).")
        if request.content_type != "application/xml":
            return self._refuse(415, "unsupported_media_type", "Send application/xml.")
        body = await request.read()
        try:
            checked = await asyncio.to_thread(self._check, body)
        except ConnectorError as exc:
            return self._refuse(400, exc.code, exc.message)
        except _Refusal as exc:
            return self._refuse(400, exc.code, exc.detail)
        if isinstance(checked, ReceivedAnswer):
            return self._answer(checked)
        if isinstance(checked, _CheckedCopy):
            signed = signing.sign(self._record_copy(checked, body), self.signing_key)
            if mode == "bad_signature":
                signed = signed.replace(b"<Status>", b"<Status> ", 1)
            return web.Response(body=signed, content_type="application/xml", charset="utf-8")
        seen = self.received.get(checked.batch_id)
        if seen is not None and _keys(seen.declarations) != _keys(checked.declarations):
            return self._refuse(
                409,
                "batch_id_reused",
                f"Declaration batch {checked.batch_id} was received before with other "
                "declarations; a batch id names one batch only.",
            )
        receipt = self._record(checked, body, request)
        if mode == "wrong_batch":
            receipt = receipt.replace(
                f"<DeclarationBatchId>{checked.batch_id}<".encode(),
                f"<DeclarationBatchId>OTHER-{checked.batch_id[:58]}<".encode(),
                1,
            )
        signed = signing.sign(receipt, self.signing_key)
        if mode == "bad_signature":
            # Changed after signing: the reference digest no longer matches.
            signed = signed.replace(b"<Status>", b"<Status> ", 1)
        return web.Response(body=signed, content_type="application/xml", charset="utf-8")

    def _check(self, body: bytes) -> _Checked | _CheckedCopy | ReceivedAnswer:
        """Parse, verify and validate a batch (in a worker thread); raise ConnectorError."""
        root = parse_xml(body)
        if root.tag == MessageKind.AGENCY_COPY.root_tag:
            return self._check_copy(body, root)
        if root.tag == MessageKind.REFERRAL_ANSWER.root_tag:
            return self._check_answer(body, root)
        if root.tag != MessageKind.DECLARATION_BATCH.root_tag:
            raise InvalidMessage(f"Expected a declaration batch, got {root.tag}.")
        if not self._trusted:
            raise SignatureInvalid("The mock Customs trusts no connector certificate now.")
        document, signer = self._verified(body, root)
        schema = default_registry().lxml(MessageKind.DECLARATION_BATCH)
        if not schema.validate(document):
            error = next(iter(cast("Iterable[etree._LogEntry]", schema.error_log)), None)
            raise EnvelopeInvalid(
                f"The declaration batch does not conform to its schema: line {error.line}: "
                f"{error.message}"
                if error
                else "The declaration batch does not conform to its schema."
            )
        header = _child(document, "Header")
        batch_id = _text(header, "DeclarationBatchId")
        destination = _text(header, "Destination")
        if self.destination is not None and destination != self.destination:
            raise _Refusal(
                "destination_mismatch", f"This is Customs {self.destination}, not {destination}."
            )
        declarations = tuple(
            _declaration(node, batch_id) for node in _child(document, "Declarations")
        )
        return _Checked(batch_id, destination, declarations, signer)

    def _verified(self, body: bytes, root: etree._Element) -> tuple[etree._Element, str]:
        """The signed document of ``body`` (parsed as ``root``) and the fingerprint of the
        trusted certificate that verified it; raise ConnectorError when it does not verify."""
        trusted = dict(self._trusted)  # the event loop may trust or distrust meanwhile
        signer = _verify_in_place(root, trusted, datetime.now(UTC))
        if signer is not None:
            return root, signer
        # Not in the connector's usual form, or not valid: the full verification accepts
        # what the policy allows and otherwise raises the error that names the fault.
        result = signing.verify(body, signing.VerifyPolicy(tuple(trusted.values())))
        return result.signed_xml, result.fingerprint

    def _check_copy(self, body: bytes, root: etree._Element) -> _CheckedCopy:
        """Verify and validate an agency copy (in a worker thread); raise ConnectorError."""
        if not self._trusted:
            raise SignatureInvalid("The mock agency trusts no connector certificate now.")
        document, signer = self._verified(body, root)
        schema = default_registry().lxml(MessageKind.AGENCY_COPY)
        if not schema.validate(document):
            error = next(iter(cast("Iterable[etree._LogEntry]", schema.error_log)), None)
            raise EnvelopeInvalid(
                "The agency copy does not conform to its schema"
                + (f": line {error.line}: {error.message}" if error else ".")
            )
        header = document.find(f"{{{_COPY_NS}}}Header")
        assert header is not None  # the schema requires it
        agency = (header.findtext(f"{{{_COPY_NS}}}Agency") or "").strip()
        if self.destination is not None and agency != self.destination:
            raise _Refusal("destination_mismatch", f"This is {self.destination}, not {agency}.")
        items: dict[tuple[str, int], tuple[tuple[str, str], ...]] = {}
        for node in document.iterfind(f"{{{_COPY_NS}}}Items/{{{_COPY_NS}}}Item"):
            key = (
                (node.findtext(f"{{{_COPY_NS}}}ItemReference") or "").strip(),
                int(node.findtext(f"{{{_COPY_NS}}}Version") or "0"),
            )
            items[key] = tuple(
                (field.get("path", ""), (field.text or "").strip())
                for field in node.iterfind(f"{{{_COPY_NS}}}Fields/{{{_COPY_NS}}}Field")
            )
        copy_id = (header.findtext(f"{{{_COPY_NS}}}CopyBatchId") or "").strip()
        return _CheckedCopy(copy_id, agency, items, signer)

    def _check_answer(self, body: bytes, root: etree._Element) -> ReceivedAnswer:
        """Verify and read a referral answer (in a worker thread); raise ConnectorError."""
        self.answer_requests += 1
        if not self._trusted:
            raise SignatureInvalid("The mock Customs trusts no connector certificate now.")
        document, signer = self._verified(body, root)
        answer = referrals.parse_referral_answer(document)
        reference = self.referrals.get(answer.referral_reference)
        declaration = self.items.get(reference or "")
        if (
            reference is None
            or declaration is None
            or (declaration.operator_id, declaration.item_id)
            != (answer.operator_id, answer.item_id)
        ):
            raise _Refusal(
                "referral_unknown",
                f"No referral {answer.referral_reference} was sent on item {answer.item_id}.",
            )
        now = self.clock.now()
        return ReceivedAnswer(
            answer=answer,
            item_reference=reference,
            received_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
            signer_fingerprint=signer,
            signed_xml=body,
        )

    def _answer(self, checked: ReceivedAnswer) -> web.Response:
        """Store a checked answer (once per id), re-open its item, answer a signed receipt."""
        answer = checked.answer
        key = (answer.operator_id, answer.answer_id)
        seen = self.answers.get(key)
        if seen is None:
            seen = self.answers[key] = checked
            self.decided.pop(checked.item_reference, None)
            self._answered.add(checked.item_reference)
            _log.info("mock_customs.answer_accepted", answer_id=answer.answer_id)
        receipt = receipts.declaration_receipt_xml(
            answer.answer_id,
            self.destination or "",
            seen.received_at,
            1,
            duplicate=seen is not checked,
        )
        signed = signing.sign(receipt, self.signing_key)
        return web.Response(body=signed, content_type="application/xml", charset="utf-8")

    def _record_copy(self, checked: _CheckedCopy, body: bytes) -> bytes:
        """Store a checked copy (once per id) and return its unsigned receipt."""
        seen = self.copies.get(checked.copy_id)
        duplicate = seen is not None
        if seen is None:
            now = self.clock.now()
            seen = ReceivedCopy(
                copy_batch_id=checked.copy_id,
                agency=checked.agency,
                received_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
                items=checked.items,
                signer_fingerprint=checked.signer_fingerprint,
                signed_xml=body,
            )
            self.copies[checked.copy_id] = seen
            _log.info("mock_agency.copy_accepted", copy_batch_id=checked.copy_id)
        return receipts.declaration_receipt_xml(
            checked.copy_id,
            checked.agency,
            seen.received_at,
            len(checked.items),
            duplicate=duplicate,
        )

    def _record(self, checked: _Checked, body: bytes, request: web.Request) -> bytes:
        """Store a checked batch (synchronously: no other request interleaves) and return
        its unsigned receipt."""
        seen = self.received.get(checked.batch_id)
        count = len(checked.declarations)
        if seen is not None:
            self.resent_batches += 1
            _log.info("mock_customs.resent_batch", declaration_batch_id=checked.batch_id)
            return receipts.declaration_receipt_xml(
                checked.batch_id,
                checked.destination,
                seen.received_at,
                count,
                duplicate=True,
                customs_reference=seen.customs_reference,
            )
        for declaration in checked.declarations:
            key = (declaration.reference, declaration.version)
            if key in self.declarations:
                self.duplicates += 1
                continue
            self.declarations[key] = declaration.item_id
            latest = self.items.get(declaration.reference)
            if latest is None or latest.version < declaration.version:
                self.items[declaration.reference] = declaration
        self._sequence += 1
        now = self.clock.now()
        batch = ReceivedBatch(
            declaration_batch_id=checked.batch_id,
            destination=checked.destination,
            received_at=now.replace(microsecond=now.microsecond // 1000 * 1000),  # as sent
            customs_reference=f"MOCK-{self._sequence:08d}",
            declarations=checked.declarations,
            signer_fingerprint=checked.signer_fingerprint,
            client_fingerprint=_client_fingerprint(request),
            idempotency_key=request.headers.get("Idempotency-Key"),
            signed_xml=body,
        )
        self.received[batch.declaration_batch_id] = batch
        self.batches.append(batch.declaration_batch_id)
        _log.info("mock_customs.batch_accepted", declaration_batch_id=checked.batch_id, items=count)
        return receipts.declaration_receipt_xml(
            batch.declaration_batch_id,
            batch.destination,
            batch.received_at,
            count,
            customs_reference=batch.customs_reference,
        )

    def _refuse(self, status: int, code: str, detail: str) -> web.Response:
        self.refusals.append(code)
        _log.info("mock_customs.refused", status=status, code=code)
        return _problem(status, code, detail)

    @staticmethod
    def _abort(request: web.Request) -> web.StreamResponse:
        """Drop the connection without an answer (a crashed or unreachable Customs)."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp ends the handler quietly, sending nothing


class _Refusal(Exception):
    """A refusal of the mock's own, answered with ``code`` (not a connector error)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _keys(declarations: Iterable[ReceivedDeclaration]) -> set[tuple[str, int]]:
    return {(declaration.reference, declaration.version) for declaration in declarations}


def _ds(name: str) -> str:
    return f"{{{_DS}}}{name}"


def _shape(element: etree._Element, *names: str) -> bool:
    """``element``'s children are exactly the ``ds:`` elements ``names``, in order."""
    return len(element) == len(names) and all(
        child.tag == _ds(name) for child, name in zip(element, names, strict=True)
    )


def _bare(element: etree._Element, algorithm: str) -> bool:
    """``element`` names ``algorithm`` and has no children (no parameters)."""
    return element.get("Algorithm") == algorithm and len(element) == 0


def _verify_in_place(
    root: etree._Element, trusted: Mapping[str, x509.Certificate], now: datetime
) -> str | None:
    """Verify the connector's usual enveloped signature on the parsed tree itself.

    The full :func:`connector.core.signing.verify` copies a 1,000-item batch six times
    (serialize and re-parse) to be safe with any signature layout; this path reads it once
    and takes only the one layout :func:`connector.core.signing.sign` makes: one
    ``ds:Signature``, the last child of the root, with SignedInfo = exclusive C14N, ECDSA- or
    RSA-SHA256, and one Reference with ``URI=""``, the enveloped-signature and exclusive C14N
    transforms (no parameters) and a SHA-256 digest; KeyInfo carries exactly one certificate,
    which must be one of ``trusted`` (by fingerprint) and valid at ``now``. Only the pinned
    certificate's key checks the signature value over the canonical SignedInfo, and the digest
    is taken of the tree with the signature removed: the tree the caller goes on to read is
    the very tree whose canonical form was signed (:func:`~connector.core.xmlsafe.parse_xml`
    drops comments and refuses processing instructions, DTDs and entities, so the tree holds
    nothing that the canonical form leaves out).

    Returns the signer's fingerprint with the signature removed from ``root``; None when
    anything differs or fails (``root`` may then have lost its signature), and the caller
    runs the full verification on the original bytes.
    """
    signature = root[-1] if len(root) else None
    if signature is None or signature.tag != _ds("Signature"):
        return None
    if sum(1 for _ in root.iter(_ds("Signature"))) != 1:
        return None
    if not _shape(signature, "SignedInfo", "SignatureValue", "KeyInfo"):
        return None
    signed_info, signature_value, key_info = signature
    if not _shape(signed_info, "CanonicalizationMethod", "SignatureMethod", "Reference"):
        return None
    c14n, method, reference = signed_info
    if not _bare(c14n, _EXC_C14N) or len(method) or reference.get("URI") != "":
        return None
    if not _shape(reference, "Transforms", "DigestMethod", "DigestValue"):
        return None
    transforms, digest_method, digest_value = reference
    if not _shape(transforms, "Transform", "Transform") or not _bare(digest_method, _SHA256):
        return None
    if not (_bare(transforms[0], _ENVELOPED) and _bare(transforms[1], _EXC_C14N)):
        return None
    if not _shape(key_info, "X509Data") or not _shape(key_info[0], "X509Certificate"):
        return None
    try:
        der = base64.b64decode("".join((key_info[0][0].text or "").split()), validate=True)
        value = base64.b64decode("".join((signature_value.text or "").split()), validate=True)
        expected = base64.b64decode("".join((digest_value.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    signer = hashlib.sha256(der).hexdigest()
    certificate = trusted.get(signer)
    if certificate is None or not (
        certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    ):
        return None
    signed = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    key = certificate.public_key()
    try:
        if method.get("Algorithm") == _ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1) or len(value) != 64:
                return None
            der_signature = encode_dss_signature(
                int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big")
            )
            key.verify(der_signature, signed, ec.ECDSA(hashes.SHA256()))
        elif method.get("Algorithm") == _RSA_SHA256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            return None
    except cryptography.exceptions.InvalidSignature:
        return None
    # The enveloped-signature transform: the signature goes, text after it stays.
    if signature.tail is not None:
        before = signature.getprevious()
        if before is not None:
            before.tail = (before.tail or "") + signature.tail
        else:
            root.text = (root.text or "") + signature.tail
    root.remove(signature)
    content = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    if hashlib.sha256(content).digest() != expected:
        return None
    return signer


def _declaration(node: etree._Element, batch_id: str) -> ReceivedDeclaration:
    """The stored form of a schema-valid ``Declaration`` (each child element once)."""
    fields = {child.tag: child for child in node}
    item = fields[_B_ITEM]
    return ReceivedDeclaration(
        declaration_batch_id=batch_id,
        reference=(fields[_B_REFERENCE].text or "").strip(),
        version=int(fields[_B_VERSION].text or ""),
        operator_id=(fields[_B_OPERATOR].text or "").strip(),
        item_id=(item.findtext(_B_ITEM_ID) or "").strip(),
        destination_country=item.findtext(_B_DESTINATION),
    )


def _checked_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mock Customs mode {mode!r}; one of {sorted(MODES)}.")
    return mode  # type: ignore[return-value]


def _child(parent: etree._Element, name: str) -> etree._Element:
    child = parent.find(f"{{{_BATCH_NS}}}{name}")
    if child is None:  # pragma: no cover - the schema requires it
        raise InvalidMessage(f"No {name}.")
    return child


def _text(parent: etree._Element, name: str) -> str:
    return (_child(parent, name).text or "").strip()


def _client_fingerprint(request: web.Request) -> str | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return signing.fingerprint(x509.load_der_x509_certificate(der)) if der else None


def _problem(status: int, code: str, detail: str) -> web.Response:
    body = {
        "type": f"urn:ead-connector:problem:{code}",
        "title": detail,
        "status": status,
        "code": code,
        "detail": detail,
    }
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/problem+json",
        charset="utf-8",
    )
