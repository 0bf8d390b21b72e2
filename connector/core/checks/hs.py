"""HS nomenclature check: an item's HS code must exist at its 6-digit level.

The first six digits are the international subheading; digits beyond them are national
extensions (EU CN, US HTS) and are not checked here. A code whose first six digits are no
subheading of the edition in force (a chapter or heading padded with zeros such as
``610000``, a code of an older edition such as ``851712``, a typo) is an error, with the
nearest subheadings suggested: those of the same heading first, then of the same chapter,
each by numeric distance.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from connector.core.checks.outcome import Problem, Severity

__all__ = ["Nomenclature"]


@dataclass(frozen=True, slots=True)
class Nomenclature:
    """The HS chapters, headings and subheadings of one edition, with their descriptions."""

    edition: str
    descriptions: Mapping[str, str]  # code (2, 4 or 6 digits) -> description
    max_suggestions: int = 3
    _by_chapter: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _subheadings: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_chapter: dict[str, list[str]] = {}
        for code in self.descriptions:
            if not code.isdigit() or len(code) not in (2, 4, 6):
                raise ValueError(f"HS code {code!r} is not 2, 4 or 6 digits")
            if len(code) == 6:
                by_chapter.setdefault(code[:2], []).append(code)
        chapters = {chapter: tuple(sorted(codes)) for chapter, codes in by_chapter.items()}
        object.__setattr__(self, "_by_chapter", MappingProxyType(chapters))
        subheadings = frozenset(code for codes in chapters.values() for code in codes)
        object.__setattr__(self, "_subheadings", subheadings)

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[str, str]], edition: str, max_suggestions: int = 3
    ) -> Nomenclature:
        """From (code, description) rows; codes of 2, 4 and 6 digits."""
        return cls(edition, MappingProxyType(dict(rows)), max_suggestions)

    def __len__(self) -> int:
        return len(self._subheadings)

    def __contains__(self, code: object) -> bool:
        """Whether ``code`` (6 digits or more) starts with a known subheading."""
        return isinstance(code, str) and code[:6] in self._subheadings

    def nearest(self, code: str) -> tuple[str, ...]:
        """Up to ``max_suggestions`` subheadings near ``code``: same heading, then chapter."""
        six = code[:6]
        in_chapter = self._by_chapter.get(six[:2], ())
        if not in_chapter or not six.isdigit():
            return ()
        target = int(six)
        at = bisect_left(in_chapter, six)
        # The nearest codes of the chapter lie around the insertion point.
        window = in_chapter[max(0, at - 40) : at + 40]
        ranked = sorted(
            window,
            key=lambda c: (c[:4] != six[:4], abs(int(c) - target), c),
        )
        return tuple(ranked[: self.max_suggestions])

    def judge(self, code: str) -> Problem | None:
        """``hs_code_unknown`` when the first six digits of ``code`` are no subheading."""
        six = code[:6]
        if six in self._subheadings:
            return None
        chapter, heading = six[:2], six[:4]
        described = self.descriptions
        if heading in described:
            if six[4:] == "00":
                why = f"heading {heading} is divided into subheadings; give one of them"
            else:
                why = f"heading {heading} has no subheading {six}"
        elif chapter in described:
            if six[2:] == "0000":
                why = f"{six} is chapter {chapter} only; give the 6-digit subheading"
            else:
                why = f"chapter {chapter} has no heading {heading}"
        else:
            why = f"there is no chapter {chapter}"
        suggestions = self.nearest(six)
        shown = "; ".join(f"{c} ({_short(described[c])})" for c in suggestions)
        nearest = f"; nearest: {shown}" if shown else ""
        return Problem(
            Severity.ERROR,
            "hs_code_unknown",
            "HsCode",
            f"HS code {code!r} is not in the {self.edition} nomenclature: {why}{nearest}",
            MappingProxyType(
                {
                    "hs_code": code,
                    "subheading": six,
                    "edition": self.edition,
                    "suggestions": suggestions,
                }
            ),
        )


def _short(description: str, limit: int = 70) -> str:
    return description if len(description) <= limit else description[: limit - 1] + "…"
