"""S10 item identifiers: the check digit against domain.md's worked values and an oracle."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.s10 import check_digit, has_valid_check_digit, parse_s10
from connector.errors import InvalidMessage


@pytest.mark.parametrize(
    ("serial", "digit"),
    [("12345678", 5), ("47312482", 9), ("00000000", 5), ("98765432", 6)],
)
def test_check_digit_matches_worked_examples(serial: str, digit: int) -> None:
    assert check_digit(serial) == digit


def _oracle(serial: str) -> int:
    """domain.md's algorithm, written out independently."""
    weights = [8, 6, 4, 2, 3, 5, 9, 7]
    total = 0
    for position, char in enumerate(serial):
        total += int(char) * weights[position]
    c = 11 - (total % 11)
    return {10: 0, 11: 5}.get(c, c)


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_check_digit_agrees_with_oracle(serial: str) -> None:
    assert check_digit(serial) == _oracle(serial)
    assert 0 <= check_digit(serial) <= 9


@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.integers(min_value=0, max_value=9),
)
def test_only_the_right_digit_validates(service: str, serial: str, digit: int) -> None:
    item_id = f"{service}{serial}{digit}DE"
    assert has_valid_check_digit(item_id) == (digit == _oracle(serial))


@pytest.mark.parametrize("serial", ["1234567", "123456789", "1234567a", "", "١٢٣٤٥٦٧٨"])
def test_check_digit_refuses_bad_serials(serial: str) -> None:
    with pytest.raises(InvalidMessage):
        check_digit(serial)


def test_parse_s10_splits_parts() -> None:
    parsed = parse_s10("RR123456785DE")
    assert (parsed.service, parsed.serial, parsed.check, parsed.country) == (
        "RR",
        "12345678",
        5,
        "DE",
    )
    assert str(parsed) == "RR123456785DE"


@pytest.mark.parametrize(
    "text", ["rr123456785DE", "RR12345678DE", "RR123456785D", " RR123456785DE"]
)
def test_parse_s10_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_s10(text)
    assert not has_valid_check_digit(text)
