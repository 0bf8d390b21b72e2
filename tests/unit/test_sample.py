"""connector.sample: reproducible, realistic item batches whose seeded faults are exactly known.

The checks here are written independently of the generator: the S10 check digit, ISO codes
(pycountry), sums (Decimal) and the XSD (lxml and xmllint) are recomputed from the XML alone.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from collections import Counter
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.sample import (
    FAULT_CODES,
    RULE_FAULT_CODES,
    SCHEMA_FAULT_CODES,
    SampleBatch,
    generate_batch,
)

ROOT = Path(__file__).resolve().parents[2]
XSD = ROOT / "xsd" / "item-batch-1.xsd"
NS = "urn:ead-connector:item-batch:1"
N = {"b": NS}

COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)
EU = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})  # fmt: skip
EU_NUMERIC = frozenset(country.numeric for country in pycountry.countries if country.alpha_2 in EU)
HS_CHAPTERS = frozenset(f"{n:02d}" for n in range(1, 98) if n != 77)
SCRIPTS = (
    "LATIN",
    "CYRILLIC",
    "GREEK",
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "HANGUL",
    "ARABIC",
    "HEBREW",
)
VAGUE = {"gift", "goods", "parts", "samples", "accessories", "present", "stuff"}


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture(scope="module")
def faulty() -> SampleBatch:
    return generate_batch(1000, invalid_ratio=0.1, seed=2026)


@pytest.fixture(scope="module")
def clean() -> SampleBatch:
    return generate_batch(1000, seed=11)


def items_of(batch: SampleBatch) -> list[etree._Element]:
    return etree.fromstring(batch.xml).findall("b:Items/b:Item", N)


def alone(item: etree._Element) -> etree._Element:
    """A one-item batch with a copy of ``item`` and of its batch's header."""
    root = etree.Element(f"{{{NS}}}ItemBatch", nsmap={None: NS})  # type: ignore[dict-item]
    header = item.getroottree().getroot().find("b:Header", N)
    assert header is not None
    root.append(copy.deepcopy(header))
    etree.SubElement(root, f"{{{NS}}}Items").append(copy.deepcopy(item))
    return root


def text(node: etree._Element, path: str) -> str:
    found = node.findtext(path, namespaces=N)
    assert found is not None, path
    return found


def texts(node: etree._Element, path: str) -> list[str]:
    return [n.text or "" for n in node.iterfind(path, namespaces=N)]


def s10_check_digit(serial: str) -> int:
    weighted = sum(int(d) * w for d, w in zip(serial, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - weighted % 11
    return {10: 0, 11: 5}.get(check, check)


def rule_violations(item: etree._Element) -> set[str]:
    """Business-rule codes ``item`` breaks on its own (duplicates need the batch)."""
    codes: set[str] = set()
    item_id = text(item, "b:ItemId")
    if s10_check_digit(item_id[2:10]) != int(item_id[10]):
        codes.add("s10_check_digit")
    countries = [
        item_id[11:],
        text(item, "b:Sender/b:Address/b:Country"),
        text(item, "b:Addressee/b:Address/b:Country"),
        text(item, "b:Transport/b:DepartureCountry"),
        text(item, "b:Transport/b:DestinationCountry"),
        *texts(item, "b:Contents/b:Line/b:OriginCountry"),
    ]
    if any(code not in COUNTRIES for code in countries):
        codes.add("country_unknown")
    currency = text(item, "b:Currency")
    line_currencies = texts(item, "b:Contents/b:Line/b:Currency")
    if any(code not in CURRENCIES for code in [currency, *line_currencies]):
        codes.add("currency_unknown")
    if any(code != currency for code in line_currencies):
        codes.add("currency_mismatch")
    values = sum(Decimal(v) for v in texts(item, "b:Contents/b:Line/b:Value"))
    if Decimal(text(item, "b:TotalValue")) != values:
        codes.add("value_total_mismatch")
    net = sum(Decimal(v) for v in texts(item, "b:Contents/b:Line/b:NetWeight"))
    if net > Decimal(text(item, "b:GrossWeight")):
        codes.add("weight_exceeds_gross")
    ioss = item.findtext("b:Importer/b:IossNumber", namespaces=N)
    if ioss is not None:
        match = re.fullmatch(r"IM([0-9]{3})[0-9]{7}", ioss)
        if match is None or match.group(1) not in EU_NUMERIC:
            codes.add("ioss_invalid")
    lines = item.findall("b:Contents/b:Line", N)
    if text(item, "b:Category") != "DOCUMENTS" and any(
        line.find("b:HsCode", N) is None for line in lines
    ):
        codes.add("hs_code_missing")
    if any(hs[:2] not in HS_CHAPTERS for hs in texts(item, "b:Contents/b:Line/b:HsCode")):
        codes.add("hs_chapter_unknown")
    if text(item, "b:Transport/b:DestinationCountry") != text(
        item, "b:Addressee/b:Address/b:Country"
    ):
        codes.add("destination_mismatch")
    return codes


def scripts_of(value: str) -> set[str]:
    found: set[str] = set()
    for char in value:
        if char.isalpha():
            name = unicodedata.name(char, "")
            found.update(script for script in SCRIPTS if name.startswith(script))
    return found


# --- determinism and counts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"items": 1},
        {"items": 250, "invalid_ratio": 0.2, "seed": 5},
        {"items": 40, "invalid_ratio": 1.0, "seed": 9, "operator_id": "PL-POCZTA"},
    ],
)
def test_same_arguments_give_identical_bytes(kwargs: dict[str, object]) -> None:
    """Two calls with the same arguments return byte-identical batches and equal metadata."""
    first = generate_batch(**kwargs)  # type: ignore[arg-type]
    second = generate_batch(**kwargs)  # type: ignore[arg-type]
    assert first == second
    assert first.xml == second.xml


