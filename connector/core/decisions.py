"""Customs responses: verified XML into decisions, the checks the schema cannot make, a builder.

The decide stage (:mod:`connector.flow.decide`) reads a response like this::

    verified = signing.verify(body, policies[destination], at=now)   # pinned certificates
    response = decisions.parse_customs_response(verified.signed_xml)  # schema + per-decision rules
    decisions.check_destination(response, destination)                # whole response refused
    decisions.check_freshness(response, now, window)                  # whole response refused
    # response id uniqueness per destination: the store (ResponseReplayed)
    for index, decision in response.indexed_decisions():
        item = await store.item_by_reference(decision.item_reference)
        problem = decisions.check_item(index, decision, item, destination_countries)
        ...  # then lifecycle.decided(...) and notices.notice_for(...) in one transaction

Faults of one decision (schema, a missing referral reference, an item listed twice, an
unknown item) are :class:`DecisionProblem` values, not exceptions, so the good decisions of
the same response still apply. Faults of the response as a whole (envelope, destination,
freshness, replay) raise a :class:`~connector.errors.ConnectorError` and nothing applies.

Unknown decision codes are refused by the schema's enumeration (a per-decision problem), and
:class:`~connector.core.model.CustomsDecision` refuses them again: a code is never mapped.
A ReferralReference or ScreeningMethod on a final decision is kept as sent and not an error
(a final decision may name the referral it closes).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from lxml import etree

from connector.core.model import CustomsDecision, ScreeningMethod, StoredItem
from connector.core.outbound import xml_datetime
from connector.core.schemas import MessageKind, SchemaRegistry, default_registry
from connector.errors import (
    EnvelopeInvalid,
    InvalidMessage,
    MessageKindUnknown,
    ResponseMisdirected,
    ResponseStale,
)

__all__ = [
    "DECISION_DUPLICATE",
    "DEFAULT_FRESHNESS_WINDOW",
    "INTERIM",
    "ITEM_MISMATCH",
    "ITEM_OTHER_DESTINATION",
    "ITEM_UNKNOWN",
    "MAX_DECISIONS",
    "REFERRAL_REFERENCE_MISSING",
    "SCHEMA_INVALID",
    "CustomsResponse",
    "Decision",
    "DecisionProblem",
    "check_destination",
    "check_freshness",
    "check_item",
    "check_schema",
    "customs_response_xml",
    "explain_schema_error",
    "parse_customs_response",
    "read_datetime",
    "short_text",
]

_KIND: Final = MessageKind.CUSTOMS_RESPONSE
_NS: Final = _KIND.namespace

#: Most decisions one response may carry (the XSD's bound).
MAX_DECISIONS: Final = 10_000

#: A suggested default for how far a response's IssuedAt may be from the time it is received.
DEFAULT_FRESHNESS_WINDOW: Final = timedelta(minutes=10)

#: The interim decisions: a referral the operator answers; a later decision follows.
INTERIM: Final = frozenset({CustomsDecision.REQUEST_INFO, CustomsDecision.REQUEST_SCREENING})

#: Most characters of a schema ``ShortText``.
_SHORT_TEXT_MAX: Final = 350
_SPACES = re.compile(r"\s+")

# Stable codes of per-decision problems.
SCHEMA_INVALID: Final = "schema_invalid"
REFERRAL_REFERENCE_MISSING: Final = "referral_reference_missing"
DECISION_DUPLICATE: Final = "decision_duplicate"
ITEM_UNKNOWN: Final = "item_unknown"
ITEM_MISMATCH: Final = "item_mismatch"
ITEM_OTHER_DESTINATION: Final = "item_other_destination"


@dataclass(frozen=True, slots=True)
class Decision:
    """One Customs decision on one declared item, as Customs sent it."""

    item_reference: str
    """The connector's reference of the item (the declaration's ``ItemReference``)."""
    item_id: str
    code: CustomsDecision
    reason: str | None = None
    customs_reference: str | None = None
    """Customs' own reference, e.g. the MRN."""
    required_action: str | None = None
    referral_reference: str | None = None
    """With REQUEST_INFO and REQUEST_SCREENING: what the operator's answer must quote."""
    screening_method: ScreeningMethod | None = None
    """With REQUEST_SCREENING: the method Customs requires, if it requires one."""

    @property
    def interim(self) -> bool:
        """Whether this is a referral (REQUEST_INFO, REQUEST_SCREENING) awaiting an answer."""
        return self.code in INTERIM


