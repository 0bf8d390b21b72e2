"""Accept an item batch: validate, check, store the accepted items, answer per item.

Shared by the push route and scheduled pulls. Nothing is acknowledged before the store has
committed it: the acknowledgement is built from what :meth:`ItemStore.record_intake`
returned.

With checks configured, the data-quality and compliance checks
(:mod:`connector.core.checks`) run on the items validation accepted, before storing: an
``error`` finding rejects its item with the finding's code, path and message, as a rule
error does; ``warning`` findings leave the item accepted and are stored with it. Every
finding is listed with its item in the acknowledgement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from connector.core import checks
from connector.core.checks import CheckConfig, Finding
from connector.core.inbound import ValidationReport, validate_item_batch
from connector.core.model import (
    AckItem,
    Acknowledgement,
    BatchHeader,
    IncomingItem,
    Intake,
    IntakeResult,
    IntakeStatus,
    ItemError,
)
from connector.core.references import digest, item_reference
from connector.core.rules import PathFinder
from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, parse_xml
from connector.errors import Forbidden
from connector.ports import Clock, ItemStore

__all__ = [
    "AcceptService",
    "BatchChecker",
    "CheckConfigProvider",
    "CheckedBatch",
    "Checks",
    "check_batch",
    "checks_of",
    "current_check_config",
    "incoming_items",
]


class CheckConfigProvider(Protocol):
    """Anything that hands out the check configuration in force, such as
    :class:`connector.checks_loader.CheckConfigSource` (which reloads its denied-party list)."""

    def current(self) -> CheckConfig: ...


#: The checks a stage runs: a configuration, a provider of the current one, a callable
#: returning it (asked once per batch, so a reload applies from the next batch), or None
#: for checks off.
Checks = CheckConfig | CheckConfigProvider | Callable[[], CheckConfig] | None


def current_check_config(source: Checks) -> CheckConfig | None:
    """The configuration ``source`` gives now (None: checks off)."""
    if source is None or isinstance(source, CheckConfig):
        return source
    if callable(source):
        return source()
    return source.current()


def checks_of(
    report: ValidationReport, source: Checks
) -> tuple[ValidationReport, dict[int, tuple[Finding, ...]]]:
    """``report`` with the items of error findings rejected, and every finding by item index."""
    config = current_check_config(source)
    if config is None:
        return report, {}
    findings = checks.check_report(report, config)
    if not findings:
        return report, {}
    return checks.merge_into_report(report, findings), _by_item(findings)


def _by_item(findings: Iterable[Finding]) -> dict[int, tuple[Finding, ...]]:
    grouped: dict[int, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.item_index, []).append(finding)
    return {index: tuple(found) for index, found in grouped.items()}


def incoming_items(
    report: ValidationReport, findings: dict[int, tuple[Finding, ...]] | None = None
) -> tuple[IncomingItem, ...]:
    """The accepted items of ``report`` as the store takes them (canonical bytes + digest),
    each with its findings from ``findings`` (by item index)."""
    by_index = findings or {}
    operator_id = report.header.operator_id
    result = []
    for accepted, element in report.accepted_elements():
        item_xml = etree.tostring(element, encoding="UTF-8")
        result.append(
            IncomingItem(
                item_index=accepted.item_index,
                item_id=accepted.item_id,
                destination_country=accepted.destination_country,
                digest=digest(item_xml),
                item_xml=item_xml,
                findings=by_index.get(accepted.item_index, ()),
                reference=item_reference(operator_id, accepted.item_id),
            )
        )
    return tuple(result)


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """An item batch validated and checked: what storing and acknowledging it need.

    Plain values only, no parsed tree: a batch may be checked in a worker process
    (:mod:`connector.adapters.intake_pool`) and come back pickled.
    """

    header: BatchHeader
    item_count: int
    errors: tuple[ItemError, ...]
    """Validation errors and error findings, by item index."""
    incoming: tuple[IncomingItem, ...]
    findings: dict[int, tuple[Finding, ...]]
    payload_digest: str
    """:func:`~connector.core.references.digest` of the batch's bytes (hashed where they
    are checked, off the event loop)."""


def check_batch(data: bytes, limits: ParseLimits, source: Checks) -> CheckedBatch:
    """Validate ``data`` as an item batch and run the checks ``source`` gives on it (CPU-bound:
    call it off the event loop)."""
    report = validate_item_batch(data, limits=limits)
    report, findings = checks_of(report, source)
    return CheckedBatch(
        report.header,
        report.item_count,
        report.errors,
        incoming_items(report, findings),
        findings,
        digest(data),
    )


#: Checks one batch's bytes off the event loop (:func:`check_batch` in a thread or a process).
BatchChecker = Callable[[bytes], Awaitable[CheckedBatch]]


def _item_id_paths(data: bytes, limits: ParseLimits, indexes: Iterable[int]) -> dict[int, str]:
    """The paths of the ``ItemId`` of the items at ``indexes`` (the rare conflicts): the batch
    is parsed again rather than its tree kept, or carried back from a worker process."""
    items = parse_xml(data, limits)[1]
    finder = PathFinder()
    return {index: finder(items[index][0]) for index in indexes}


@dataclass(frozen=True, slots=True)
class AcceptService:
    """Validates, checks and stores item batches for authenticated operators.

    ``checks`` (see :data:`Checks`) is asked for its configuration once per batch, inside
    the worker thread that validates it: a provider that reloads a file may do so there
    without holding up the event loop.
    """

    store: ItemStore
    clock: Clock
    limits: ParseLimits = DEFAULT_LIMITS
    checks: Checks = None
    on_stored: Callable[[], None] | None = None
    """Called after new items were committed (the service wakes its forwarder)."""
    checker: BatchChecker | None = None
    """Where batches are checked; None: :func:`check_batch` in a thread of this process,
    with ``limits`` and ``checks``."""

    async def accept_batch(
        self, operator_id: str, data: bytes, *, source: str = "push", cursor: str | None = None
    ) -> Acknowledgement:
        """Validate ``data`` as ``operator_id``'s batch, store it, and acknowledge each item.

        Raises an :class:`~connector.errors.InvalidMessage` when the batch is unusable as a
        whole and :class:`~connector.errors.Forbidden` when it names another operator.
        """
        received_at = self.clock.now()
        # CPU-heavy XML work runs off the event loop.
        if self.checker is None:
            checked = await asyncio.to_thread(check_batch, data, self.limits, self.checks)
        else:
            checked = await self.checker(data)
        header = checked.header
        if header.operator_id != operator_id:
            raise Forbidden(
                f"the batch names operator {header.operator_id!r}; "
                f"you are authenticated as {operator_id!r}"
            )
        intake = Intake(
            operator_id=operator_id,
            batch_id=header.batch_id,
            received_at=received_at,
            payload_digest=checked.payload_digest,
            item_count=checked.item_count,
            items=checked.incoming,
            rejected=checked.errors,
            source=source,
            cursor=cursor,
        )
        results = await self.store.record_intake(intake)
        if self.on_stored is not None and any(r.status is IntakeStatus.NEW for r in results):
            self.on_stored()
        conflicts = [r.item_index for r in results if r.status is IntakeStatus.CONFLICT]
        paths = (
            await asyncio.to_thread(_item_id_paths, data, self.limits, conflicts)
            if conflicts
            else {}
        )
        return _acknowledgement(checked, intake, results, paths)


def _acknowledgement(
    checked: CheckedBatch,
    intake: Intake,
    results: tuple[IntakeResult, ...],
    conflict_paths: dict[int, str],
) -> Acknowledgement:
    findings = checked.findings
    by_index: dict[int, AckItem] = {}
    errors_by_index: dict[int, list[ItemError]] = {}
    for error in checked.errors:
        errors_by_index.setdefault(error.item_index, []).append(error)
    for index, errors in errors_by_index.items():
        by_index[index] = AckItem(
            index, errors[0].item_id or "", False, None, tuple(errors), findings.get(index, ())
        )
    for result in results:
        if result.status is IntakeStatus.CONFLICT:
            error = ItemError(
                result.item_index,
                result.item_id,
                conflict_paths[result.item_index],
                "item_conflict",
                f"item {result.item_id} was already received with other content; "
                "send an amendment to change it",
            )
            by_index[result.item_index] = AckItem(
                result.item_index,
                result.item_id,
                False,
                None,
                (error,),
                findings.get(result.item_index, ()),
            )
        else:
            by_index[result.item_index] = AckItem(
                result.item_index,
                result.item_id,
                True,
                result.reference,
                findings=findings.get(result.item_index, ()),
            )
    return Acknowledgement(
        batch_id=intake.batch_id,
        operator_id=intake.operator_id,
        received_at=intake.received_at,
        items=tuple(by_index[index] for index in sorted(by_index)),
    )
