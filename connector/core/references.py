"""Stable identifiers the connector gives out."""

from __future__ import annotations

import hashlib

__all__ = ["digest", "item_reference"]

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648
#: Every pair of base32 digits, by the 10 bits they stand for.
_PAIRS = tuple(high + low for high in _BASE32 for low in _BASE32)


def item_reference(operator_id: str, item_id: str) -> str:
    """The connector's reference of an item: stable for (operator, item id), 24 characters.

    ``EAD`` and the first 21 base32 digits (RFC 4648) of the SHA-256 of operator and item
    id (105 bits). Derived, not random, so a replayed intake or a re-sent declaration
    carries the same reference and Customs can deduplicate on it.
    """
    raw = hashlib.sha256(f"{operator_id}\x1f{item_id}".encode()).digest()
    bits = int.from_bytes(raw[:14], "big") >> 7  # the first 105 bits
    pairs = _PAIRS
    return "".join(
        (
            "EAD",
            pairs[bits >> 95],
            pairs[(bits >> 85) & 1023],
            pairs[(bits >> 75) & 1023],
            pairs[(bits >> 65) & 1023],
            pairs[(bits >> 55) & 1023],
            pairs[(bits >> 45) & 1023],
            pairs[(bits >> 35) & 1023],
            pairs[(bits >> 25) & 1023],
            pairs[(bits >> 15) & 1023],
            pairs[(bits >> 5) & 1023],
            _BASE32[bits & 31],
        )
    )


def digest(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
