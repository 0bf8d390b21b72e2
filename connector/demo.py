"""``ead-connector demo``: the whole flow on loopback, with real servers, keys and signatures.

One process runs, each as a real HTTP(S) server on 127.0.0.1:

- the **connector** (``run``'s app) over HTTPS on a temporary SQLite database, with its
  signing key ring, forwarding, decisions and notices;
- a **mock Customs risk engine** (:class:`~connector.peers.customs.MockCustoms`, HTTPS with
  mutual TLS) that verifies every declaration batch, decides by transparent rules, and posts
  its signed decisions back to the connector;
- two **mock postal operators**: ``DE-POST`` pushes its batches and reads the notice feed;
  ``PL-POCZTA`` serves its batches for the connector's scheduled pull and receives notices
  on a webhook. Both verify every notice's signature and answer requests for information and
  for screening (``POST /v1/answers``).

Customs holds some items for inspection and releases them afterwards; it asks for
information or screening on others and decides finally once the answer arrived; a few
items are not to be loaded or are rejected. The demo ends when every accepted item has a
final notice (RELEASE, DO_NOT_LOAD or REJECTED) at its operator, and prints a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import aiohttp
import structlog
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from lxml import etree

from connector.adapters.db import engine
from connector.adapters.keystore import KeyRing
from connector.app import Connector, build_app, open_connector
from connector.core import notices as core_notices
from connector.core import signing
from connector.core.checks.seeding import seed_check_problems
from connector.core.model import CustomsDecision
from connector.peers.customs import MockCustoms
from connector.peers.serving import start_site
from connector.peers.tls import LoopbackPki
from connector.sample import generate_batch
from connector.sample_data import DESTINATION_WEIGHT
from connector.settings import Settings, validate_settings
from connector.shutdown import stop_on_signals

__all__ = ["DemoOptions", "DemoResult", "run_demo"]

PUSHER: Final = "DE-POST"
PULLED: Final = "PL-POCZTA"
DESTINATION: Final = "EU-ICS2"
BATCH_ITEMS: Final = 250
FINAL: Final = frozenset(
    {CustomsDecision.RELEASE, CustomsDecision.DO_NOT_LOAD, CustomsDecision.REJECTED}
)
_REFERRAL_NS: Final = "urn:ead-connector:referral-answer:1"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs."""

    items: int = 1000
    seed: int = 1
    keep: bool = False
    workdir: Path | None = None
    timeout_s: float = 300.0
    progress: TextIO = field(default_factory=lambda: sys.stderr)


@dataclass
class _Operator:
    """A mock postal operator's view: what it sent and what it was told."""

    operator_id: str
    token: str
    sent_at: dict[str, float] = field(default_factory=dict)  # item id -> when first sent
    sent: int = 0  # items sent (an id repeated by a seeded fault counts each time)
    accepted: set[str] = field(default_factory=set)
    rejected: Counter[str] = field(default_factory=Counter)  # error code -> items
    notices: dict[str, list[core_notices.ItemNotice]] = field(default_factory=dict)
    notice_ids: set[str] = field(default_factory=set)
    final_at: dict[str, float] = field(default_factory=dict)  # item id -> final notice seen
    answered: set[str] = field(default_factory=set)  # referral references answered
    bad_signatures: int = 0
    duplicates: int = 0


