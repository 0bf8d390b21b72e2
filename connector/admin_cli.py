"""The ``operators``, ``audit`` and ``items search`` commands of ``ead-connector``.

``connector.cli.build_parser`` calls :func:`register` with its sub-parsers. Each command opens
the configured database, acts through :class:`~connector.flow.admin.AdminService` (actor
``cli``: every change is in the audit log) and exits 0, or 2 with ``error (code): message`` on
stderr when it could not (``connector.cli.main`` prints ConnectorErrors that way).

A new token (``operators add``, ``operators rotate-token``) is printed once, on stdout; only its
SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from connector.flow.admin import (
    MAX_PAGE,
    SEARCH_KEYS,
    AdminService,
    IssuedToken,
    fingerprint,
    item_cursor,
    item_search,
)

if TYPE_CHECKING:
    from connector.ports import AdminOperator
    from connector.settings import Settings

__all__ = ["register"]

EXIT_OK: Final = 0
Action = Callable[[AdminService, argparse.Namespace, "Settings"], Awaitable[None]]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    items: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``operators`` and ``audit`` to the commands, ``search`` to the ``items`` commands."""
    operators = commands.add_parser("operators", help="postal operators: list, add, disable")
    actions = operators.add_subparsers(dest="operators_command", required=True, metavar="COMMAND")
    _command(actions, "list", "every operator, configured or added", _list_operators)
    add = _command(actions, "add", "add an operator; prints its new token once", _add_operator)
    add.add_argument("operator_id", metavar="ID", help="1 to 64 of A-Z a-z 0-9 . _ : -")
    add.add_argument("--name", help="display name (default: the id)")
    add.add_argument(
        "--cert-sha256", metavar="HEX", help="SHA-256 fingerprint of its mTLS client certificate"
    )
    add.add_argument(
        "--no-token", action="store_true", help="no bearer token (needs --cert-sha256)"
    )
    for name, text, handler in (
        ("disable", "stop an operator authenticating (kept across restarts)", _disable),
        ("enable", "let an operator disabled here authenticate again", _enable),
        ("rotate-token", "a new token, printed once; the old one stops working", _rotate),
    ):
        _command(actions, name, text, handler).add_argument("operator_id", metavar="ID")

    audit = commands.add_parser("audit", help="the audit log of admin actions")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    listing = _command(audit_actions, "list", "admin actions after an id, oldest first", _audit)
    listing.add_argument("--after", type=int, default=0, metavar="ID")
    listing.add_argument("--limit", type=_page, default=100, metavar="N")

    search = _command(items, "search", "items of any operator, newest first", _search)
    search.add_argument("--operator", metavar="ID")
    search.add_argument("--state", metavar="STATE", help="e.g. FORWARDED, DECIDED, DEAD")
    search.add_argument("--decision", metavar="CODE", help="e.g. RELEASE, HOLD_FOR_INSPECTION")
    search.add_argument(
        "--from", dest="received_from", metavar="TIME", help="received at or after (ISO 8601)"
    )
    search.add_argument("--to", dest="received_to", metavar="TIME", help="received before")
    search.add_argument("--limit", type=_page, default=100, metavar="N")
    search.add_argument("--after", metavar="CURSOR", help="the cursor printed after a full page")


def _page(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PAGE}")
    return value


def _command(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text: str,
    action: Action,
) -> argparse.ArgumentParser:
    command = actions.add_parser(name, help=text)
    command.add_argument(
        "--config", metavar="FILE", help="configuration file (default: $CONNECTOR_CONFIG)"
    )
    command.set_defaults(handler=lambda args: _run(args, action))
    return command


def _run(args: argparse.Namespace, action: Action) -> int:
    from connector import logs
    from connector.settings import load_settings

    settings = load_settings(Path(args.config) if args.config else None, os.environ)
    logs.configure(settings.log.level, settings.log.format)
    asyncio.run(_with_service(settings, args, action))
    return EXIT_OK


async def _with_service(settings: Settings, args: argparse.Namespace, action: Action) -> None:
    from connector.adapters.db.store import SqlItemStore
    from connector.testing import SystemClock

    store = await SqlItemStore.open(settings.database.url)
    try:
        await action(AdminService(store, SystemClock(), "cli"), args, settings)
    finally:
        await store.close()


