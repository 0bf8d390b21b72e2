"""The mock Customs risk rules: each rule, their order, and reading an item's facts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.core.model import CustomsDecision
from connector.core.xmlsafe import parse_xml
from connector.peers.risk import ItemFacts, Line, RiskRules, facts_of
from connector.sample import generate_batch

D = CustomsDecision


def facts(*lines: Line, names: tuple[str, ...] = ("Anna Muster", "Jan Jansen")) -> ItemFacts:
    return ItemFacts(names, lines)


def line(description: str = "Cotton T-shirt", value: str = "20", hs: str | None = "610910") -> Line:
    return Line(description, 1, Decimal(value), hs)


@pytest.mark.parametrize(
    ("item", "decision"),
    [
        (facts(line()), D.RELEASE),
        (facts(line(), names=("Anna Muster", "  viktor   BLACKLISTOV ")), D.DO_NOT_LOAD),
        (facts(line("Hunting cartridges", hs="930630")), D.HOLD),
        (facts(line("Smartphone", value="5", hs="851713")), D.REQUEST_SCREENING),
        (facts(line("Smartphone", value="120", hs="851713")), D.RELEASE),
        (facts(line("Gift")), D.REQUEST_INFO),
        (facts(line("some various parts")), D.REQUEST_INFO),
        (facts(line("Bicycle parts")), D.RELEASE),
        (facts(line("Gift", hs="930630")), D.HOLD),
    ],
)
def test_rules_decide_in_order(item: ItemFacts, decision: CustomsDecision) -> None:
    code, reason = RiskRules().decide(item)
    assert code is decision
    assert reason


def test_the_rules_are_configurable() -> None:
    rules = RiskRules(watch_list=frozenset({"Anna Muster"}), hold_chapters=frozenset({"61"}))
    assert rules.decide(facts(line()))[0] is D.DO_NOT_LOAD
    assert rules.decide(facts(line(), names=("B",)))[0] is D.HOLD


def test_facts_are_read_from_an_item_element() -> None:
    root = parse_xml(generate_batch(1, seed=1, operator_id="DE-POST").xml)
    item = next(node for node in root.iter() if node.tag.endswith("}Item"))
    read = facts_of(item)
    assert len(read.names) == 2
    assert read.lines
    assert all(entry.hs_code for entry in read.lines)
    assert RiskRules().decide(read)[0] is D.RELEASE
