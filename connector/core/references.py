"""Stable identifiers the connector gives out."""

from __future__ import annotations

import base64
import hashlib

__all__ = ["digest", "item_reference"]


def item_reference(operator_id: str, item_id: str) -> str:
    """The connector's reference of an item: stable for (operator, item id), 24 characters.

    Derived, not random, so a replayed intake or a re-sent declaration carries the same
    reference and Customs can deduplicate on it.
    """
    raw = hashlib.sha256(f"{operator_id}\x1f{item_id}".encode()).digest()[:15]  # 120 bits
    return "EAD" + base64.b32encode(raw).decode("ascii")[:21]


def digest(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