@dataclass
class DemoResult:
    """What happened; :attr:`ok` when every accepted item got its final notice."""

    items: int
    accepted: int
    rejected: Counter[str]
    forwarded: int
    decided: Counter[str]
    notices: int
    referrals_answered: int
    final: int
    seconds: float
    latencies_s: list[float]
    database: Path
    evidence: Path
    bad_signatures: int
    duplicate_notices: int

    @property
    def ok(self) -> bool:
        return self.final == self.accepted and self.bad_signatures == 0

    def table(self) -> str:
        """The summary as a text table."""
        latencies = sorted(self.latencies_s)
        p50 = statistics.median(latencies) * 1000 if latencies else 0.0
        p99 = (
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            if latencies
            else 0.0
        )
        rows = [
            ("items sent by the operators", f"{self.items}"),
            ("accepted", f"{self.accepted}"),
            ("rejected", f"{sum(self.rejected.values())}"),
            *((f"  {code}", f"{count}") for code, count in self.rejected.most_common(5)),
            ("forwarded to Customs (signed)", f"{self.forwarded}"),
            ("decisions", f"{sum(self.decided.values())}"),
            *((f"  {code}", f"{count}") for code, count in sorted(self.decided.items())),
            ("notices delivered (signatures verified)", f"{self.notices}"),
            ("referrals answered", f"{self.referrals_answered}"),
            ("items with their final notice", f"{self.final} of {self.accepted}"),
            ("duration (first push to last final notice)", f"{self.seconds:,.1f} s"),
            ("throughput (accepted items / s)", f"{self.accepted / self.seconds:,.0f}"),
            ("intake -> final notice p50 / p99", f"{p50:,.0f} ms / {p99:,.0f} ms"),
            ("database", str(self.database)),
            (
                "evidence (signed batches, receipts)",
                f"table 'declarations' in {self.database.name}",
            ),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        verdict = "OK: every accepted item got its final notice" if self.ok else "INCOMPLETE"
        return "\n".join([*lines, verdict])


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pick(reference: str, seed: int) -> CustomsDecision | None:
    """A deterministic share of items gets a decision the rules would not give."""
    roll = hashlib.sha256(f"{seed}:{reference}".encode()).digest()[0] / 256
    if roll < 0.01:
        return CustomsDecision.REJECTED
    if roll < 0.02:
        return CustomsDecision.DO_NOT_LOAD
    if roll < 0.05:
        return CustomsDecision.HOLD
    if roll < 0.07:
        return CustomsDecision.REQUEST_SCREENING
    if roll < 0.09:
        return CustomsDecision.REQUEST_INFO
    return None


class _Demo:
    """The running world of one demo."""

    def __init__(self, options: DemoOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.passphrase = secrets.token_urlsafe(16)
        self.admin_token = secrets.token_urlsafe(24)
        self.pusher = _Operator(PUSHER, secrets.token_urlsafe(24))
        self.pulled = _Operator(PULLED, secrets.token_urlsafe(24))
        self.pull_batches: list[bytes] = []
        self.runners: list[web.AppRunner] = []
        self.connector: Connector | None = None
        self.customs: MockCustoms | None = None
        self.held: set[str] = set()
        self.first_decided: set[str] = set()
        self.started = time.monotonic()

    # --- set up ---------------------------------------------------------------------------

    async def start(self) -> None:
        workdir = self.workdir
        self.pki = LoopbackPki.create(workdir / "pki")
        client = self.pki.issue_client("connector")
        self.ring = KeyRing.create(
            workdir / "keys", self.passphrase.encode(), "ec", "ead-connector demo", 30
        )
        customs_ring = KeyRing.create(
            workdir / "customs-keys", self.passphrase.encode(), "ec", "Mock Customs", 30
        )
        self.customs = MockCustoms(
            customs_ring.active,
            self.ring.published,
            ssl_context=self.pki.server_context(require_client_cert=True),
            destination=DESTINATION,
        )
        await self.customs.start()
        (workdir / "customs.pem").write_bytes(
            self.customs.certificate.public_bytes(serialization.Encoding.PEM)
        )
        (workdir / "connector.pem").write_bytes(
            self.ring.active.certificate.public_bytes(serialization.Encoding.PEM)
        )
        self.source_url = await self._serve(self._source_app())
        self.webhook_url = await self._serve(self._webhook_app())
        self.port = _free_port()
        self.database = workdir / "ead-connector.db"
        settings = self._settings(client.cert_file, client.key_file)
        await engine.upgrade(settings.database.url)
        self.connector = await open_connector(settings)
        app = await build_app(self.connector)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self._connector_tls())
        await site.start()
        self.runners.append(runner)
        self.url = f"https://127.0.0.1:{self.port}"
        self.client_tls = self.pki.client_context()
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.client_tls),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    def _connector_tls(self) -> Any:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.pki.server.cert_file, self.pki.server.key_file)
        return context

    def _settings(self, client_cert: Path, client_key: Path) -> Settings:
        assert self.customs is not None
        return validate_settings(
            {
                "connector_id": "EADC-DEMO",
                "admin_token": self.admin_token,
                "key_passphrase": self.passphrase,
                "database": {"url": f"sqlite+aiosqlite:///{self.database}"},
                "http": {"port": self.port, "rate_limit_per_second": 0},
                "log": {"level": "warning"},
                "signing": {"keys_dir": str(self.workdir / "keys")},
                "forwarding": {"idle_seconds": 0.2, "batch_size": 250},
                "operators": [
                    {"id": PUSHER, "name": "Deutsche Post (pushes)", "token": self.pusher.token},
                    {
                        "id": PULLED,
                        "name": "Poczta Polska (pulled)",
                        "token": self.pulled.token,
                        "pull": {"url": self.source_url + "/batches", "timeout_seconds": 10},
                        "schedule": {"interval_seconds": 1},
                        "webhook_url": self.webhook_url + "/notices",
                    },
                ],
                "destinations": [
                    {
                        "id": DESTINATION,
                        "url": self.customs.declarations_url,
                        "countries": sorted(DESTINATION_WEIGHT),
                        "certificates": [str(self.workdir / "customs.pem")],
                        "ca_file": str(self.pki.ca_file),
                        "client_cert": str(client_cert),
                        "client_key": str(client_key),
                    }
                ],
            }
        )

    async def _serve(self, app: web.Application) -> str:
        runner, port = await start_site(app, "127.0.0.1", 0, None)
        self.runners.append(runner)
        return f"http://127.0.0.1:{port}"

    # --- the pulled operator's source and webhook ------------------------------------------

    def _source_app(self) -> web.Application:
        async def batches(request: web.Request) -> web.Response:
            after = int(request.query.get("after") or 0)
            if after >= len(self.pull_batches):
                return web.Response(status=204)
            data = self.pull_batches[after]
            self._remember_sent(self.pulled, data)
            return web.Response(
                body=data, content_type="application/xml", headers={"X-Next-Cursor": str(after + 1)}
            )

        app = web.Application()
        app.router.add_get("/batches", batches)
        return app

    def _webhook_app(self) -> web.Application:
        async def notices(request: web.Request) -> web.Response:
            self._receive_notice(self.pulled, await request.read())
            return web.Response(status=204)

        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/notices", notices)
        return app

    # --- what operators do ----------------------------------------------------------------

    def _remember_sent(self, operator: _Operator, data: bytes) -> None:
        now = time.monotonic()
        root = etree.fromstring(data)  # our own generated batch
        for item_id in root.iterfind(".//{*}Item/{*}ItemId"):
            operator.sent_at.setdefault(item_id.text or "", now)
            operator.sent += 1

    def _receive_notice(self, operator: _Operator, signed_xml: bytes) -> None:
        try:
            verified = signing.verify(signed_xml, signing.VerifyPolicy(self.ring.published))
        except Exception:
            operator.bad_signatures += 1
            return
        notice = core_notices.parse_item_notice(verified.signed_xml)
        if notice.notice_id in operator.notice_ids:
            operator.duplicates += 1
            return
        operator.notice_ids.add(notice.notice_id)
        operator.notices.setdefault(notice.item_id, []).append(notice)
        if notice.decision in FINAL:
            operator.final_at.setdefault(notice.item_id, time.monotonic())

    async def push_all(self, batches: list[bytes]) -> None:
        for data in batches:
            self._remember_sent(self.pusher, data)
            async with self.http.post(
                self.url + "/v1/batches",
                data=data,
                headers={
                    "Authorization": f"Bearer {self.pusher.token}",
                    "Content-Type": "application/xml",
                    "Accept": "application/json",
                },
            ) as response:
                ack = await response.json()
            self._record_ack(self.pusher, ack)

    def _record_ack(self, operator: _Operator, ack: dict[str, Any]) -> None:
        for item in ack["items"]:
            if item["status"] == "accepted":
                operator.accepted.add(item["item_id"])
            else:
                operator.rejected[item["errors"][0]["code"] if item["errors"] else "?"] += 1

    async def read_feed(self, cursor: str) -> str:
        async with self.http.get(
            self.url + f"/v1/notices?after={cursor}&limit=1000",
            headers={"Authorization": f"Bearer {self.pusher.token}", "Accept": "application/json"},
        ) as response:
            page = await response.json()
        for entry in page["notices"]:
            self._receive_notice(self.pusher, entry["signed_xml"].encode())
        return str(page["next_cursor"])

    async def answer_referrals(self) -> None:
        for operator in (self.pusher, self.pulled):
            for item_id, seen in list(operator.notices.items()):
                latest = seen[-1]
                reference = latest.referral_reference
                if (
                    latest.decision
                    not in (
                        CustomsDecision.REQUEST_INFO,
                        CustomsDecision.REQUEST_SCREENING,
                    )
                    or reference is None
                    or reference in operator.answered
                ):
                    continue
                body = _answer_xml(operator.operator_id, item_id, reference, latest.decision)
                async with self.http.post(
                    self.url + "/v1/answers",
                    data=body,
                    headers={
                        "Authorization": f"Bearer {operator.token}",
                        "Content-Type": "application/xml",
                    },
                ) as response:
                    if response.status == 200:
                        operator.answered.add(reference)

    async def customs_round(self) -> None:
        """Customs decides what it has: first by its rules (and a seeded share of the other
        codes), finally RELEASE once a referral was answered; held items are inspected and
        released in the next round."""
        assert self.customs is not None
        first: dict[str, CustomsDecision] = {}
        rules: list[str] = []
        for reference in self.customs.undecided:
            if reference in self.first_decided:  # answered a referral: the final decision
                first[reference] = CustomsDecision.RELEASE
                continue
            self.first_decided.add(reference)
            code = _pick(reference, self.options.seed)
            if code is None:
                rules.append(reference)
            else:
                first[reference] = code
        released = dict.fromkeys(self.held, CustomsDecision.RELEASE)
        self.held = {ref for ref, code in first.items() if code is CustomsDecision.HOLD}
        for decide in (first, released):
            if decide:
                await self.customs.send_decisions(self.url, decide, ssl_context=self.client_tls)
        if rules:
            by_rules = {ref: self.customs.decision_for(ref).code for ref in rules}
            self.held.update(ref for ref, code in by_rules.items() if code is CustomsDecision.HOLD)
            await self.customs.send_decisions(self.url, by_rules, ssl_context=self.client_tls)

    # --- the run --------------------------------------------------------------------------

    def finished(self, pushed: bool) -> bool:
        """Every item was sent and every accepted one has its final notice."""
        sent = self.pusher.sent + self.pulled.sent
        accepted = self.accepted()
        return pushed and sent >= self.options.items and 0 < accepted <= self.final()

    def accepted(self) -> int:
        return len(self.pusher.accepted) + len(self.pulled.accepted)

    def final(self) -> int:
        return len(self.pusher.final_at.keys() & self.pusher.accepted) + len(
            self.pulled.final_at.keys() & self.pulled.accepted
        )

    def progress_line(self) -> str:
        assert self.customs is not None
        sent = self.pusher.sent + self.pulled.sent
        notices = len(self.pusher.notice_ids) + len(self.pulled.notice_ids)
        accepted = self.accepted()
        bar = _bar(self.final(), max(accepted, 1))
        return (
            f"{bar} sent {sent}/{self.options.items}  accepted {accepted}  "
            f"forwarded {len(self.customs.declarations)}  notices {notices}  "
            f"final {self.final()}/{accepted}"
        )

    def result(self) -> DemoResult:
        assert self.customs is not None
        decided: Counter[str] = Counter()
        for operator in (self.pusher, self.pulled):
            for seen in operator.notices.values():
                decided.update(notice.decision.value for notice in seen)
        latencies = [
            operator.final_at[item] - operator.sent_at[item]
            for operator in (self.pusher, self.pulled)
            for item in operator.final_at.keys() & operator.sent_at.keys() & operator.accepted
        ]
        return DemoResult(
            items=self.options.items,
            accepted=self.accepted(),
            rejected=self._rejected(),
            forwarded=len({reference for reference, _ in self.customs.declarations}),
            decided=decided,
            notices=len(self.pusher.notice_ids) + len(self.pulled.notice_ids),
            referrals_answered=len(self.pusher.answered) + len(self.pulled.answered),
            final=self.final(),
            seconds=time.monotonic() - self.started,
            latencies_s=latencies,
            database=self.database,
            evidence=self.database,
            bad_signatures=self.pusher.bad_signatures + self.pulled.bad_signatures,
            duplicate_notices=self.pusher.duplicates + self.pulled.duplicates,
        )

    def _rejected(self) -> Counter[str]:
        """Rejections by code: the pusher reads them in its acknowledgements; the pulled
        operator's batches are acknowledged to the pull, so only their number is known here."""
        rejected = Counter(self.pusher.rejected)
        pulled = self.pulled.sent - len(self.pulled.accepted)
        if pulled:
            rejected[f"(pulled batches, see items show) {PULLED}"] = pulled
        return rejected

    async def close(self) -> None:
        with contextlib.suppress(AttributeError):
            await self.http.close()
        for runner in reversed(self.runners):
            await runner.cleanup()
        if self.connector is not None:
            await self.connector.close()
        if self.customs is not None:
            await self.customs.stop()


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _answer_xml(operator_id: str, item_id: str, referral: str, decision: CustomsDecision) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer_id = "ANS-" + hashlib.sha256(referral.encode()).hexdigest()[:16]
    if decision is CustomsDecision.REQUEST_SCREENING:
        body = (
            f"<Screening><Method>XRY</Method><Outcome>CLEAR</Outcome>"
            f"<ScreenedAt>{now}</ScreenedAt></Screening>"
        )
    else:
        body = (
            "<Information><FreeText>Contents: two knitted cotton sweaters for a private buyer; "
            "invoice attached.</FreeText><Documents><Document><Type>INVOICE</Type>"
            f"<Reference>INV-{item_id}</Reference></Document></Documents></Information>"
        )
    return (
        f'<ReferralAnswer xmlns="{_REFERRAL_NS}"><AnswerId>{answer_id}</AnswerId>'
        f"<OperatorId>{operator_id}</OperatorId><ItemId>{item_id}</ItemId>"
        f"<ReferralReference>{referral}</ReferralReference><AnsweredAt>{now}</AnsweredAt>"
        f"{body}</ReferralAnswer>"
    ).encode()


