"""Where an item goes: the Customs destination that decides on it, and the agencies that get a copy.

A :class:`Router` is built once from configuration; a conflict in it stops startup with a
:class:`~connector.errors.ConfigurationError`. The forward stage's ``Route`` is::

    route = lambda claim: router.customs_for(claim.destination_country, claim.operator_id)

and the agencies of an item are
``router.agencies_for(claim.destination_country, routing.hs_codes_of(claim.item_xml))``, each
copy minimized to ``router.agency(agency_id).fields`` (:mod:`connector.core.agency`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from lxml import etree

from connector.core import rules
from connector.core.agency import parse_field_path
from connector.core.declarations import check_identifier, parse_item
from connector.errors import ConfigurationError, InvalidMessage

__all__ = ["AgencyRoute", "CustomsRoute", "Router", "hs_chapter", "hs_codes_of"]

_ALL_OPERATORS: Final = "all operators"


def _countries(countries: Iterable[str], owner: str) -> frozenset[str]:
    result = frozenset(countries)
    if not result:
        raise ConfigurationError(f"{owner}: countries must not be empty", key="countries")
    unknown = sorted(c for c in result if c not in rules.country_codes())
    if unknown:
        raise ConfigurationError(
            f"{owner}: {', '.join(map(repr, unknown))} not ISO 3166-1 alpha-2 country codes "
            "(upper case, e.g. 'DE')",
            key="countries",
        )
    return result


def _identifier(value: str, what: str) -> str:
    try:
        return check_identifier(value, what)
    except InvalidMessage as error:
        raise ConfigurationError(error.message, key=what) from error


@dataclass(frozen=True, slots=True)
class CustomsRoute:
    """Items for ``countries`` (from ``operators``, or all) go to the Customs ``destination``.

    Raises:
        ConfigurationError: a bad destination id, unknown or no countries, or an empty or bad
            operator set.
    """

    destination: str
    """The Customs destination id (the gateway's endpoint name)."""
    countries: frozenset[str]
    """Destination countries of the items, ISO 3166-1 alpha-2."""
    operators: frozenset[str] | None = None
    """Only items of these operators; None for every operator."""

    def __post_init__(self) -> None:
        _identifier(self.destination, "destination")
        owner = f"customs route {self.destination}"
        object.__setattr__(self, "countries", _countries(self.countries, owner))
        if self.operators is not None:
            operators = frozenset(self.operators)
            if not operators:
                raise ConfigurationError(
                    f"{owner}: operators must be omitted (all) or name at least one",
                    key="operators",
                )
            for operator in operators:
                _identifier(operator, "operator id")
            object.__setattr__(self, "operators", operators)


@dataclass(frozen=True, slots=True)
class AgencyRoute:
    """The ``agency`` gets a minimized copy of items with an HS code in ``hs_chapters``.

    Raises:
        ConfigurationError: a bad agency id, chapters outside 1-99 or none, unknown or no
            countries, no fields or a malformed field path.
    """

    agency: str
    """The agency id (also the copy's ``Agency`` header)."""
    hs_chapters: frozenset[int]
    """HS chapters (first two digits, 1-99) the agency subscribes to."""
    countries: frozenset[str] | None = None
    """Only items for these destination countries; None for all."""
    fields: tuple[str, ...] = ("ItemId",)
    """The allow-list: paths below ``Item`` copied to the agency, nothing else
    (``"Contents/Line/HsCode"``, ``"Transport/DestinationCountry"``)."""

    def __post_init__(self) -> None:
        _identifier(self.agency, "agency")
        owner = f"agency route {self.agency}"
        chapters = frozenset(self.hs_chapters)
        bad = sorted(
            repr(c)
            for c in chapters
            if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 99
        )
        if not chapters or bad:
            raise ConfigurationError(
                f"{owner}: hs_chapters must be integers 1-99"
                + (f", not {', '.join(bad)}" if bad else ", at least one"),
                key="hs_chapters",
            )
        object.__setattr__(self, "hs_chapters", chapters)
        if self.countries is not None:
            object.__setattr__(self, "countries", _countries(self.countries, owner))
        fields = tuple(dict.fromkeys(self.fields))
        if not fields:
            raise ConfigurationError(f"{owner}: fields must list at least one path", key="fields")
        for path in fields:
            parse_field_path(path)
        object.__setattr__(self, "fields", fields)


def _describe(index: int, route: CustomsRoute) -> str:
    return f"customs route #{index + 1} ({route.destination})"


class Router:
    """Answers where items go; immutable once built.

    Customs: the route naming the item's operator wins over one for all operators, for the
    item's destination country. Agencies: every agency subscribing to a chapter of one of the
    item's HS codes (and, if it lists countries, to its destination country).

    Raises:
        ConfigurationError: two customs routes equally specific for the same country and
            operator (the message names both), or two agency routes with the same agency id.
    """

    def __init__(self, customs: Sequence[CustomsRoute], agencies: Sequence[AgencyRoute]) -> None:
        index: dict[tuple[str, str | None], tuple[int, CustomsRoute]] = {}
        for position, route in enumerate(customs):
            for country in sorted(route.countries):
                for operator in sorted(route.operators) if route.operators else [None]:
                    key = (country, operator)
                    if key in index:
                        first, other = index[key]
                        raise ConfigurationError(
                            f"{_describe(first, other)} and {_describe(position, route)} both "
                            f"route {country} for {operator or _ALL_OPERATORS}; "
                            "remove the country from one of them",
                            key="customs",
                        )
                    index[key] = (position, route)
        self._customs: Mapping[tuple[str, str | None], str] = MappingProxyType(
            {key: route.destination for key, (_, route) in index.items()}
        )
        by_agency: dict[str, AgencyRoute] = {}
        for agency_route in agencies:
            if agency_route.agency in by_agency:
                raise ConfigurationError(
                    f"agency {agency_route.agency} has two routes; "
                    "give it one (with all its chapters)",
                    key="agencies",
                )
            by_agency[agency_route.agency] = agency_route
        self._agencies: Mapping[str, AgencyRoute] = MappingProxyType(by_agency)
        self.destinations: frozenset[str] = frozenset(r.destination for r in customs)
        """Every Customs destination id some route leads to."""

    def customs_for(self, destination_country: str, operator_id: str) -> str | None:
        """The destination id for an item, or None when no route covers it."""
        found = self._customs.get((destination_country, operator_id))
        if found is None:
            found = self._customs.get((destination_country, None))
        return found

    def agencies_for(self, destination_country: str, hs_codes: Iterable[str]) -> tuple[str, ...]:
        """Ids of the agencies to copy an item to, in configuration order (maybe none)."""
        chapters = {chapter for code in hs_codes if (chapter := hs_chapter(code)) is not None}
        if not chapters:
            return ()
        return tuple(
            route.agency
            for route in self._agencies.values()
            if not chapters.isdisjoint(route.hs_chapters)
            and (route.countries is None or destination_country in route.countries)
        )

    def agency(self, agency_id: str) -> AgencyRoute:
        """The route of ``agency_id`` (its allow-list in ``fields``); KeyError if unknown."""
        return self._agencies[agency_id]

    @property
    def agencies(self) -> Mapping[str, AgencyRoute]:
        """Every agency route by agency id, in configuration order (read-only)."""
        return self._agencies


def hs_chapter(code: str) -> int | None:
    """The HS chapter (first two digits) of ``code``, or None if it does not start with two."""
    head = code.strip()[:2]
    if len(head) == 2 and head.isascii() and head.isdigit():
        return int(head)
    return None


def hs_codes_of(item_xml: bytes | etree._Element) -> tuple[str, ...]:
    """The distinct HS codes of an item's content lines, in document order.

    ``item_xml`` is a stored item (parsed with the hardened parser) or an ``Item`` element of
    any message namespace. Lines without an HS code (documents) add nothing.

    Raises:
        InvalidMessage: the bytes do not parse as an ``Item``.
    """
    item = parse_item(item_xml) if isinstance(item_xml, bytes) else item_xml
    namespace = etree.QName(item).namespace
    path = f"{{{namespace}}}Contents/{{{namespace}}}Line/{{{namespace}}}HsCode"
    if namespace is None:
        path = "Contents/Line/HsCode"
    codes = (" ".join((node.text or "").split()) for node in item.iterfind(path))
    return tuple(dict.fromkeys(code for code in codes if code))
