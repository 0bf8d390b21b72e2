"""Denied-party screening: sender and addressee against a sanctions list.

Every name and alias of every list entry is normalized once (:mod:`.names`) and indexed by
blocking keys (the first consonants of each token, and of the whole name), so one party is
scored only against list names sharing two token keys with it (one, for a one-word name) or
its whole-name key, never against the whole list. When that still leaves many (large real
lists), a C-speed prefilter (rapidfuzz ``token_set_ratio`` on consonant skeletons) keeps the
most promising candidates.

- ``party_denied`` (error): a name scores at least ``reject_threshold``;
- ``party_possible_match`` (warning): a name scores at least ``review_threshold``;
- ``party_address_match`` (warning): no name match, but the address matches a listed address
  (every word of it, house number included) at least at ``address_threshold``.

Each finding names the list entry (id, name, the alias that matched, dataset), the score
and the threshold it passed, the normalized forms compared and the token pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Self

from rapidfuzz import fuzz, process

from connector.core.checks.names import (
    NameForm,
    NameNormalizer,
    NameScore,
    align,
    compact_key,
    form_of,
    score_names,
    to_latin,
    token_keys,
)
from connector.core.checks.outcome import DetailValue, Problem, Severity
from connector.core.checks.subject import PartyView
from connector.errors import UnknownCode

__all__ = [
    "AddressMatch",
    "AddressScreening",
    "DeniedParty",
    "DeniedPartyList",
    "NameMatch",
    "Screening",
    "ScreeningSettings",
]

_NUMBER = re.compile(r"\d+")


def _numbers(text: str) -> set[str]:
    """The numbers in ``text`` (any script's decimal digits, as ASCII)."""
    return {run if run.isascii() else to_latin(run) for run in _NUMBER.findall(text)}


@dataclass(frozen=True, slots=True)
class DeniedParty:
    """One list entry (the fields of the OpenSanctions "simple" CSV that screening uses)."""

    id: str
    schema: str
    name: str
    aliases: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()  # ISO 3166-1 alpha-2, upper case
    addresses: tuple[str, ...] = ()
    sanctions: str = ""
    dataset: str = ""

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class AddressScreening(StrEnum):
    """How party addresses are compared with the listed addresses."""

    #: Not at all.
    OFF = "off"
    #: Only for a party whose name matched: the address score is part of the explanation.
    EVIDENCE = "evidence"
    #: Also every other party (``party_address_match``); costs a pass over all address lines.
    ALL = "all"

    @classmethod
    def _missing_(cls, value: object) -> Self:
        allowed = ", ".join(member.value for member in cls)
        raise UnknownCode(f"{value!r} is not a valid AddressScreening (allowed: {allowed})")


@dataclass(frozen=True, slots=True)
class ScreeningSettings:
    """Thresholds (scores 0-100) and limits of screening."""

    #: A name scoring at least this rejects the item (``party_denied``).
    reject_threshold: float = 95.0
    #: A name scoring at least this is flagged for review (``party_possible_match``).
    review_threshold: float = 85.0
    #: Least similarity for two tokens to count as the same word.
    token_threshold: float = 80.0
    #: An address scoring at least this is flagged (``party_address_match``).
    address_threshold: float = 90.0
    #: More candidates than this for one name go through the prefilter first.
    max_candidates: int = 64
    #: How addresses are screened (see :class:`AddressScreening`).
    address_screening: AddressScreening = AddressScreening.EVIDENCE

    def __post_init__(self) -> None:
        for name in ("reject_threshold", "review_threshold", "token_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 100:
                raise ValueError(f"{name} must be in (0, 100], got {value}")
        if self.review_threshold > self.reject_threshold:
            raise ValueError("review_threshold must not be above reject_threshold")
        if not 0 < self.address_threshold <= 100:
            raise ValueError(f"address_threshold must be in (0, 100], got {self.address_threshold}")


@dataclass(frozen=True, slots=True)
class NameMatch:
    """The best list name for one party name."""

    entry: DeniedParty
    listed_name: str  # the name or alias that matched
    query: NameForm
    listed: NameForm
    result: NameScore
    others: tuple[str, ...]  # ids of further entries above the review threshold


@dataclass(frozen=True, slots=True)
class AddressMatch:
    entry: DeniedParty
    listed_address: str
    score: float


@dataclass(frozen=True, slots=True)
class _Indexed:
    form: NameForm
    entry: DeniedParty
    listed: str
    probe: str  # consonant skeletons, for the prefilter


class DeniedPartyList:
    """A denied-party list, normalized and indexed once; immutable after construction."""

    def __init__(
        self,
        entries: Iterable[DeniedParty],
        normalizer: NameNormalizer,
        settings: ScreeningSettings,
        *,
        address_normalizer: NameNormalizer | None = None,
        source: str = "",
    ) -> None:
        self.entries = tuple(entries)
        self.settings = settings
        self.source = source
        self._normalizer = normalizer
        self._address_normalizer = address_normalizer or NameNormalizer()
        names: list[_Indexed] = []
        index: dict[str, list[int]] = {}
        compact: dict[str, list[int]] = {}
        need: list[int] = []
        addresses: list[tuple[NameForm, DeniedParty, str, frozenset[str]]] = []
        by_number: dict[str, list[int]] = {}
        listed_names = [(entry, listed) for entry in self.entries for listed in entry.all_names]
        forms = normalizer.normalize_many([listed for _, listed in listed_names])
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for (entry, listed), form in zip(listed_names, forms, strict=True):
            if not form.tokens or (entry.id, form.tokens) in seen:
                continue  # no words, or the same words as another name of the entry
            seen.add((entry.id, form.tokens))
            keys, whole = form.blocking_keys()
            for key in keys:
                index.setdefault(key, []).append(len(names))
            compact.setdefault(whole, []).append(len(names))
            need.append(min(2, len(keys)) or 1)
            names.append(_Indexed(form, entry, listed, " ".join(form.skeletons)))
        for entry in self.entries:
            for address in entry.addresses:
                form = self._address_normalizer.normalize(address)
                numbers = frozenset(_numbers(address))
                if len(form.tokens) < 3 or not numbers:
                    continue  # a city or country alone is no address to match on
                # Filed under its longest number (a postcode rather than a house number):
                # a full match needs every number of the listed address anyway.
                key = max(sorted(numbers), key=len)
                by_number.setdefault(key, []).append(len(addresses))
                addresses.append((form, entry, address, numbers))
        self._names = tuple(names)
        self._index = MappingProxyType({key: tuple(found) for key, found in index.items()})
        self._compact = MappingProxyType({key: tuple(found) for key, found in compact.items()})
        self._need = tuple(need)
        self._addresses = tuple(addresses)
        self._by_number = MappingProxyType({k: tuple(v) for k, v in by_number.items()})
        filed = sorted(by_number, key=len, reverse=True)
        self._key_numbers = frozenset(filed)
        # One search per address line: a key number, or a digit of another script (rare,
        # then the numbers are transliterated and compared).
        self._address_keys = (
            re.compile(r"(?<![0-9])(?:" + "|".join(filed) + r")(?![0-9])|(?![0-9])\d")
            if filed
            else None
        )

    def address_may_match(self, text: str) -> bool:
        """Whether ``text`` (one line of an address) holds a number some listed address is
        filed under: a cheap test before :meth:`match_address` on the whole address."""
        pattern = self._address_keys
        found = pattern.search(text) if pattern is not None else None
        if found is None:
            return False
        if found.group().isascii():
            return True
        return not self._key_numbers.isdisjoint(_numbers(text))

    def __len__(self) -> int:
        return len(self.entries)

    def with_settings(self, settings: ScreeningSettings) -> DeniedPartyList:
        """The same list under other settings."""
        return DeniedPartyList(
            self.entries,
            self._normalizer,
            settings,
            address_normalizer=self._address_normalizer,
            source=self.source,
        )

    @property
    def has_addresses(self) -> bool:
        return bool(self._addresses)

    @property
    def name_count(self) -> int:
        """Names and aliases indexed."""
        return len(self._names)

    def _candidate_ids(self, tokens: Sequence[str], skeletons: Sequence[str]) -> set[int]:
        """Listed names sharing two token keys with the name (one, if they have only one),
        or its compact key: a name can only score high against these."""
        index, need = self._index, self._need
        shared: dict[int, int] = {}
        for key in token_keys(tokens, skeletons):
            for n in index.get(key, ()):
                shared[n] = shared.get(n, 0) + 1
        found = {n for n, count in shared.items() if count >= need[n]}
        found.update(self._compact.get(compact_key(tokens, skeletons), ()))
        return found

    def _candidates(self, query: NameForm) -> list[int]:
        found = self._candidate_ids(query.tokens, query.skeletons)
        limit = self.settings.max_candidates
        if len(found) <= limit:
            return sorted(found)
        ordered = sorted(found)
        choices = [self._names[n].probe for n in ordered]
        best = process.extract(
            " ".join(query.skeletons), choices, scorer=fuzz.token_set_ratio, limit=limit
        )
        return sorted(ordered[position] for _, _, position in best)

    def match_name(self, name: str) -> NameMatch | None:
        """The best list name scoring at least the review threshold, or None."""
        return self._match(self._normalizer.normalize(name))

    def match_names(self, names: Sequence[str]) -> list[NameMatch | None]:
        """:meth:`match_name` of each name, normalized together (much faster per name).

        A name sharing no blocking key with the list is done without building its form.
        """
        index, compact = self._index, self._compact
        matches: list[NameMatch | None] = []
        for name, (plain, sounds, skeletal) in zip(
            names, self._normalizer.parts_many(names), strict=True
        ):
            if plain:
                tokens, skeletons = plain.split(" "), skeletal.split(" ")
                # Most names share no key at all: the cheap test first.
                if compact_key(tokens, skeletons) in compact or any(
                    key in index for key in token_keys(tokens, skeletons)
                ):
                    matches.append(self._match(form_of(name, plain, sounds, skeletal)))
                    continue
            matches.append(None)
        return matches

    def _match(self, query: NameForm) -> NameMatch | None:
        if not query.tokens:
            return None
        settings = self.settings
        best: tuple[float, int, NameScore] | None = None
        matched_entries: dict[str, float] = {}
        for n in self._candidates(query):
            indexed = self._names[n]
            result = score_names(query, indexed.form, settings.token_threshold)
            if result.score < settings.review_threshold:
                continue
            entry_id = indexed.entry.id
            matched_entries[entry_id] = max(matched_entries.get(entry_id, 0.0), result.score)
            if best is None or result.score > best[0]:
                best = (result.score, n, result)
        if best is None:
            return None
        _, n, result = best
        indexed = self._names[n]
        others = tuple(sorted(e for e in matched_entries if e != indexed.entry.id))
        return NameMatch(indexed.entry, indexed.listed, query, indexed.form, result, others)

    def address_evidence(self, entry: DeniedParty, address: str) -> AddressMatch | None:
        """How well ``address`` matches one of ``entry``'s listed addresses (the best)."""
        if not entry.addresses or not address:
            return None
        query = self._address_normalizer.normalize(address)
        best: AddressMatch | None = None
        for listed in entry.addresses:
            form = self._address_normalizer.normalize(listed)
            aligned = align(query, form, self.settings.address_threshold)
            score = round(aligned.base * aligned.entry_share, 1)
            if best is None or score > best.score:
                best = AddressMatch(entry, listed, score)
        return best

    def match_address(self, address: str) -> AddressMatch | None:
        """The best listed address matching ``address`` in full, or None.

        Only listed addresses whose numbers (house number, postcode) all occur in
        ``address`` are compared, which a regular expression finds without normalizing.
        """
        if not self._addresses:
            return None
        numbers = _numbers(address)
        found = [
            n
            for number in numbers
            for n in self._by_number.get(number, ())
            if self._addresses[n][3] <= numbers
        ]
        if not found:
            return None
        query = self._address_normalizer.normalize(address)
        best: AddressMatch | None = None
        threshold = self.settings.address_threshold
        for n in sorted(found):
            form, entry, listed, _ = self._addresses[n]
            aligned = align(query, form, threshold)
            if aligned.entry_share < 1:
                continue  # every word of the listed address must be there
            score = round(aligned.base, 1)
            if score >= threshold and (best is None or score > best.score):
                best = AddressMatch(entry, listed, score)
        return best


@dataclass(frozen=True, slots=True)
class Screening:
    """Screening as configured: the indexed list, which carries its settings."""

    parties: DeniedPartyList

    @property
    def settings(self) -> ScreeningSettings:
        return self.parties.settings

    def name_problem(self, party: PartyView, match: NameMatch) -> Problem:
        """The finding for a party whose name matched ``match``."""
        settings = self.settings
        score = match.result.score
        denied = score >= settings.reject_threshold
        threshold = settings.reject_threshold if denied else settings.review_threshold
        entry = match.entry
        listed = match.listed_name
        alias = "" if listed == entry.name else f" (as {listed!r})"
        verdict = "denied party" if denied else "possible match with"
        role = party.role
        detail: dict[str, DetailValue] = {
            "role": role.lower(),
            "entry_id": entry.id,
            "entry_name": entry.name,
            "matched_name": listed,
            "score": score,
            "threshold": threshold,
            "method": match.result.method,
            "query_normalized": match.query.text,
            "entry_normalized": match.listed.text,
            "token_pairs": tuple(f"{q}~{e}:{s:g}" for q, e, s in match.result.pairs),
            "dataset": entry.dataset,
            "list_source": self.parties.source,
            "entry_countries": entry.countries,
            "party_country": party.country,
            "other_entries": match.others,
        }
        evidence = ""
        if settings.address_screening is not AddressScreening.OFF:
            address = self.parties.address_evidence(entry, party.address_text)
            if address is not None:
                detail["listed_address"] = address.listed_address
                detail["address_score"] = address.score
                if address.score >= settings.address_threshold:
                    evidence = f"; the address matches too ({address.score:g})"
        return Problem(
            Severity.ERROR if denied else Severity.WARNING,
            "party_denied" if denied else "party_possible_match",
            f"{role}/Name",
            f"{role.lower()} {party.name!r}: {verdict} list entry {entry.id} {entry.name!r}"
            f"{alias}, score {score:g} >= {threshold:g}{evidence}",
            MappingProxyType(detail),
        )

    def address_problem(self, party: PartyView, match: AddressMatch) -> Problem:
        """The finding for a party whose address matched ``match``."""
        entry = match.entry
        role = party.role
        detail: Mapping[str, DetailValue] = MappingProxyType(
            {
                "role": role.lower(),
                "entry_id": entry.id,
                "entry_name": entry.name,
                "matched_address": match.listed_address,
                "score": match.score,
                "threshold": self.settings.address_threshold,
                "dataset": entry.dataset,
                "list_source": self.parties.source,
                "entry_countries": entry.countries,
                "party_country": party.country,
            }
        )
        return Problem(
            Severity.WARNING,
            "party_address_match",
            f"{role}/Address",
            f"{role.lower()} address {party.address_text!r} matches the address of list entry "
            f"{entry.id} {entry.name!r} ({match.listed_address!r}), score {match.score:g}",
            detail,
        )

    def judge(self, party: PartyView) -> Problem | None:
        """The finding for one party: its name first, else (if so configured) its address."""
        name = self.parties.match_name(party.name)
        if name is not None:
            return self.name_problem(party, name)
        if self.settings.address_screening is not AddressScreening.ALL:
            return None
        address = self.parties.match_address(party.address_text)
        return self.address_problem(party, address) if address is not None else None