def test_different_seed_gives_different_bytes() -> None:
    """Changing only the seed changes the batch (ids, items and header)."""
    one = generate_batch(50, seed=1)
    two = generate_batch(50, seed=2)
    assert one.xml != two.xml
    assert one.batch_id != two.batch_id


@pytest.mark.parametrize("count", [1, 2, 17, 500])
def test_item_count_and_header(count: int) -> None:
    """The batch holds exactly the requested number of items and its header names the batch."""
    batch = generate_batch(count, seed=count)
    root = etree.fromstring(batch.xml)
    assert batch.item_count == count
    assert len(root.findall("b:Items/b:Item", N)) == count
    assert text(root, "b:Header/b:BatchId") == batch.batch_id
    assert text(root, "b:Header/b:OperatorId") == batch.operator_id
    assert batch.xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert batch.faults == ()


def test_fault_count_and_every_kind(faulty: SampleBatch) -> None:
    """round(n * ratio) items are faulty, one fault each, sorted, and every kind occurs."""
    assert len(FAULT_CODES) == len(set(FAULT_CODES)) == 16
    assert set(FAULT_CODES) == set(RULE_FAULT_CODES) | set(SCHEMA_FAULT_CODES)
    assert len(faulty.faults) == round(1000 * 0.1)
    indexes = [fault.index for fault in faulty.faults]
    assert indexes == sorted(set(indexes))
    assert all(0 <= index < 1000 for index in indexes)
    assert {fault.code for fault in faulty.faults} == set(FAULT_CODES)
    assert all(fault.detail for fault in faulty.faults)


@pytest.mark.parametrize(
    ("count", "ratio"), [(10, 0.25), (7, 0.5), (1, 1.0), (3, 0.0), (33, 0.333), (20, 0.05)]
)
def test_fault_count_is_rounded(count: int, ratio: float) -> None:
    """The number of faulty items is Python's round(items * invalid_ratio)."""
    assert len(generate_batch(count, invalid_ratio=ratio, seed=3).faults) == round(count * ratio)


def test_all_items_faulty_cannot_duplicate_a_valid_id() -> None:
    """With every item faulty there is no valid id to repeat, so the other 15 kinds are used."""
    batch = generate_batch(20, invalid_ratio=1.0, seed=4)
    codes = {fault.code for fault in batch.faults}
    assert len(batch.faults) == 20
    assert codes == set(FAULT_CODES) - {"duplicate_item_id"}


