"""The check configuration, and the per-run verdict cache both item readers share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from connector.core.checks.descriptions import DescriptionRules
from connector.core.checks.hs import Nomenclature
from connector.core.checks.outcome import CheckName, Problem
from connector.core.checks.parties import AddressScreening, NameMatch, Screening
from connector.core.checks.prohibited import ProhibitedRules

__all__ = ["CheckConfig", "VerdictMemo", "Verdicts"]


class VerdictMemo:
    """The verdicts judged so far on one configuration's data, by value.

    A verdict depends only on the value and the configuration's data (nomenclature, rules,
    list), never on the batch, so the runs on one configuration share them: a shop's
    catalogue lines and its own name are judged once, not once per batch. Bounded: past
    :attr:`limit` values it starts again empty. Threads may share it (a lost race judges a
    value twice, to the same verdict).
    """

    limit = 100_000

    def __init__(self) -> None:
        self.codes: dict[str, Problem | None] = {}
        self.vague: dict[str, Problem | None] = {}
        self.chapter: dict[tuple[str, str], Problem | None] = {}
        self.may_match: dict[tuple[str, str | None], bool] = {}
        self.articles: dict[tuple[str, str, str | None], tuple[Problem, ...]] = {}
        self.names: dict[str, NameMatch | None] = {}

    def __len__(self) -> int:
        return sum(map(len, self._tables()))

    def _tables(self) -> tuple[dict[Any, Any], ...]:
        return (self.codes, self.vague, self.chapter, self.may_match, self.articles, self.names)

    def trim(self) -> None:
        """Forget every verdict once more than :attr:`limit` are remembered."""
        if len(self) > self.limit:
            for table in self._tables():
                table.clear()


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Which checks run, with their data, parsed and indexed once."""

    enabled: frozenset[CheckName]
    nomenclature: Nomenclature
    descriptions: DescriptionRules
    prohibited: ProhibitedRules
    screening: Screening
    memo: VerdictMemo = field(default_factory=VerdictMemo, init=False, compare=False, repr=False)
    """Verdicts already judged on this configuration (a copy made with other data or
    settings, by ``replace``, starts a memo of its own)."""

    def with_enabled(self, enabled: Iterable[CheckName]) -> CheckConfig:
        return replace(self, enabled=frozenset(enabled))


class Verdicts:
    """The verdicts of one run, memoized by value in the configuration's
    :class:`VerdictMemo`.

    A batch repeats its HS codes, descriptions and names a lot (one shop, one catalogue), and
    so do the batches that follow it: each distinct value is judged once per configuration.
    """

    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        enabled = config.enabled
        self.hs = CheckName.HS in enabled
        self.descriptions = CheckName.DESCRIPTIONS in enabled
        self.prohibited = CheckName.PROHIBITED in enabled
        self.parties = CheckName.PARTIES in enabled
        settings = config.screening.settings
        self.screens_all_addresses = settings.address_screening is AddressScreening.ALL
        memo = config.memo
        memo.trim()
        self._codes = memo.codes
        self._vague = memo.vague
        self._chapter = memo.chapter
        self._may_match = memo.may_match
        self._articles = memo.articles
        self._names = memo.names

    def code(self, hs_code: str) -> Problem | None:
        if hs_code in self._codes:
            return self._codes[hs_code]
        problem = self._codes[hs_code] = self.config.nomenclature.judge(hs_code)
        return problem

    def vague(self, description: str) -> Problem | None:
        if description in self._vague:
            return self._vague[description]
        problem = self._vague[description] = self.config.descriptions.judge_vague(description)
        return problem

    def skips_vagueness(self, category: str) -> bool:
        return category in self.config.descriptions.skip_categories

    def chapter(self, description: str, hs_code: str) -> Problem | None:
        key = (description, hs_code)
        if key in self._chapter:
            return self._chapter[key]
        problem = self._chapter[key] = self.config.descriptions.judge_chapter(description, hs_code)
        return problem

    def may_be_article(self, description: str, hs_code: str | None) -> bool:
        key = (description, hs_code)
        found = self._may_match.get(key)
        if found is None:
            found = self._may_match[key] = self.config.prohibited.may_match(description, hs_code)
        return found

    def articles(
        self, destination: str, description: str, hs_code: str | None
    ) -> tuple[Problem, ...]:
        key = (destination, description, hs_code)
        found = self._articles.get(key)
        if found is None:
            found = self._articles[key] = self.config.prohibited.judge(
                destination, description, hs_code
            )
        return found

    def prepare_names(self, names: Iterable[str]) -> None:
        """Match the names not judged yet, all together (see ``match_names``)."""
        new = [name for name in dict.fromkeys(names) if name not in self._names]
        if new:
            matches = self.config.screening.parties.match_names(new)
            self._names.update(zip(new, matches, strict=True))

    def name(self, name: str) -> NameMatch | None:
        if name in self._names:
            return self._names[name]
        match = self._names[name] = self.config.screening.parties.match_name(name)
        return match
