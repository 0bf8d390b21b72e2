"""Item references are stable per (operator, item id) and never collide across operators."""

from connector.core.references import digest, item_reference


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
