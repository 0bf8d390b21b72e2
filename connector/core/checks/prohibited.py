"""Prohibited and restricted articles, per destination country.

A rule applies to the destinations it names (``*`` for all) minus those it excepts. A
content line matches a rule when its HS code starts with one of the rule's prefixes, or its
description contains one of the rule's keywords as whole words, unless it contains one of
the rule's ``unless`` words ("toy pistol", "water pistol"). The rule's action decides:
``reject`` gives an ``article_prohibited`` error (the item is refused at intake), ``review``
an ``article_restricted`` warning (accepted, marked for Customs' attention).

Rules are data (``config/checks/prohibited.toml``). Each destination's rules are gathered
and their keywords compiled into one pattern when the rules are built, not per item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Self

from connector.core.checks.outcome import Problem, Severity
from connector.errors import UnknownCode

__all__ = ["Action", "ArticleRule", "ProhibitedRules"]

ALL_DESTINATIONS = "*"


class Action(StrEnum):
    """What a matching rule does to the item."""

    #: Refuse the item at intake (``article_prohibited``, error).
    REJECT = "reject"
    #: Accept the item and mark it for Customs' attention (``article_restricted``, warning).
    REVIEW = "review"

    @classmethod
    def _missing_(cls, value: object) -> Self:
        raise UnknownCode(f"{value!r} is not a valid Action (allowed: reject, review)")


@dataclass(frozen=True, slots=True)
class ArticleRule:
    """One prohibited or restricted article."""

    id: str
    action: Action
    reason: str
    destinations: frozenset[str] = frozenset({ALL_DESTINATIONS})
    except_destinations: frozenset[str] = frozenset()
    hs_prefixes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()

    def applies_to(self, destination: str) -> bool:
        if destination in self.except_destinations:
            return False
        return ALL_DESTINATIONS in self.destinations or destination in self.destinations


def _pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = sorted({phrase.casefold() for phrase in phrases}, key=len, reverse=True)
    if not alternatives:
        return None
    body = "|".join(re.escape(phrase) for phrase in alternatives)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])")


@dataclass(frozen=True, slots=True)
class _Matcher:
    """The rules of one destination, keywords compiled."""

    rules: tuple[ArticleRule, ...]
    keywords: re.Pattern[str] | None
    rules_by_keyword: Mapping[str, tuple[int, ...]]
    unless: tuple[re.Pattern[str] | None, ...]

    @classmethod
    def build(cls, rules: tuple[ArticleRule, ...]) -> _Matcher:
        by_keyword: dict[str, list[int]] = {}
        for n, rule in enumerate(rules):
            for keyword in rule.keywords:
                by_keyword.setdefault(keyword.casefold(), []).append(n)
        return cls(
            rules,
            _pattern(by_keyword),
            MappingProxyType({k: tuple(v) for k, v in by_keyword.items()}),
            tuple(_pattern(rule.unless) for rule in rules),
        )

    def matches(self, description: str, hs_code: str | None) -> list[tuple[ArticleRule, str]]:
        """(rule, why) for each rule the line matches."""
        hits: dict[int, str] = {}
        if hs_code:
            for n, rule in enumerate(self.rules):
                if rule.hs_prefixes and hs_code.startswith(rule.hs_prefixes):
                    prefix = next(p for p in rule.hs_prefixes if hs_code.startswith(p))
                    hits[n] = f"HS code {hs_code} is under {prefix}"
        if self.keywords is not None:
            text = description.casefold()
            for found in self.keywords.finditer(text):
                for n in self.rules_by_keyword[found.group()]:
                    hits.setdefault(n, f"the description names {found.group()!r}")
            if hits:
                for n in list(hits):
                    unless = self.unless[n]
                    if unless is not None and unless.search(text):
                        del hits[n]
        return [(self.rules[n], why) for n, why in sorted(hits.items())]


@dataclass(frozen=True, slots=True)
class ProhibitedRules:
    """All article rules, gathered per destination once."""

    rules: tuple[ArticleRule, ...]
    _named: Mapping[str, _Matcher] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    _default: _Matcher | None = field(default=None, repr=False)
    _any_prefixes: tuple[str, ...] = field(default=(), repr=False)
    _any_keyword: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        named = {
            country
            for rule in self.rules
            for country in rule.destinations | rule.except_destinations
            if country != ALL_DESTINATIONS
        }
        matchers = {
            country: _Matcher.build(tuple(r for r in self.rules if r.applies_to(country)))
            for country in sorted(named)
        }
        everywhere = tuple(r for r in self.rules if ALL_DESTINATIONS in r.destinations)
        object.__setattr__(self, "_named", MappingProxyType(matchers))
        object.__setattr__(self, "_default", _Matcher.build(everywhere))
        prefixes = tuple(sorted({p for rule in self.rules for p in rule.hs_prefixes}))
        object.__setattr__(self, "_any_prefixes", prefixes)
        keywords = _pattern(k for rule in self.rules for k in rule.keywords)
        object.__setattr__(self, "_any_keyword", keywords)

    def may_match(self, description: str, hs_code: str | None) -> bool:
        """Whether some rule, for some destination, could match the line (a cheap prefilter)."""
        if hs_code and self._any_prefixes and hs_code.startswith(self._any_prefixes):
            return True
        pattern = self._any_keyword
        return pattern is not None and pattern.search(description.casefold()) is not None

    def _matcher(self, destination: str) -> _Matcher:
        matcher = self._named.get(destination, self._default)
        assert matcher is not None
        return matcher

    def judge(self, destination: str, description: str, hs_code: str | None) -> tuple[Problem, ...]:
        """Findings on one content line sent to ``destination``."""
        found = []
        for rule, why in self._matcher(destination).matches(description, hs_code):
            reject = rule.action is Action.REJECT
            found.append(
                Problem(
                    Severity.ERROR if reject else Severity.WARNING,
                    "article_prohibited" if reject else "article_restricted",
                    "HsCode" if why.startswith("HS code") else "Description",
                    f"{'prohibited' if reject else 'restricted'} article for {destination} "
                    f"(rule {rule.id}): {why}; {rule.reason}",
                    MappingProxyType(
                        {
                            "rule": rule.id,
                            "action": rule.action.value,
                            "destination": destination,
                            "reason": rule.reason,
                            "matched": why,
                            "description": description,
                            "hs_code": hs_code,
                        }
                    ),
                )
            )
        return tuple(found)
