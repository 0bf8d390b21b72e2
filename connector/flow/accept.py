"""Accept an item batch: validate, store the accepted items, answer per item.

Shared by the push route and scheduled pulls. Nothing is acknowledged before the store has
committed it: the acknowledgement is built from what :meth:`ItemStore.record_intake`
returned.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lxml import etree

from connector.core.inbound import ValidationReport, validate_item_batch
from connector.core.model import (
    AckItem,
    Acknowledgement,
    IncomingItem,
    Intake,
    IntakeResult,
    IntakeStatus,
    ItemError,
)
from connector.core.references import digest
from connector.core.rules import element_path
from connector.core.schemas import MessageKind
from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits
from connector.errors import Forbidden
from connector.ports import Clock, ItemStore

__all__ = ["AcceptService", "incoming_items"]


_ITEM_NS = MessageKind.ITEM_BATCH.namespace
_TRANSPORT = f"{{{_ITEM_NS}}}Transport"
_DESTINATION = f"{{{_ITEM_NS}}}DestinationCountry"


def incoming_items(report: ValidationReport) -> tuple[IncomingItem, ...]:
    """The accepted items of ``report`` as the store takes them (canonical bytes + digest)."""
    result = []
    for accepted, element in report.accepted_elements():
        item_xml = etree.tostring(element, encoding="UTF-8")
        # Schema-valid: Transport is last, or last but one before the optional Comments.
        transport = element[-1] if element[-1].tag == _TRANSPORT else element[-2]
        destination = transport.findtext(_DESTINATION) or ""
        result.append(
            IncomingItem(
                item_index=accepted.item_index,
                item_id=accepted.item_id,
                destination_country=destination.strip(),
                digest=digest(item_xml),
                item_xml=item_xml,
            )
        )
    return tuple(result)


def _validate(
    data: bytes, limits: ParseLimits
) -> tuple[ValidationReport, tuple[IncomingItem, ...]]:
    report = validate_item_batch(data, limits=limits)
    return report, incoming_items(report)


@dataclass(frozen=True, slots=True)
class AcceptService:
    """Validates and stores item batches for authenticated operators."""

    store: ItemStore
    clock: Clock
    limits: ParseLimits = DEFAULT_LIMITS

    async def accept_batch(
        self, operator_id: str, data: bytes, *, source: str = "push", cursor: str | None = None
    ) -> Acknowledgement:
        """Validate ``data`` as ``operator_id``'s batch, store it, and acknowledge each item.

        Raises an :class:`~connector.errors.InvalidMessage` when the batch is unusable as a
        whole and :class:`~connector.errors.Forbidden` when it names another operator.
        """
        received_at = self.clock.now()
        # CPU-heavy XML work runs off the event loop.
        report, incoming = await asyncio.to_thread(_validate, data, self.limits)
        header = report.header
        if header.operator_id != operator_id:
            raise Forbidden(
                f"the batch names operator {header.operator_id!r}; "
                f"you are authenticated as {operator_id!r}"
            )
        intake = Intake(
            operator_id=operator_id,
            batch_id=header.batch_id,
            received_at=received_at,
            payload_digest=digest(data),
            item_count=report.item_count,
            items=incoming,
            rejected=report.errors,
            source=source,
            cursor=cursor,
        )
        results = await self.store.record_intake(intake)
        return _acknowledgement(report, intake, results)


def _acknowledgement(
    report: ValidationReport, intake: Intake, results: tuple[IntakeResult, ...]
) -> Acknowledgement:
    by_index: dict[int, AckItem] = {}
    errors_by_index: dict[int, list[ItemError]] = {}
    for error in report.errors:
        errors_by_index.setdefault(error.item_index, []).append(error)
    for index, errors in errors_by_index.items():
        by_index[index] = AckItem(index, errors[0].item_id or "", False, None, tuple(errors))
    for result in results:
        if result.status is IntakeStatus.CONFLICT:
            element = report.item_element(result.item_index)
            error = ItemError(
                result.item_index,
                result.item_id,
                element_path(element[0]),
                "item_conflict",
                f"item {result.item_id} was already received with other content; "
                "send an amendment to change it",
            )
            by_index[result.item_index] = AckItem(
                result.item_index, result.item_id, False, None, (error,)
            )
        else:
            by_index[result.item_index] = AckItem(
                result.item_index, result.item_id, True, result.reference
            )
    return Acknowledgement(
        batch_id=intake.batch_id,
        operator_id=intake.operator_id,
        received_at=intake.received_at,
        items=tuple(by_index[index] for index in sorted(by_index)),
    )
