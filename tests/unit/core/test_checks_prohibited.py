"""Prohibited and restricted articles: HS prefixes and keywords, per destination."""

from __future__ import annotations

import pytest

from connector import checks_loader
from connector.core.checks.outcome import Severity
from connector.core.checks.prohibited import Action, ArticleRule, ProhibitedRules
from connector.errors import UnknownCode

RULES = checks_loader.default_check_config().prohibited


PROHIBITED, RESTRICTED = "article_prohibited", "article_restricted"


@pytest.mark.parametrize(
    ("destination", "description", "hs_code", "expected"),
    [
        # everywhere
        ("FR", "Air pistol, 4.5 mm, with CO2 cartridges", "930400", [(PROHIBITED, "weapons")]),
        ("JP", "Hunting rifle, bolt action, .308", "930330", [(PROHIBITED, "weapons")]),
        ("DE", "Fireworks assortment", "360410", [(PROHIBITED, "explosives")]),
        ("NL", "Dried cannabis flowers, 10 g", "121190", [(PROHIBITED, "narcotics")]),
        ("GB", "Live ornamental fish, goldfish", "030111", [(PROHIBITED, "live_animals")]),
        ("US", "Lithium-ion power bank 20000 mAh", "850760", [(RESTRICTED, "lithium_batteries")]),
        ("CH", "Spare lithium battery for camera", "850650", [(RESTRICTED, "lithium_batteries")]),
        ("RU", "Eau de parfum, 50 ml spray bottle", "330300", [(RESTRICTED, "flammable_liquids")]),
        # per destination
        ("IN", "Disposable e-cigarette, 2 ml", "854340", [(PROHIBITED, "e_cigarettes_in")]),
        ("DE", "Disposable e-cigarette, 2 ml", "854340", [(RESTRICTED, "e_cigarettes")]),
        ("US", "Scotch whisky, 70 cl bottle", "220830", [(PROHIBITED, "alcohol_us")]),
        ("DE", "Salami, dry-cured, 500 g", "160100", [(PROHIBITED, "meat_dairy_eu")]),
        ("GB", "Kitchen knife with fixed blade", "821192", [(RESTRICTED, "bladed_articles_gb")]),
        # several rules at once, in the order of the configuration
        (
            "GB",
            "Perfume and a power bank",
            "330300",
            [(RESTRICTED, "lithium_batteries"), (RESTRICTED, "flammable_liquids")],
        ),
    ],
)
def test_rules_match_by_hs_prefix_or_keyword(
    destination: str, description: str, hs_code: str, expected: list[tuple[str, str]]
) -> None:
    """Each matching rule gives a finding with the rule's action and an explanation."""
    problems = RULES.judge(destination, description, hs_code)
    assert [(p.code, p.detail["rule"]) for p in problems] == expected
    for problem in problems:
        prohibited = problem.code == "article_prohibited"
        assert problem.severity is (Severity.ERROR if prohibited else Severity.WARNING)
        assert destination in problem.message
        assert problem.detail["destination"] == destination
        assert problem.detail["reason"]
    assert RULES.may_match(description, hs_code)


@pytest.mark.parametrize(
    ("destination", "description", "hs_code"),
    [
        ("FR", "Scotch whisky, 70 cl bottle", "220830"),  # alcohol is a US rule only
        ("US", "Salami, dry-cured, 500 g", "160100"),  # meat and dairy: an EU rule only
        ("FR", "Stainless steel kitchen knife with fixed blade", "821192"),  # knives: GB only
        ("US", "Toy pistol, plastic, shoots foam darts", "950300"),  # unless: toy
        ("DE", "Water pistol for the garden", "950300"),
        ("GB", "Leather pistol holster", "420299"),
        ("FR", "Live honey bees, queen with attendants", "010641"),  # bees are allowed
        ("US", "Battery-powered LED bicycle headlight", "851210"),
        ("JP", "Printed paperback novel", "490199"),
        ("DE", "Hot glue gun, 40 W", "846729"),
    ],
)
def test_other_destinations_and_unless_words_pass(
    destination: str, description: str, hs_code: str
) -> None:
    """A rule applies only to its destinations, and its ``unless`` words lift it."""
    assert RULES.judge(destination, description, hs_code) == ()


def test_rules_are_built_from_values() -> None:
    """Rules apply to named destinations minus exceptions; keywords match whole words."""
    rules = ProhibitedRules(
        (
            ArticleRule(
                "drones",
                Action.REVIEW,
                "drones need a permit",
                destinations=frozenset({"*"}),
                except_destinations=frozenset({"CH"}),
                hs_prefixes=("8806",),
                keywords=("drone",),
            ),
            ArticleRule(
                "seeds_au", Action.REJECT, "biosecurity", frozenset({"AU"}), keywords=("seeds",)
            ),
        )
    )
    assert [p.code for p in rules.judge("FR", "Camera drone with 4K camera", None)] == [
        "article_restricted"
    ]
    assert rules.judge("CH", "Camera drone with 4K camera", "880622") == ()
    assert rules.judge("FR", "Droned on about nothing", None) == ()  # whole words only
    assert [p.code for p in rules.judge("AU", "Tomato seeds, 2 g", "120991")] == [
        "article_prohibited"
    ]
    assert rules.judge("NZ", "Tomato seeds, 2 g", "120991") == ()
    assert not rules.may_match("Printed paperback novel", "490199")


def test_unknown_action_is_a_domain_error() -> None:
    """Actions are a closed vocabulary."""
    with pytest.raises(UnknownCode, match="reject, review"):
        Action("block")
