"""POST /v1/amendments: authenticated, scoped to the caller, judged entry by entry."""

from __future__ import annotations

from lxml import etree

from connector.core.model import ItemState
from connector.testing import InMemoryItemStore
from tests.integration.web.conftest import AUTH_A, AUTH_B, TWO_ITEMS, XML, ClientFactory

NS = "urn:ead-connector:amendment:1"


def cancellation(operator: str, item_id: str, version: int = 1) -> bytes:
    root = etree.Element(f"{{{NS}}}Amendment", nsmap={None: NS})
    for name, text in (
        ("AmendmentId", "AMD-7"),
        ("OperatorId", operator),
        ("CreatedAt", "2026-11-26T09:00:00Z"),
    ):
        etree.SubElement(root, f"{{{NS}}}{name}").text = text
    cancel = etree.SubElement(root, f"{{{NS}}}Cancel")
    etree.SubElement(cancel, f"{{{NS}}}ItemId").text = item_id
    etree.SubElement(cancel, f"{{{NS}}}Version").text = str(version)
    etree.SubElement(cancel, f"{{{NS}}}Reason").text = "order cancelled by the buyer"
    return etree.tostring(root)


async def test_cancel_applies_and_shows_in_the_item(
    make_client: ClientFactory, store: InMemoryItemStore
) -> None:
    client = await make_client(store)
    pushed = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert pushed.status == 200
    response = await client.post(
        "/v1/amendments", data=cancellation("DE-POST", "RR123456785DE"), headers=XML | AUTH_A
    )
    assert response.status == 200
    body = await response.json()
    assert body["entries"] == [
        {
            "index": 0,
            "item_id": "RR123456785DE",
            "action": "cancel",
            "version": 1,
            "status": "applied",
            "errors": [],
            "findings": [],
        }
    ]
    item = await (await client.get("/v1/items/RR123456785DE", headers=AUTH_A)).json()
    assert item["state"] == ItemState.CANCELLED.value
    assert item["events"][-1]["detail"] == "order cancelled by the buyer"


async def test_amendments_are_scoped_to_the_caller(
    make_client: ClientFactory, store: InMemoryItemStore
) -> None:
    client = await make_client(store)
    await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    # B names itself but targets A's item id: B has no such item.
    response = await client.post(
        "/v1/amendments", data=cancellation("FR-POST", "RR123456785DE"), headers=XML | AUTH_B
    )
    assert response.status == 200
    (entry,) = (await response.json())["entries"]
    assert entry["status"] == "rejected"
    assert entry["errors"][0]["code"] == "not_found"
    # B cannot pass A's amendment off either.
    forged = await client.post(
        "/v1/amendments", data=cancellation("DE-POST", "RR123456785DE"), headers=XML | AUTH_B
    )
    assert forged.status == 403
    assert (await forged.json())["code"] == "forbidden"
    assert store.items[("DE-POST", "RR123456785DE")].state is ItemState.ACCEPTED


async def test_amendment_needs_authentication_and_xml(
    make_client: ClientFactory, store: InMemoryItemStore
) -> None:
    client = await make_client(store)
    body = cancellation("DE-POST", "RR123456785DE")
    assert (await client.post("/v1/amendments", data=body, headers=XML)).status == 401
    wrong_type = await client.post(
        "/v1/amendments", data=body, headers={"Content-Type": "text/plain"} | AUTH_A
    )
    assert wrong_type.status == 415
    malformed = await client.post("/v1/amendments", data=b"<Amendment", headers=XML | AUTH_A)
    assert malformed.status == 400
    assert (await malformed.json())["code"] == "xml_malformed"
