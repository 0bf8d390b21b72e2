"""The ``ead-connector`` command line (also ``python -m connector``).

Exit codes of ``validate``: 0 every item of every file valid, 1 some item invalid, 2 a file
unreadable, unsafe or not a usable batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from connector import __version__
from connector.core.inbound import ValidationReport, validate_item_batch
from connector.core.model import ItemEvent, StoredItem
from connector.core.xmlsafe import DEFAULT_LIMITS, check_size
from connector.errors import ConnectorError, NotFound

if TYPE_CHECKING:
    from connector.core.checks import CheckConfig, Finding
    from connector.ports import StoredNotice
    from connector.settings import Settings

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2


@dataclass(frozen=True, slots=True)
class FileVerdict:
    """What ``validate`` concluded about one file (with the data-quality findings, if run)."""

    file: str
    report: ValidationReport | None = None
    error_code: str | None = None
    error_message: str | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def rejected(self) -> frozenset[int]:
        """Items rejected by the schema, the rules or an error finding."""
        if self.report is None:
            return frozenset()
        errors = {finding.item_index for finding in self.findings if finding.is_error}
        return self.report.rejected_indexes | errors

    @property
    def exit_code(self) -> int:
        if self.report is None:
            return EXIT_UNUSABLE
        return EXIT_INVALID if self.rejected else EXIT_OK

    def as_dict(self) -> dict[str, object]:
        if self.report is None:
            return {
                "file": self.file,
                "status": "unusable",
                "error": {"code": self.error_code, "message": self.error_message},
            }
        report = self.report
        rejected = self.rejected
        return {
            "file": self.file,
            "status": "invalid" if rejected else "valid",
            "batch_id": report.header.batch_id,
            "operator_id": report.header.operator_id,
            "items": report.item_count,
            "accepted": report.item_count - len(rejected),
            "rejected": len(rejected),
            "errors": [error.as_dict() for error in report.errors],
            "findings": [finding.as_dict() for finding in self.findings],
        }


def validate_file(path: Path, checks: CheckConfig | None = None) -> FileVerdict:
    """Validate one file (and run the data-quality ``checks``), every expected failure
    turned into a verdict."""
    name = str(path)
    try:
        check_size(path.stat().st_size, DEFAULT_LIMITS)
        data = path.read_bytes()
    except ConnectorError as exc:
        return FileVerdict(name, error_code=exc.code, error_message=exc.message)
    except OSError as exc:
        return FileVerdict(
            name, error_code="file_unreadable", error_message=exc.strerror or str(exc)
        )
    try:
        report = validate_item_batch(data)
    except ConnectorError as exc:
        return FileVerdict(name, error_code=exc.code, error_message=exc.message)
    if checks is None:
        return FileVerdict(name, report=report)
    from connector.checks_loader import findings_for_report

    return FileVerdict(name, report=report, findings=findings_for_report(report, checks))


def _print_text(verdicts: Sequence[FileVerdict], out: TextIO) -> None:
    for verdict in verdicts:
        report = verdict.report
        if report is None:
            print(
                f"{verdict.file}: unusable ({verdict.error_code}): {verdict.error_message}",
                file=out,
            )
            continue
        rejected = len(verdict.rejected)
        print(
            f"{verdict.file}: batch {report.header.batch_id} from {report.header.operator_id}: "
            f"{report.item_count} items, {report.item_count - rejected} accepted, "
            f"{rejected} rejected",
            file=out,
        )
        for error in report.errors:
            print(
                f"  item {error.item_index} {error.item_id or '-'} {error.path}: "
                f"{error.code}: {error.message}",
                file=out,
            )
        for finding in verdict.findings:
            print(
                f"  item {finding.item_index} {finding.item_id} {finding.path}: "
                f"{finding.severity.value} {finding.code}: {finding.message}",
                file=out,
            )


def _check_config(spec: str) -> CheckConfig | None:
    """``--checks``: none, all, or a comma-separated list of check names."""
    from connector.checks_loader import load_check_config
    from connector.core.checks import CheckName

    if spec == "none":
        return None
    names = list(CheckName) if spec == "all" else [CheckName(n.strip()) for n in spec.split(",")]
    return load_check_config(enabled=names)


def _cmd_validate(args: argparse.Namespace) -> int:
    checks = _check_config(args.checks)
    verdicts = [validate_file(Path(name), checks) for name in args.files]
    if args.format == "json":
        json.dump(
            {"files": [v.as_dict() for v in verdicts]}, sys.stdout, ensure_ascii=False, indent=1
        )
        sys.stdout.write("\n")
    else:
        _print_text(verdicts, sys.stdout)
    return max(verdict.exit_code for verdict in verdicts)


def _cmd_sample(args: argparse.Namespace) -> int:
    from connector.sample import generate_batch

    batch = generate_batch(
        args.items, invalid_ratio=args.invalid_ratio, seed=args.seed, operator_id=args.operator
    )
    data, problems = batch.xml, 0
    if args.check_problems:
        from connector.core.checks.seeding import seed_check_problems

        seeded = seed_check_problems(
            batch.xml,
            ratio=args.check_problems,
            seed=args.seed,
            avoid={fault.index for fault in batch.faults},
        )
        data, problems = seeded.xml, len(seeded.problems)
    Path(args.output).write_bytes(data)
    print(
        f"wrote {batch.item_count} items ({len(batch.faults)} with a seeded fault, "
        f"{problems} with a seeded data-quality problem) of batch {batch.batch_id} "
        f"to {args.output}",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from connector.demo import DemoOptions, run_demo

    print(
        f"ead-connector {__version__} demo: {args.items} items, the connector, a mock Customs "
        "and two mock postal operators on 127.0.0.1 (HTTPS, real keys and signatures)",
        file=sys.stderr,
        flush=True,
    )
    result = asyncio.run(
        run_demo(
            DemoOptions(
                items=args.items,
                seed=args.seed,
                keep=args.keep,
                workdir=Path(args.workdir) if args.workdir else None,
            )
        )
    )
    print(result.table())
    return EXIT_OK if result.ok else EXIT_INVALID


# --- the service and its administration -----------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    from connector import logs
    from connector.settings import load_settings

    settings = load_settings(Path(args.config) if args.config else None, os.environ)
    logs.configure(settings.log.level, settings.log.format)
    return settings


def _server_ssl(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS (and optional mTLS: token or client certificate) from the http settings."""
    http = settings.http
    if http.tls_cert is None or http.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(http.tls_cert, http.tls_key)
    if http.client_ca is not None:
        context.load_verify_locations(http.client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # a token works without a certificate
    return context


async def _run_worker(settings: Settings) -> int:
    """The background stages only (pulls, forwarding), until SIGTERM or SIGINT."""
    from connector.app import open_connector
    from connector.heap import settle_heap
    from connector.shutdown import stop_on_signals

    connector = await open_connector(settings)
    stop = stop_on_signals()
    await connector.start_intake()
    settle_heap()
    connector.start()
    print("worker running (pulls and forwarding; no HTTP API)", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await connector.close()
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from connector.adapters.db.lock import hold_sqlite

    settings = _settings(args)
    with hold_sqlite(settings.database.url):
        return _serve(settings, args.role)


def _serve(settings: Settings, role: str) -> int:
    from aiohttp import web

    from connector.app import build_app, open_connector
    from connector.heap import settle_heap

    if role == "worker":
        return asyncio.run(_run_worker(settings))
    background = role == "all"

    async def make_app() -> web.Application:
        connector = await open_connector(settings)
        await connector.start_intake()
        app = await build_app(connector, schedule=background, forward=background)
        settle_heap()
        return app

    web.run_app(
        make_app(),
        host=settings.http.host,
        port=settings.http.port,
        ssl_context=_server_ssl(settings),
        shutdown_timeout=10.0,
        print=lambda message: print(message, file=sys.stderr, flush=True),
    )
    return EXIT_OK


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from connector.adapters.db import engine

    settings = _settings(args)
    asyncio.run(engine.upgrade(settings.database.url))
    print(f"database {settings.database.redacted_url} is at revision {engine.head_revision()}")
    return EXIT_OK


def _print_item(
    item: StoredItem, events: Sequence[ItemEvent], notices: Sequence[StoredNotice] = ()
) -> None:
    print(f"item {item.item_id} of operator {item.operator_id}")
    print(f"  reference    {item.reference}")
    print(
        f"  state        {item.state.value}"
        + (f" ({item.decision.value})" if item.decision else "")
    )
    print(f"  version      {item.version}")
    print(f"  destination  {item.destination_country}")
    print(f"  batch        {item.batch_id}")
    print(f"  received     {item.received_at.isoformat()}")
    print(f"  updated      {item.updated_at.isoformat()}")
    if item.findings:
        print("  findings:")
        for finding in item.findings:
            print(f"    {finding.severity.value} {finding.code} {finding.path}: {finding.message}")
    print("  history:")
    for event in events:
        before = event.from_state.value if event.from_state else "-"
        detail = f"  {event.detail}" if event.detail else ""
        print(
            f"    {event.at.isoformat()}  {before:>10} -> {event.to_state.value:<10} "
            f"by {event.actor}{detail}"
        )
    if notices:
        print("  notices:")
        for stored in notices:
            error = f"  last error: {stored.last_error}" if stored.last_error else ""
            print(
                f"    #{stored.sequence}  {stored.notice.notice_id}  "
                f"{stored.notice.decision.value:<17} {stored.status} "
                f"after {stored.attempts} attempt(s){error}"
            )


async def _items_show(settings: Settings, item_id: str) -> int:
    from connector.adapters.db.store import SqlItemStore

    store = await SqlItemStore.open(settings.database.url)
    try:
        items = await store.find_items(item_id)
        if not items:
            raise NotFound(f"no item {item_id!r} in {settings.database.redacted_url}")
        for index, item in enumerate(items):
            if index:
                print()
            _print_item(
                item,
                await store.item_events(item.reference),
                await store.item_notices(item.reference),
            )
    finally:
        await store.close()
    return EXIT_OK


def _cmd_items_show(args: argparse.Namespace) -> int:
    return asyncio.run(_items_show(_settings(args), args.item_id))


async def _schedules(settings: Settings, action: str, operator_id: str | None) -> int:
    from datetime import UTC, datetime

    from connector.adapters.scheduler import schedule_id
    from connector.app import open_connector
    from connector.flow.admin import AdminService

    connector = await open_connector(settings)
    admin = AdminService(connector.store, connector.clock, "cli")
    try:
        scheduled = connector.scheduler.schedules
        if operator_id is not None and operator_id not in scheduled:
            raise NotFound(f"operator {operator_id!r} has no pull schedule in the configuration")
        if action == "list":
            states = await connector.store.schedule_states()
            now = datetime.now(UTC)
            print(f"{'schedule':<24} {'every':<16} {'paused':<7} {'next run':<26} last result")
            for op, schedule in sorted(scheduled.items()):
                state = states.get(schedule_id(op))
                upcoming = schedule.trigger().get_next_fire_time(None, now)
                print(
                    f"{schedule_id(op):<24} {schedule.describe():<16} "
                    f"{'yes' if state and state.paused else 'no':<7} "
                    f"{upcoming.isoformat() if upcoming else '-':<26} "
                    f"{(state.last_result if state and state.last_result else '-')}"
                )
        elif action in ("pause", "resume"):
            assert operator_id is not None
            await admin.set_paused(schedule_id(operator_id), action == "pause")
            print(f"{schedule_id(operator_id)} {action}d")
        else:
            assert operator_id is not None
            outcome = await connector.scheduler.trigger(operator_id)
            summary = outcome.summary() if outcome else "not run"
            await admin.record("schedule.trigger", schedule_id(operator_id), {"outcome": summary})
            print(f"{schedule_id(operator_id)}: {summary}")
            return EXIT_OK if outcome is not None and outcome.ok else EXIT_INVALID
    finally:
        await connector.close()
    return EXIT_OK


def _cmd_schedules(args: argparse.Namespace) -> int:
    return asyncio.run(_schedules(_settings(args), args.action, getattr(args, "operator", None)))


async def _dead(settings: Settings, action: str, key: str | None) -> int:
    from connector.adapters.db.store import SqlItemStore
    from connector.adapters.web.admin import dead_reason
    from connector.flow.admin import AdminService
    from connector.testing import SystemClock

    store = await SqlItemStore.open(settings.database.url)
    try:
        dead = await store.dead_letters()
        if action == "list":
            print(f"{len(dead)} dead letter(s)")
            for item in dead:
                reason = await dead_reason(store, item.reference)
                print(
                    f"{item.reference}  {item.operator_id:<12} {item.item_id:<13} "
                    f"v{item.version}  {item.destination_country}  since "
                    f"{item.updated_at.isoformat()}  {reason or '-'}"
                )
        else:
            assert key is not None
            replayed = await AdminService(store, SystemClock(), "cli").replay_dead(key)
            print(f"{replayed.reference} ({replayed.item_id}) queued for forwarding again")
    finally:
        await store.close()
    return EXIT_OK


def _cmd_dead(args: argparse.Namespace) -> int:
    return asyncio.run(_dead(_settings(args), args.action, getattr(args, "id", None)))


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _items(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ead-connector",
        description="Electronic advance data between postal operators and Customs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="validate item batch files")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument(
        "--checks",
        default="none",
        metavar="LIST",
        help="data-quality checks to run: none (default), all, or e.g. hs,parties "
        "(hs, descriptions, prohibited, parties)",
    )
    validate.set_defaults(handler=_cmd_validate)

    sample = commands.add_parser("sample", help="write a realistic sample item batch")
    sample.add_argument("--items", type=_items, required=True, metavar="N")
    sample.add_argument("--invalid-ratio", type=_ratio, default=0.0, metavar="R")
    sample.add_argument("--seed", type=int, default=0, metavar="S")
    sample.add_argument("--operator", default=None, metavar="ID")
    sample.add_argument(
        "--check-problems",
        type=_ratio,
        default=0.0,
        metavar="R",
        help="share of other items given one data-quality problem for `validate --checks`",
    )
    sample.add_argument("-o", "--output", required=True, metavar="FILE")
    sample.set_defaults(handler=_cmd_sample)

    demo = commands.add_parser(
        "demo", help="the whole flow on loopback with mock Customs and operators; a summary"
    )
    demo.add_argument("--items", type=_items, default=1000, metavar="N")
    demo.add_argument("--seed", type=int, default=1, metavar="S")
    demo.add_argument(
        "--keep", action="store_true", help="leave everything running (details in demo.json)"
    )
    demo.add_argument("--workdir", metavar="DIR", help="keep the database and keys here")
    demo.set_defaults(handler=_cmd_demo)

    def with_config(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--config", metavar="FILE", help="configuration file (default: $CONNECTOR_CONFIG)"
        )
        return command

    run = with_config(commands.add_parser("run", help="run the service (HTTP API + schedulers)"))
    run.add_argument(
        "--role",
        choices=("all", "api", "worker"),
        default="all",
        help="all: API, pulls and forwarding in one process (default); api: the HTTP API only; "
        "worker: pulls and forwarding only, no HTTP port",
    )
    run.set_defaults(handler=_cmd_run)

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = with_config(db_commands.add_parser("upgrade", help="migrate the schema to head"))
    upgrade.set_defaults(handler=_cmd_db_upgrade)

    items = commands.add_parser("items", help="look at items")
    items_commands = items.add_subparsers(dest="items_command", required=True, metavar="COMMAND")
    show = with_config(items_commands.add_parser("show", help="an item's state and history"))
    show.add_argument("item_id", metavar="ITEMID")
    show.set_defaults(handler=_cmd_items_show)

    schedules = commands.add_parser("schedules", help="scheduled pulls")
    actions = schedules.add_subparsers(dest="action", required=True, metavar="COMMAND")
    with_config(actions.add_parser("list", help="schedules with next run and last result"))
    for action, text in (
        ("pause", "stop an operator's scheduled pulls (all replicas)"),
        ("resume", "resume an operator's scheduled pulls"),
        ("trigger", "pull an operator's source now"),
    ):
        with_config(actions.add_parser(action, help=text)).add_argument("operator", metavar="OP")
    schedules.set_defaults(handler=_cmd_schedules)

    dead = commands.add_parser("dead", help="dead letters: items whose forwarding gave up")
    dead_actions = dead.add_subparsers(dest="action", required=True, metavar="COMMAND")
    with_config(dead_actions.add_parser("list", help="dead letters with the reason"))
    replay = with_config(dead_actions.add_parser("replay", help="forward a dead letter again"))
    replay.add_argument("id", metavar="ID", help="the item's connector reference, or its item id")
    dead.set_defaults(handler=_cmd_dead)

    from connector import admin_cli, keys_cli, ops_cli

    keys_cli.register(commands)
    ops_cli.register(commands)
    admin_cli.register(commands, items=items_commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from connector import logs

    args = build_parser().parse_args(argv)
    logs.configure()  # stderr; the loaded settings may change level and format
    try:
        code: int = args.handler(args)
    except ConnectorError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_UNUSABLE
    return code
