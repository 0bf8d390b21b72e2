"""The checks over a validated batch: per-item findings, both readers agree, outcome model."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from connector import checks_loader
from connector.core import checks
from connector.core.checks import CheckConfig, CheckName, Finding, Severity
from connector.core.checks.config import VerdictMemo
from connector.core.checks.parties import AddressScreening, Screening
from connector.core.checks.seeding import ADDRESS_CODE, PROBLEM_CODES, seed_check_problems
from connector.core.inbound import ValidationReport, postal_item, validate_item_batch
from connector.errors import UnknownCode
from connector.sample import generate_batch

DATA = Path(__file__).parents[2] / "data"
ITEMS = DATA / "checks" / "items.xml"
CONFIG = checks_loader.default_check_config()

#: tests/data/checks/items.xml: item index -> (code, path below the item) of each finding.
EXPECTED: dict[int, list[tuple[str, str]]] = {
    0: [],
    1: [("party_denied", "Sender/Name")],
    2: [("party_denied", "Sender/Name")],
    3: [("party_denied", "Addressee/Name")],
    4: [],  # Иван Петров
    5: [],  # 王伟
    6: [],  # حسن علي
    7: [("hs_code_unknown", "Contents/Line[1]/HsCode")],
    8: [("hs_code_unknown", "Contents/Line[1]/HsCode")],
    9: [("description_vague", "Contents/Line[1]/Description")],
    10: [("description_vague", "Contents/Line[1]/Description")],
    11: [("description_contradicts_hs", "Contents/Line[1]/Description")],
    12: [("article_prohibited", "Contents/Line[1]/HsCode")],
    13: [("article_restricted", "Contents/Line[1]/HsCode")],
    14: [("article_prohibited", "Contents/Line[1]/HsCode")],
    15: [("article_restricted", "Contents/Line[1]/HsCode")],
    16: [],  # at a listed address: found with address_screening = "all" (below)
    17: [("party_possible_match", "Sender/Name")],
    18: [],  # DOCUMENTS described as "Documents"
}


def _report(path: Path = ITEMS) -> ValidationReport:
    return validate_item_batch(path.read_bytes())


def _records(report: ValidationReport, config: CheckConfig = CONFIG) -> tuple[Finding, ...]:
    """The findings of the record reader (PostalItem records, as tests and tools hold them)."""
    items = (
        (item.item_index, postal_item(element)) for item, element in report.accepted_elements()
    )
    return checks.run_checks(items, config)


@pytest.mark.parametrize(("index", "expected"), sorted(EXPECTED.items()))
def test_each_real_looking_item_gets_its_findings(
    index: int, expected: list[tuple[str, str]]
) -> None:
    """Every item of the corpus gets exactly the findings its comment names."""
    report = _report()
    assert report.all_valid
    findings = [f for f in checks.check_report(report, CONFIG) if f.item_index == index]
    prefix = f"/ItemBatch/Items/Item[{index + 1}]/"
    assert [(f.code, f.path.removeprefix(prefix)) for f in findings] == expected
    for finding in findings:
        assert finding.item_id == report.accepted[index].item_id
        assert finding.severity is (
            Severity.ERROR
            if finding.code in {"party_denied", "hs_code_unknown", "article_prohibited"}
            else Severity.WARNING
        )


def test_element_scan_and_records_agree() -> None:
    """Intake's element scan gives the findings the record reader gives, in order."""
    report = _report()
    assert checks.check_report(report, CONFIG) == _records(report)


def test_checks_only_what_is_enabled() -> None:
    """Disabled checks report nothing; no check at all reports nothing."""
    report = _report()
    only_hs = checks.check_report(report, CONFIG.with_enabled({CheckName.HS}))
    assert {f.code for f in only_hs} == {"hs_code_unknown"}
    assert checks.check_report(report, CONFIG.with_enabled(())) == ()
    parties = CONFIG.with_enabled({CheckName.PARTIES})
    assert {f.code for f in checks.check_report(report, parties)} == {
        "party_denied",
        "party_possible_match",
    }


def test_every_address_is_screened_when_configured() -> None:
    """With ``address_screening = "all"`` the item at a listed address gets a warning."""
    listed = CONFIG.screening.parties
    settings = replace(listed.settings, address_screening=AddressScreening.ALL)
    config = replace(CONFIG, screening=Screening(listed.with_settings(settings)))
    report = _report()
    findings = [f for f in checks.check_report(report, config) if f.item_index == 16]
    assert [(f.code, f.severity, f.path) for f in findings] == [
        ("party_address_match", Severity.WARNING, "/ItemBatch/Items/Item[17]/Addressee/Address")
    ]
    assert findings[0].detail["entry_id"] == "fict-company-0004"
    assert checks.check_report(report, config) == _records(report, config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", set(CheckName)),
        ("none", set()),
        ("hs, parties", {CheckName.HS, CheckName.PARTIES}),
        ("DESCRIPTIONS", {CheckName.DESCRIPTIONS}),
    ],
)
def test_check_names_parse(text: str, expected: set[CheckName]) -> None:
    """``--checks`` takes all, none or a list of names."""
    assert checks.parse_check_names(text) == expected


