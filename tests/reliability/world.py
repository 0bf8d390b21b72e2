"""The world the reliability tests run ``ead-connector run`` in, all on loopback.

- the **service** in a subprocess (``python -m connector run``), on SQLite or PostgreSQL,
  forwarding to a mock Customs over HTTPS with mutual TLS and delivering notices to a mock
  operator's webhook (plain HTTP on loopback);
- **Customs** (:class:`TrapCustoms`, a :class:`~connector.peers.customs.MockCustoms` that can
  run a trap right after it stored a batch, before its receipt leaves) decides by callback:
  :meth:`World.decide_round` POSTs signed decisions to the service's responses route;
- the **operator** (:class:`TrapOperator`, a :class:`~connector.peers.operator.MockOperator`
  with the same kind of trap after it recorded a notice) verifies every notice.

Each item has a deterministic decision plan (:func:`plan_for`): most are released, some held
first and released in a later round, some not to be loaded, some rejected. Customs moves an
item to the next step of its plan only once the service answered 200 to the previous one, so a
response whose answer was lost is sent again (the service counts it as a repeat).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from sqlalchemy.ext.asyncio import create_async_engine

from connector.adapters.keystore import KeyRing
from connector.core.model import CustomsDecision
from connector.core.references import item_reference
from connector.peers.customs import MockCustoms, _Checked
from connector.peers.operator import MockOperator
from connector.peers.tls import LoopbackPki
from connector.sample_data import DESTINATION_WEIGHT
from tests.e2e.test_service import OPERATOR, TOKEN, accepted_ids, cli, free_port

D = CustomsDecision
PASSPHRASE = "reliability key passphrase"
LEASE_S = 3
"""The forwarding and notify leases: a killed process's work is taken over after it."""
ADMIN_TOKEN = "reliability-admin-token-0123456789"
DESTINATION = "EU-ICS2"
SOAK_KILLS = int(os.environ.get("CONNECTOR_SOAK_KILLS") or 0)
"""Set (e.g. ``CONNECTOR_SOAK_KILLS=50``, ``make soak``) for the long runs."""

Trap = Callable[[], None]
DECIDE_TIMEOUT_S = 10.0


def plan_for(reference: str) -> tuple[CustomsDecision, ...]:
    """The decisions Customs gives an item, in order (the same for the same reference)."""
    roll = hashlib.sha256(reference.encode()).digest()[0]
    if roll < 26:  # about 10 %
        return (D.HOLD, D.RELEASE)
    if roll < 38:
        return (D.DO_NOT_LOAD,)
    if roll < 50:
        return (D.REJECTED,)
    return (D.RELEASE,)


class TrapCustoms(MockCustoms):
    """A mock Customs that runs :attr:`trap` (once) right after it stored a new batch, with
    the batch's item references."""

    trap: Callable[[tuple[str, ...]], None] | None = None

    def _record(self, checked: _Checked, body: bytes, request: web.Request) -> bytes:
        receipt = super()._record(checked, body, request)
        trap, self.trap = self.trap, None
        if trap is not None:
            trap(tuple(declaration.reference for declaration in checked.declarations))
        return receipt


class TrapOperator(MockOperator):
    """A mock operator webhook that runs :attr:`trap` (once) after it recorded a notice."""

    trap: Trap | None = None

    async def _notice(self, request: web.Request) -> web.StreamResponse:
        response = await super()._notice(request)
        if response.status == 200:
            trap, self.trap = self.trap, None
            if trap is not None:
                trap()
        return response


@dataclass
class Service:
    """One ``ead-connector run`` process at a time, restarted on demand."""

    config: Path
    log: Path
    base: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", "--config", str(self.config)],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9, no goodbye."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=30)

    async def wait_healthy(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 60  # a hang guard, not a speed assertion
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"the service exited; see {self.log}")
            try:
                async with http.get(f"{self.base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the service did not become healthy")


