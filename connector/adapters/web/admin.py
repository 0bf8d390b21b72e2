"""Admin routes (``/v1/admin/...``): authenticated with the admin token only.

- ``GET /v1/admin/dead``, ``POST /v1/admin/dead/{id}/replay``: dead letters;
- ``GET /v1/admin/schedules``, ``POST /v1/admin/schedules/{operator}/pause|resume|trigger``;
- ``GET /v1/admin/keys``, ``POST /v1/admin/keys/rotate`` (a new key, active at once),
  ``POST /v1/admin/keys`` (a new key, only published) and
  ``POST /v1/admin/keys/{key_id}/activate``: the connector's signing key ring;
- ``GET /v1/admin/items/{item_id}``: every operator's items with that id, with their events;
  ``GET /v1/admin/items?operator=&state=&decision=&from=&to=&limit=&after=``: a search, newest
  first (``received_at`` descending), paged with the ``next_after`` cursor of the last page;
- ``GET /v1/admin/operators``, ``POST /v1/admin/operators`` (add; a new token is returned
  once), ``POST /v1/admin/operators/{id}/disable|enable|rotate-token``;
- ``GET /v1/admin/audit?after=&limit=``: the audit log of admin actions, oldest first.

An operator token never passes :func:`~connector.adapters.web.auth.require_admin`, and the
admin token is not an operator: the two credentials are separate (DESIGN.md section 5).
Every admin action that changes something is logged as an ``admin.*`` event and appended to
the audit log (``admin_audit``, actor ``api``, with the request id) by
:class:`~connector.flow.admin.AdminService`, with what it touched, never with a credential.

Dead letters: items whose forwarding gave up (refused by Customs, or out of attempts). They
are listed with the reason and replayed one by one after the cause is fixed:
``POST /v1/admin/dead/{id}/replay`` where ``id`` is the item's connector reference, or its
S10 item id when exactly one dead item has it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import structlog
from aiohttp import web

from connector.adapters.keystore import KeyRing
from connector.adapters.scheduler import PullScheduler, schedule_id
from connector.adapters.web import auth, problems
from connector.adapters.web.server import ADMIN_TOKEN_SHA256, CLOCK, STORE
from connector.core.model import ItemState, StoredItem
from connector.errors import ConnectorError, InvalidMessage, NotFound
from connector.flow.admin import (
    SEARCH_KEYS,
    AdminService,
    IssuedToken,
    find_dead_letter,
    fingerprint,
    item_cursor,
    item_search,
)
from connector.ports import AdminOperator, AuditEntry, Clock, ItemStore

__all__ = [
    "ADMIN_CHANNELS",
    "ADMIN_KEYRING",
    "ADMIN_ROUTES",
    "ADMIN_SCHEDULER",
    "OperatorChannels",
    "audit_view",
    "dead_letter_view",
    "dead_reason",
    "find_dead_letter",
    "operator_view",
]

ADMIN_SCHEDULER: Final[web.AppKey[PullScheduler | None]] = web.AppKey("admin_scheduler")
"""The pull scheduler the schedule routes act on (None: not running pulls)."""
ADMIN_KEYRING: Final[web.AppKey[KeyRing | None]] = web.AppKey("admin_keyring")
"""The signing key ring the key routes act on (None: no signing keys configured)."""


@dataclass(frozen=True, slots=True)
class OperatorChannels:
    """What the configuration sets up for an operator besides authentication."""

    pull: bool = False
    webhook: bool = False


ADMIN_CHANNELS: Final[web.AppKey[Mapping[str, OperatorChannels]]] = web.AppKey("admin_channels")
"""Per configured operator id: pull source and webhook (absent: neither)."""

_log = structlog.get_logger("connector.admin")
MAX_LIST: Final = 1000


async def _admin(request: web.Request) -> tuple[ItemStore, Clock]:
    """The store and clock, once the request proved it carries the admin token."""
    auth.require_admin(request, request.app[ADMIN_TOKEN_SHA256])
    return request.app[STORE], request.app[CLOCK]


async def _service(request: web.Request) -> AdminService:
    """The admin service acting for this request (actor ``api``, its request id)."""
    store, clock = await _admin(request)
    return AdminService(store, clock, "api", request.get(problems.REQUEST_ID))


async def _json_body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    """An optional JSON object body with only ``allowed`` members."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as error:
        raise InvalidMessage("the body must be a JSON object") from error
    if not isinstance(body, dict):
        raise InvalidMessage("the body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise InvalidMessage(f"unknown member(s): {', '.join(sorted(unknown))}")
    return body


def _limit(request: web.Request, default: int, maximum: int) -> int:
    try:
        limit = int(request.query.get("limit", default))
    except ValueError as error:
        raise InvalidMessage(f"limit must be a whole number from 1 to {maximum}") from error
    if not 1 <= limit <= maximum:
        raise InvalidMessage(f"limit must be a whole number from 1 to {maximum}")
    return limit


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
    service = await _service(request)
    replayed = await service.replay_dead(request.match_info["id"])
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
    service = await _service(request)
    scheduler = _scheduler(request)
    operator_id, action = request.match_info["operator"], request.match_info["action"]
    if operator_id not in scheduler.schedules:
        raise NotFound(f"operator {operator_id[:64]!r} has no pull schedule")
    result: dict[str, object] = {"operator_id": operator_id, "action": action}
    if action in ("pause", "resume"):
        await service.set_paused(schedule_id(operator_id), action == "pause")
    else:
        outcome = await scheduler.trigger(operator_id)
        result["outcome"] = asdict(outcome) if outcome is not None else None
        summary = outcome.summary() if outcome is not None else "not run"
        await service.record("schedule.trigger", schedule_id(operator_id), {"outcome": summary})
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
    return await _json_body(request, frozenset({"kind", "cn", "days"}))


async def add_key(request: web.Request) -> web.Response:
    """Generate a key pair that is published but not yet active (publish it to Customs first)."""
    service = await _service(request)
    ring, options = _ring(request), await _key_options(request)
    key_id = await asyncio.to_thread(
        ring.add, options.get("kind"), options.get("cn"), int(options.get("days", 365))
    )
    await service.record("key.add", key_id, {"active": ring.active_id})
    _log.info("admin.key_added", key_id=key_id)
    return web.json_response({"added": key_id, **_keys_view(ring)}, status=201)


async def rotate_key(request: web.Request) -> web.Response:
    """Generate a key pair and make it active at once; the old one stays published."""
    service = await _service(request)
    ring, options = _ring(request), await _key_options(request)
    previous = ring.active_id
    key_id = await asyncio.to_thread(
        ring.rotate, options.get("kind"), options.get("cn"), int(options.get("days", 365))
    )
    await service.record("key.rotate", key_id, {"previous": previous})
    _log.info("admin.key_rotated", key_id=key_id, previous=previous)
    return web.json_response({"previous": previous, **_keys_view(ring)})


async def activate_key(request: web.Request) -> web.Response:
    """Make a published key pair the active one."""
    service = await _service(request)
    ring = _ring(request)
    previous, key_id = ring.active_id, request.match_info["key_id"]
    try:
        await asyncio.to_thread(ring.activate, key_id)
    except ConnectorError as error:
        raise NotFound(error.message) from error
    await service.record("key.activate", key_id, {"previous": previous})
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


def _summary_view(item: StoredItem) -> dict[str, object]:
    return {
        "operator_id": item.operator_id,
        "item_id": item.item_id,
        "reference": item.reference,
        "version": item.version,
        "state": item.state.value,
        "decision": item.decision.value if item.decision is not None else None,
        "destination_country": item.destination_country,
        "received_at": item.received_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


async def search_items(request: web.Request) -> web.Response:
    """Items of any operator, newest first (``received_at`` descending), one page."""
    service = await _service(request)
    search = item_search({key: request.query.get(key) for key in SEARCH_KEYS})
    items = await service.search_items(search)
    full = len(items) == search.limit
    return web.json_response(
        {
            "items": [_summary_view(item) for item in items],
            "count": len(items),
            "next_after": item_cursor(items[-1]) if items and full else None,
        }
    )


# --- operators ------------------------------------------------------------------------------


def operator_view(
    operator: AdminOperator, channels: OperatorChannels | None = None
) -> dict[str, object]:
    """The JSON form of one operator: never a credential, only its short fingerprint."""
    record, channels = operator.record, channels or OperatorChannels()
    return {
        "operator_id": record.operator_id,
        "name": record.name,
        "enabled": record.enabled,
        "managed_by": operator.managed_by,
        "admin_disabled": operator.admin_disabled,
        "auth": [
            kind
            for kind, value in (("token", record.token_sha256), ("client_cert", record.cert_sha256))
            if value
        ],
        "token_fingerprint": fingerprint(record.token_sha256),
        "cert_fingerprint": fingerprint(record.cert_sha256),
        "token_rotated_at": (
            operator.token_rotated_at.isoformat() if operator.token_rotated_at else None
        ),
        "pull": channels.pull,
        "webhook": channels.webhook,
        "updated_at": operator.updated_at.isoformat(),
    }


def _operator_response(
    request: web.Request, issued: IssuedToken | AdminOperator, status: int = 200
) -> web.Response:
    operator = issued.operator if isinstance(issued, IssuedToken) else issued
    channels = request.app.get(ADMIN_CHANNELS, {})
    body = operator_view(operator, channels.get(operator.record.operator_id))
    if isinstance(issued, IssuedToken) and issued.token is not None:
        body["token"] = issued.token  # shown this once; only its SHA-256 is stored
    return web.json_response(body, status=status)


async def list_operators(request: web.Request) -> web.Response:
    """Every operator, configured or added here, by id."""
    service = await _service(request)
    channels = request.app.get(ADMIN_CHANNELS, {})
    operators = await service.operators()
    views = [operator_view(op, channels.get(op.record.operator_id)) for op in operators]
    return web.json_response({"operators": views})


async def add_operator(request: web.Request) -> web.Response:
    """Add an operator; the new token (unless ``issue_token`` is false) is returned once."""
    service = await _service(request)
    body = await _json_body(
        request, frozenset({"operator_id", "name", "client_cert_sha256", "issue_token"})
    )
    issue_token = body.get("issue_token", True)
    cert = body.get("client_cert_sha256")
    if not isinstance(issue_token, bool) or not isinstance(cert, str | None):
        raise InvalidMessage("issue_token is true or false, client_cert_sha256 a string")
    issued = await service.add_operator(
        body.get("operator_id", ""), body.get("name"), issue_token=issue_token, cert_sha256=cert
    )
    _log.info("admin.operator_added", operator_id=issued.operator.record.operator_id)
    return _operator_response(request, issued, status=201)


async def operator_action(request: web.Request) -> web.Response:
    """Disable or enable an operator, or rotate its token (the new one returned once)."""
    service = await _service(request)
    operator_id, action = request.match_info["id"], request.match_info["action"]
    result: IssuedToken | AdminOperator
    if action == "disable":
        result = await service.disable_operator(operator_id)
    elif action == "enable":
        result = await service.enable_operator(operator_id)
    else:
        result = await service.rotate_token(operator_id)
    _log.info("admin.operator", operator_id=operator_id, action=action)
    return _operator_response(request, result)


# --- audit log ------------------------------------------------------------------------------


def audit_view(entry: AuditEntry) -> dict[str, object]:
    """The JSON form of one audit row."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "detail": dict(entry.detail),
        "request_id": entry.request_id,
    }


async def list_audit(request: web.Request) -> web.Response:
    """Audit rows after id ``after`` (default 0), oldest first, at most ``limit`` (100)."""
    service = await _service(request)
    try:
        after = int(request.query.get("after", 0))
    except ValueError as error:
        raise InvalidMessage("after must be the id of an audit row") from error
    entries = await service.audit_log(after, _limit(request, 100, MAX_LIST))
    return web.json_response(
        {
            "entries": [audit_view(entry) for entry in entries],
            "next_after": entries[-1].id if entries else after,
        }
    )


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
    web.get("/v1/admin/items", search_items, name="admin_items_search"),
    web.get("/v1/admin/items/{item_id}", get_items, name="admin_items"),
    web.get("/v1/admin/operators", list_operators, name="admin_operators"),
    web.post("/v1/admin/operators", add_operator, name="admin_operator_add"),
    web.post(
        "/v1/admin/operators/{id}/{action:disable|enable|rotate-token}",
        operator_action,
        name="admin_operator_action",
    ),
    web.get("/v1/admin/audit", list_audit, name="admin_audit"),
)