@dataclass(frozen=True, slots=True)
class DecisionProblem:
    """Why one decision of a response is not applied; the others go on.

    ``index`` is the decision's 0-based position in the response; ``code`` is stable
    (``schema_invalid``, ``referral_reference_missing``, ``decision_duplicate``,
    ``item_unknown``, ``item_mismatch``, ``item_other_destination``, or a
    :class:`~connector.errors.ConnectorError` code such as ``illegal_transition``).
    """

    index: int
    item_reference: str | None
    item_id: str | None
    code: str
    message: str

    @property
    def path(self) -> str:
        return f"/CustomsResponse/Decisions/Decision[{self.index + 1}]"

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "item_reference": self.item_reference,
            "item_id": self.item_id,
            "path": self.path,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class CustomsResponse:
    """A Customs response: the usable decisions, and the problems of the others."""

    response_id: str
    destination: str
    declaration_batch_id: str | None
    issued_at: datetime
    """Timezone-aware."""
    decisions: tuple[Decision, ...]
    """The decisions without a problem, in document order."""
    problems: tuple[DecisionProblem, ...] = ()
    """One per refused decision, by index."""
    indexes: tuple[int, ...] = ()
    """The position in the document of each of ``decisions`` (empty: 0, 1, 2...)."""

    def indexed_decisions(self) -> Iterator[tuple[int, Decision]]:
        """Each usable decision with its 0-based position in the document."""
        if self.indexes:
            yield from zip(self.indexes, self.decisions, strict=True)
        else:
            yield from enumerate(self.decisions)


# --- reading ---------------------------------------------------------------------------------


def parse_customs_response(
    root: etree._Element, *, registry: SchemaRegistry | None = None
) -> CustomsResponse:
    """A verified customs response as a value: schema-valid decisions, problems for the rest.

    ``root`` is :attr:`VerifyResult.signed_xml <connector.core.signing.VerifyResult>` (the
    caller verifies first). The document is validated with lxml; the decisions lxml faults
    are explained with xmlschema and reported as problems.

    Raises:
        MessageKindUnknown: the root is not a ``CustomsResponse``.
        EnvelopeInvalid: a fault outside the decisions (ids, destination, issue time, list,
            more than :data:`MAX_DECISIONS`).
    """
    registry = registry or default_registry()
    if root.tag != _KIND.root_tag:
        kind = MessageKind.of_root(root.tag)
        raise MessageKindUnknown(f"expected a customs response, got a {kind.value} message")
    schema = registry.lxml(_KIND)
    faulty: dict[int, str] = {}
    decision_nodes = root.findall(f"{{{_NS}}}Decisions/{{{_NS}}}Decision")
    if len(decision_nodes) > MAX_DECISIONS:
        raise EnvelopeInvalid(
            f"customs response holds {len(decision_nodes):,} decisions; "
            f"at most {MAX_DECISIONS:,} are allowed"
        )
    if not schema.validate(root):
        faulty = _faulty_decisions(root, schema)
    envelope = _child_texts(root)
    issued_at = read_datetime(envelope.get("IssuedAt", ""), "IssuedAt")
    if issued_at.utcoffset() is None:
        raise EnvelopeInvalid("customs response IssuedAt must carry a time zone")
    fields = [_child_texts(node) for node in decision_nodes]
    references = [texts.get("ItemReference") for texts in fields]
    repeated = {ref for ref, count in Counter(references).items() if ref and count > 1}
    decisions: list[Decision] = []
    indexes: list[int] = []
    problems: list[DecisionProblem] = []
    for index, node in enumerate(decision_nodes):
        texts = fields[index]
        reference, item_id = references[index], texts.get("ItemId")
        if index in faulty:
            message = explain_schema_error(registry, _KIND, ("Decisions", "Decision"), node)
            problems.append(
                DecisionProblem(index, reference, item_id, SCHEMA_INVALID, message or faulty[index])
            )
            continue
        if reference in repeated:
            problems.append(
                DecisionProblem(
                    index,
                    reference,
                    item_id,
                    DECISION_DUPLICATE,
                    f"item {reference} has more than one decision in this response; "
                    "none of them is applied",
                )
            )
            continue
        decision = _decision(texts)
        if decision.interim and decision.referral_reference is None:
            problems.append(
                DecisionProblem(
                    index,
                    reference,
                    item_id,
                    REFERRAL_REFERENCE_MISSING,
                    f"a {decision.code.value} decision needs a ReferralReference",
                )
            )
            continue
        decisions.append(decision)
        indexes.append(index)
    return CustomsResponse(
        response_id=envelope.get("ResponseId", ""),
        destination=envelope.get("Destination", ""),
        declaration_batch_id=envelope.get("DeclarationBatchId"),
        issued_at=issued_at,
        decisions=tuple(decisions),
        problems=tuple(problems),
        indexes=tuple(indexes),
    )