@dataclass
class World:
    """Customs, the operator and the service's configuration in ``directory``."""

    directory: Path
    customs: TrapCustoms
    operator: TrapOperator
    pki: LoopbackPki
    ring: KeyRing
    steps: dict[str, int] = field(default_factory=dict)
    """ItemReference -> decisions of its plan the service acknowledged."""
    decide_failures: int = 0
    decide_timeouts: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    """Decisions the service refused (``problems`` of its answers)."""
    held_back: dict[str, float] = field(default_factory=dict)
    """ItemReference -> monotonic time before which Customs does not decide it."""

    def hold_back(self, references: Iterable[str], seconds: float) -> None:
        """Do not decide these items for a while (so a resend has time to come)."""
        until = time.monotonic() + seconds
        self.held_back.update(dict.fromkeys(references, until))

    @classmethod
    async def create(cls, directory: Path, customs_class: type[TrapCustoms] = TrapCustoms) -> World:
        pki = LoopbackPki.create(directory / "pki")
        ring = KeyRing.create(directory / "keys", PASSPHRASE.encode(), "ec", "EADC-REL", 30)
        customs_ring = KeyRing.create(directory / "customs-keys", b"x" * 8, "ec", "Customs", 30)
        customs = customs_class(
            customs_ring.active,
            ring.published,
            ssl_context=pki.server_context(require_client_cert=True),
            destination=DESTINATION,
        )
        operator = TrapOperator(ring.published)
        await customs.start()
        await operator.start()
        return cls(directory, customs, operator, pki, ring)

    async def close(self) -> None:
        await self.operator.stop()
        await self.customs.stop()

    def write_config(
        self, database_url: str, port: int, *, forwarding: str = "", name: str = "connector"
    ) -> Path:
        """The service's TOML (``name.toml``, with a client certificate ``CN=name``): one
        operator with a webhook, one Customs destination."""
        directory = self.directory
        client = self.pki.issue_client(name)
        customs_pem = directory / "customs.pem"
        customs_pem.write_bytes(self.customs.certificate.public_bytes(serialization.Encoding.PEM))
        (directory / "op.token").write_text(TOKEN)
        countries = ", ".join(f'"{country}"' for country in sorted(DESTINATION_WEIGHT))
        config = directory / f"{name}.toml"
        config.write_text(
            f'connector_id = "EADC-REL"\nadmin_token = "{ADMIN_TOKEN}"\n'
            f'key_passphrase = "{PASSPHRASE}"\n'
            f'[database]\nurl = "{database_url}"\n'
            f"[http]\nport = {port}\nrate_limit_per_second = 0\n"
            f'[log]\nlevel = "warning"\n'
            f'[signing]\nkeys_dir = "keys"\n'
            f"[forwarding]\nidle_seconds = 0.1\nbatch_size = 100\nlease_seconds = {LEASE_S}\n"
            f"backoff_seconds = 0.2\nmax_backoff_seconds = 1\nmax_attempts = 10000\n"
            f"{forwarding}"
            f"[notify]\nidle_seconds = 0.1\nlease_seconds = {LEASE_S}\nbackoff_seconds = 0.2\n"
            f"max_backoff_seconds = 1\nmax_attempts = 10000\n"
            f'[[operators]]\nid = "{OPERATOR}"\ntoken_file = "op.token"\n'
            f'webhook_url = "{self.operator.url}"\n'
            f'[[destinations]]\nid = "{DESTINATION}"\nurl = "{self.customs.declarations_url}"\n'
            f"countries = [{countries}]\nfast_retries = 0\n"
            f"connect_timeout_seconds = 2\ntimeout_seconds = 5\n"
            f'certificates = ["customs.pem"]\nca_file = "{self.pki.ca_file}"\n'
            f'client_cert = "{client.cert_file}"\nclient_key = "{client.key_file}"\n'
        )
        result = cli("db", "upgrade", "--config", str(config))
        assert result.returncode == 0, result.stderr
        return config

    def service(self, database_url: str, *, name: str = "connector", **config: Any) -> Service:
        """A service on a free port; another ``name`` is another replica (its own
        configuration, client certificate and log) sharing this world's keys."""
        port = free_port()
        path = self.write_config(database_url, port, name=name, **config)
        log = self.directory / ("service.log" if name == "connector" else f"{name}.log")
        return Service(path, log, f"http://127.0.0.1:{port}")

    # --- Customs decides ----------------------------------------------------------------------

    def due(self) -> dict[str, CustomsDecision]:
        """The next decision of every received item whose plan is not done."""
        due = {}
        now = time.monotonic()
        for reference in self.customs.items:
            if self.held_back.get(reference, 0.0) > now:
                continue
            plan = plan_for(reference)
            step = self.steps.get(reference, 0)
            if step < len(plan):
                due[reference] = plan[step]
        return due

    async def decide_round(self, base: str, on_send: Trap | None = None) -> int:
        """Send the due decisions (one response per decision code); how many were applied.

        ``on_send`` runs just after the request left (e.g. to kill the service mid-apply).
        """
        applied = 0
        by_code: dict[CustomsDecision, list[str]] = {}
        for reference, code in self.due().items():
            by_code.setdefault(code, []).append(reference)
        for code, references in by_code.items():
            for start in range(0, len(references), 500):
                chunk = references[start : start + 500]
                task = asyncio.create_task(
                    asyncio.wait_for(
                        self.customs.send_decisions(base, dict.fromkeys(chunk, code)),
                        DECIDE_TIMEOUT_S,
                    )
                )
                if on_send is not None:
                    await asyncio.sleep(0)
                    on_send()
                    on_send = None
                try:
                    status, answer = await task
                except TimeoutError:
                    self.decide_timeouts += 1
                    self.decide_failures += 1
                    continue
                except (aiohttp.ClientError, ValueError):
                    self.decide_failures += 1  # no answer: sent again next round
                    continue
                if status != 200:
                    self.decide_failures += 1
                    continue
                self.problems.extend(answer["problems"])
                applied += int(answer["applied"])
                for reference in chunk:
                    self.steps[reference] = self.steps.get(reference, 0) + 1
        return applied

    def forwarded_references(self, item_ids: Iterable[str]) -> dict[str, set[tuple[str, int]]]:
        """Item id -> the (ItemReference, Version) keys Customs stored for it."""
        wanted = set(item_ids)
        keys: dict[str, set[tuple[str, int]]] = {item_id: set() for item_id in wanted}
        for key, item_id in self.customs.declarations.items():
            if item_id in wanted:
                keys[item_id].add(key)
        return keys