def _batches(items: int, seed: int, operator_id: str) -> list[bytes]:
    """The operator's items as batches of at most BATCH_ITEMS, with some faults and vague
    descriptions (accepted with a warning; Customs asks for information on them)."""
    batches = []
    for index, start in enumerate(range(0, items, BATCH_ITEMS)):
        count = min(BATCH_ITEMS, items - start)
        batch = generate_batch(
            count, invalid_ratio=0.04, seed=seed * 1000 + index, operator_id=operator_id
        )
        avoid = [fault.index for fault in batch.faults]
        seeded = seed_check_problems(
            batch.xml, ratio=0.02, seed=seed + index, avoid=avoid, codes=("description_vague",)
        )
        batches.append(seeded.xml)
    return batches


async def run_demo(options: DemoOptions) -> DemoResult:
    """Run the whole flow; the result says whether every accepted item got its final notice."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(30),  # warnings and errors only
    )
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="ead-demo-"))
    demo = _Demo(options, workdir)
    out = options.progress
    try:
        await demo.start()
        push_items = options.items // 2
        demo.pull_batches = _batches(options.items - push_items, options.seed + 1, PULLED)
        pushed_batches = _batches(push_items, options.seed, PUSHER)
        demo.started = time.monotonic()  # the flow starts now (set-up is not counted)
        pusher = asyncio.create_task(demo.push_all(pushed_batches))
        cursor = "0"
        deadline = time.monotonic() + options.timeout_s
        last_print = 0.0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            await demo.customs_round()
            cursor = await demo.read_feed(cursor)
            await demo.answer_referrals()
            await _pulled_acks(demo)
            if out.isatty():
                print("\r" + demo.progress_line(), end="", file=out, flush=True)
            elif time.monotonic() - last_print > 5.0:
                last_print = time.monotonic()
                print(demo.progress_line(), file=out, flush=True)
            if demo.finished(pusher.done()):
                break
        await pusher
        print(("\r" if out.isatty() else "") + demo.progress_line(), file=out, flush=True)
        result = demo.result()
        if options.keep:
            await _keep(demo, workdir, out)
        return result
    finally:
        await demo.close()


async def _pulled_acks(demo: _Demo) -> None:
    """The pulled operator learns what was accepted from the connector's item view."""
    assert demo.connector is not None
    store = demo.connector.store
    for item_id in list(demo.pulled.sent_at.keys() - demo.pulled.accepted):
        item = await store.get_item(PULLED, item_id)
        if item is not None:
            demo.pulled.accepted.add(item_id)


async def _keep(demo: _Demo, workdir: Path, out: TextIO) -> None:
    """Leave everything running for a person to explore, until Ctrl-C."""
    assert demo.customs is not None
    info = {
        "connector_url": demo.url,
        "operators": {PUSHER: demo.pusher.token, PULLED: demo.pulled.token},
        "admin_token": demo.admin_token,
        "customs_url": demo.customs.url,
        "database_url": f"sqlite+aiosqlite:///{demo.database}",
        "connector_cert": str(workdir / "connector.pem"),
        "customs_cert": str(workdir / "customs.pem"),
        "ca_cert": str(demo.pki.ca_file),
    }
    path = Path.cwd() / "demo.json"
    path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    print(f"demo running; details in {path}; Ctrl-C stops it", file=out, flush=True)
    await stop_on_signals().wait()
