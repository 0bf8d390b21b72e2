"""What a check concludes: findings with a severity, a stable code, a path and an explanation.

An ``error`` finding rejects its item in the acknowledgement, as a business-rule error does; a
``warning`` leaves the item accepted and travels with it to Customs (and to ``items show``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Self

from connector.core.inbound import ValidationReport
from connector.core.model import AcceptedItem, ItemError
from connector.errors import UnknownCode

__all__ = [
    "FINDING_CODES",
    "CheckName",
    "DetailValue",
    "Finding",
    "Problem",
    "Severity",
    "merge_into_report",
    "parse_check_names",
]

#: Every code a check can report, grouped by check.
FINDING_CODES: tuple[str, ...] = (
    "hs_code_unknown",
    "description_vague",
    "description_contradicts_hs",
    "article_prohibited",
    "article_restricted",
    "party_denied",
    "party_possible_match",
    "party_address_match",
)

#: A value in a finding's explanation (JSON-ready).
DetailValue = str | int | float | bool | None | tuple[str, ...]


class _ClosedEnum(StrEnum):
    @classmethod
    def _missing_(cls, value: object) -> Self:
        allowed = ", ".join(member.value for member in cls)
        raise UnknownCode(f"{value!r} is not a valid {cls.__name__} (allowed: {allowed})")


class Severity(_ClosedEnum):
    """How a finding weighs on its item."""

    #: The item is rejected in the acknowledgement.
    ERROR = "error"
    #: The item is accepted; the finding is forwarded to Customs with it.
    WARNING = "warning"


class CheckName(_ClosedEnum):
    """The checks that can be switched on (``--checks hs,parties`` or ``all``)."""

    #: HS codes exist in the nomenclature at 6 digits.
    HS = "hs"
    #: Goods descriptions are specific and agree with the HS chapter.
    DESCRIPTIONS = "descriptions"
    #: Prohibited and restricted articles per destination country.
    PROHIBITED = "prohibited"
    #: Sender and addressee screened against the denied-party list.
    PARTIES = "parties"


def parse_check_names(text: str) -> frozenset[CheckName]:
    """``"all"``, ``"none"`` or a comma-separated list of check names."""
    words = [word.strip().lower() for word in text.split(",") if word.strip()]
    if words == ["all"]:
        return frozenset(CheckName)
    if words == ["none"] or not words:
        return frozenset()
    return frozenset(CheckName(word) for word in words)


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding before it is tied to an item: what is wrong with one value.

    ``path`` is the path below the line or item (``"HsCode"``, ``"Sender/Name"``).
    """

    severity: Severity
    code: str
    path: str
    message: str
    detail: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's conclusion about one item.

    ``path`` is XPath-like with 1-based positions, always given for ``Item`` and ``Line``
    (``/ItemBatch/Items/Item[3]/Contents/Line[1]/HsCode``); ``detail`` explains the finding
    (matched list entry and score, suggested codes, matched keyword) and is JSON-ready.
    """

    item_index: int
    item_id: str
    severity: Severity
    code: str
    path: str
    message: str
    detail: Mapping[str, DetailValue] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __reduce__(self) -> tuple[Callable[..., Finding], tuple[object, ...]]:
        # A mapping proxy cannot be pickled: the detail travels as a dict (findings come
        # back from the intake's worker processes).
        fields = (self.item_index, self.item_id, self.severity, self.code, self.path)
        return _finding, (*fields, self.message, dict(self.detail))

    def as_dict(self) -> dict[str, object]:
        return {
            "item_index": self.item_index,
            "item_id": self.item_id,
            "severity": self.severity.value,
            "code": self.code,
            "path": self.path,
            "message": self.message,
            "detail": {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.detail.items()
            },
        }

    def as_item_error(self) -> ItemError:
        """The finding as an acknowledgement error (for ``error`` findings)."""
        return ItemError(self.item_index, self.item_id, self.path, self.code, self.message)


def merge_into_report(report: ValidationReport, findings: Iterable[Finding]) -> ValidationReport:
    """``report`` with the ``error`` findings added as item errors and their items rejected.

    Warnings do not change the report: the caller forwards them with the accepted items.
    """
    errors = [finding.as_item_error() for finding in findings if finding.is_error]
    if not errors:
        return report
    rejected = {error.item_index for error in errors}
    accepted: tuple[AcceptedItem, ...] = tuple(
        item for item in report.accepted if item.item_index not in rejected
    )
    merged = sorted((*report.errors, *errors), key=lambda error: error.item_index)
    return replace(report, accepted=accepted, errors=tuple(merged))


def _finding(
    item_index: int,
    item_id: str,
    severity: Severity,
    code: str,
    path: str,
    message: str,
    detail: dict[str, DetailValue],
) -> Finding:
    """A :class:`Finding` from its pickled fields, the detail read-only again."""
    return Finding(item_index, item_id, severity, code, path, message, MappingProxyType(detail))
