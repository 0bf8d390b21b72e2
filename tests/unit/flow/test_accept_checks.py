"""Intake and amendments with the data-quality and compliance checks on, off and reloaded."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from lxml import etree

from connector import checks_loader
from connector.core.checks import CheckConfig, Severity
from connector.core.model import ItemState
from connector.core.outbound import acknowledgement_xml, renamespace
from connector.core.schemas import MessageKind, default_registry
from connector.flow.accept import AcceptService, Checks
from connector.flow.amend import AmendService
from connector.testing import FrozenClock, InMemoryItemStore

DATA = Path(__file__).parents[2] / "data"
CHECK_ITEMS = DATA / "checks" / "items.xml"
ITEM_NS = "urn:ead-connector:item-batch:1"
AMEND_NS = "urn:ead-connector:amendment:1"
OPERATOR = "DE-POST"
CONFIG = checks_loader.default_check_config()

#: Items of tests/data/checks/items.xml that make the batch below, in its order:
#: clean, denied sender (error), vague description (warning), clean, unknown HS code (error).
PICKED = (0, 1, 9, 4, 7)
DENIED, VAGUE, UNKNOWN_HS = 1, 2, 4
GOOD = (0, 3)


def _corpus(root: etree._Element | None = None) -> list[etree._Element]:
    """The corpus items (its comments left out)."""
    if root is None:
        root = etree.parse(str(CHECK_ITEMS)).getroot()
    return root[1].findall(f"{{{ITEM_NS}}}Item")


def batch(picked: tuple[int, ...] = PICKED, batch_id: str = "CHK-1") -> bytes:
    """An item batch of the picked corpus items."""
    root = etree.parse(str(CHECK_ITEMS)).getroot()
    root[0][0].text = batch_id
    items = root[1]
    corpus = _corpus(root)
    for child in list(items):
        items.remove(child)
    items.extend(corpus[index] for index in picked)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def service(store: InMemoryItemStore, checks: Checks = CONFIG) -> AcceptService:
    return AcceptService(store=store, clock=FrozenClock(), checks=checks)


@pytest.fixture
def store() -> InMemoryItemStore:
    return InMemoryItemStore()


async def test_error_findings_reject_their_items_and_the_rest_go_on(
    store: InMemoryItemStore,
) -> None:
    """A denied party and an unknown HS code reject their items; good items are stored."""
    ack = await service(store).accept_batch(OPERATOR, batch())

    assert [item.accepted for item in ack.items] == [True, False, True, True, False]
    denied, unknown = ack.items[DENIED], ack.items[UNKNOWN_HS]
    assert [e.code for e in denied.errors] == ["party_denied"]
    assert denied.errors[0].path == "/ItemBatch/Items/Item[2]/Sender/Name"
    assert denied.errors[0].message == denied.findings[0].message
    assert [e.code for e in unknown.errors] == ["hs_code_unknown"]
    assert unknown.errors[0].path == "/ItemBatch/Items/Item[5]/Contents/Line[1]/HsCode"
    assert all(f.severity is Severity.ERROR for f in (*denied.findings, *unknown.findings))
    assert denied.reference is None
    assert unknown.reference is None
    stored_ids = {item_id for _, item_id in store.items}
    assert stored_ids == {ack.items[i].item_id for i in (*GOOD, VAGUE)}
    assert all(not ack.items[i].findings for i in GOOD)


async def test_warnings_leave_the_item_accepted_and_are_stored_with_it(
    store: InMemoryItemStore,
) -> None:
    """A vague description is a warning: accepted, acknowledged and stored with its finding."""
    ack = await service(store).accept_batch(OPERATOR, batch())

    vague = ack.items[VAGUE]
    assert vague.accepted
    assert vague.reference is not None
    assert not vague.errors
    assert [(f.severity, f.code) for f in vague.findings] == [
        (Severity.WARNING, "description_vague")
    ]
    stored = store.items[(OPERATOR, vague.item_id)]
    assert stored.findings == vague.findings
    for index in GOOD:
        assert store.items[(OPERATOR, ack.items[index].item_id)].findings == ()


async def test_claims_carry_the_warnings(store: InMemoryItemStore) -> None:
    """The forwarder's claim of a warned item carries its warnings; clean items none."""
    ack = await service(store).accept_batch(OPERATOR, batch())

    claims = await store.claim_for_forwarding("w", 10, 60, FrozenClock().now())

    by_id = {claim.item_id: claim for claim in claims}
    assert set(by_id) == {ack.items[i].item_id for i in (*GOOD, VAGUE)}
    assert by_id[ack.items[VAGUE].item_id].findings == ack.items[VAGUE].findings
    assert all(not by_id[ack.items[i].item_id].findings for i in GOOD)


