"""Administration: operators, dead letters, schedules and the audit log, for the admin API and
the CLI alike.

An :class:`AdminService` acts for one caller: ``actor`` is ``api`` or ``cli`` and
``request_id`` the admin API call's ``X-Request-Id``. Every action that changes something
appends one :class:`~connector.ports.AuditEntry` (``admin_audit``) in the store transaction
that makes the change; changes made outside the store (the signing key ring, a triggered pull)
are recorded right after them with :meth:`AdminService.record`. Audit details never hold a
secret: a token appears only as the first 8 hex digits of its SHA-256 (its fingerprint).

Operators come from two places. Those declared in the configuration file are synced at
startup (``managed_by = config``); those added here are ``managed_by = admin`` and persist.
An administrator's decisions outlive the sync: a disabled operator stays disabled (the
``admin_disabled`` flag, cleared only by :meth:`AdminService.enable_operator`), and a token
rotated here stays in force, the configured token then being ignored (with a warning log at
startup). Tokens are random (``secrets.token_urlsafe(32)``), stored as their SHA-256 only and
returned once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from connector.core.model import CustomsDecision, ItemState, StoredItem
from connector.errors import IllegalTransition, InvalidMessage, NotFound
from connector.ports import AdminOperator, AuditEntry, Clock, ItemSearch, ItemStore, OperatorRecord
from connector.settings import IDENTIFIER_PATTERN

__all__ = [
    "ACTORS",
    "AdminService",
    "IssuedToken",
    "find_dead_letter",
    "fingerprint",
    "item_cursor",
    "item_search",
    "normalise_sha256",
]

ACTORS: Final = frozenset({"api", "cli"})
MAX_NAME: Final = 200
_IDENTIFIER: Final = re.compile(IDENTIFIER_PATTERN)
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
MAX_PAGE: Final = 1000
DEFAULT_PAGE: Final = 100
SEARCH_KEYS: Final = ("operator", "state", "decision", "from", "to", "limit", "after")
"""The item search's parameters (query string of the API, options of the CLI)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def fingerprint(sha256_hex: str | None) -> str | None:
    """A short, non-secret name for a credential digest: its first 8 hex digits."""
    return sha256_hex[:8] if sha256_hex else None


def normalise_sha256(value: str) -> str:
    """A SHA-256 fingerprint as stored: lower-case hex, colons removed; InvalidMessage if not."""
    digest = value.replace(":", "").strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise InvalidMessage("a certificate fingerprint is 64 hexadecimal digits (a SHA-256)")
    return digest


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


def item_cursor(item: StoredItem) -> str:
    """The search cursor after ``item``: ``<received_at in µs since 1970>.<reference>``."""
    return f"{(item.received_at - _EPOCH) // _MICROSECOND}.{item.reference}"


def _cursor(text: str) -> tuple[datetime, str]:
    micros, _, reference = text.partition(".")
    if not micros.isdigit() or not reference:
        raise InvalidMessage("after must be a cursor from a previous page (next_after)")
    return _EPOCH + int(micros) * _MICROSECOND, reference


