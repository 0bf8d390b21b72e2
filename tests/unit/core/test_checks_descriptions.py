"""Goods descriptions: vague terms and contradictions with the HS chapter, from config terms."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector import checks_loader
from connector.core.checks.outcome import Severity
from connector.sample_data import DOCUMENTS, GOODS

RULES = checks_loader.default_check_config().descriptions


@pytest.mark.parametrize(
    ("description", "term"),
    [
        ("Gift", "gift"),
        ("gifts", "gifts"),
        ("Birthday present", "present"),
        ("Gift for my mother", "gift"),
        ("Goods", "goods"),
        ("Parts", "parts"),
        ("Spare parts for my bike", "parts"),
        ("Accessories", "accessories"),
        ("2 pcs accessories", "accessories"),
        ("Samples", "samples"),
        ("Clothes", "clothes"),
        ("Women's clothes", "clothes"),
        ("Used clothing, various", "clothing"),
        ("Personal effects", "effects"),
        ("Подарок", "подарок"),
        ("礼物", "礼物"),
        ("Misc", "misc"),
        ("123", None),
    ],
)
def test_generic_descriptions_are_vague(description: str, term: str | None) -> None:
    """Only generic terms, filler, numbers and units: vague, with the term's hint."""
    problem = RULES.judge_vague(description)
    assert problem is not None
    assert (problem.code, problem.severity, problem.path) == (
        "description_vague",
        Severity.WARNING,
        "Description",
    )
    assert problem.detail["generic_term"] == term
    hint = problem.detail["hint"]
    assert isinstance(hint, str)
    assert hint
    assert hint in problem.message


@pytest.mark.parametrize(
    "description",
    [
        "Cotton clothes",
        "Men's cotton knitted T-shirt",
        "Gift: women's wool knitted scarf",
        "Bicycle disc brake pads",
        "Silicone phone case",
        "Plastic parts for a toy car",
        "Samples of woven cotton fabric, 20 x 20 cm",
        *(goods.description for goods in GOODS),
        *DOCUMENTS,
    ],
)
def test_specific_descriptions_pass(description: str) -> None:
    """One word of type or material is enough; the sample catalogue is never vague."""
    assert RULES.judge_vague(description) is None


@pytest.mark.parametrize(
    ("description", "hs_code", "keyword", "chapters"),
    [
        ("Men's cotton knitted T-shirt, short sleeves", "851713", "t-shirt", ("61", "62")),
        ("Smartphone, 128 GB, dual SIM", "392690", "smartphone", ("85",)),
        ("Printed paperback novel", "040900", "novel", ("49",)),
        ("Running shoes with rubber soles", "691110", "shoes", ("64",)),
        ("Lithium-ion power bank 10000 mAh with USB-C port", "61000000", "power bank", ("85",)),
        ("Eau de parfum, 50 ml spray bottle", "220820", "eau de parfum", ("33",)),
    ],
)
def test_head_noun_of_another_chapter_contradicts_the_code(
    description: str, hs_code: str, keyword: str, chapters: tuple[str, ...]
) -> None:
    """The head noun belongs to other chapters than the declared code's: a warning."""
    problem = RULES.judge_chapter(description, hs_code)
    assert problem is not None
    assert problem.code == "description_contradicts_hs"
    assert problem.detail["keyword"] == keyword
    assert problem.detail["keyword_chapters"] == chapters
    assert problem.detail["declared_chapter"] == hs_code[:2]


@pytest.mark.parametrize(
    ("description", "hs_code"),
    [
        ("Silicone protective case for mobile phone", "392690"),  # a case, not a phone
        ("Porcelain tea set (teapot and six cups)", "691110"),  # a set, not tea
        ("Milk chocolate bars, 100 g, not filled", "180632"),
        ("Men's leather jacket", "420310"),  # jackets may be leather (42)
        ("Paper towels, 2 rolls", "481820"),
        ("Smartwatch with heart-rate sensor", "851762"),  # smartwatches are 8517
        ("Gift", "950300"),  # vague, but names no chapter
    ],
)
def test_compatible_or_unknown_head_nouns_pass(description: str, hs_code: str) -> None:
    """Keywords outside the head noun, or of the declared chapter, raise nothing."""
    assert RULES.judge_chapter(description, hs_code) is None


def test_the_sample_catalogue_agrees_with_its_codes() -> None:
    """Every sample goods line, with its HS, EU and US code, passes the chapter check."""
    for goods in GOODS:
        for code in (goods.hs, goods.eu_code, goods.us_code):
            if code:
                assert RULES.judge_chapter(goods.description, code) is None, goods


def test_documents_are_not_judged_vague_and_severity_is_configurable() -> None:
    """Lines of a skipped category pass; the configured severity is used."""
    assert RULES.judge("Documents", None, "DOCUMENTS") == ()
    (vague,) = RULES.judge("Documents", None, "GIFT")
    assert vague.severity is Severity.WARNING
    strict = replace(RULES, vague_severity=Severity.ERROR)
    (vague,) = strict.judge("Goods", "950300", "SALE_OF_GOODS")
    assert vague.severity is Severity.ERROR
