"""The protocol-level attack corpus (``tests/data/attacks/protocol/``) and the generated cases.

Each attack meets the running app on loopback and gets its stable answer; a valid batch and a
genuine Customs response sent right after it are handled as if nothing had happened. The
corpus's README lists every case with its expected code.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from connector.core import signing
from connector.core.model import CustomsDecision
from connector.sample import generate_batch
from tests.integration.web.conftest import OPERATOR_A, TOKEN_A, TWO_ITEMS
from tests.reliability.hostile import Served
from tests.unit.flow.test_decide import INTRUDER

pytestmark = pytest.mark.reliability

D = CustomsDecision
PROTOCOL = Path(__file__).resolve().parents[1] / "data" / "attacks" / "protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
_counter = iter(range(1, 1_000_000))


def _good_traffic_still_flows(served: Served) -> None:
    """A fresh valid batch is accepted whole; a genuine Customs response is applied."""
    batch = generate_batch(3, seed=next(_counter), operator_id=OPERATOR_A).xml
    status, ack = served.push(batch)
    assert status == 200, ack
    assert [item["status"] for item in ack["items"]] == ["accepted"] * 3
    status, answer = served.respond(served.rig.body((3, D.HOLD), response_id=_response_id()))
    assert status == 200, answer
    assert answer["problems"] == []


def _response_id() -> str:
    return f"RSP-ATTACK-{next(_counter)}"


# --- XML bodies -------------------------------------------------------------------------------


def test_xslt_stylesheet_processing_instructions_are_refused(served: Served) -> None:
    """A batch carrying ``<?xml-stylesheet?>`` PIs is refused whole; nothing is fetched,
    run or stored, and the same items without the PIs are then taken."""
    data = (PROTOCOL / "xslt_stylesheet_pi.xml").read_bytes()
    assert b"<?xml-stylesheet" in data
    before = served.item_count()
    status, problem = served.push(data)
    assert (status, problem["code"]) == (400, "xml_processing_instruction_forbidden")
    assert served.item_count() == before
    status, ack = served.push(TWO_ITEMS.read_bytes())
    assert status == 200, ack
    _good_traffic_still_flows(served)


def test_an_xslt_document_is_not_an_item_batch(served: Served) -> None:
    before = served.item_count()
    status, problem = served.push((PROTOCOL / "xslt_document.xml").read_bytes())
    assert (status, problem["code"]) == (400, "message_kind_unknown")
    assert "root:" not in str(problem)
    assert served.item_count() == before
    _good_traffic_still_flows(served)


def test_a_batch_of_10001_items_is_refused_whole(served: Served) -> None:
    """One item over the schema's 10,000: refused as a whole, before any item is checked."""
    batch = generate_batch(10_000, seed=7, operator_id=OPERATOR_A).xml
    first = re.search(rb"<Item>.*?</Item>", batch, re.S)
    assert first is not None
    extra = re.sub(rb"<ItemId>[^<]*</ItemId>", b"<ItemId>ZZ000000000DE</ItemId>", first.group(0))
    data = batch.replace(b"</Items>", extra + b"</Items>")
    assert data.count(b"<Item>") == 10_001
    before = served.item_count()
    status, problem = served.push(data)
    assert (status, problem["code"]) == (400, "envelope_invalid")
    assert "10001" in problem["detail"]
    assert served.item_count() == before
    _good_traffic_still_flows(served)


# --- header smuggling -------------------------------------------------------------------------

SMUGGLING = sorted(PROTOCOL.glob("*.http"))


@pytest.mark.parametrize("path", SMUGGLING, ids=lambda path: path.name)
def test_header_smuggling_is_refused_by_the_http_parser(served: Served, path: Path) -> None:
    """CR, LF or NUL inside a header value, a folded header, two Content-Lengths, or a
    Content-Length with chunked encoding: 400 from the HTTP parser, the body never stored,
    and no second request hidden in the body is ever run."""
    body = generate_batch(2, seed=next(_counter), operator_id=OPERATOR_A).xml
    request = (
        path.read_bytes()
        .replace(b"@TOKEN@", TOKEN_A.encode())
        .replace(b"@LENGTH@", str(len(body)).encode())
        .replace(b"@BODY@", body)
    )
    before = served.item_count()
    answer = served.raw(request)
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:200]
    assert len(re.findall(rb"HTTP/1\.[01] \d{3} ", answer)) == 1  # nothing ran behind it
    assert served.item_count() == before
    _good_traffic_still_flows(served)