def _instant(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidMessage(f"{name} must be an ISO 8601 date or date and time") from error
    return value.astimezone(UTC) if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def item_search(params: Mapping[str, str | None]) -> ItemSearch:
    """The search the parameters ask for (:data:`SEARCH_KEYS`; missing or empty: any).

    ``from`` and ``to`` are ISO 8601 (UTC unless an offset is given) and bound
    ``received_at`` (from inclusive, to exclusive); ``limit`` is 1 to 1000 (default 100).
    """
    unknown = {key for key in params if key not in SEARCH_KEYS}
    if unknown:
        raise InvalidMessage(f"unknown search parameter(s): {', '.join(sorted(unknown))}")
    value = {key: text for key, text in params.items() if text}
    try:
        state = ItemState(value["state"].upper()) if "state" in value else None
        decision = CustomsDecision(value["decision"].upper()) if "decision" in value else None
    except ValueError as error:
        raise InvalidMessage(f"unknown state or decision: {error}") from error
    try:
        limit = int(value.get("limit", DEFAULT_PAGE))
    except ValueError as error:
        raise InvalidMessage(f"limit must be a whole number from 1 to {MAX_PAGE}") from error
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidMessage(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return ItemSearch(
        operator_id=value.get("operator"),
        state=state,
        decision=decision,
        received_from=_instant("from", value["from"]) if "from" in value else None,
        received_to=_instant("to", value["to"]) if "to" in value else None,
        after=_cursor(value["after"]) if "after" in value else None,
        limit=limit,
    )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An operator after an add or a token rotation, with the new token: shown once, never
    stored (None when no token was issued)."""

    operator: AdminOperator
    token: str | None = None


class AdminService:
    """Administrative actions over the store, each audited as ``actor``."""

    def __init__(
        self, store: ItemStore, clock: Clock, actor: str, request_id: str | None = None
    ) -> None:
        if actor not in ACTORS:
            raise ValueError(f"actor must be one of {sorted(ACTORS)}, not {actor!r}")
        self.store, self.clock, self.actor, self.request_id = store, clock, actor, request_id

    def entry(
        self, action: str, target: str, detail: Mapping[str, object] | None = None
    ) -> AuditEntry:
        """The audit entry of an action by this caller, now."""
        return AuditEntry(
            at=self.clock.now(),
            actor=self.actor,
            action=action,
            target=target,
            detail=dict(detail or {}),
            request_id=self.request_id,
        )

    async def record(
        self, action: str, target: str, detail: Mapping[str, object] | None = None
    ) -> AuditEntry:
        """Audit a change made outside the store (the key ring, a triggered pull)."""
        return await self.store.record_audit(self.entry(action, target, detail))

    # -- operators ------------------------------------------------------------------------

    async def operators(self) -> tuple[AdminOperator, ...]:
        """Every operator, by id."""
        return await self.store.admin_operators()

    async def add_operator(
        self,
        operator_id: str,
        name: str | None = None,
        *,
        issue_token: bool = True,
        cert_sha256: str | None = None,
    ) -> IssuedToken:
        """Add an admin-managed operator with a new token (unless ``issue_token`` is False)
        and/or a client certificate fingerprint; IllegalTransition if the id is taken."""
        if not isinstance(operator_id, str) or not _IDENTIFIER.fullmatch(operator_id):
            raise InvalidMessage("an operator id is 1 to 64 of A-Z a-z 0-9 . _ : -")
        name = name if name else operator_id
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise InvalidMessage(f"an operator name is text of at most {MAX_NAME} characters")
        cert = normalise_sha256(cert_sha256) if cert_sha256 is not None else None
        if not issue_token and cert is None:
            raise InvalidMessage("an operator needs a token or a client certificate fingerprint")
        token = _new_token() if issue_token else None
        token_sha256 = _sha256(token) if token is not None else None
        record = OperatorRecord(operator_id, name, True, token_sha256, cert)
        auth = [kind for kind, value in (("token", token), ("client_cert", cert)) if value]
        detail = {
            "name": name,
            "auth": auth,
            "token_fingerprint": fingerprint(token_sha256),
            "cert_fingerprint": fingerprint(cert),
        }
        added = await self.store.add_operator(
            record, self.entry("operator.add", operator_id, detail)
        )
        return IssuedToken(added, token)

    async def disable_operator(self, operator_id: str) -> AdminOperator:
        """Stop the operator authenticating, at once and across restarts."""
        return await self.store.set_operator_disabled(
            operator_id, True, self.entry("operator.disable", operator_id)
        )

    async def enable_operator(self, operator_id: str) -> AdminOperator:
        """Undo :meth:`disable_operator` (the configuration may still disable it)."""
        return await self.store.set_operator_disabled(
            operator_id, False, self.entry("operator.enable", operator_id)
        )

    async def rotate_token(self, operator_id: str) -> IssuedToken:
        """Give the operator a new random token; the old one stops working at once."""
        known = {op.record.operator_id: op for op in await self.store.admin_operators()}
        if operator_id not in known:
            raise NotFound(f"no operator {operator_id[:64]!r}")
        token = _new_token()
        token_sha256 = _sha256(token)
        detail = {
            "token_fingerprint": fingerprint(token_sha256),
            "previous_fingerprint": fingerprint(known[operator_id].record.token_sha256),
        }
        rotated = await self.store.rotate_operator_token(
            operator_id, token_sha256, self.entry("operator.rotate_token", operator_id, detail)
        )
        return IssuedToken(rotated, token)

    # -- dead letters and schedules -------------------------------------------------------

    async def replay_dead(self, key: str) -> StoredItem:
        """Queue a dead letter (by reference, or its unique item id) for forwarding again."""
        item = find_dead_letter(await self.store.dead_letters(), key)
        detail = {"operator_id": item.operator_id, "item_id": item.item_id}
        try:
            return await self.store.replay(
                item.reference,
                self.clock.now(),
                audit=self.entry("dead.replay", item.reference, detail),
            )
        except IllegalTransition as error:  # replayed by someone else in the meantime
            raise NotFound(f"{item.reference} is no longer a dead letter") from error

    async def set_paused(self, schedule_id: str, paused: bool) -> None:
        """Pause or resume a schedule for every replica."""
        action = "schedule.pause" if paused else "schedule.resume"
        await self.store.set_paused(schedule_id, paused, audit=self.entry(action, schedule_id))

    # -- reading ----------------------------------------------------------------------------

    async def audit_log(self, after: int = 0, limit: int = 100) -> tuple[AuditEntry, ...]:
        """Audit rows after id ``after``, oldest first."""
        return await self.store.audit_after(after, limit)

    async def search_items(self, search: ItemSearch) -> tuple[StoredItem, ...]:
        """One page of items of any operator, newest first."""
        return await self.store.search_items(search)


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
