"""HS nomenclature check: codes must exist at 6 digits; unknown ones get near suggestions."""

from __future__ import annotations

import pytest

from connector import checks_loader
from connector.core.checks.hs import Nomenclature
from connector.core.checks.outcome import Severity
from connector.sample_data import GOODS

NOMENCLATURE = checks_loader.default_check_config().nomenclature


def test_shipped_nomenclature_is_hs_2022_with_every_subheading() -> None:
    """The shipped file is the HS 2022 edition: 5,612 subheadings in 96 chapters."""
    assert NOMENCLATURE.edition == "HS 2022"
    assert len(NOMENCLATURE) == 5612
    chapters = {code for code in NOMENCLATURE.descriptions if len(code) == 2}
    assert len(chapters) == 96
    assert "77" not in chapters
    assert "99" not in chapters


def test_every_sample_catalogue_code_is_known() -> None:
    """The sample generator's goods (HS 6, EU CN 8, US HTS 10 digits) all pass."""
    codes = [code for goods in GOODS for code in (goods.hs, goods.eu_code, goods.us_code) if code]
    assert codes
    assert all(NOMENCLATURE.judge(code) is None for code in codes)


@pytest.mark.parametrize(
    "code",
    [
        "610910",  # T-shirts of cotton, knitted
        "61091000",  # EU CN extension
        "6109100012",  # US HTS extension
        "851713",  # smartphones (new in HS 2022)
        "490199",
        "950300",  # a heading that is a single subheading
    ],
)
def test_known_subheadings_pass(code: str) -> None:
    """A code passes when its first six digits are a subheading, whatever follows."""
    assert code in NOMENCLATURE
    assert NOMENCLATURE.judge(code) is None


@pytest.mark.parametrize(
    ("code", "why", "suggestions"),
    [
        ("851712", "heading 8517 has no subheading 851712", ("851711", "851713", "851714")),
        ("61000000", "610000 is chapter 61 only", ("610120", "610130", "610190")),
        ("847100", "heading 8471 is divided into subheadings", ("847130", "847141", "847149")),
        ("33049000", "heading 3304 has no subheading 330490", ("330491", "330499", "330430")),
        ("950390", "heading 9503 has no subheading 950390", ("950300", "950420", "950430")),
        ("010600", "heading 0106 is divided into subheadings", ("010611", "010612", "010613")),
        ("615000", "chapter 61 has no heading 6150", ("611790", "611780", "611710")),
    ],
)
def test_unknown_codes_are_errors_with_nearest_subheadings(
    code: str, why: str, suggestions: tuple[str, ...]
) -> None:
    """Unknown 6-digit parts are errors that say why and suggest the same heading first."""
    problem = NOMENCLATURE.judge(code)
    assert problem is not None
    assert (problem.severity, problem.code, problem.path) == (
        Severity.ERROR,
        "hs_code_unknown",
        "HsCode",
    )
    assert why in problem.message
    assert problem.detail["suggestions"] == suggestions
    assert problem.detail["edition"] == "HS 2022"
    for suggestion in suggestions:
        assert suggestion in problem.message


def test_suggestions_are_bounded_by_configuration() -> None:
    """``max_suggestions`` limits the list; a code of no known chapter gets none."""
    small = Nomenclature.from_rows(
        [("61", "Apparel, knitted"), ("6109", "T-shirts"), ("610910", "of cotton"),
         ("610990", "of other textiles")],
        edition="test",
        max_suggestions=1,
    )  # fmt: skip
    assert small.nearest("610900") == ("610910",)
    problem = small.judge("620000")
    assert problem is not None
    assert problem.detail["suggestions"] == ()
    assert "there is no chapter 62" in problem.message


@pytest.mark.parametrize("code", ["6", "61091", "abcdef", "6109100", "6109x"])
def test_nomenclature_refuses_malformed_rows(code: str) -> None:
    """Rows must carry 2, 4 or 6 digits."""
    with pytest.raises(ValueError, match="2, 4 or 6 digits"):
        Nomenclature.from_rows([(code, "x")], edition="t")
