"""UPU S10 item identifiers: parsing and the check digit.

An S10 id is 13 characters: a 2-letter service indicator, an 8-digit serial number, one check
digit and the ISO 3166-1 alpha-2 code of the issuing operator, e.g. ``RR123456785DE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connector.errors import InvalidMessage

__all__ = ["S10Id", "check_digit", "has_valid_check_digit", "parse_s10"]

_FORM = re.compile(r"[A-Z]{2}[0-9]{9}[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class S10Id:
    """A well-formed S10 identifier split into its parts."""

    service: str
    serial: str
    check: int
    country: str

    def __str__(self) -> str:
        return f"{self.service}{self.serial}{self.check}{self.country}"


def check_digit(serial: str) -> int:
    """The S10 check digit of an 8-digit serial number.

    S = sum of digit x weight (8 6 4 2 3 5 9 7); C = 11 - (S mod 11); 10 gives 0, 11 gives 5.
    """
    if len(serial) != 8 or not serial.isascii() or not serial.isdigit():
        raise InvalidMessage(f"S10 serial must be 8 digits, got {serial!r}")
    d = serial.encode("ascii")  # byte value = digit + 48; the weights add up to 44
    total = 8 * d[0] + 6 * d[1] + 4 * d[2] + 2 * d[3] + 3 * d[4] + 5 * d[5] + 9 * d[6] + 7 * d[7]
    total -= 48 * 44
    value = 11 - total % 11
    if value == 10:
        return 0
    if value == 11:
        return 5
    return value


def parse_s10(text: str) -> S10Id:
    """Split a well-formed S10 id; the check digit is not verified here."""
    if not _FORM.fullmatch(text):
        raise InvalidMessage(f"not an S10 item id: {text!r}")
    return S10Id(service=text[:2], serial=text[2:10], check=int(text[10]), country=text[11:])


def has_valid_check_digit(text: str) -> bool:
    """True when ``text`` is a well-formed S10 id whose check digit is right."""
    if not _FORM.fullmatch(text):
        return False
    return check_digit(text[2:10]) == int(text[10])
