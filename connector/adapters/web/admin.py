"""Admin routes (``/v1/admin/...``): authenticated with the admin token only.

- ``GET /v1/admin/dead``, ``POST /v1/admin/dead/{id}/replay``: dead letters;
- ``GET /v1/admin/schedules``, ``POST /v1/admin/schedules/{operator}/pause|resume|trigger``;
- ``GET /v1/admin/keys``, ``POST /v1/admin/keys/rotate`` (a new key, active at once),
  ``POST /v1/admin/keys`` (a new key, only published) and
  ``POST /v1/admin/keys/{key_id}/activate``: the connector's signing key ring;
- ``GET /v1/admin/items/{item_id}``: every operator's items with that id, with their events.


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

import asyncio
from dataclasses import asdict
from typing import Any, Final

import structlog
from aiohttp import web

from connector.adapters.keystore import KeyRing
from connector.adapters.scheduler import PullScheduler, schedule_id
from connector.adapters.web import auth
from connector.adapters.web.server import ADMIN_TOKEN_SHA256, CLOCK, STORE
from connector.core.model import ItemState, StoredItem
from connector.errors import ConnectorError, IllegalTransition, InvalidMessage, NotFound
from connector.ports import Clock, ItemStore

__all__ = [
    "ADMIN_KEYRING",
    "ADMIN_ROUTES",
    "ADMIN_SCHEDULER",
    "dead_letter_view",
    "dead_reason",
    "find_dead_letter",
]

ADMIN_SCHEDULER: Final[web.AppKey[PullScheduler | None]] = web.AppKey("admin_scheduler")
"""The pull scheduler the schedule routes act on (None: not running pulls)."""
ADMIN_KEYRING: Final[web.AppKey[KeyRing | None]] = web.AppKey("admin_keyring")
"""The signing key ring the key routes act on (None: no signing keys configured)."""

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


# --- schedules ------------------------------------------------------------------------------


def _scheduler(request: web.Request) -> PullScheduler:
    scheduler = request.app.get(ADMIN_SCHEDULER)
    if scheduler is None:
        raise NotFound("this process runs no pull schedules")
    return scheduler


async def list_schedules(request: web.Request) -> web.Response:
    """Every pull schedule: when it runs next, whether it is paused, how it last went."""
    store, _ = await _admin(request)
    scheduler = _scheduler(request)
    states = await store.schedule_states()
    upcoming = scheduler.next_run_times()
    views = []
    for operator_id, schedule in sorted(scheduler.schedules.items()):
        state = states.get(schedule_id(operator_id))
        next_run = upcoming.get(operator_id)
        views.append(
            {
                "operator_id": operator_id,
                "schedule_id": schedule_id(operator_id),
                "every": schedule.describe(),
                "paused": bool(state and state.paused),
                "next_run": next_run.isoformat() if next_run else None,
                "last_fire_time": (
                    state.last_fire_time.isoformat() if state and state.last_fire_time else None
                ),
                "last_result": state.last_result if state else None,
            }
        )
    return web.json_response({"schedules": views})


async def schedule_action(request: web.Request) -> web.Response:
    """Pause, resume (every replica) or trigger (now, here) one operator's pulls."""
    store, _ = await _admin(request)
    scheduler = _scheduler(request)
    operator_id, action = request.match_info["operator"], request.match_info["action"]
    if operator_id not in scheduler.schedules:
        raise NotFound(f"operator {operator_id[:64]!r} has no pull schedule")
    result: dict[str, object] = {"operator_id": operator_id, "action": action}
    if action in ("pause", "resume"):
        await store.set_paused(schedule_id(operator_id), action == "pause")
    else:
        outcome = await scheduler.trigger(operator_id)
        result["outcome"] = asdict(outcome) if outcome is not None else None
    _log.info("admin.schedule", operator_id=operator_id, action=action)
    return web.json_response(result)


# --- keys -----------------------------------------------------------------------------------


def _ring(request: web.Request) -> KeyRing:
    ring = request.app.get(ADMIN_KEYRING)
    if ring is None:
        raise NotFound("no signing key ring is configured (signing.keys_dir)")
    return ring


