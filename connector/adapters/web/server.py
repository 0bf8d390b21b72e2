"""The HTTP API (DESIGN.md section 5): operators push batches and read their items.

:func:`build_web_app` is the only way to get the application; every dependency travels in a
typed :class:`~aiohttp.web.AppKey`, so tests pass fakes to the factory instead of patching
modules. Routes are listed in :data:`ROUTES`; a new route is one handler plus one line there.

Every error leaves through :mod:`~connector.adapters.web.problems` as problem+json. Every
route except ``/healthz`` and ``/readyz`` authenticates the operator first and sees only that
operator's data. ``/readyz`` is unauthenticated on purpose (probes carry no credentials) and
says only "ok" or ``store_unavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final

import structlog
from aiohttp import hdrs, web

from connector.adapters.web import auth, problems
from connector.adapters.web.ratelimit import RateLimiter
from connector.core import model, outbound, xmlsafe
from connector.core.model import Acknowledgement, ItemEvent, StoredItem
from connector.core.schemas import MessageKind, default_registry
from connector.errors import (
    ConfigurationError,
    NotFound,
    StoreUnavailable,
    UnsupportedMediaType,
    XmlTooLarge,
)
from connector.flow.accept import AcceptService
from connector.flow.amend import AmendService
from connector.ports import Clock, ItemStore, StoredNotice

if TYPE_CHECKING:
    from connector.adapters.web.metrics import Metrics

__all__ = [
    "ACCEPT",
    "ADMIN_TOKEN_SHA256",
    "BODY_LIMITS",
    "CLOCK",
    "ROUTES",
    "STORE",
    "build_web_app",
    "item_view",
    "wants_json",
]

STORE: Final[web.AppKey[ItemStore]] = web.AppKey("store")
ACCEPT: Final[web.AppKey[AcceptService]] = web.AppKey("accept", AcceptService)
CLOCK: Final[web.AppKey[Clock]] = web.AppKey("clock")
BODY_LIMITS: Final = web.AppKey("body_limits", xmlsafe.ParseLimits)
"""``max_bytes`` is the largest request body a route reads."""
ADMIN_TOKEN_SHA256: Final[web.AppKey[str | None]] = web.AppKey("admin_token_sha256")
AMEND: Final[web.AppKey[AmendService]] = web.AppKey("amend", AmendService)
METRICS: Final[web.AppKey[Metrics]] = web.AppKey("metrics")
"""The app's :class:`~connector.adapters.web.metrics.Metrics`."""

XML_MEDIA_TYPES: Final = frozenset({"application/xml", "text/xml"})
JSON_MEDIA_TYPE: Final = "application/json"
READY_TIMEOUT_SECONDS: Final = 2.0
_READ_CHUNK: Final = 64 * 1024

_log = structlog.get_logger("connector.web")


# --- request helpers ------------------------------------------------------------------------


def _require_xml_body(request: web.Request) -> None:
    charset = (request.charset or "utf-8").lower()
    if request.content_type not in XML_MEDIA_TYPES or charset not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(
            "send the batch as application/xml or text/xml in UTF-8, "
            f"not {request.headers.get(hdrs.CONTENT_TYPE, 'no Content-Type')[:100]!r}"
        )


