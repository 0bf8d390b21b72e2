"""Seed the problems the checks look for into a sample item batch (demo, bench, tests).

:func:`seed_check_problems` takes a batch (for example from :func:`connector.sample.
generate_batch`) and rewrites some of its items so that each carries one problem of one
check: an HS code that is no subheading, a vague description, a description of another
chapter, a prohibited article, a name or an address of the fictional denied-party list shipped
in ``config/checks/denied_parties.csv`` (addresses only on request: they are found with
``address_screening = "all"``). The items stay schema-valid and keep every business
rule, so the batch still validates and the checks find exactly these problems (besides the
restricted articles the sample catalogue holds naturally: power banks, perfume).

Pure: bytes in, bytes out, the same arguments give the same bytes.
"""

# The seeded names are deliberately written in Cyrillic script too.
# ruff: noqa: RUF001
from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from lxml import etree

from connector.core.xmlsafe import parse_xml

__all__ = ["ADDRESS_CODE", "PROBLEM_CODES", "CheckSample", "SeededProblem", "seed_check_problems"]

#: The findings seeded by default, one kind per item, in turn.
PROBLEM_CODES: tuple[str, ...] = (
    "hs_code_unknown",
    "description_vague",
    "description_contradicts_hs",
    "article_prohibited",
    "party_denied",
    "party_possible_match",
)
#: Also seedable: found only with ``address_screening = "all"``.
ADDRESS_CODE = "party_address_match"

#: Codes whose first six digits are no HS 2022 subheading (chapter or heading padded with
#: zeros, or of an older edition), each in an existing chapter.
_UNKNOWN_CODES = ("610000", "851712", "847100", "95039000", "392600", "33049000", "640000")
_VAGUE = ("Gift", "Clothes", "Spare parts", "Accessories", "Goods", "Samples", "Birthday present")
#: (description, the chapters it belongs to)
_OTHER_CHAPTER = (
    ("Men's cotton knitted T-shirt, short sleeves", ("61", "62")),
    ("Smartphone, 128 GB, dual SIM", ("85",)),
    ("Printed paperback novel", ("48", "49")),
    ("Running shoes with rubber soles", ("64",)),
)
_PROHIBITED = (
    ("Semi-automatic pistol, 9 mm", "930200"),
    ("Fireworks assortment, rockets and firecrackers", "360410"),
    ("Dried cannabis flowers, 10 g", "121190"),
)
#: Names of list entries in the scripts of their aliases (fictional, see the list's README).
_DENIED = (
    "Иван Фиктивович Тестов",
    "虚构贸易有限公司",
    "ظاهر خيالي المثالي",
    "Phantom Dual-Use Components GmbH",
    "ООО «Фиктивный Импорт»",
    "王虚构",
    "Дмитро Вигаданий",
)
_POSSIBLE = ("Ivan Tyestov", "Zaher Khayali al Mithali", "Maria Ficticia", "Placeholder Optics")
#: (street, city) of listed addresses.
_ADDRESSES = (
    ("Office 404, Sarab Tower", "Dubai"),
    ("Erfundene Straße 7", "Berlin 10115"),
    ("Unit 9, 42 Notreal Lane", "Manchester M1 1AA"),
)


@dataclass(frozen=True, slots=True)
class SeededProblem:
    """The item at ``index`` (0-based) must get a finding with ``code``."""

    index: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class CheckSample:
    xml: bytes
    problems: tuple[SeededProblem, ...]


class _Item:
    """Positional access to the parts of one schema-valid Item element."""

    def __init__(self, element: etree._Element, namespace: str) -> None:
        self.element = element
        self.ns = namespace
        office = f"{{{namespace}}}OfficeOfOrigin"
        self.at = 4 if element[3].tag == office else 3
        comments = f"{{{namespace}}}Comments"
        self.end = -2 if element[-1].tag == comments else -1

    def lines(self) -> list[etree._Element]:
        return list(self.element[self.end - 1])

    def hs(self, line: etree._Element) -> etree._Element | None:
        node = line[5]
        return node if node.tag == f"{{{self.ns}}}HsCode" else None

    def party(self, addressee: bool) -> etree._Element:
        return self.element[self.at + (1 if addressee else 0)]