def _faulty_decisions(root: etree._Element, schema: etree.XMLSchema) -> dict[int, str]:
    """The first lxml message of each faulty decision, by index; envelope faults raise."""
    decisions_tag, decision_tag = f"{{{_NS}}}Decisions", f"{{{_NS}}}Decision"
    positions: dict[etree._Element, int] = {}
    faulty: dict[int, str] = {}
    tree = root.getroottree()
    for entry in cast("Iterable[etree._LogEntry]", schema.error_log):
        found = tree.xpath(entry.path) if entry.path else []
        node = found[0] if isinstance(found, list) and found else None
        decision = _enclosing_decision(node, root, decisions_tag, decision_tag)
        if decision is None:
            raise EnvelopeInvalid(
                f"customs response does not conform to its schema: {entry.message}"
            )
        if not positions:
            decisions = decision.getparent()
            assert decisions is not None
            positions = {child: i for i, child in enumerate(decisions.iterchildren(decision_tag))}
        faulty.setdefault(positions[decision], entry.message)
    return faulty


def _enclosing_decision(
    node: object, root: etree._Element, decisions_tag: str, decision_tag: str
) -> etree._Element | None:
    current = node if isinstance(node, etree._Element) else None
    while current is not None:
        parent = current.getparent()
        if (
            current.tag == decision_tag
            and parent is not None
            and parent.tag == decisions_tag
            and parent.getparent() is root
        ):
            return current
        current = parent
    return None


def _decision(texts: dict[str, str]) -> Decision:
    """A schema-valid ``Decision`` element, from its :func:`_child_texts`."""
    method = texts.get("ScreeningMethod")
    return Decision(
        item_reference=texts.get("ItemReference", ""),
        item_id=texts.get("ItemId", ""),
        code=CustomsDecision(texts.get("Code", "")),
        reason=texts.get("Reason"),
        customs_reference=texts.get("CustomsReference"),
        required_action=texts.get("RequiredAction"),
        referral_reference=texts.get("ReferralReference"),
        screening_method=ScreeningMethod(method) if method is not None else None,
    )


def _child_texts(node: etree._Element) -> dict[str, str]:
    """The texts of ``node``'s child elements in its namespace, by local name, with white
    space collapsed as by the schema's ``xs:token``; the first child of a name counts, as
    for ``findtext``.

    One pass over the children instead of one path search per field (a response holds up
    to :data:`MAX_DECISIONS` decisions of up to nine fields).
    """
    prefix = node.tag[: node.tag.index("}") + 1] if node.tag.startswith("{") else ""
    texts: dict[str, str] = {}
    for child in node.iterchildren(tag=etree.Element):
        tag = child.tag
        if not tag.startswith(prefix) or "}" in tag[len(prefix) :]:
            continue
        name = tag[len(prefix) :]
        if name not in texts:
            text = child.text
            texts[name] = _SPACES.sub(" ", text).strip() if text else ""
    return texts


def read_datetime(text: str, what: str) -> datetime:
    """An ``xs:dateTime`` as a datetime (naive if the text has no time zone).

    Raises:
        EnvelopeInvalid: naming ``what``, if Python cannot represent it (e.g. ``24:00:00``).
    """
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise EnvelopeInvalid(f"{what} {text!r} is not a usable date and time") from exc


def check_schema(root: etree._Element, kind: MessageKind, registry: SchemaRegistry) -> None:
    """Validate a one-part message (lxml) and explain its first fault (xmlschema).

    Raises:
        EnvelopeInvalid: the document does not conform to the schema of ``kind``.
    """
    schema = registry.lxml(kind)
    if schema.validate(root):
        return
    entries = list(cast("Iterable[etree._LogEntry]", schema.error_log))
    message = explain_schema_error(registry, kind, (), root)
    if message is None:
        message = entries[0].message if entries else "invalid"
    raise EnvelopeInvalid(
        f"{kind.value} does not conform to its schema: {message}", kind=kind.value
    )


def explain_schema_error(
    registry: SchemaRegistry, kind: MessageKind, names: tuple[str, ...], node: etree._Element
) -> str | None:
    """xmlschema's reason for the first fault of ``node``, the element reached from the root
    of ``kind`` through the child declarations ``names``; None if xmlschema finds none."""
    decl: Any = registry.xmlschema(kind).elements[kind.root]
    for name in names:
        wanted = f"{{{kind.namespace}}}{name}"
        decl = next(c for c in decl.type.content.iter_elements() if c.name == wanted)
    for error in decl.iter_errors(node):
        where = error.elem if isinstance(error.elem, etree._Element) else node
        reason = str(error.reason or error.message)
        value = f" (found {error.obj!r})" if isinstance(error.obj, str) else ""
        return f"{etree.QName(where).localname}: {reason}{value}"
    return None


# --- whole-response checks -------------------------------------------------------------------


