"""Fuzzing the XML intake and the Customs response handler with mutated valid documents.

Mutations (one to three per example): byte flips, truncation, duplication of a slice between
two tags, a huge text node (up to 2 MB), deep nesting (up to 5,000 levels), invalid UTF-8.
Whatever comes, the answer is a valid acknowledgement or a stable error code: never a 500 or
an exception outside the connector's tree, never a hang (each example has a deadline and each
request a timeout), never a memory blow-up (peak RSS checked over the whole run).

``make soak`` raises the number of examples.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.core.inbound import validate_item_batch
from connector.core.model import CustomsDecision
from connector.errors import ConnectorError
from connector.sample import generate_batch
from tests.integration.web.conftest import OPERATOR_A
from tests.reliability.hostile import Served
from tests.reliability.world import SOAK_KILLS

pytestmark = pytest.mark.reliability

D = CustomsDecision
EXAMPLES = 400 if SOAK_KILLS else 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=10_000,  # ms per example: a hang guard, not a speed assertion
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not SOAK_KILLS,
    database=None,
)
BATCH = generate_batch(5, seed=3, operator_id=OPERATOR_A).xml
PUSH_STATUSES = {200, 400, 413}
RESPONSE_STATUSES = {200, 400, 409, 413}
RSS_GROWTH_LIMIT_KB = 512 * 1024


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@st.composite
def mutated(draw: st.DrawFn, document: bytes) -> bytes:
    data = bytearray(document)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "huge", "deep", "utf8"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            start = data.find(b"<", at)
            end = data.find(b"<", start + 1) if start >= 0 else -1
            if end > start >= 0:
                end = data.find(b"<", end + 1)
                if end > start:
                    data[end:end] = data[start:end] * draw(st.integers(1, 50))
        elif kind == "huge":
            gt = data.find(b">", at)
            if gt >= 0:
                data[gt + 1 : gt + 1] = b"A" * draw(st.sampled_from([1_000, 100_000, 2_000_000]))
        elif kind == "deep":
            gt = data.find(b">", at)
            depth = draw(st.sampled_from([30, 300, 5_000]))
            if gt >= 0:
                data[gt + 1 : gt + 1] = b"<x>" * depth + b"</x>" * depth
        else:
            data[at:at] = bytes(draw(st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=4)))
    return bytes(data)


@pytest.fixture(scope="module")
def genuine_response(served: Served) -> bytes:
    """One response Customs really signed: RELEASE on item 1 (mutations start from it)."""
    return served.rig.body((1, D.RELEASE))


@pytest.fixture(scope="module")
def rss_guard() -> Iterator[None]:
    before = _rss_kb()
    yield
    assert _rss_kb() - before < RSS_GROWTH_LIMIT_KB, "memory grew beyond bounds while fuzzing"


@FUZZ
@given(data=mutated(BATCH))
def test_validate_item_batch_gives_a_report_or_a_stable_code(rss_guard: None, data: bytes) -> None:
    try:
        report = validate_item_batch(data)
    except ConnectorError as error:
        assert error.http_status in (400, 413), error.code  # noqa: PT017
        return
    assert report.item_count == len(report.accepted) + len(
        {error.item_index for error in report.errors}
    )


@FUZZ
@given(data=mutated(BATCH))
def test_intake_route_answers_an_acknowledgement_or_a_problem(
    served: Served, rss_guard: None, data: bytes
) -> None:
    status, answer = served.push(data)
    assert status in PUSH_STATUSES, (status, answer)
    if status == 200:
        assert answer["items"]
        assert all(item["status"] in {"accepted", "rejected"} for item in answer["items"])
    else:
        assert answer["code"], answer
        assert answer["type"].endswith(answer["code"])


ITEM_DAMAGE = {
    "bad_item_id": (b"<ItemId>", b"<ItemId>not-an-S10-"),
    "negative_weight": (b"<GrossWeight>", b"<GrossWeight>-"),
    "unknown_element": (b"<Category>", b"<Smuggled>x</Smuggled><Category>"),
    "huge_description": (b"<Description>", b"<Description>" + b"D" * 300_000),
    "deep_inside": (b"<Category>", b"<a>" * 20 + b"</a>" * 20 + b"<Category>"),
}


@FUZZ
@given(
    seed=st.integers(1, 10_000),
    victim=st.integers(0, 9),
    damage=st.sampled_from(sorted(ITEM_DAMAGE)),
)
def test_one_damaged_item_does_not_take_the_good_ones_down(
    served: Served, seed: int, victim: int, damage: str
) -> None:
    batch = generate_batch(10, seed=seed + 50_000, operator_id=OPERATOR_A).xml
    parts = batch.split(b"<Item>")
    marker, replacement = ITEM_DAMAGE[damage]
    item = parts[victim + 1]
    assert marker in item
    parts[victim + 1] = item.replace(marker, replacement, 1)
    status, ack = served.push(b"<Item>".join(parts))
    assert status == 200, ack
    statuses = [item["status"] for item in ack["items"]]
    assert statuses[victim] == "rejected", ack["items"][victim]
    assert statuses.count("accepted") == 9, ack


@FUZZ
@given(data=st.data())
def test_customs_responses_route_never_applies_a_mutated_forgery(
    served: Served, genuine_response: bytes, rss_guard: None, data: st.DataObject
) -> None:
    status, answer = served.respond(data.draw(mutated(genuine_response)))
    assert status in RESPONSE_STATUSES, (status, answer)
    if status != 200:
        assert answer["code"], answer
        assert answer["type"].endswith(answer["code"])
    _only_what_customs_signed(served)


def _only_what_customs_signed(served: Served) -> None:
    """Customs only ever signed RELEASE on item 1: nothing else may change."""
    assert served.decision(1) in (None, D.RELEASE)
    assert served.decision(2) is None
    assert served.decision(3) is None


@FUZZ
@given(data=st.data())
def test_decide_service_raises_only_connector_errors(
    served: Served, genuine_response: bytes, data: st.DataObject
) -> None:
    rig = served.rig
    attack = data.draw(mutated(genuine_response))
    try:
        served.run(rig.service.receive("EU-ICS2", attack))
    except ConnectorError as error:
        assert error.http_status < 500, error.code  # noqa: PT017
    _only_what_customs_signed(served)
