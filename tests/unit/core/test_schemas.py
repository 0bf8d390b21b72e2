"""The schema registry: resolution, kinds, compile-once, safe concurrent first use."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from connector.core.schemas import MessageKind, SchemaRegistry, default_registry, default_xsd_dir
from connector.errors import ConfigurationError, MessageKindUnknown

REPO_XSD = Path(__file__).parents[3] / "xsd"
MESSAGES = Path(__file__).parents[2] / "data" / "messages"


def test_default_dir_is_the_shipped_schemas_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_xsd_dir().resolve() == REPO_XSD.resolve()


@pytest.mark.parametrize("kind", list(MessageKind), ids=str)
def test_every_kind_has_its_schema_and_an_example(kind: MessageKind) -> None:
    registry = default_registry()
    assert registry.path(kind).name == kind.file_name
    example = etree.parse(str(MESSAGES / f"{kind.value}.xml")).getroot()
    assert MessageKind.of_root(example.tag) is kind
    assert registry.lxml(kind).validate(example)
    assert registry.xmlschema(kind).is_valid(example)


def test_of_root_refuses_unknown_tags() -> None:
    with pytest.raises(MessageKindUnknown):
        MessageKind.of_root("{urn:ead-connector:item-batch:9}ItemBatch")


def test_missing_schema_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"item-batch-1\.xsd"):
        SchemaRegistry(tmp_path).xmlschema(MessageKind.ITEM_BATCH)


def test_concurrent_first_use_compiles_once_and_validates_correctly() -> None:
    registry = SchemaRegistry(REPO_XSD)
    good = etree.parse(str(MESSAGES / "item-batch.xml")).getroot()

    def use(_: int) -> tuple[int, bool, bool]:
        xs = registry.xmlschema(MessageKind.ITEM_BATCH)
        lx = registry.lxml(MessageKind.ITEM_BATCH)
        return id(xs), bool(lx.validate(good)), bool(xs.is_valid(good))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(use, range(32)))
    assert len({identity for identity, _, _ in results}) == 1
    assert all(lxml_ok and xs_ok for _, lxml_ok, xs_ok in results)


def test_lxml_compilations_in_many_threads_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """libxml2's schema compiler is not thread-safe: two threads never compile at once, and
    every thread still gets its own working validator."""
    real = etree.XMLSchema
    inside = 0
    most = 0
    guard = threading.Lock()

    def compile_slowly(*args: object, **kwargs: object) -> etree.XMLSchema:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.01)
        try:
            return real(*args, **kwargs)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(etree, "XMLSchema", compile_slowly)
    registry = SchemaRegistry()
    start = threading.Barrier(6)
    results: list[bool] = []

    def work() -> None:
        start.wait()
        for kind in (MessageKind.ITEM_BATCH, MessageKind.ITEM_NOTICE):
            validator = registry.lxml(kind)
            results.append(validator.validate(etree.fromstring(b"<nothing/>")))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert results == [False] * 12