def reference_of(item_id: str) -> str:
    return item_reference(OPERATOR, item_id)


async def item_states(database_url: str) -> dict[str, tuple[str, str | None]]:
    """Item id -> (state, decision) straight from the service's database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT item_id, state, decision FROM items"))
            return {row.item_id: (row.state, row.decision) for row in rows}
    finally:
        await engine.dispose()


async def outbox_pending(http: aiohttp.ClientSession, base: str) -> float:
    """The ``ead_outbox_pending`` gauge from ``GET /metrics``."""
    async with http.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("ead_outbox_pending "):
            return float(line.split()[1])
    raise AssertionError("no ead_outbox_pending in /metrics")


__all__ = [
    "ADMIN_TOKEN",
    "SOAK_KILLS",
    "Service",
    "TrapCustoms",
    "TrapOperator",
    "World",
    "item_states",
    "outbox_pending",
    "plan_for",
    "reference_of",
]


XML_JSON = {"Content-Type": "application/xml", "Accept": "application/json"}


async def push_batch(http: aiohttp.ClientSession, base: str, data: bytes) -> set[str] | None:
    """POST one item batch: the accepted item ids on 200, None when refused or cut off."""
    try:
        async with http.post(f"{base}/v1/batches", data=data, headers=XML_JSON) as response:
            if response.status == 200:
                return accepted_ids(await response.json())
    except (aiohttp.ClientError, TimeoutError):
        pass
    return None


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 120
) -> None:
    """Poll ``condition`` every 0.2 s until it holds; fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s  # a hang guard, not a speed assertion
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