def test_the_smuggling_requests_are_valid_when_repaired(served: Served) -> None:
    """Control: the same request without its smuggling header is accepted."""
    body = generate_batch(2, seed=next(_counter), operator_id=OPERATOR_A).xml
    request = (
        b"POST /v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + TOKEN_A.encode()
        + b"\r\nContent-Type: application/xml\r\nAccept: application/json\r\n"
        + b"Connection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    assert served.raw(request).startswith(b"HTTP/1.1 200 ")


# --- signature wrapping on Customs responses --------------------------------------------------


def _tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _signature(root: etree._Element) -> etree._Element:
    found = root.find(f"{{{DS}}}Signature")
    assert found is not None
    return found


def _wrap_genuine_in_forged(genuine: bytes, forged: bytes) -> bytes:
    """XSW1: the forged response is the root; the genuine signed one hides inside it."""
    root = _tree(forged)
    root.append(_tree(genuine))
    return _bytes(root)


def _genuine_signature_on_forged(genuine: bytes, forged: bytes) -> bytes:
    """XSW2: the genuine Signature element moved onto the forged response."""
    root = _tree(forged)
    root.append(copy.deepcopy(_signature(_tree(genuine))))
    return _bytes(root)


def _decision_appended(genuine: bytes, forged: bytes) -> bytes:
    """A forged Decision added to the genuine response after signing."""
    root = _tree(genuine)
    decisions = next(node for node in root if etree.QName(node).localname == "Decisions")
    forged_decisions = next(
        node for node in _tree(forged) if etree.QName(node).localname == "Decisions"
    )
    decisions.append(copy.deepcopy(forged_decisions[0]))
    return _bytes(root)


def _signature_moved_into_decisions(genuine: bytes, forged: bytes) -> bytes:
    """The genuine signature relocated deeper (the enveloped transform still removes it)."""
    root = _tree(genuine)
    signature = _signature(root)
    root.remove(signature)
    decisions = next(node for node in root if etree.QName(node).localname == "Decisions")
    decisions.append(signature)
    return _bytes(root)


def _reference_to_an_id(genuine: bytes, forged: bytes) -> bytes:
    """The Reference points at one Decision (by Id) instead of the whole document."""
    root = _tree(forged)
    decisions = next(node for node in root if etree.QName(node).localname == "Decisions")
    decisions[0].set("Id", "d1")
    signature = copy.deepcopy(_signature(_tree(genuine)))
    reference = signature.find(f".//{{{DS}}}Reference")
    assert reference is not None
    reference.set("URI", "#d1")
    root.append(signature)
    return _bytes(root)


def _second_signature(genuine: bytes, forged: bytes) -> bytes:
    """The genuine response with a second Signature, made by an intruder over the forgery."""
    root = _tree(genuine)
    root.append(copy.deepcopy(_signature(_tree(signing.sign(_unsigned(forged), INTRUDER)))))
    return _bytes(root)


def _resigned_by_an_intruder(genuine: bytes, forged: bytes) -> bytes:
    """The forgery signed properly, by a key Customs never had (certificate in KeyInfo)."""
    return signing.sign(_unsigned(forged), INTRUDER)


def _comment_in_the_reference(genuine: bytes, forged: bytes) -> bytes:
    """A comment inside ItemReference after signing (exclusive C14N drops comments, so the
    digest still matches; a reader that stops at the comment would see another item)."""
    head, sep, tail = genuine.partition(b"<ItemReference>")
    assert sep
    return head + sep + tail[:6] + b"<!---->" + tail[6:]


def _unsigned(signed: bytes) -> bytes:
    root = _tree(signed)
    root.remove(_signature(root))
    return _bytes(root)


WRAPPING: dict[str, Callable[[bytes, bytes], bytes]] = {
    "xsw_forged_root_wraps_genuine": _wrap_genuine_in_forged,
    "xsw_genuine_signature_on_forgery": _genuine_signature_on_forged,
    "xsw_decision_appended_after_signing": _decision_appended,
    "xsw_signature_moved_into_decisions": _signature_moved_into_decisions,
    "xsw_reference_to_an_id": _reference_to_an_id,
    "xsw_second_signature_by_intruder": _second_signature,
    "xsw_resigned_by_intruder": _resigned_by_an_intruder,
    "xsw_comment_in_item_reference": _comment_in_the_reference,
}
EXPECTED = dict.fromkeys(WRAPPING, "signature_invalid") | {
    "xsw_resigned_by_intruder": "certificate_untrusted",
    "xsw_comment_in_item_reference": None,  # verifies; read whole, it names item 1 still
}


@pytest.mark.parametrize("name", sorted(WRAPPING))
def test_signature_wrapping_never_applies_a_forged_decision(served: Served, name: str) -> None:
    """Customs signed RELEASE on item 1; the attacker wants DO_NOT_LOAD on item 2. Either the
    response is refused with a signature code, or only what Customs signed is applied."""
    rig = served.rig
    genuine = rig.body((1, D.RELEASE), response_id=_response_id())
    forged = rig.body((2, D.DO_NOT_LOAD), response_id=_response_id())
    attack = WRAPPING[name](genuine, forged)
    status, answer = served.respond(attack)
    assert served.decision(2) is not D.DO_NOT_LOAD
    expected = EXPECTED[name]
    if expected is None:  # a reshuffle of the genuine response: what Customs signed applies
        assert status == 200, answer
        assert (answer["applied"], answer["problems"]) == (1, [])
        assert served.decision(1) is D.RELEASE
    else:
        assert (status, answer["code"]) == (400, expected), answer
    _good_traffic_still_flows(served)


def test_two_items_batch_is_the_operator_of_the_corpus() -> None:
    """The XSLT PI file is two_items.xml plus the PIs (so its items are known-good)."""
    data = (PROTOCOL / "xslt_stylesheet_pi.xml").read_bytes()
    stripped = re.sub(rb"\n<\?xml-stylesheet[^>]*\?>", b"", data)
    assert stripped == TWO_ITEMS.read_bytes()


def test_the_whole_xml_attack_corpus_is_refused_and_counted(served: Served) -> None:
    """Every XML attack file of tests/data/attacks (and its protocol/ folder) pushed as a
    batch: each is refused with a stable code; the figures are printed (``make soak`` shows
    them) and good traffic still flows afterwards."""
    files = sorted((PROTOCOL.parent).glob("*.xml")) + sorted(PROTOCOL.glob("*.xml"))
    codes: dict[str, int] = {}
    accepted = []
    for path in files:
        status, body = served.push(path.read_bytes())
        if status == 200:
            accepted.append(path.name)
            continue
        assert 400 <= status < 500, (path.name, status)
        codes[str(body.get("code"))] = codes.get(str(body.get("code")), 0) + 1
    print(
        f"\nattack cases: {len(files)} tried, {sum(codes.values())} rejected "
        f"({', '.join(f'{code} {count}' for code, count in sorted(codes.items()))})"
    )
    assert accepted == []
    assert sum(codes.values()) == len(files)
    _good_traffic_still_flows(served)
