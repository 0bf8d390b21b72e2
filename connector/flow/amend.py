"""Amend or cancel undecided items (the amendment message, DESIGN.md section 2).

Each entry is judged on its own: a ``Replace`` must carry a valid item (schema and business
rules) at the item's current version + 1; a ``Cancel`` names the current version. Entries
for decided or unknown items are refused with a code; the others are applied, each in its
own transaction with its event.

With checks configured, a replacement item is checked as at intake
(:mod:`connector.flow.accept`): an ``error`` finding refuses the entry, warnings are stored
with the new version (replacing the findings of the previous one). Finding paths point into
the amendment (``/Amendment/Replace[2]/Item/Contents/Line[1]/HsCode``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import cast

from lxml import etree

from connector.core import checks, inbound, rules
from connector.core.checks import CheckConfig, Finding
from connector.core.checks.subject import view_of_item
from connector.core.model import IncomingItem, ItemError, finding_dict
from connector.core.outbound import renamespace
from connector.core.references import digest
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, parse_xml
from connector.errors import ConnectorError, EnvelopeInvalid, Forbidden, MessageKindUnknown
from connector.flow.accept import Checks, current_check_config
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
    findings: tuple[Finding, ...] = ()  # of the replacement item's checks

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "item_id": self.item_id,
            "action": self.action,
            "version": self.version,
            "status": "applied" if self.applied else "rejected",
            "errors": [{"code": e.code, "path": e.path, "message": e.message} for e in self.errors],
            "findings": [finding_dict(finding) for finding in self.findings],
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
    findings: dict[int, tuple[Finding, ...]] = field(default_factory=dict)


def _in_item_namespace(item: etree._Element) -> bytes:
    """The item re-namespaced as in an item batch, so every stored item reads alike."""
    return etree.tostring(renamespace(item, _ITEM_NS), encoding="UTF-8")


def _check(
    replaced: list[tuple[int, etree._Element]],
    rule_errors: dict[int, list[ItemError]],
    config: CheckConfig,
) -> dict[int, tuple[Finding, ...]]:
    """Findings on the replacement items without rule errors, by entry index."""
    views = [
        replace(
            view_of_item(index, inbound.postal_item(item)),
            path=rules.element_path(item),
        )
        for index, item in replaced
        if index not in rule_errors
    ]
    found: dict[int, list[Finding]] = {}
    for finding in checks.check_views(views, config):
        found.setdefault(finding.item_index, []).append(finding)
    return {index: tuple(findings) for index, findings in found.items()}


def _parse(data: bytes, limits: ParseLimits, source: Checks = None) -> _Parsed:
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
    config = current_check_config(source)
    findings = _check(replaced, rule_errors, config) if config and config.enabled else {}
    for index, found in findings.items():
        errors = [finding.as_item_error() for finding in found if finding.is_error]
        if errors:
            rule_errors[index] = errors
    return _Parsed(
        amendment_id=(root.findtext(f"{{{_NS}}}AmendmentId") or "").strip(),
        operator_id=(root.findtext(f"{{{_NS}}}OperatorId") or "").strip(),
        entries=entries,
        rule_errors={index: tuple(errors) for index, errors in rule_errors.items()},
        findings=findings,
    )


@dataclass(frozen=True, slots=True)
class AmendService:
    """Applies an operator's amendment message to its undecided items.

    ``checks`` as for :class:`~connector.flow.accept.AcceptService` (None: checks off).
    """

    store: ItemStore
    clock: Clock
    limits: ParseLimits = DEFAULT_LIMITS
    checks: Checks = None

    async def amend(self, operator_id: str, data: bytes) -> AmendmentResult:
        """Judge and apply each entry; raise only when the message is unusable as a whole."""
        parsed = await asyncio.to_thread(_parse, data, self.limits, self.checks)
        if parsed.operator_id != operator_id:
            raise Forbidden(
                f"the amendment names operator {parsed.operator_id!r}; "
                f"you are authenticated as {operator_id!r}"
            )
        results = []
        for index, element in parsed.entries:
            results.append(await self._apply(operator_id, index, element, parsed))
        return AmendmentResult(parsed.amendment_id, operator_id, tuple(results))

    async def _apply(
        self,
        operator_id: str,
        index: int,
        element: etree._Element,
        parsed: _Parsed,
    ) -> AmendmentEntry:
        version = int((element.findtext(f"{{{_NS}}}Version") or "0").strip())
        at = self.clock.now()
        findings: tuple[Finding, ...] = ()
        if element.tag == f"{{{_NS}}}Replace":
            item = element.find(f"{{{_NS}}}Item")
            assert item is not None  # schema-valid
            item_id = (item.findtext(f"{{{_NS}}}ItemId") or "").strip()
            findings = parsed.findings.get(index, ())
            if index in parsed.rule_errors:
                errors = parsed.rule_errors[index]
                return AmendmentEntry(index, item_id, "replace", version, False, errors, findings)
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
                findings=findings,
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
            return AmendmentEntry(index, item_id, kind, version, False, (error,), findings)
        return AmendmentEntry(index, item_id, kind, version, True, (), findings)
