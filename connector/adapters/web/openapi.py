"""``GET /openapi.json``: the OpenAPI 3.1 description of the running app's routes.

The document is built from the app's router, so it lists exactly the routes that exist;
:data:`OPERATIONS` gives each named route its summary, who may call it and what it takes and
answers. A route without an entry there is described only by its method and path, and a test
keeps the two in step. Any operator's or the admin's credentials may read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiohttp import web

from connector import __version__
from connector.adapters.web import auth
from connector.adapters.web.server import ADMIN_TOKEN_SHA256
from connector.errors import NotAuthenticated

__all__ = ["OPENAPI_ROUTES", "OPERATIONS", "Operation", "openapi_document"]

Caller = Literal["public", "operator", "admin", "customs"]


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one route."""

    summary: str
    caller: Caller
    request: str | None = None  # media type of the body, if any
    answers: tuple[str, ...] = ("application/json",)
    query: tuple[str, ...] = field(default=())
    status: int = 200  # the success status


_XML: Final = "application/xml"
_JSON: Final = "application/json"

OPERATIONS: Final[dict[str, Operation]] = {
    "healthz": Operation("Liveness: the process answers HTTP.", "public"),
    "readyz": Operation("Readiness: the database answers in time.", "public"),
    "push_batch": Operation(
        "Push an item batch; every item is acknowledged (accepted with its reference, or "
        "rejected with code, path and message) after the accepted ones are committed.",
        "operator",
        request=_XML,
        answers=(_XML, _JSON),
    ),
    "post_amendment": Operation(
        "Amend or cancel undecided items (amendment message).", "operator", request=_XML
    ),
    "get_item": Operation("One of the caller's items with its history.", "operator"),
    "list_notices": Operation(
        "The caller's signed item notices after a cursor, in order.",
        "operator",
        answers=(_JSON, _XML),
        query=("after", "limit"),
    ),
    "post_answer": Operation(
        "Answer a referral (request for information or screening).", "operator", request=_XML
    ),
    "customs_responses": Operation(
        "A Customs destination's signed decisions; verified against its pinned certificates.",
        "customs",
        request=_XML,
    ),
    "admin_dead": Operation("Dead letters with the reason.", "admin", query=("limit",)),
    "admin_dead_replay": Operation("Forward a dead letter again.", "admin"),
    "admin_schedules": Operation("Pull schedules: next run, paused, last result.", "admin"),
    "admin_schedule_action": Operation("Pause, resume or trigger an operator's pulls.", "admin"),
    "admin_keys": Operation("The signing key ring.", "admin"),
    "admin_key_add": Operation(
        "Add a published (not yet active) signing key.", "admin", _JSON, status=201
    ),
    "admin_key_rotate": Operation("Rotate the signing key now.", "admin", _JSON),
    "admin_key_activate": Operation("Activate a published signing key.", "admin"),
    "admin_items": Operation("An item of any operator with its history.", "admin"),
    "admin_items_search": Operation(
        "Items of any operator, newest first (received_at descending); page with next_after.",
        "admin",
        query=("operator", "state", "decision", "from", "to", "limit", "after"),
    ),
    "admin_operators": Operation(
        "Operators (configured or added): state, who manages them, credential fingerprints.",
        "admin",
    ),
    "admin_operator_add": Operation(
        "Add an operator; its new token is in the answer, once.", "admin", _JSON, status=201
    ),
    "admin_operator_action": Operation(
        "Disable or enable an operator, or rotate its token (the new one answered once).",
        "admin",
    ),
    "admin_audit": Operation(
        "The audit log of admin actions after an id, oldest first.",
        "admin",
        query=("after", "limit"),
    ),
    "metrics": Operation("Prometheus metrics.", "admin", answers=("text/plain",)),
    "openapi": Operation("This document.", "operator"),
}

_COUNT: Final = {"type": "integer", "minimum": 0, "maximum": 9_999_999_999_999_999_999}
#: Query parameters that are not free text; a larger limit than a route allows is clamped.
_QUERY_SCHEMAS: Final[dict[tuple[str, str], dict[str, object]]] = {
    ("list_notices", "after"): _COUNT,
    ("list_notices", "limit"): _COUNT,
}

_SECURITY: Final[dict[Caller, list[dict[str, list[str]]]]] = {
    "public": [],
    "operator": [{"operatorToken": []}, {"operatorCertificate": []}],
    "admin": [{"adminToken": []}],
    "customs": [],  # the XML-DSig signature of the body is the authentication
}
_PARAMETER: Final = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _operation(name: str | None, method: str, path: str) -> dict[str, Any]:
    described = OPERATIONS.get(name or "")
    result: dict[str, Any] = {"operationId": name or f"{method.lower()}_{path}"}
    parameters = [
        {"name": param, "in": "path", "required": True, "schema": {"type": "string"}}
        for param in _PARAMETER.findall(path)
    ]
    if described is None:
        if parameters:
            result["parameters"] = parameters
        return result
    result["summary"] = described.summary
    result["security"] = _SECURITY[described.caller]
    parameters += [
        {
            "name": param,
            "in": "query",
            "required": False,
            "schema": _QUERY_SCHEMAS.get((name or "", param), {"type": "string"}),
        }
        for param in described.query
    ]
    if parameters:
        result["parameters"] = parameters
    if described.request is not None:
        result["requestBody"] = {"required": True, "content": {described.request: {}}}
    result["responses"] = {
        str(described.status): {
            "description": "OK" if described.status == 200 else "Created",
            "content": {media: {} for media in described.answers},
        },
        "default": {
            "description": "An RFC 9457 problem with a stable code",
            "content": {"application/problem+json": {}},
        },
    }
    return result


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app`` (HEAD routes left out)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        canonical = route.resource.canonical
        path = _PARAMETER.sub(lambda match: "{" + match.group(1) + "}", canonical)
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            route.name, route.method, canonical
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ead-connector",
            "version": __version__,
            "description": "Electronic advance data between postal operators and Customs. "
            "XML bodies follow the schemas in xsd/; errors are application/problem+json.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "operatorToken": {"type": "http", "scheme": "bearer"},
                "operatorCertificate": {"type": "mutualTLS"},
                "adminToken": {"type": "http", "scheme": "bearer"},
            }
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    """The document; any operator's or the admin's credentials."""
    try:
        auth.require_admin(request, request.app[ADMIN_TOKEN_SHA256])
    except NotAuthenticated:
        await auth.authenticated_operator(request)
    return web.json_response(openapi_document(request.app))


OPENAPI_ROUTES: Final = (web.get("/openapi.json", get_openapi, name="openapi"),)


def main() -> None:
    """Print the document of the app's routes (``make openapi`` writes docs/openapi.json)."""
    import json

    from connector.adapters.web.server import build_web_app
    from connector.flow.accept import AcceptService
    from connector.testing import FrozenClock, InMemoryItemStore

    store, clock = InMemoryItemStore(), FrozenClock()
    app = build_web_app(
        store=store, accept=AcceptService(store, clock), clock=clock, max_body_bytes=1
    )
    print(json.dumps(openapi_document(app), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
