"""The mock Customs risk engine: transparent rules that decide on one declared item.

The rules, first match wins (:meth:`RiskRules.decide`):

1. a sender or addressee name on :attr:`~RiskRules.watch_list` (case and spacing ignored)
   → ``DO_NOT_LOAD``;
2. a contents line in an HS chapter of :attr:`~RiskRules.hold_chapters` (default 93, arms and
   ammunition) → ``HOLD``;
3. a line whose value per unit is below :attr:`~RiskRules.low_value_ratio` (default 0.1) of
   the typical value of its HS code's longest listed prefix (:attr:`~RiskRules.typical_values`)
   → ``REQUEST_SCREENING``;
4. a line whose description says nothing but vague words (:attr:`~RiskRules.vague_words`:
   "gift", "parts", "goods"..., with filler such as "a", "some", "various") → ``REQUEST_INFO``;
5. otherwise ``RELEASE``.

``REJECTED`` is never chosen by the rules; tests ask for it per item
(``MockCustoms.decide_as``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

from lxml import etree

from connector.core.model import CustomsDecision

__all__ = ["ItemFacts", "RiskRules", "facts_of"]

_WORDS: Final = re.compile(r"[^\W\d_]+")
_FILLER: Final = frozenset(
    {"a", "an", "and", "assorted", "for", "item", "items", "misc", "of", "some", "stuff", "the"}
    | {"things", "various"}
)


@dataclass(frozen=True, slots=True)
class Line:
    """One contents line as the rules see it."""

    description: str
    quantity: int
    value: Decimal
    hs_code: str | None


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the rules read of a declared item."""

    names: tuple[str, ...]  # sender and addressee
    lines: tuple[Line, ...]


def _normal(name: str) -> str:
    return " ".join(name.casefold().split())


@dataclass(frozen=True, slots=True)
class RiskRules:
    """The configurable rules (see the module docstring)."""

    watch_list: frozenset[str] = frozenset({"Acme Arms Export Ltd", "Viktor Blacklistov"})
    hold_chapters: frozenset[str] = frozenset({"93"})
    vague_words: frozenset[str] = frozenset({"gift", "gifts", "parts", "goods", "sample"})
    typical_values: Mapping[str, Decimal] = field(
        default_factory=lambda: MappingProxyType(
            {"8517": Decimal(150), "7113": Decimal(200), "9102": Decimal(100)}
        )
    )
    """Typical value per unit by HS prefix (chapter, heading or subheading)."""
    low_value_ratio: Decimal = Decimal("0.1")

    def decide(self, facts: ItemFacts) -> tuple[CustomsDecision, str]:
        """The decision on an item and the reason, as Customs would write it."""
        watched = {_normal(name) for name in self.watch_list}
        for name in facts.names:
            if _normal(name) in watched:
                return CustomsDecision.DO_NOT_LOAD, f"party {name} is on the watch list"
        for line in facts.lines:
            if line.hs_code and line.hs_code[:2] in self.hold_chapters:
                return CustomsDecision.HOLD, f"HS {line.hs_code} is held for inspection"
        for line in facts.lines:
            typical = self._typical(line.hs_code)
            unit = line.value / max(line.quantity, 1)
            if typical is not None and unit < typical * self.low_value_ratio:
                return (
                    CustomsDecision.REQUEST_SCREENING,
                    f"declared {unit} per unit for HS {line.hs_code}, typically {typical}",
                )
        for line in facts.lines:
            words = {word.casefold() for word in _WORDS.findall(line.description)}
            if words - _FILLER and words <= self.vague_words | _FILLER:
                return CustomsDecision.REQUEST_INFO, f"description {line.description!r} is vague"
        return CustomsDecision.RELEASE, "no risk found"

    def _typical(self, hs_code: str | None) -> Decimal | None:
        if not hs_code:
            return None
        for length in range(len(hs_code), 1, -1):
            typical = self.typical_values.get(hs_code[:length])
            if typical is not None:
                return typical
        return None


def facts_of(item: etree._Element) -> ItemFacts:
    """The facts of an ``Item`` element (any namespace) of a declaration."""
    namespace = etree.QName(item).namespace
    tag = (lambda name: f"{{{namespace}}}{name}") if namespace else (lambda name: name)
    names = tuple(
        text
        for party in ("Sender", "Addressee")
        if (text := item.findtext(f"{tag(party)}/{tag('Name')}"))
    )
    lines = []
    for node in item.iterfind(f"{tag('Contents')}/{tag('Line')}"):
        try:
            value = Decimal(node.findtext(tag("Value")) or "0")
            quantity = int(node.findtext(tag("Quantity")) or "1")
        except (InvalidOperation, ValueError):
            value, quantity = Decimal(0), 1
        lines.append(
            Line(
                description=node.findtext(tag("Description")) or "",
                quantity=quantity,
                value=value,
                hs_code=node.findtext(tag("HsCode")),
            )
        )
    return ItemFacts(names, tuple(lines))
