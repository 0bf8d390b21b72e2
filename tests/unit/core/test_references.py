"""Item references are stable per (operator, item id) and never collide across operators."""

import base64
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.references import digest, item_reference

#: The reference of ("DE-POST", "RR123456785DE"), as stores and Customs already hold it.
KNOWN = "EADWJBX3PDDVTTWAU5HPLJKE"


def test_reference_is_stable_and_scoped_by_operator() -> None:
    a = item_reference("DE-POST", "RR123456785DE")
    assert a == item_reference("DE-POST", "RR123456785DE")
    assert a != item_reference("FR-POST", "RR123456785DE")
    assert a != item_reference("DE-POST", "RR123456794DE")
    assert len(a) == 24
    assert a.startswith("EAD")
    assert a.isalnum()


def test_separator_prevents_ambiguous_concatenation() -> None:
    assert item_reference("AB", "CD") != item_reference("A", "BCD")


def test_digest_is_sha256_hex() -> None:
    assert digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@settings(max_examples=500)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_reference_is_ead_and_the_first_21_base32_digits_of_the_hash(
    operator_id: str, item_id: str
) -> None:
    """The definition references have always had (they are stored and sent to Customs)."""
    raw = hashlib.sha256(f"{operator_id}\x1f{item_id}".encode()).digest()[:15]
    expected = "EAD" + base64.b32encode(raw).decode("ascii")[:21]

    assert item_reference(operator_id, item_id) == expected


def test_a_known_reference_is_unchanged() -> None:
    assert item_reference("DE-POST", "RR123456785DE") == KNOWN
