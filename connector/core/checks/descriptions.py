"""Goods description quality: too vague for Customs, or at odds with the declared HS chapter.

``description_vague``: the words that say what is sent (the words before "for", "to",
"from": what follows names a recipient or a purpose) are all generic terms ("gift",
"parts", "clothes") or filler ("various", "new", "men's", quantities and units). One real
word of type or material ("cotton", "T-shirt", "brake pads") makes the description
sufficient. The message carries the generic term's hint from configuration.

``description_contradicts_hs``: conservative on purpose. Only the head phrase counts (the
words before the first comma, parenthesis, "for", "with" or "in", quantities and units
dropped), and only a keyword that *ends* it, which in English is the head noun: "silicone
case for mobile phone" is a case, not a phone; "men's cotton T-shirt" is a T-shirt. The
finding is raised when that keyword belongs to chapters other than the declared one.

Both lists are data (``config/checks/descriptions.toml``), not code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from connector.core.checks.outcome import Problem, Severity

__all__ = ["DescriptionRules", "words"]

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_HEAD_END = re.compile(r"[,;:(\[/]| - ")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``: letters and digits, inner hyphens and apostrophes kept,
    a possessive "'s" dropped ("Men's" -> "men")."""
    found = _WORD.findall(text.casefold().translate(_QUOTES))
    return [word[:-2] if word.endswith("'s") else word for word in found]


@dataclass(frozen=True, slots=True)
class DescriptionRules:
    """The term lists of the description checks (see ``config/checks/descriptions.toml``)."""

    #: Generic term -> hint on what a sufficient description says instead.
    generic: Mapping[str, str]
    #: Words that add nothing about what the thing is (filler, gender, condition, occasion).
    filler: frozenset[str]
    #: Units and counting words, dropped with numbers.
    units: frozenset[str]
    #: Words after which a description names a recipient or purpose, not the goods.
    cut_words: frozenset[str]
    #: Words that end the head phrase (besides punctuation).
    head_cut_words: frozenset[str]
    #: Keyword (one or more words) -> HS chapters it belongs to.
    chapter_keywords: Mapping[str, frozenset[str]]
    #: Item categories whose lines are not judged for vagueness (e.g. DOCUMENTS).
    skip_categories: frozenset[str] = frozenset()
    vague_severity: Severity = Severity.WARNING
    contradiction_severity: Severity = Severity.WARNING
    default_hint: str = "say what the thing is, what it is made of and what it is for"
    _by_last_word: Mapping[str, tuple[tuple[tuple[str, ...], frozenset[str]], ...]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )

    def __post_init__(self) -> None:
        by_last: dict[str, list[tuple[tuple[str, ...], frozenset[str]]]] = {}
        for keyword, chapters in self.chapter_keywords.items():
            tokens = tuple(words(keyword))
            if tokens:
                by_last.setdefault(tokens[-1], []).append((tokens, chapters))
        ordered = {
            last: tuple(sorted(found, key=lambda pair: len(pair[0]), reverse=True))
            for last, found in by_last.items()
        }
        object.__setattr__(self, "_by_last_word", MappingProxyType(ordered))

    def _meaningful(self, tokens: Iterable[str]) -> list[str]:
        units = self.units
        return [t for t in tokens if t not in units and not any(c.isdigit() for c in t)]

    def judge_vague(self, description: str) -> Problem | None:
        tokens: list[str] = []
        for token in words(description):
            if token in self.cut_words and tokens:
                break
            tokens.append(token)
        tokens = self._meaningful(tokens)
        generic = [t for t in tokens if t in self.generic]
        if any(t not in self.generic and t not in self.filler for t in tokens):
            return None
        term = generic[0] if generic else None
        hint = self.generic[term] if term is not None else self.default_hint
        said = f"{term!r} is a generic term" if term else "it names no goods"
        return Problem(
            self.vague_severity,
            "description_vague",
            "Description",
            f"description {description!r} is too vague for Customs: {said}; {hint}",
            MappingProxyType({"description": description, "generic_term": term, "hint": hint}),
        )

    def head_words(self, description: str) -> list[str]:
        """The head phrase's words, quantities and units dropped."""
        head = _HEAD_END.split(description, maxsplit=1)[0]
        tokens: list[str] = []
        for token in words(head):
            if token in self.head_cut_words and tokens:
                break
            tokens.append(token)
        return self._meaningful(tokens)

    def judge_chapter(self, description: str, hs_code: str) -> Problem | None:
        head = self.head_words(description)
        if not head:
            return None
        for tokens, chapters in self._by_last_word.get(head[-1], ()):
            if tuple(head[-len(tokens) :]) != tokens:
                continue
            declared = hs_code[:2]
            if declared in chapters:
                return None
            keyword = " ".join(tokens)
            expected = ", ".join(sorted(chapters))
            return Problem(
                self.contradiction_severity,
                "description_contradicts_hs",
                "Description",
                f"description {description!r} names {keyword!r}, which belongs to HS chapter "
                f"{expected}, but the HS code {hs_code!r} is in chapter {declared}; check the "
                "code or describe the goods more exactly",
                MappingProxyType(
                    {
                        "description": description,
                        "keyword": keyword,
                        "keyword_chapters": tuple(sorted(chapters)),
                        "hs_code": hs_code,
                        "declared_chapter": declared,
                    }
                ),
            )
        return None

    def judge(self, description: str, hs_code: str | None, category: str) -> tuple[Problem, ...]:
        """Findings on one content line."""
        found: list[Problem] = []
        if category not in self.skip_categories:
            vague = self.judge_vague(description)
            if vague is not None:
                found.append(vague)
        if hs_code is not None:
            contradiction = self.judge_chapter(description, hs_code)
            if contradiction is not None:
                found.append(contradiction)
        return tuple(found)