def test_unknown_check_name_is_a_domain_error() -> None:
    """Check names are a closed vocabulary."""
    with pytest.raises(UnknownCode, match="hs, descriptions, prohibited, parties"):
        checks.parse_check_names("hs,sanctions")


def test_error_findings_reject_their_items_and_warnings_do_not() -> None:
    """Merged into the report, errors join the item errors; warned items stay accepted."""
    report = _report()
    findings = checks.check_report(report, CONFIG)
    merged = checks.merge_into_report(report, findings)
    errors = {f.item_index for f in findings if f.is_error}
    warned = {f.item_index for f in findings if not f.is_error} - errors
    assert merged.rejected_indexes == errors
    assert {item.item_index for item in merged.accepted} == set(range(19)) - errors
    assert warned <= {item.item_index for item in merged.accepted}
    assert [e.code for e in merged.errors] == [f.code for f in findings if f.is_error]
    assert checks.merge_into_report(report, [f for f in findings if not f.is_error]) is report


def test_findings_serialize_to_json() -> None:
    """``as_dict`` is JSON-ready, with the explanation."""
    findings = checks.check_report(_report(), CONFIG)
    data = json.loads(json.dumps([f.as_dict() for f in findings], ensure_ascii=False))
    denied = next(d for d in data if d["code"] == "party_denied")
    assert denied["severity"] == "error"
    assert denied["detail"]["entry_id"] == "fict-person-0001"
    assert denied["detail"]["score"] == 100.0
    unknown = next(d for d in data if d["code"] == "hs_code_unknown")
    assert unknown["detail"]["suggestions"] == ["851711", "851713", "851714"]


def test_rejected_items_are_not_checked() -> None:
    """An item already refused by the rules gets no check findings."""
    text = ITEMS.read_text(encoding="utf-8").replace("CP100000025RU", "CP100000026RU")
    report = validate_item_batch(text.encode())
    assert report.rejected_indexes == {1}
    findings = checks.check_report(report, CONFIG)
    assert 1 not in {f.item_index for f in findings}
    assert _records(report) == findings


def test_pretty_printed_batches_read_alike() -> None:
    """White space between elements does not reach names or addresses."""
    report = _report(DATA / "valid" / "two_items.xml")
    assert checks.check_report(report, CONFIG) == _records(report) == ()


def test_seeded_problems_are_all_found() -> None:
    """A generated batch with seeded problems: each is found, nothing else but the
    restricted articles of the catalogue, and the batch still passes the business rules."""
    batch = generate_batch(2000, invalid_ratio=0.05, seed=11)
    sample = seed_check_problems(
        batch.xml, ratio=0.02, seed=4, avoid=[fault.index for fault in batch.faults]
    )
    assert len(sample.problems) == 40
    counts = Counter(p.code for p in sample.problems)
    assert set(counts) == set(PROBLEM_CODES)
    assert min(counts.values()) >= 40 // len(PROBLEM_CODES)
    report = validate_item_batch(sample.xml)
    assert report.rejected_indexes == {fault.index for fault in batch.faults}
    findings = checks.check_report(report, CONFIG)
    found = {(f.item_index, f.code) for f in findings}
    assert [p for p in sample.problems if (p.index, p.code) not in found] == []
    seeded = {p.index for p in sample.problems}
    assert {f.code for f in findings if f.item_index not in seeded} <= {"article_restricted"}
    assert _records(report) == findings


def test_seeded_addresses_are_found_when_every_address_is_screened() -> None:
    """Seeded listed addresses give ``party_address_match`` with every address screened."""
    batch = generate_batch(500, seed=12)
    sample = seed_check_problems(batch.xml, ratio=0.02, seed=5, codes=(ADDRESS_CODE,))
    assert len(sample.problems) == 10
    listed = CONFIG.screening.parties
    settings = replace(listed.settings, address_screening=AddressScreening.ALL)
    config = replace(CONFIG, screening=Screening(listed.with_settings(settings)))
    findings = checks.check_report(validate_item_batch(sample.xml), config)
    found = {(f.item_index, f.code) for f in findings}
    assert all((p.index, p.code) in found for p in sample.problems)
    with pytest.raises(ValueError, match="cannot seed"):
        seed_check_problems(batch.xml, ratio=0.1, codes=("party_unknown",))


def test_batches_on_one_configuration_share_their_verdicts() -> None:
    """The second batch on a configuration reuses the values the first one judged, with
    the same findings; a copy with other settings judges afresh."""
    config = checks_loader.default_check_config()
    report = _report()
    first = checks.check_report(report, config)
    remembered = len(config.memo)

    assert remembered > 0
    assert checks.check_report(report, config) == first
    assert len(config.memo) == remembered
    hs_only = replace(config, enabled=frozenset({CheckName.HS}))
    assert len(hs_only.memo) == 0
    assert {f.code for f in checks.check_report(report, hs_only)} == {"hs_code_unknown"}


def test_the_verdict_memo_starts_again_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    config = checks_loader.default_check_config()
    monkeypatch.setattr(VerdictMemo, "limit", 5)
    report = _report()
    first = checks.check_report(report, config)
    assert len(config.memo) > 5

    config.memo.trim()

    assert len(config.memo) == 0
    assert checks.check_report(report, config) == first