async def _read_body(request: web.Request) -> bytes:
    """The whole body, refused (413) before reading when declared too large.

    A chunked or compressed body has no usable Content-Length: it is read with a running
    count and refused as soon as the count passes the limit, so no more than one network
    chunk beyond the limit is ever held.
    """
    limits = request.app[BODY_LIMITS]
    if request.content_length is not None:
        xmlsafe.check_size(request.content_length, limits)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limits.max_bytes:
            raise XmlTooLarge(
                f"The message is more than {limits.max_bytes} bytes; "
                f"the limit is {limits.max_bytes} bytes.",
                limit=limits.max_bytes,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """The q-value the most specific range of ``ranges`` gives ``media_type`` (0 if none)."""
    main = media_type.split("/", 1)[0]
    best_specificity, best_q = -1, 0.0
    for media_range, q in ranges:
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{main}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def _accept_ranges(header: str) -> list[tuple[str, float]]:
    ranges = []
    for part in header.split(","):
        media_range, *params = part.split(";")
        media_range = media_range.strip().lower()
        if "/" not in media_range:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((media_range, q))
    return ranges


def wants_json(accept: str | None) -> bool:
    """Whether an Accept header prefers JSON to XML; XML wins ties and unusable headers.

    Not acceptable at all is answered with XML rather than 406: the batch is stored by then,
    and an answer the client did not ask for beats one that hides what was stored.
    """
    if not accept:
        return False
    ranges = _accept_ranges(accept)
    xml = max(_quality(ranges, media_type) for media_type in XML_MEDIA_TYPES)
    return _quality(ranges, JSON_MEDIA_TYPE) > xml


def _json(data: Mapping[str, object], status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# --- views ----------------------------------------------------------------------------------


def _acknowledgement_response(ack: Acknowledgement, as_json: bool) -> web.Response:
    if as_json:
        response = _json(ack.as_dict())
    else:
        response = web.Response(
            body=outbound.acknowledgement_xml(ack), content_type="application/xml", charset="utf-8"
        )
    response.headers[hdrs.VARY] = hdrs.ACCEPT
    return response


def item_view(
    item: StoredItem, events: tuple[ItemEvent, ...], notices: Sequence[StoredNotice] = ()
) -> dict[str, object]:
    """The JSON form of an operator's item with its history, oldest event first, and the
    notices of its decisions with their delivery state."""
    return {
        "item_id": item.item_id,
        "reference": item.reference,
        "version": item.version,
        "state": item.state.value,
        "destination_country": item.destination_country,
        "batch_id": item.batch_id,
        "received_at": item.received_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
        "decision": item.decision.value if item.decision is not None else None,
        "findings": [model.finding_dict(finding) for finding in item.findings],
        "events": [
            {
                "at": event.at.isoformat(),
                "actor": event.actor,
                "from": event.from_state.value if event.from_state is not None else None,
                "to": event.to_state.value,
                "detail": event.detail,
            }
            for event in events
        ],
        "notices": [
            {
                "notice_id": stored.notice.notice_id,
                "sequence": stored.sequence,
                "decision": stored.notice.decision.value,
                "issued_at": stored.notice.issued_at.isoformat(),
                "delivery": stored.status,
                "attempts": stored.attempts,
                "last_error": stored.last_error,
            }
            for stored in notices
        ],
    }


# --- handlers -------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers HTTP."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers in time, the signing key (when configured) is valid
    now, and the message schemas are compiled. Says only which check failed, nothing more."""
    from connector.adapters.web.admin import ADMIN_KEYRING

    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await request.app[STORE].schedule_states()
    except Exception as exc:
        _log.warning("readiness.failed", check="database", error_type=type(exc).__name__)
        raise StoreUnavailable() from exc
    checks = {"database": "ok", "schemas": "ok"}
    try:
        default_registry().lxml(MessageKind.ITEM_BATCH)
    except Exception as exc:
        _log.error("readiness.failed", check="schemas", error_type=type(exc).__name__)
        checks["schemas"] = "failed"
    ring = request.app.get(ADMIN_KEYRING)
    if ring is not None:
        expires = ring.active.certificate.not_valid_after_utc
        checks["keys"] = "ok" if expires > request.app[CLOCK].now() else "expired"
    failed = sorted(name for name, state in checks.items() if state != "ok")
    if failed:
        _log.error("readiness.failed", checks=failed)
        return problems.problem_response(
            request,
            status=503,
            code="not_ready",
            title="Not ready",
            detail=f"not ready: {', '.join(failed)}",
            extra={"checks": checks},
        )
    return _json({"status": "ok", "checks": checks})


async def push_batch(request: web.Request) -> web.Response:
    """Accept an item batch from the authenticated operator and acknowledge every item."""
    operator = await auth.authenticated_operator(request)
    _require_xml_body(request)
    as_json = wants_json(request.headers.get(hdrs.ACCEPT))
    body = await _read_body(request)
    ack = await request.app[ACCEPT].accept_batch(operator.operator_id, body)
    request.app[METRICS].acknowledged(ack)
    accepted = sum(1 for item in ack.items if item.accepted)
    _log.info(
        "batch.pushed",
        batch_id=ack.batch_id,
        items=len(ack.items),
        accepted=accepted,
        rejected=len(ack.items) - accepted,
    )
    return _acknowledgement_response(ack, as_json)


async def post_amendment(request: web.Request) -> web.Response:
    """Amend or cancel the authenticated operator's undecided items, entry by entry."""
    operator = await auth.authenticated_operator(request)
    _require_xml_body(request)
    body = await _read_body(request)
    result = await request.app[AMEND].amend(operator.operator_id, body)
    applied = sum(1 for entry in result.entries if entry.applied)
    _log.info(
        "amendment.received",
        amendment_id=result.amendment_id,
        entries=len(result.entries),
        applied=applied,
        refused=len(result.entries) - applied,
    )
    return _json(result.as_dict())


async def get_item(request: web.Request) -> web.Response:
    """One of the caller's items with its history; another operator's item is not found."""
    operator = await auth.authenticated_operator(request)
    item_id = request.match_info["item_id"]
    store = request.app[STORE]
    item = await store.get_item(operator.operator_id, item_id)
    if item is None or item.operator_id != operator.operator_id:
        # The same answer whether the item is missing or someone else's: no existence oracle.
        raise NotFound(f"you have no item {item_id[:64]!r}")
    events, notices = (
        await store.item_events(item.reference),
        await store.item_notices(item.reference),
    )
    return _json(item_view(item, events, notices))


ROUTES: Final = (
    web.get("/healthz", healthz, name="healthz"),
    web.get("/readyz", readyz, name="readyz"),
    web.post("/v1/batches", push_batch, name="push_batch"),
    web.post("/v1/amendments", post_amendment, name="post_amendment"),
    web.get("/v1/items/{item_id}", get_item, name="get_item"),
)
"""Every route of the API; handlers find their dependencies through the app keys above."""


def build_web_app(
    *,
    store: ItemStore,
    accept: AcceptService,
    clock: Clock,
    max_body_bytes: int,
    admin_token_sha256: str | None = None,
    amend: AmendService | None = None,
    rate_limit: tuple[float, int] | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The aiohttp application over these adapters and services.

    ``max_body_bytes`` caps every request body (aiohttp's ``client_max_size`` and the
    routes' own streaming check); ``admin_token_sha256`` is the SHA-256 hex digest of
    ``CONNECTOR_ADMIN_TOKEN``, None to refuse every admin request; ``rate_limit`` is
    (requests per second, burst) per operator, None for no limit; ``metrics`` is the
    :class:`~connector.adapters.web.metrics.Metrics` to count into (a new one by default).
    """
    from connector.adapters.web.metrics import METRICS_ROUTES, Metrics, metrics_middleware

    if max_body_bytes < 1:
        raise ConfigurationError(
            f"max_body_bytes must be at least 1, got {max_body_bytes}", key="max_body_bytes"
        )
    limits = replace(accept.limits, max_bytes=max_body_bytes)
    app = web.Application(
        middlewares=[metrics_middleware, problems.problems_middleware],
        client_max_size=max_body_bytes,
    )
    app[METRICS] = metrics if metrics is not None else Metrics()
    app[STORE] = store
    app[auth.OPERATORS] = store
    app[ACCEPT] = accept
    app[AMEND] = amend or AmendService(store=store, clock=clock, limits=limits)
    app[CLOCK] = clock
    app[BODY_LIMITS] = limits
    app[ADMIN_TOKEN_SHA256] = admin_token_sha256
    app[auth.RATE_LIMITER] = RateLimiter(*rate_limit) if rate_limit else None
    problems.set_body_limit(app, max_body_bytes)
    app.add_routes(ROUTES)
    from connector.adapters.web.admin import ADMIN_ROUTES  # admin.py reads the keys above

    app.add_routes(ADMIN_ROUTES)
    from connector.adapters.web.customs import CUSTOMS_ROUTES  # its handler reads the keys above
    from connector.adapters.web.notices import NOTICES_ROUTES

    app.add_routes(CUSTOMS_ROUTES)
    app.add_routes(NOTICES_ROUTES)
    from connector.adapters.web.answers import ANSWER_ROUTES

    app.add_routes(ANSWER_ROUTES)
    app.add_routes(METRICS_ROUTES)
    from connector.adapters.web.openapi import OPENAPI_ROUTES

    app.add_routes(OPENAPI_ROUTES)
    return app