def _keys_view(ring: KeyRing) -> dict[str, object]:
    return {
        "active": ring.active_id,
        "keys": [
            {
                "key_id": entry.key_id,
                "state": entry.state.value,
                "algorithm": entry.algorithm,
                "fingerprint": entry.fingerprint,
                "subject": entry.subject,
                "not_before": entry.not_before.isoformat(),
                "not_after": entry.not_after.isoformat(),
                "days_left": entry.days_left,
            }
            for entry in ring.entries()
        ],
    }


async def list_keys(request: web.Request) -> web.Response:
    """The key ring: every pair with its state and expiry; the active one signs."""
    await _admin(request)
    return web.json_response(_keys_view(_ring(request)))


async def _key_options(request: web.Request) -> dict[str, Any]:
    """``kind``, ``cn`` and ``days`` from an optional JSON body."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as error:
        raise InvalidMessage("the body must be a JSON object") from error
    if not isinstance(body, dict) or set(body) - {"kind", "cn", "days"}:
        raise InvalidMessage('the body may give only "kind", "cn" and "days"')
    return body


async def add_key(request: web.Request) -> web.Response:
    """Generate a key pair that is published but not yet active (publish it to Customs first)."""
    await _admin(request)
    ring, options = _ring(request), await _key_options(request)
    key_id = await asyncio.to_thread(
        ring.add, options.get("kind"), options.get("cn"), int(options.get("days", 365))
    )
    _log.info("admin.key_added", key_id=key_id)
    return web.json_response({"added": key_id, **_keys_view(ring)}, status=201)


async def rotate_key(request: web.Request) -> web.Response:
    """Generate a key pair and make it active at once; the old one stays published."""
    await _admin(request)
    ring, options = _ring(request), await _key_options(request)
    previous = ring.active_id
    key_id = await asyncio.to_thread(
        ring.rotate, options.get("kind"), options.get("cn"), int(options.get("days", 365))
    )
    _log.info("admin.key_rotated", key_id=key_id, previous=previous)
    return web.json_response({"previous": previous, **_keys_view(ring)})


async def activate_key(request: web.Request) -> web.Response:
    """Make a published key pair the active one."""
    await _admin(request)
    ring = _ring(request)
    previous, key_id = ring.active_id, request.match_info["key_id"]
    try:
        await asyncio.to_thread(ring.activate, key_id)
    except ConnectorError as error:
        raise NotFound(error.message) from error
    _log.info("admin.key_activated", key_id=key_id, previous=previous)
    return web.json_response({"previous": previous, **_keys_view(ring)})


# --- items ----------------------------------------------------------------------------------


async def get_items(request: web.Request) -> web.Response:
    """Every operator's items with this id, each with its full history."""
    store, _ = await _admin(request)
    from connector.adapters.web.server import item_view

    item_id = request.match_info["item_id"]
    items = await store.find_items(item_id)
    if not items:
        raise NotFound(f"no item {item_id[:64]!r}")
    views = []
    for item in items:
        view = item_view(item, await store.item_events(item.reference))
        views.append({"operator_id": item.operator_id, **view})
    return web.json_response({"items": views})


ADMIN_ROUTES: Final = (
    web.get("/v1/admin/dead", list_dead, name="admin_dead"),
    web.post("/v1/admin/dead/{id}/replay", replay_dead, name="admin_dead_replay"),
    web.get("/v1/admin/schedules", list_schedules, name="admin_schedules"),
    web.post(
        "/v1/admin/schedules/{operator}/{action:pause|resume|trigger}",
        schedule_action,
        name="admin_schedule_action",
    ),
    web.get("/v1/admin/keys", list_keys, name="admin_keys"),
    web.post("/v1/admin/keys", add_key, name="admin_key_add"),
    web.post("/v1/admin/keys/rotate", rotate_key, name="admin_key_rotate"),
    web.post("/v1/admin/keys/{key_id}/activate", activate_key, name="admin_key_activate"),
    web.get("/v1/admin/items/{item_id}", get_items, name="admin_items"),
)