async def test_acknowledgement_lists_findings_in_xml_and_json(store: InMemoryItemStore) -> None:
    """The XML acknowledgement is schema-valid with Findings; the JSON has them per item."""
    ack = await service(store).accept_batch(OPERATOR, batch())

    document = etree.fromstring(acknowledgement_xml(ack))
    schema = default_registry().lxml(MessageKind.ACKNOWLEDGEMENT)
    assert schema.validate(document), schema.error_log
    ns = {"a": MessageKind.ACKNOWLEDGEMENT.namespace}
    items = document.findall("a:Items/a:Item", ns)
    assert [item.findtext("a:Status", namespaces=ns) for item in items] == [
        "accepted",
        "rejected",
        "accepted",
        "accepted",
        "rejected",
    ]
    warned = items[VAGUE].find("a:Findings/a:Finding", ns)
    assert warned is not None
    assert [child.text for child in warned][:3] == [
        "warning",
        "description_vague",
        "/ItemBatch/Items/Item[3]/Contents/Line[1]/Description",
    ]
    assert items[DENIED].find("a:Errors/a:Error", ns) is not None
    assert items[DENIED].findtext("a:Findings/a:Finding/a:Severity", namespaces=ns) == "error"
    assert items[0].find("a:Findings", ns) is None

    body = ack.as_dict()
    entries = body["items"]
    assert isinstance(entries, list)
    assert set(entries[0]) == {
        "item_index",
        "item_id",
        "status",
        "reference",
        "errors",
        "findings",
    }
    assert entries[0]["findings"] == []
    [finding] = entries[VAGUE]["findings"]
    assert set(finding) == {"severity", "code", "path", "message", "detail"}
    assert (finding["severity"], finding["code"]) == ("warning", "description_vague")
    assert finding["detail"]["generic_term"] == "gift"
    assert entries[DENIED]["errors"][0]["code"] == "party_denied"


async def test_checks_off_accepts_without_findings(store: InMemoryItemStore) -> None:
    """Without checks every schema-valid item is accepted and nothing carries findings."""
    ack = await service(store, checks=None).accept_batch(OPERATOR, batch())

    assert all(item.accepted and not item.findings for item in ack.items)
    assert all(not item.findings for item in store.items.values())


async def test_disabled_checks_in_the_configuration_find_nothing(
    store: InMemoryItemStore,
) -> None:
    """A configuration that enables no check behaves as checks off."""
    ack = await service(store, checks=CONFIG.with_enabled(())).accept_batch(OPERATOR, batch())

    assert all(item.accepted and not item.findings for item in ack.items)


async def test_the_provider_is_asked_for_every_batch(store: InMemoryItemStore) -> None:
    """A callable provider is asked once per batch, so a new configuration applies next."""
    configs: list[CheckConfig] = [CONFIG.with_enabled(()), CONFIG]
    asked: list[int] = []

    def provider() -> CheckConfig:
        asked.append(1)
        return configs[len(asked) - 1]

    accept = service(store, checks=provider)
    first = await accept.accept_batch(OPERATOR, batch((1,), "CHK-A"))
    second = await accept.accept_batch(OPERATOR, batch((7,), "CHK-B"))

    assert len(asked) == 2
    assert first.items[0].accepted
    assert not second.items[0].accepted


