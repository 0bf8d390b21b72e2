"""Closed vocabularies refuse unknown values with a domain error."""

import pytest

from connector.core.model import CustomsDecision, ItemCategory
from connector.errors import ConnectorError, UnknownCode


def test_decision_codes_are_the_contract() -> None:
    assert [d.value for d in CustomsDecision] == [
        "RELEASE",
        "HOLD",
        "DO_NOT_LOAD",
        "REQUEST_INFO",
        "REQUEST_SCREENING",
        "REJECTED",
    ]


@pytest.mark.parametrize("enum", [CustomsDecision, ItemCategory])
def test_unknown_value_raises_unknown_code(
    enum: type[CustomsDecision] | type[ItemCategory],
) -> None:
    with pytest.raises(UnknownCode) as info:
        enum("release")
    assert isinstance(info.value, ConnectorError)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "unknown_code"
    assert "release" in info.value.message


def test_known_value_round_trips() -> None:
    assert CustomsDecision("DO_NOT_LOAD") is CustomsDecision.DO_NOT_LOAD
    assert ItemCategory("GIFT") == "GIFT"