# --- schema validity -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "seed", "operator"),
    [(1, 0, None), (300, 1, None), (300, 2, "DE-POST"), (300, 3, "CN-CHINAPOST"),
     (300, 4, "RU-RUSSIANPOST"), (300, 5, "OPERATOR.7")],
)  # fmt: skip
def test_valid_batch_is_schema_valid(count: int, seed: int, operator: str | None) -> None:
    """A batch without faults validates against xsd/item-batch-1.xsd (lxml)."""
    batch = generate_batch(count, seed=seed, operator_id=operator)
    document = etree.fromstring(batch.xml)
    assert schema().validate(document), schema().error_log


@pytest.mark.slow
def test_largest_batch_is_schema_valid() -> None:
    """A batch of the maximum 10,000 items validates against the schema."""
    batch = generate_batch(10_000, seed=99)
    assert schema().validate(etree.fromstring(batch.xml)), schema().error_log


def test_valid_batch_passes_xmllint(tmp_path: Path, clean: SampleBatch) -> None:
    """xmllint, a second processor, also accepts a batch without faults."""
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.skip("xmllint is not installed")
    path = tmp_path / "batch.xml"
    path.write_bytes(clean.xml)
    result = subprocess.run(
        [xmllint, "--noout", "--schema", str(XSD), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_each_item_alone_has_the_expected_schema_verdict(faulty: SampleBatch) -> None:
    """Alone in a batch, valid and rule-faulty items are schema-valid; schema-faulty are not."""
    by_index = {fault.index: fault.code for fault in faulty.faults}
    for index, item in enumerate(items_of(faulty)):
        code = by_index.get(index)
        verdict = schema().validate(alone(item))
        assert verdict == (code not in SCHEMA_FAULT_CODES), (index, code, schema().error_log)


def test_schema_faults_are_of_their_kind(faulty: SampleBatch) -> None:
    """libxml2 reports each schema-faulty item first with an error of the fault's kind."""
    expected = {
        "schema_pattern": ("SCHEMAV_CVC_PATTERN_VALID",),
        "schema_enumeration": ("SCHEMAV_CVC_ENUMERATION_VALID",),
        "schema_missing_element": ("SCHEMAV_ELEMENT_CONTENT",),
        "schema_unexpected_element": ("SCHEMAV_ELEMENT_CONTENT",),
        "schema_value": ("SCHEMAV_CVC_FRACTIONDIGITS_VALID", "SCHEMAV_CVC_DATATYPE_VALID_1_2_1"),
    }
    items = items_of(faulty)
    for fault in faulty.faults:
        if fault.code not in SCHEMA_FAULT_CODES:
            continue
        validator = schema()
        assert not validator.validate(alone(items[fault.index]))
        errors: Any = validator.error_log  # lxml-stubs leave _ErrorLog empty
        first = errors[0]
        assert first.type_name in expected[fault.code], (fault, first)
        if fault.code == "schema_unexpected_element":
            assert "Colour" in first.message
        if fault.code == "schema_missing_element":
            assert "Expected is ( {urn:ead-connector:item-batch:1}Name )" in first.message


# --- business rules ------------------------------------------------------------------------


def test_items_break_exactly_their_seeded_rule(faulty: SampleBatch) -> None:
    """Valid items break no rule; a rule-faulty item breaks its rule and no other."""
    by_index = {fault.index: fault.code for fault in faulty.faults}
    for index, item in enumerate(items_of(faulty)):
        code = by_index.get(index)
        found = rule_violations(item)
        if code is None or code == "duplicate_item_id":
            assert found == set(), (index, code, found)
        elif code in RULE_FAULT_CODES:
            assert found == {code}, (index, code, found)
        elif code == "schema_pattern":  # a lower-case currency is also no ISO code
            assert found <= {"currency_unknown"}, (index, code, found)
        else:
            assert found == set(), (index, code, found)


def test_item_ids_are_s10_and_unique_except_seeded_duplicates(faulty: SampleBatch) -> None:
    """Valid ids have a right check digit and the operator's country; only seeded ids repeat."""
    items = items_of(faulty)
    by_index = {fault.index: fault.code for fault in faulty.faults}
    ids = [text(item, "b:ItemId") for item in items]
    country = ids[min(set(range(len(ids))) - set(by_index))][11:]
    for index, item_id in enumerate(ids):
        assert re.fullmatch(r"[ERCVLU][A-Z][0-9]{9}[A-Z]{2}", item_id)
        assert item_id[11:] == country
        if by_index.get(index) != "s10_check_digit":
            assert s10_check_digit(item_id[2:10]) == int(item_id[10]), item_id
        else:
            assert s10_check_digit(item_id[2:10]) != int(item_id[10]), item_id
    first_seen: dict[str, int] = {}
    for index, item_id in enumerate(ids):
        first = first_seen.setdefault(item_id, index)
        if by_index.get(index) == "duplicate_item_id":
            assert first < index, (index, item_id)
            assert first not in by_index, (index, item_id)
        else:
            assert first == index, (index, item_id)


def test_values_and_weights_add_up(clean: SampleBatch) -> None:
    """Totals equal the line sums exactly, gross exceeds net, and decimals are fixed."""
    for item in items_of(clean):
        values = texts(item, "b:Contents/b:Line/b:Value")
        weights = texts(item, "b:Contents/b:Line/b:NetWeight")
        total = text(item, "b:TotalValue")
        gross = text(item, "b:GrossWeight")
        assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", v) for v in [*values, total])
        assert all(re.fullmatch(r"[0-9]+\.[0-9]{3}", w) for w in [*weights, gross])
        assert Decimal(total) == sum(Decimal(v) for v in values)
        assert Decimal(gross) > sum(Decimal(w) for w in weights)
        currency = text(item, "b:Currency")
        assert set(texts(item, "b:Contents/b:Line/b:Currency")) == {currency}
        for path in ("b:Postage", "b:InsuredValue"):
            value = item.findtext(path, namespaces=N)
            assert value is None or re.fullmatch(r"[0-9]+\.[0-9]{2}", value)


def test_valid_items_are_consistent_and_realistic(clean: SampleBatch) -> None:
    """Routes, categories, HS codes, IOSS and goods descriptions look like real postal data."""
    items = items_of(clean)
    categories = Counter(text(item, "b:Category") for item in items)
    assert set(categories) == {
        "GIFT", "DOCUMENTS", "COMMERCIAL_SAMPLE", "RETURNED_GOODS", "SALE_OF_GOODS", "OTHER"
    }  # fmt: skip
    assert categories.most_common(1)[0][0] == "SALE_OF_GOODS"
    hs_lengths: Counter[int] = Counter()
    descriptions = set()
    for item in items:
        sender = text(item, "b:Sender/b:Address/b:Country")
        addressee = text(item, "b:Addressee/b:Address/b:Country")
        assert text(item, "b:Transport/b:DepartureCountry") == sender
        assert text(item, "b:Transport/b:DestinationCountry") == addressee != sender
        assert text(item, "b:ItemId")[11:] == sender
        flight = item.findtext("b:Transport/b:FlightNumber", namespaces=N)
        assert flight is None or re.fullmatch(r"[A-Z0-9]{2}[0-9]{1,4}[A-Z]?", flight)
        lines = item.findall("b:Contents/b:Line", N)
        assert 1 <= len(lines) <= 5
        codes = texts(item, "b:Contents/b:Line/b:HsCode")
        if text(item, "b:Category") == "DOCUMENTS":
            assert codes == []
            assert Decimal(text(item, "b:GrossWeight")) < 1
        else:
            assert len(codes) == len(lines)
            hs_lengths.update(len(code) for code in codes)
        ioss = item.findtext("b:Importer/b:IossNumber", namespaces=N)
        if ioss is not None:
            assert addressee in EU
        for description in texts(item, "b:Contents/b:Line/b:Description"):
            assert description.lower() not in VAGUE
            assert len(description) > 10
            descriptions.add(description)
    assert set(hs_lengths) == {6, 8, 10}
    assert len(descriptions) >= 40
    assert any(item.find("b:Importer/b:IossNumber", N) is not None for item in items) or all(
        text(item, "b:Sender/b:Address/b:Country") in EU for item in items
    )


def test_names_use_several_scripts() -> None:
    """Sender and addressee names of 1,000 items are written in at least 4 Unicode scripts."""
    for seed, operator in ((0, None), (1, "DE-POST"), (2, "CN-CHINAPOST")):
        root = etree.fromstring(generate_batch(1000, seed=seed, operator_id=operator).xml)
        found: set[str] = set()
        for name in texts(root, "b:Items/b:Item/*/b:Name"):
            found |= scripts_of(name)
        assert len(found) >= 4, (seed, found)
        assert "LATIN" in found


def test_latin_names_carry_diacritics(clean: SampleBatch) -> None:
    """Latin-script names include letters with diacritics, not just ASCII."""
    root = etree.fromstring(clean.xml)
    names = texts(root, "b:Items/b:Item/*/b:Name")
    assert any(
        "LATIN" in unicodedata.name(c, "") and not c.isascii() for name in names for c in name
    )


def test_operator_fixes_the_sender_country() -> None:
    """An operator id starting with a known country code makes that country the sender's."""
    batch = generate_batch(60, seed=8, operator_id="PL-POCZTA")
    items = items_of(batch)
    assert batch.operator_id == "PL-POCZTA"
    assert {text(item, "b:Sender/b:Address/b:Country") for item in items} == {"PL"}
    assert {text(item, "b:Currency") for item in items} == {"PLN"}
    assert all(text(item, "b:ItemId").endswith("PL") for item in items)


SENDER_COUNTRIES = (
    "DE", "FR", "GB", "US", "CN", "JP", "KR", "RU", "UA", "GR",
    "IL", "AE", "EG", "IN", "BR", "ES", "IT", "PL", "NL", "CH",
)  # fmt: skip


@pytest.mark.parametrize("country", SENDER_COUNTRIES)
def test_every_sender_country_gives_valid_items(country: str) -> None:
    """Each supported operator country yields schema-valid items that break no rule."""
    batch = generate_batch(120, seed=len(country) + ord(country[0]), operator_id=f"{country}-POST")
    root = etree.fromstring(batch.xml)
    assert schema().validate(root), schema().error_log
    for item in root.iterfind("b:Items/b:Item", N):
        assert text(item, "b:Sender/b:Address/b:Country") == country
        assert rule_violations(item) == set()


def test_bytes_do_not_depend_on_hash_randomization() -> None:
    """Two interpreters with different PYTHONHASHSEED produce the same batch."""
    code = (
        "import hashlib, sys; from connector.sample import generate_batch; "
        "sys.stdout.write(hashlib.sha256("
        "generate_batch(300, invalid_ratio=0.3, seed=5).xml).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONPATH": str(ROOT)},
        ).stdout
        for hash_seed in (1, 2)
    }
    assert len(digests) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"items": 0},
        {"items": -1},
        {"items": 10_001},
        {"items": True},
        {"items": 2.0},
        {"items": 5, "invalid_ratio": -0.01},
        {"items": 5, "invalid_ratio": 1.01},
        {"items": 5, "invalid_ratio": float("nan")},
        {"items": 5, "operator_id": ""},
        {"items": 5, "operator_id": "DE POST"},
        {"items": 5, "operator_id": "X" * 65},
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict[str, object]) -> None:
    """Out-of-range counts and ratios and malformed operator ids raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by argument
        generate_batch(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=60),
    ratio=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_arguments_give_a_consistent_batch(count: int, ratio: float, seed: int) -> None:
    """For any size, ratio and seed: right counts, and each item's verdicts match its fault."""
    batch = generate_batch(count, invalid_ratio=ratio, seed=seed)
    items = items_of(batch)
    assert len(items) == count
    assert len(batch.faults) == round(count * ratio)
    by_index = {fault.index: fault.code for fault in batch.faults}
    assert len(by_index) == len(batch.faults)
    ids = [text(item, "b:ItemId") for item in items]
    for index, item in enumerate(items):
        code = by_index.get(index)
        assert schema().validate(alone(item)) == (code not in SCHEMA_FAULT_CODES)
        if code is None:
            assert rule_violations(item) == set()
            assert ids.index(ids[index]) == index
        elif code == "duplicate_item_id":
            first = ids.index(ids[index])
            assert first < index
            assert first not in by_index
        elif code in RULE_FAULT_CODES:
            assert rule_violations(item) == {code}
