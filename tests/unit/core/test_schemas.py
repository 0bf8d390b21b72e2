"""The schema registry: resolution, kinds, compile-once, safe concurrent first use."""

from __future__ import annotations

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
