"""Routing: Customs destination by country and operator, agencies by HS chapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from connector.core.inbound import validate_item_batch
from connector.core.outbound import renamespace
from connector.core.routing import AgencyRoute, CustomsRoute, Router, hs_chapter, hs_codes_of
from connector.errors import ConfigurationError, InvalidMessage
from connector.flow.accept import incoming_items

MESSAGES = Path(__file__).parents[2] / "data" / "messages"
ITEMS = [
    incoming.item_xml
    for incoming in incoming_items(validate_item_batch((MESSAGES / "item-batch.xml").read_bytes()))
]

EU = frozenset({"DE", "FR", "AT"})


def router(*customs: CustomsRoute, agencies: tuple[AgencyRoute, ...] = ()) -> Router:
    return Router(customs, agencies)


# --- Customs --------------------------------------------------------------------------------


def test_country_route_covers_every_operator() -> None:
    """A route without operators sends every operator's items for its countries there."""
    routes = router(CustomsRoute("EU-ICS2", EU), CustomsRoute("CH-PASSAR", frozenset({"CH"})))
    assert routes.customs_for("DE", "CH-POST") == "EU-ICS2"
    assert routes.customs_for("FR", "LI-POST") == "EU-ICS2"
    assert routes.customs_for("CH", "DE-POST") == "CH-PASSAR"
    assert routes.destinations == frozenset({"EU-ICS2", "CH-PASSAR"})


def test_no_route_is_none() -> None:
    """A country no route names, or an operator-only route for others, gives None."""
    routes = router(
        CustomsRoute("EU-ICS2", EU),
        CustomsRoute("US-CBP", frozenset({"US"}), frozenset({"CH-POST"})),
    )
    assert routes.customs_for("JP", "CH-POST") is None
    assert routes.customs_for("US", "DE-POST") is None
    assert router().customs_for("DE", "CH-POST") is None


@pytest.mark.parametrize("operator_first", [True, False])
def test_operator_route_wins_over_the_all_operators_route(operator_first: bool) -> None:
    """The route naming the operator wins, whatever the configuration order."""
    general = CustomsRoute("EU-ICS2", EU)
    specific = CustomsRoute("DE-ATLAS", frozenset({"DE"}), frozenset({"CH-POST"}))
    routes = router(specific, general) if operator_first else router(general, specific)
    assert routes.customs_for("DE", "CH-POST") == "DE-ATLAS"
    assert routes.customs_for("DE", "AT-POST") == "EU-ICS2"
    assert routes.customs_for("FR", "CH-POST") == "EU-ICS2"


@pytest.mark.parametrize(
    ("first", "second", "conflict"),
    [
        (
            CustomsRoute("EU-ICS2", EU),
            CustomsRoute("DE-ATLAS", frozenset({"DE", "PL"})),
            "DE for all operators",
        ),
        (
            CustomsRoute("DE-ATLAS", frozenset({"DE"}), frozenset({"CH-POST", "LI-POST"})),
            CustomsRoute("DE-ZOLL", frozenset({"DE"}), frozenset({"CH-POST"})),
            "DE for CH-POST",
        ),
        (
            CustomsRoute("EU-ICS2", EU),
            CustomsRoute("EU-ICS2", frozenset({"AT"})),
            "AT for all operators",
        ),
    ],
    ids=["all-operators", "same-operator", "same-destination"],
)
def test_equally_specific_routes_conflict_naming_both(
    first: CustomsRoute, second: CustomsRoute, conflict: str
) -> None:
    """Two routes equally specific for one country and operator stop the configuration."""
    with pytest.raises(ConfigurationError, match=conflict) as caught:
        router(first, second)
    message = caught.value.message
    assert f"#1 ({first.destination})" in message
    assert f"#2 ({second.destination})" in message


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("EU ICS2", EU), "destination"),
        (("EU-ICS2", frozenset()), "countries must not be empty"),
        (("EU-ICS2", frozenset({"de"})), "'de' not ISO 3166-1"),
        (("EU-ICS2", frozenset({"XX", "DE"})), "'XX' not ISO 3166-1"),
        (("EU-ICS2", EU, frozenset()), "operators"),
        (("EU-ICS2", EU, frozenset({"CH POST"})), "operator id"),
    ],
)
def test_bad_customs_route_is_a_configuration_error(arguments: tuple[Any, ...], match: str) -> None:
    """Bad ids, unknown or no countries and an empty operator set are refused at once."""
    with pytest.raises(ConfigurationError, match=match):
        CustomsRoute(*arguments)


def test_routes_take_any_iterable_and_keep_sets() -> None:
    """Lists from a configuration file become frozensets."""
    route = CustomsRoute("EU-ICS2", ["DE", "FR"], ["CH-POST"])  # type: ignore[arg-type]
    assert route.countries == frozenset({"DE", "FR"})
    assert route.operators == frozenset({"CH-POST"})


# --- agencies -------------------------------------------------------------------------------

FOOD = AgencyRoute("DE-BVL", frozenset({2, 4, 18}), frozenset({"DE"}), ("ItemId",))
TEXTILES = AgencyRoute("EU-TEXTILE", frozenset({61, 62}), None, ("Contents/Line/HsCode",))
CERAMICS = AgencyRoute("FR-DGCCRF", frozenset({69}), frozenset({"FR"}), ("ItemId",))


