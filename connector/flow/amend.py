"""Amend or cancel undecided items (the amendment message, DESIGN.md section 2).

Each entry is judged on its own: a ``Replace`` must carry a valid item (schema and business
rules) at the item's current version + 1; a ``Cancel`` names the current version. Entries
for decided or unknown items are refused with a code; the others are applied, each in its
own transaction with its event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from lxml import etree

from connector.core import rules
from connector.core.model import IncomingItem, ItemError
from connector.core.outbound import renamespace
from connector.core.references import digest
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, parse_xml
from connector.errors import ConnectorError, EnvelopeInvalid, Forbidden, MessageKindUnknown
from connector.ports import Clock, ItemStore

__all__ = ["AmendService", "AmendmentEntry", "AmendmentResult"]

_NS = MessageKind.AMENDMENT.namespace
_ITEM_NS = MessageKind.ITEM_BATCH.namespace


@dataclass(frozen=True, slots=True)
class AmendmentEntry:
    """What became of one Replace or Cancel entry."""

    index: int
    item_id: str
    action: str  # "replace" or "cancel"
    version: int
    applied: bool
    errors: tuple[ItemError, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "item_id": self.item_id,
            "action": self.action,
            "version": self.version,
            "status": "applied" if self.applied else "rejected",
            "errors": [{"code": e.code, "path": e.path, "message": e.message} for e in self.errors],
        }


@dataclass(frozen=True, slots=True)
class AmendmentResult:
    amendment_id: str
    operator_id: str
    entries: tuple[AmendmentEntry, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "amendment_id": self.amendment_id,
            "operator_id": self.operator_id,
            "entries": [entry.as_dict() for entry in self.entries],
        }


@dataclass(frozen=True, slots=True)
class _Parsed:
    amendment_id: str
    operator_id: str
    entries: tuple[tuple[int, etree._Element], ...]
    rule_errors: dict[int, tuple[ItemError, ...]]


def _in_item_namespace(item: etree._Element) -> bytes:
    """The item re-namespaced as in an item batch, so every stored item reads alike."""
    return etree.tostring(renamespace(item, _ITEM_NS), encoding="UTF-8")


def _parse(data: bytes, limits: ParseLimits) -> _Parsed:
    root = parse_xml(data, limits)
    if root.tag != MessageKind.AMENDMENT.root_tag:
        kind = MessageKind.of_root(root.tag)
        raise MessageKindUnknown(f"expected an amendment, got a {kind.value} message")
    schema = default_registry().lxml(MessageKind.AMENDMENT)
    if not schema.validate(root):
        first = next(iter(cast("Iterable[etree._LogEntry]", schema.error_log)))
        raise EnvelopeInvalid(f"amendment does not conform to its schema: {first.message}")
    entries = tuple(
        (index, element)
        for index, element in enumerate(
            child for child in root if etree.QName(child).localname in ("Replace", "Cancel")
        )
    )
    replaced = [(index, entry[1]) for index, entry in entries if entry.tag == f"{{{_NS}}}Replace"]
    items = [item for _, item in replaced]
    rule_errors: dict[int, list[ItemError]] = {}
    for error in rules.check_items(root, items, frozenset()):
        rule_errors.setdefault(replaced[error.item_index][0], []).append(error)
    return _Parsed(
        amendment_id=(root.findtext(f"{{{_NS}}}AmendmentId") or "").strip(),
        operator_id=(root.findtext(f"{{{_NS}}}OperatorId") or "").strip(),
        entries=entries,
        rule_errors={index: tuple(errors) for index, errors in rule_errors.items()},
    )


@dataclass(frozen=True, slots=True)
class AmendService:
    """Applies an operator's amendment message to its undecided items."""

    store: ItemStore
    clock: Clock
    limits: ParseLimits = DEFAULT_LIMITS

    async def amend(self, operator_id: str, data: bytes) -> AmendmentResult:
        """Judge and apply each entry; raise only when the message is unusable as a whole."""
        parsed = await asyncio.to_thread(_parse, data, self.limits)
        if parsed.operator_id != operator_id:
            raise Forbidden(
                f"the amendment names operator {parsed.operator_id!r}; "
                f"you are authenticated as {operator_id!r}"
            )
        results = []
        for index, element in parsed.entries:
            results.append(await self._apply(operator_id, index, element, parsed.rule_errors))
        return AmendmentResult(parsed.amendment_id, operator_id, tuple(results))

    async def _apply(
        self,
        operator_id: str,
        index: int,
        element: etree._Element,
        rule_errors: dict[int, tuple[ItemError, ...]],
    ) -> AmendmentEntry:
        version = int((element.findtext(f"{{{_NS}}}Version") or "0").strip())
        at = self.clock.now()
        if element.tag == f"{{{_NS}}}Replace":
            item = element.find(f"{{{_NS}}}Item")
            assert item is not None  # schema-valid
            item_id = (item.findtext(f"{{{_NS}}}ItemId") or "").strip()
            if index in rule_errors:
                return AmendmentEntry(index, item_id, "replace", version, False, rule_errors[index])
            item_xml = _in_item_namespace(item)
            destination = item.find(f"{{{_NS}}}Transport/{{{_NS}}}DestinationCountry")
            incoming = IncomingItem(
                item_index=index,
                item_id=item_id,
                destination_country=(destination.text or "").strip()
                if destination is not None
                else "",
                digest=digest(item_xml),
                item_xml=item_xml,
            )
            action = self.store.amend_item(operator_id, incoming, version, at)
            kind = "replace"
        else:
            item_id = (element.findtext(f"{{{_NS}}}ItemId") or "").strip()
            reason = (element.findtext(f"{{{_NS}}}Reason") or "").strip()
            action = self.store.cancel_item(operator_id, item_id, version, reason, at)
            kind = "cancel"
        try:
            await action
        except ConnectorError as exc:
            if exc.http_status >= 500:
                raise
            path = rules.element_path(element)
            error = ItemError(index, item_id, path, exc.code, exc.message)
            return AmendmentEntry(index, item_id, kind, version, False, (error,))
        return AmendmentEntry(index, item_id, kind, version, True)