# --- operators ------------------------------------------------------------------------------


def _channels(settings: Settings, operator_id: str) -> str:
    for operator in settings.operators:
        if operator.id == operator_id:
            kinds = [
                kind
                for kind, present in (
                    ("pull", operator.pull is not None),
                    ("webhook", operator.webhook_url is not None),
                )
                if present
            ]
            return ",".join(kinds) or "-"
    return "-"


def _auth(operator: AdminOperator) -> str:
    record = operator.record
    parts = [
        f"{kind}:{fingerprint(value)}"
        for kind, value in (("token", record.token_sha256), ("cert", record.cert_sha256))
        if value
    ]
    return " ".join(parts) or "-"


def _print_operators(operators: Sequence[AdminOperator], settings: Settings) -> None:
    print(f"{'operator':<16} {'enabled':<8} {'managed':<8} {'channels':<13} {'auth':<32} name")
    for operator in operators:
        record = operator.record
        enabled = "yes" if record.enabled else ("admin-off" if operator.admin_disabled else "no")
        print(
            f"{record.operator_id:<16} {enabled:<8} {operator.managed_by:<8} "
            f"{_channels(settings, record.operator_id):<13} {_auth(operator):<32} {record.name}"
        )


def _print_issued(issued: IssuedToken, what: str) -> None:
    record = issued.operator.record
    print(f"operator {record.operator_id} {what}")
    if issued.token is not None:
        print(f"  token  {issued.token}")
        print("  (shown this once: only its SHA-256 is stored; hand it to the operator now)")


async def _list_operators(service: AdminService, _: argparse.Namespace, settings: Settings) -> None:
    _print_operators(await service.operators(), settings)


async def _add_operator(service: AdminService, args: argparse.Namespace, _: Settings) -> None:
    issued = await service.add_operator(
        args.operator_id, args.name, issue_token=not args.no_token, cert_sha256=args.cert_sha256
    )
    _print_issued(issued, "added")


async def _disable(service: AdminService, args: argparse.Namespace, _: Settings) -> None:
    await service.disable_operator(args.operator_id)
    print(f"operator {args.operator_id} disabled")


async def _enable(service: AdminService, args: argparse.Namespace, _: Settings) -> None:
    await service.enable_operator(args.operator_id)
    print(f"operator {args.operator_id} enabled")


async def _rotate(service: AdminService, args: argparse.Namespace, _: Settings) -> None:
    _print_issued(await service.rotate_token(args.operator_id), "has a new token")


# --- audit and search -----------------------------------------------------------------------


async def _audit(service: AdminService, args: argparse.Namespace, _: Settings) -> None:
    entries = await service.audit_log(args.after, args.limit)
    for entry in entries:
        detail = " ".join(f"{key}={value}" for key, value in sorted(entry.detail.items()))
        request = f" request={entry.request_id}" if entry.request_id else ""
        print(
            f"{entry.id:>6}  {entry.at.isoformat()}  {entry.actor:<3}  {entry.action:<21} "
            f"{entry.target}  {detail}{request}".rstrip()
        )
    if not entries:
        print(f"no audit entries after {args.after}")


async def _search(service: AdminService, args: argparse.Namespace, _: Settings) -> None:
    names = {"from": "received_from", "to": "received_to"}
    values = {key: getattr(args, names.get(key, key)) for key in SEARCH_KEYS}
    search = item_search(
        {key: str(value) if value is not None else None for key, value in values.items()}
    )
    items = await service.search_items(search)
    print(
        f"{'received':<26} {'operator':<14} {'item':<15} {'state':<11} {'decision':<20} reference"
    )
    for item in items:
        decision = item.decision.value if item.decision is not None else "-"
        print(
            f"{item.received_at.isoformat():<26} {item.operator_id:<14} {item.item_id:<15} "
            f"{item.state.value:<11} {decision:<20} {item.reference}"
        )
    if len(items) == search.limit:
        print(f"more: --after {item_cursor(items[-1])}")