# -- reloading the denied-party list --------------------------------------------------------


class Ticks:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "checks"
    shutil.copytree(checks_loader.default_checks_dir(), target)
    return target


def _without(list_file: Path, entry_id: str) -> None:
    lines = list_file.read_text(encoding="utf-8").splitlines(keepends=True)
    list_file.write_text(
        "".join(line for line in lines if not line.startswith(entry_id)), encoding="utf-8"
    )


async def test_rewritten_list_changes_the_next_verdict_without_restart(
    store: InMemoryItemStore, config_dir: Path
) -> None:
    """Dropping an entry from the list file accepts that party at the next due intake."""
    ticks = Ticks()
    source = checks_loader.CheckConfigSource(config_dir, clock=ticks, reload_seconds=30)
    accept = service(store, checks=source.current)
    before = await accept.accept_batch(OPERATOR, batch((1,), "CHK-A"))
    assert not before.items[0].accepted

    _without(source.list_path, "fict-person-0001")
    ticks.now = 10  # not due yet: the list in force stays
    early = await accept.accept_batch(OPERATOR, batch((1,), "CHK-B"))
    ticks.now = 31
    after = await accept.accept_batch(OPERATOR, batch((1,), "CHK-C"))

    assert not early.items[0].accepted
    assert after.items[0].accepted
    assert not after.items[0].findings
    assert source.last_error is None


async def test_a_broken_list_keeps_the_previous_one(
    store: InMemoryItemStore, config_dir: Path
) -> None:
    """A new list that does not load is logged and the previous list stays in force."""
    ticks = Ticks()
    source = checks_loader.CheckConfigSource(config_dir, clock=ticks, reload_seconds=0)
    accept = service(store, checks=source)

    source.list_path.write_text("name,comment\nnobody,no id or schema column\n", encoding="utf-8")
    ticks.now = 1
    with structlog.testing.capture_logs() as logs:
        ack = await accept.accept_batch(OPERATOR, batch((1,), "CHK-A"))

    assert not ack.items[0].accepted
    assert ack.items[0].errors[0].code == "party_denied"
    assert source.last_error is not None
    assert "checks.list_reload_failed" in [entry["event"] for entry in logs]


def test_a_source_that_is_reloading_does_not_hold_up_other_callers(config_dir: Path) -> None:
    """While one caller reloads, another gets the configuration in force at once."""
    ticks = Ticks()
    source = checks_loader.CheckConfigSource(config_dir, clock=ticks, reload_seconds=0)
    before = source.current()
    _without(source.list_path, "fict-person-0001")
    ticks.now = 1

    with source._lock:  # another thread is reloading
        assert source.current() is before
    assert source.current() is not before


def test_a_checks_toml_file_may_be_named_instead_of_its_directory(config_dir: Path) -> None:
    """The source loads a checks.toml given by file name, with paths relative to it."""
    renamed = config_dir / "strict.toml"
    (config_dir / "checks.toml").rename(renamed)

    source = checks_loader.CheckConfigSource(renamed, reload_seconds=5)

    assert source.reload_seconds == 5
    assert source.list_path.parent == config_dir
    assert len(source.current().screening.parties) > 0


# -- amendments -----------------------------------------------------------------------------


def _amendment(*items: tuple[etree._Element, int]) -> bytes:
    root = etree.Element(f"{{{AMEND_NS}}}Amendment", nsmap={None: AMEND_NS})  # type: ignore[dict-item]
    for name, text in (("AmendmentId", "AMD-1"), ("OperatorId", OPERATOR)):
        etree.SubElement(root, f"{{{AMEND_NS}}}{name}").text = text
    etree.SubElement(root, f"{{{AMEND_NS}}}CreatedAt").text = "2026-11-26T09:00:00Z"
    for item, version in items:
        entry = etree.SubElement(root, f"{{{AMEND_NS}}}Replace")
        etree.SubElement(entry, f"{{{AMEND_NS}}}Version").text = str(version)
        entry.append(renamespace(item, AMEND_NS))
    return etree.tostring(root)


