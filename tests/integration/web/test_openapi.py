"""GET /openapi.json describes exactly the app's routes, each with who may call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from connector.adapters.web.openapi import OPERATIONS, openapi_document
from tests.integration.web.conftest import ADMIN_TOKEN, AUTH_A

Client = TestClient[web.Request, web.Application]


def _routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.name or "") for route in app.router.routes() if route.method != "HEAD"
    }


async def test_every_route_is_described_and_nothing_else(client: Client) -> None:
    response = await client.get("/openapi.json", headers=AUTH_A)
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    assert document["openapi"] == "3.1.0"
    described = {
        (method.upper(), operation["operationId"])
        for path in document["paths"].values()
        for method, operation in path.items()
    }
    assert described == _routes(client.app)
    for _, name in described:
        assert name in OPERATIONS, f"route {name} has no description in OPERATIONS"
    item = document["paths"]["/v1/items/{item_id}"]["get"]
    assert item["parameters"][0] == {
        "name": "item_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert document["paths"]["/v1/admin/dead"]["get"]["security"] == [{"adminToken": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


async def test_needs_credentials(client: Client) -> None:
    assert (await client.get("/openapi.json")).status == 401
    admin = await client.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status == 200


def test_descriptions_name_only_real_routes(client: Client) -> None:
    names = {name for _, name in _routes(client.app)}
    # post_answer belongs to the referral answers route, added with the notices stage.
    assert set(OPERATIONS) - names <= {"post_answer"}
    assert openapi_document(client.app)["info"]["title"] == "ead-connector"


def test_the_document_kept_in_the_repository_is_current() -> None:
    """docs/openapi.json is what the app serves; `make openapi` rewrites it."""
    kept = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
    generated = subprocess.run(
        [sys.executable, "-m", "connector.adapters.web.openapi"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert json.loads(kept.read_text(encoding="utf-8")) == json.loads(generated), (
        "docs/openapi.json is out of date: run make openapi"
    )