def check_destination(response: CustomsResponse, expected: str) -> None:
    """Refuse a response that names another destination than the one it came from.

    Raises:
        ResponseMisdirected: with ``expected`` and ``found`` in the context.
    """
    if response.destination != expected:
        raise ResponseMisdirected(
            f"response {response.response_id} names destination {response.destination!r}, "
            f"but came from {expected!r}",
            expected=expected,
            found=response.destination,
        )


def check_freshness(response: CustomsResponse, now: datetime, window: timedelta) -> None:
    """Refuse a response issued more than ``window`` before or after ``now`` (aware).

    Together with response id uniqueness per destination (kept by the store for at least
    ``window``), this stops replays of old signed responses.

    Raises:
        ResponseStale: with ``issued_at`` and ``window_s`` in the context.
    """
    if now.utcoffset() is None:
        raise ValueError("check_freshness needs a timezone-aware now")
    if abs(now - response.issued_at) > window:
        raise ResponseStale(
            f"response {response.response_id} was issued at {response.issued_at.isoformat()}, "
            f"more than {int(window.total_seconds())} s from now ({now.isoformat()})",
            issued_at=response.issued_at.isoformat(),
            window_s=int(window.total_seconds()),
        )


def check_item(
    index: int,
    decision: Decision,
    item: StoredItem | None,
    destination_countries: Collection[str],
) -> DecisionProblem | None:
    """A problem if ``decision`` does not fit the stored ``item`` it names, else None.

    ``item`` is what the store holds under ``decision.item_reference`` (None if nothing);
    ``destination_countries`` are the countries the responding destination covers. The
    decision's lifecycle legality is :func:`connector.core.lifecycle.decided`'s business.
    """
    reference, item_id = decision.item_reference, decision.item_id
    if item is None:
        return DecisionProblem(
            index, reference, item_id, ITEM_UNKNOWN, f"no item has the reference {reference}"
        )
    if item.item_id != item_id:
        return DecisionProblem(
            index,
            reference,
            item_id,
            ITEM_MISMATCH,
            f"item {reference} is {item.item_id}, not {item_id}",
        )
    if item.destination_country not in destination_countries:
        return DecisionProblem(
            index,
            reference,
            item_id,
            ITEM_OTHER_DESTINATION,
            f"item {reference} goes to {item.destination_country}, "
            "which this destination does not cover",
        )
    return None


# --- writing ---------------------------------------------------------------------------------


def short_text(text: str | None) -> str | None:
    """``text`` as a schema ``ShortText``: white space collapsed, at most 350 characters;
    None when nothing is left."""
    if text is None:
        return None
    collapsed = _SPACES.sub(" ", text).strip()[:_SHORT_TEXT_MAX].rstrip()
    return collapsed or None


def customs_response_xml(response: CustomsResponse) -> bytes:
    """The unsigned customs response (customs-response-1.xsd) carrying ``response.decisions``.

    ``response.problems`` are not written. Texts are collapsed and cut to the schema's 350
    characters. Sign the result with :func:`connector.core.signing.sign`.

    Raises:
        InvalidMessage: no decisions, more than :data:`MAX_DECISIONS`, or a naive issue time.
    """
    if not 1 <= len(response.decisions) <= MAX_DECISIONS:
        raise InvalidMessage(
            f"a customs response holds 1 to {MAX_DECISIONS:,} decisions, "
            f"not {len(response.decisions):,}"
        )
    if response.issued_at.utcoffset() is None:
        raise InvalidMessage("a customs response's issue time must be timezone-aware")
    root = etree.Element(f"{{{_NS}}}CustomsResponse", nsmap={None: _NS})  # type: ignore[dict-item]
    _add(root, "ResponseId", response.response_id)
    _add(root, "Destination", response.destination)
    _add(root, "DeclarationBatchId", response.declaration_batch_id)
    _add(root, "IssuedAt", xml_datetime(response.issued_at))
    decisions = _add(root, "Decisions", "")
    for decision in response.decisions:
        node = _add(decisions, "Decision", "")
        _add(node, "ItemReference", decision.item_reference)
        _add(node, "ItemId", decision.item_id)
        _add(node, "Code", decision.code.value)
        _add(node, "Reason", short_text(decision.reason))
        _add(node, "CustomsReference", decision.customs_reference)
        _add(node, "RequiredAction", short_text(decision.required_action))
        _add(node, "ReferralReference", decision.referral_reference)
        if decision.screening_method is not None:
            _add(node, "ScreeningMethod", decision.screening_method.value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _add(parent: etree._Element, name: str, text: str | None) -> etree._Element:
    """Append a child in the parent's namespace; a None text appends nothing (an optional
    element left out) and returns a detached element."""
    node = etree.Element(f"{{{etree.QName(parent).namespace}}}{name}")
    if text is not None:
        node.text = text or None
        parent.append(node)
    return node
