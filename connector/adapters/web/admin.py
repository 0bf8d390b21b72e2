"""Admin routes (``/v1/admin/...``): authenticated with the admin token only.

An operator token never passes :func:`~connector.adapters.web.auth.require_admin`, and the
admin token is not an operator: the two credentials are separate (DESIGN.md section 5).
Every admin action that changes something is logged as an ``admin.*`` event with what it
touched, never with the credential.

Dead letters: items whose forwarding gave up (refused by Customs, or out of attempts). They
are listed with the reason and replayed one by one after the cause is fixed:
``POST /v1/admin/dead/{id}/replay`` where ``id`` is the item's connector reference, or its
S10 item id when exactly one dead item has it.
"""

from __future__ import annotations

from typing import Final

import structlog
from aiohttp import web

from connector.adapters.web import auth
from connector.adapters.web.server import ADMIN_TOKEN_SHA256, CLOCK, STORE
from connector.core.model import ItemState, StoredItem
from connector.errors import IllegalTransition, NotFound
from connector.ports import Clock, ItemStore

__all__ = ["ADMIN_ROUTES", "dead_letter_view", "dead_reason", "find_dead_letter"]

_log = structlog.get_logger("connector.admin")
MAX_LIST: Final = 1000


async def _admin(request: web.Request) -> tuple[ItemStore, Clock]:
    """The store and clock, once the request proved it carries the admin token."""
    auth.require_admin(request, request.app[ADMIN_TOKEN_SHA256])
    return request.app[STORE], request.app[CLOCK]


def dead_letter_view(item: StoredItem, reason: str | None) -> dict[str, object]:
    """The JSON form of one dead letter."""
    return {
        "reference": item.reference,
        "operator_id": item.operator_id,
        "item_id": item.item_id,
        "version": item.version,
        "destination_country": item.destination_country,
        "received_at": item.received_at.isoformat(),
        "dead_since": item.updated_at.isoformat(),
        "reason": reason,
    }


async def dead_reason(store: ItemStore, reference: str) -> str | None:
    """The detail of the event that made the item DEAD (why forwarding gave up)."""
    events = await store.item_events(reference)
    for event in reversed(events):
        if event.to_state is ItemState.DEAD:
            return event.detail
    return None


def find_dead_letter(dead: tuple[StoredItem, ...], key: str) -> StoredItem:
    """The dead letter whose reference is ``key``, or the only one whose item id is ``key``."""
    for item in dead:
        if item.reference == key:
            return item
    matches = [item for item in dead if item.item_id == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        references = ", ".join(item.reference for item in matches)
        raise NotFound(f"{len(matches)} dead letters have item id {key!r}; name one: {references}")
    raise NotFound(f"no dead letter {key[:64]!r}")


async def list_dead(request: web.Request) -> web.Response:
    """Every dead letter (oldest first, at most ``limit``, default and maximum 1000)."""
    store, _ = await _admin(request)
    try:
        limit = min(int(request.query.get("limit", MAX_LIST)), MAX_LIST)
    except ValueError:
        limit = MAX_LIST
    dead = (await store.dead_letters())[: max(limit, 0)]
    views = [dead_letter_view(item, await dead_reason(store, item.reference)) for item in dead]
    return web.json_response({"dead": views, "count": len(views)})


async def replay_dead(request: web.Request) -> web.Response:
    """Queue one dead letter for forwarding again, now."""
    store, clock = await _admin(request)
    key = request.match_info["id"]
    item = find_dead_letter(await store.dead_letters(), key)
    try:
        replayed = await store.replay(item.reference, clock.now())
    except IllegalTransition as error:  # replayed by someone else in the meantime
        raise NotFound(f"{item.reference} is no longer a dead letter") from error
    _log.info(
        "admin.dead_replayed",
        reference=replayed.reference,
        operator_id=replayed.operator_id,
        item_id=replayed.item_id,
    )
    return web.json_response(
        {"reference": replayed.reference, "item_id": replayed.item_id, "state": replayed.state}
    )


ADMIN_ROUTES: Final = (
    web.get("/v1/admin/dead", list_dead, name="admin_dead"),
    web.post("/v1/admin/dead/{id}/replay", replay_dead, name="admin_dead_replay"),
)