def test_agencies_are_chosen_by_any_chapter_of_the_item() -> None:
    """An item goes to every agency subscribed to a chapter of one of its HS codes."""
    routes = router(agencies=(FOOD, TEXTILES, CERAMICS))
    assert routes.agencies_for("DE", ["691200", "180632"]) == ("DE-BVL",)
    assert routes.agencies_for("DE", ["610910"]) == ("EU-TEXTILE",)
    assert routes.agencies_for("DE", ["180632", "620342"]) == ("DE-BVL", "EU-TEXTILE")
    assert routes.agencies_for("DE", ["950300"]) == ()


def test_agency_countries_restrict_its_copies() -> None:
    """An agency listing countries gets items for those destination countries only."""
    routes = router(agencies=(FOOD, TEXTILES, CERAMICS))
    assert routes.agencies_for("FR", ["691200", "180632"]) == ("FR-DGCCRF",)
    assert routes.agencies_for("AT", ["180632", "610910"]) == ("EU-TEXTILE",)


def test_items_without_hs_codes_go_to_no_agency() -> None:
    """Documents (no HS code) and codes without two leading digits select nothing."""
    routes = router(agencies=(FOOD, TEXTILES))
    assert routes.agencies_for("DE", []) == ()
    assert routes.agencies_for("DE", ["", "X1"]) == ()


def test_agency_route_lookup_and_order() -> None:
    """Agency routes are kept in configuration order and found by id."""
    routes = router(agencies=(TEXTILES, FOOD))
    assert list(routes.agencies) == ["EU-TEXTILE", "DE-BVL"]
    assert routes.agency("DE-BVL") is FOOD
    with pytest.raises(KeyError):
        routes.agency("NOPE")


def test_an_agency_with_two_routes_is_a_configuration_error() -> None:
    """Two routes for one agency would make its allow-list ambiguous."""
    other = AgencyRoute("DE-BVL", frozenset({3}), None, ("ItemId",))
    with pytest.raises(ConfigurationError, match="DE-BVL has two routes"):
        router(agencies=(FOOD, other))


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("DE BVL", frozenset({1})), "agency"),
        (("DE-BVL", frozenset()), "at least one"),
        (("DE-BVL", frozenset({0, 100})), "not 0, 100"),
        (("DE-BVL", frozenset({True})), "not True"),
        (("DE-BVL", frozenset({1}), frozenset()), "countries must not be empty"),
        (("DE-BVL", frozenset({1}), None, ()), "at least one path"),
        (("DE-BVL", frozenset({1}), None, ("Contents//HsCode",)), "not a path"),
        (("DE-BVL", frozenset({1}), None, ("Contents/Line[1]/HsCode",)), "not a path"),
        (("DE-BVL", frozenset({1}), None, ("../Sender",)), "not a path"),
        (("DE-BVL", frozenset({1}), None, ("*",)), "not a path"),
    ],
)
def test_bad_agency_route_is_a_configuration_error(arguments: tuple[Any, ...], match: str) -> None:
    """Bad ids, chapters outside 1-99, no countries or fields, and bad paths are refused."""
    with pytest.raises(ConfigurationError, match=match):
        AgencyRoute(*arguments)


def test_agency_route_keeps_the_first_of_duplicate_fields() -> None:
    """A path listed twice is kept once, in its first place."""
    route = AgencyRoute(
        "DE-BVL", frozenset({1}), None, ("ItemId", "Contents/Line/HsCode", "ItemId")
    )
    assert route.fields == ("ItemId", "Contents/Line/HsCode")


# --- HS codes of an item --------------------------------------------------------------------


def test_hs_codes_of_a_stored_item_in_document_order() -> None:
    """The HS codes of every content line, from the stored bytes."""
    assert hs_codes_of(ITEMS[0]) == ("610910",)
    assert hs_codes_of(ITEMS[1]) == ("691200", "180632")
    assert hs_codes_of(ITEMS[2]) == ()


def test_hs_codes_of_an_element_in_any_namespace() -> None:
    """An item element already parsed, in the declaration namespace, gives the same codes."""
    element = renamespace(etree.fromstring(ITEMS[1]), "urn:ead-connector:declaration-batch:1")
    assert hs_codes_of(element) == ("691200", "180632")


def test_hs_codes_are_distinct() -> None:
    """A code on two lines is given once."""
    twice = ITEMS[1].replace(b"180632", b"691200")
    assert hs_codes_of(twice) == ("691200",)


def test_hs_codes_of_bad_bytes_is_invalid_message() -> None:
    """Bytes that are not an item raise InvalidMessage."""
    with pytest.raises(InvalidMessage):
        hs_codes_of(b"<Item>")
    with pytest.raises(InvalidMessage, match="not an Item"):
        hs_codes_of(b"<Contents/>")


@pytest.mark.parametrize(
    ("code", "chapter"),
    [("610910", 61), ("0102290000", 1), (" 180632 ", 18), ("9", None), ("AB1234", None)],
)
def test_hs_chapter_is_the_first_two_digits(code: str, chapter: int | None) -> None:
    """The chapter is the number of the first two digits, None without them."""
    assert hs_chapter(code) == chapter


def test_routes_from_a_stored_item_end_to_end() -> None:
    """A stored item's destination and codes pick its Customs route and its agencies."""
    routes = router(CustomsRoute("EU-ICS2", EU), agencies=(FOOD, TEXTILES, CERAMICS))
    assert routes.customs_for("DE", "CH-POST") == "EU-ICS2"
    assert routes.agencies_for("DE", hs_codes_of(ITEMS[1])) == ("DE-BVL",)
    assert routes.agencies_for("DE", hs_codes_of(ITEMS[2])) == ()