def _seed(rng: random.Random, item: _Item, code: str, turn: int) -> str | None:
    """Put the problem ``code`` into ``item``; None when this item cannot carry it."""
    coded = [line for line in item.lines() if item.hs(line) is not None]
    if code == "hs_code_unknown":
        if not coded:
            return None
        node = item.hs(rng.choice(coded))
        assert node is not None
        node.text = _UNKNOWN_CODES[turn % len(_UNKNOWN_CODES)]
        return f"HsCode {node.text} is no HS 2022 subheading"
    if code == "description_vague":
        if not coded:  # DOCUMENTS lines are not judged for vagueness
            return None
        line = rng.choice(coded)
        line[0].text = _VAGUE[turn % len(_VAGUE)]
        return f"Description {line[0].text!r}"
    if code == "description_contradicts_hs":
        for description, chapters in _OTHER_CHAPTER[turn % len(_OTHER_CHAPTER) :]:
            for line in coded:
                node = item.hs(line)
                if node is not None and (node.text or "").strip()[:2] not in chapters:
                    line[0].text = description
                    return f"Description {description!r} with HsCode {node.text}"
        return None
    if code == "article_prohibited":
        if not coded:
            return None
        line = rng.choice(coded)
        description, hs = _PROHIBITED[turn % len(_PROHIBITED)]
        line[0].text = description
        node = item.hs(line)
        assert node is not None
        node.text = hs
        return f"Description {description!r}, HsCode {hs}"
    addressee = rng.random() < 0.5
    party = item.party(addressee)
    role = "Addressee" if addressee else "Sender"
    if code == "party_denied":
        party[0].text = _DENIED[turn % len(_DENIED)]
        return f"{role} name {party[0].text!r}"
    if code == "party_possible_match":
        party[0].text = _POSSIBLE[turn % len(_POSSIBLE)]
        return f"{role} name {party[0].text!r}"
    if code == "party_address_match":
        street, city = _ADDRESSES[turn % len(_ADDRESSES)]
        address = party[1]
        streets = [child for child in address if child.tag == f"{{{item.ns}}}Street"]
        streets[0].text = street
        for extra in streets[1:]:
            address.remove(extra)
        address[1].text = city  # Address: Street, City, ...
        return f"{role} address {street}, {city}"
    raise AssertionError(code)  # pragma: no cover


def seed_check_problems(
    xml: bytes,
    *,
    ratio: float,
    seed: int = 0,
    avoid: Collection[int] = (),
    codes: Sequence[str] = PROBLEM_CODES,
) -> CheckSample:
    """``xml`` with ``round(items * ratio)`` items rewritten to carry one check problem each.

    ``avoid``: indexes not to touch (items already faulty, e.g. ``SampleBatch.faults``);
    ``codes``: the kinds of problem, seeded in turn.
    """
    unknown = set(codes) - {*PROBLEM_CODES, ADDRESS_CODE}
    if unknown or not codes:
        raise ValueError(f"cannot seed {sorted(unknown) or 'nothing'}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be between 0 and 1, got {ratio!r}")
    root = parse_xml(xml)
    namespace = etree.QName(root).namespace or ""
    items = list(root[1])
    skip = set(avoid)
    candidates = [index for index in range(len(items)) if index not in skip]
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    wanted = min(round(len(items) * ratio), len(candidates))
    chosen = list(candidates)
    rng.shuffle(chosen)
    problems: list[SeededProblem] = []
    turn = 0
    for index in chosen:
        if len(problems) == wanted:
            break
        code = codes[turn % len(codes)]
        detail = _seed(rng, _Item(items[index], namespace), code, turn // len(codes))
        if detail is not None:
            problems.append(SeededProblem(index, code, detail))
            turn += 1
    problems.sort(key=lambda problem: problem.index)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return CheckSample(data, tuple(problems))