def _with(item: etree._Element, change: Callable[[etree._Element], None]) -> etree._Element:
    changed = renamespace(item, ITEM_NS)
    change(changed)
    return changed


def _set(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(item: etree._Element) -> None:
        node = item.find(path, {"b": ITEM_NS})
        assert node is not None
        node.text = text

    return change


async def test_amendments_are_checked_like_intake(store: InMemoryItemStore) -> None:
    """A replacement with a denied sender is refused; one with a vague line is stored warned."""
    corpus = _corpus()
    await service(store).accept_batch(OPERATOR, batch((0, 4), "CHK-A"))
    clean, other = corpus[0], corpus[4]
    denied_sender = corpus[1].find("b:Sender/b:Name", {"b": ITEM_NS})
    assert denied_sender is not None
    assert denied_sender.text
    amend = AmendService(store=store, clock=FrozenClock(), checks=CONFIG)

    result = await amend.amend(
        OPERATOR,
        _amendment(
            (_with(clean, _set("b:Sender/b:Name", denied_sender.text)), 2),
            (_with(other, _set("b:Contents/b:Line/b:Description", "Gift")), 2),
        ),
    )

    refused, applied = result.entries
    assert not refused.applied
    assert [e.code for e in refused.errors] == ["party_denied"]
    assert refused.errors[0].path == "/Amendment/Replace[1]/Item/Sender/Name"
    assert applied.applied
    assert not applied.errors
    assert [f.code for f in applied.findings] == ["description_vague"]
    assert applied.findings[0].path == "/Amendment/Replace[2]/Item/Contents/Line[1]/Description"
    entries = result.as_dict()["entries"]
    assert isinstance(entries, list)
    assert entries[1]["findings"][0]["code"] == "description_vague"
    kept = store.items[(OPERATOR, refused.item_id)]
    assert (kept.version, kept.state, kept.findings) == (1, ItemState.ACCEPTED, ())
    warned = store.items[(OPERATOR, applied.item_id)]
    assert (warned.version, warned.findings) == (2, applied.findings)


async def test_an_amendment_replaces_the_findings_of_the_previous_version(
    store: InMemoryItemStore,
) -> None:
    """Fixing a vague description in an amendment leaves the item without findings."""
    corpus = _corpus()
    await service(store).accept_batch(OPERATOR, batch((9,), "CHK-A"))
    item_id = corpus[9].findtext("b:ItemId", namespaces={"b": ITEM_NS})
    assert item_id is not None
    assert store.items[(OPERATOR, item_id)].findings
    amend = AmendService(store=store, clock=FrozenClock(), checks=CONFIG)

    fixed = _with(corpus[9], _set("b:Contents/b:Line/b:Description", "Plastic toy robot"))
    result = await amend.amend(OPERATOR, _amendment((fixed, 2)))

    assert result.entries[0].applied
    assert not result.entries[0].findings
    assert store.items[(OPERATOR, item_id)].findings == ()


async def test_amendments_without_checks_find_nothing(store: InMemoryItemStore) -> None:
    """With checks off an amendment is judged on schema and rules only."""
    corpus = _corpus()
    await service(store, checks=None).accept_batch(OPERATOR, batch((0,), "CHK-A"))
    amend = AmendService(store=store, clock=FrozenClock())

    result = await amend.amend(
        OPERATOR, _amendment((_with(corpus[0], _set("b:Contents/b:Line/b:HsCode", "610000")), 2))
    )

    assert result.entries[0].applied
    assert not result.entries[0].findings
