"""Two replicas on one PostgreSQL database: no item forwarded twice, none skipped.

Two ``ead-connector run`` processes (``replica-a``, ``replica-b``, each with its own port,
configuration and TLS client certificate) share one fresh PostgreSQL database. Two operators'
push loads go one to each replica's port (to the other while a replica is down), Customs decides
by callback through whichever replica is up, and notices go to the operator's webhook.

Customs (:class:`CountingCustoms`, in the test process) keeps every declaration batch it
receives, before any deduplication, with its sender: the replica (from the client certificate)
and the replica's incarnation (how many times it was started). The service's ``declarations``
table says which batches' receipts the service recorded. A batch received but not recorded is
*orphaned*: its receipt never reached the replica that sent it (killed in flight), and its
items are claimed and sent again after the lease.

- **no kills**: every item is received by Customs exactly once across both replicas, and every
  batch is recorded: ``FOR UPDATE SKIP LOCKED`` claims never hand one item to both replicas;
- **kills**: a seeded random generator kills one replica (SIGKILL) several times, either at a
  random moment or right after Customs stored one of its batches (before the receipt leaves),
  and restarts it while the other keeps running. Every acknowledged item is forwarded, decided
  and notified; each item under its one reference and version; at most one of each item's
  sends was recorded by the service; every orphaned batch came from a killed incarnation, at
  most ``IN_FLIGHT`` (the forwarding concurrency) of them per kill; so every send beyond an
  item's first is the resend of a batch in flight at a kill.

Each test prints a one-line summary (kills, items acknowledged, lost, resends and the batches
in flight at a kill they came from, batches forwarded by each replica). ``make test`` kills a
few times; ``CONNECTOR_SOAK_KILLS=50`` (``make soak``) many times and runs the quiet load
longer. Without ``CONNECTOR_TEST_DATABASE_URL`` the module is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.core.notices import ItemNotice
from connector.peers.customs import _Checked
from connector.sample import generate_batch
from tests.e2e.test_service import OPERATOR, PG_URL, TOKEN, fresh_postgres_database
from tests.reliability.world import (
    LEASE_S,
    SOAK_KILLS,
    Service,
    TrapCustoms,
    World,
    item_states,
    plan_for,
    push_batch,
    reference_of,
)

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(
        PG_URL is None,
        reason="replicas share a PostgreSQL database: set CONNECTOR_TEST_DATABASE_URL",
    ),
]

REPLICAS = ("replica-a", "replica-b")
KILLS = SOAK_KILLS or 3
QUIET_LOAD_S = SOAK_KILLS / 2 if SOAK_KILLS else 3.0
"""How long the push load runs in the run without kills."""
IN_FLIGHT = 2
"""``forwarding.concurrency``: the batches one replica may have in flight when it is killed."""
BATCH_ITEMS = 20
PUSH_PAUSE_S = 0.1
TIMEOUT_S = 180
"""A hang guard for the run to finish, not a speed assertion."""

Sender = tuple[str, int]
"""(replica name, incarnation): the incarnation is how many times the replica was started."""
_SENDER = web.RequestKey("sender", tuple[str, int])


@dataclass(frozen=True, slots=True)
class Send:
    """One declaration batch as it reached Customs, resends and duplicates included."""

    batch_id: str
    sender: Sender
    declarations: tuple[tuple[str, int, str], ...]
    """(ItemReference, Version, ItemId) of each declaration."""


class CountingCustoms(TrapCustoms):
    """A mock Customs that keeps every batch it stores (:attr:`sends`) with its sender, and
    can run :attr:`on_send` (once) right after it stored a batch from a given sender."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sends: list[Send] = []
        self.incarnation: Callable[[str], int] = lambda name: 0
        """The current incarnation of a replica (set by the run)."""
        self.on_send: tuple[Sender, Callable[[Send], None]] | None = None

    async def _declarations(self, request: web.Request) -> web.StreamResponse:
        # The sender is named when the request comes in: what a killed replica sent before it
        # died is read after the kill but before its restart (see Cluster.kill).
        name = _client_name(request)
        request[_SENDER] = (name, self.incarnation(name))
        return await super()._declarations(request)

    def _record(self, checked: _Checked, body: bytes, request: web.Request) -> bytes:
        receipt = super()._record(checked, body, request)
        send = Send(
            checked.batch_id,
            request[_SENDER],
            tuple((d.reference, d.version, d.item_id) for d in checked.declarations),
        )
        self.sends.append(send)
        if self.on_send is not None and self.on_send[0] == send.sender:
            action, self.on_send = self.on_send[1], None
            action(send)
        return receipt


def _client_name(request: web.Request) -> str:
    """The CN of the request's TLS client certificate."""
    transport = request.transport
    certificate = transport.get_extra_info("peercert") if transport is not None else None
    assert certificate, "Customs requires a client certificate"
    for rdn in certificate["subject"]:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    raise AssertionError(f"no CN in {certificate['subject']}")


@dataclass
class Kill:
    """One SIGKILL: whom (the incarnation killed) and when."""

    sender: Sender
    moment: str
    """``random``, or ``send`` (right after Customs stored one of the replica's batches)."""


@dataclass
class Cluster:
    """The two replicas, the load, Customs deciding, and the kills."""

    world: World
    customs: CountingCustoms
    services: dict[str, Service]
    http: aiohttp.ClientSession
    rng: random.Random
    up: set[str] = field(default_factory=set)
    """Replicas that answered /healthz since their last start and are not being killed."""
    acknowledged: set[str] = field(default_factory=set)
    pushes_interrupted: int = 0
    batch_seed: int = 0
    pushing: bool = True
    stopping: bool = False
    kills: list[Kill] = field(default_factory=list)
    untargeted: int = 0
    """Kills meant for right after a send that came at a random moment (nothing was sent)."""

    async def start(self, name: str) -> None:
        service = self.services[name]
        service.start()
        await service.wait_healthy(self.http)
        self.up.add(name)

    def target(self, home: str) -> Service | None:
        """The replica to push to: ``home`` when it is up, else another one."""
        if home in self.up:
            return self.services[home]
        others = sorted(self.up)
        return self.services[others[0]] if others else None

    async def pusher(self, home: str) -> None:
        """One operator's steady load; a push not acknowledged is pushed again."""
        pending: bytes | None = None
        while self.pushing and not self.stopping:
            if pending is None:
                self.batch_seed += 1
                pending = generate_batch(
                    BATCH_ITEMS, seed=self.batch_seed, operator_id=OPERATOR
                ).xml
            service = self.target(home)
            if service is not None:
                accepted = await push_batch(self.http, service.base, pending)
                if accepted is None:
                    self.pushes_interrupted += 1
                else:
                    self.acknowledged |= accepted
                    pending = None
            await asyncio.sleep(PUSH_PAUSE_S)

    async def decider(self, rng: random.Random) -> None:
        """Customs decides what it received, through a replica that is up."""
        while not self.stopping:
            await asyncio.sleep(0.15)
            if self.up:
                name = rng.choice(sorted(self.up))
                await self.world.decide_round(self.services[name].base)

    async def kill(self, name: str) -> None:
        """SIGKILL ``name`` at the chosen moment, wait for its death, start it again."""
        service = self.services[name]
        sender = (name, service.starts)
        moment = self.rng.choice(("random", "send"))
        if moment == "send":

            def sent(send: Send) -> None:
                # Undecided for a while, so the takeover resends them rather than a decision
                # closing their jobs first.
                self.world.hold_back((key[0] for key in send.declarations), LEASE_S + 2)
                self.up.discard(name)
                service.kill()

            self.customs.on_send = (sender, sent)
            deadline = time.monotonic() + 10
            while service.alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self.customs.on_send = None
        if service.alive():  # a random moment, or the replica sent nothing meanwhile
            if moment == "send":
                self.untargeted += 1
            self.up.discard(name)
            service.kill()
        assert service.process is not None
        while service.process.poll() is None:
            await asyncio.sleep(0.01)
        # Customs reads what the dead process had sent before the next incarnation can send.
        await asyncio.sleep(0.2)
        self.kills.append(Kill(sender, moment))
        await self.start(name)

    async def stop(self) -> None:
        self.stopping = True
        self.up.clear()
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.services.values()))


@contextlib.asynccontextmanager
async def _cluster(tmp_path: Path, database_url: str, seed: int) -> AsyncIterator[Cluster]:
    world = await World.create(tmp_path, CountingCustoms)
    try:
        assert isinstance(world.customs, CountingCustoms)
        customs = world.customs
        services = {
            name: world.service(database_url, name=name, forwarding=f"concurrency = {IN_FLIGHT}\n")
            for name in REPLICAS
        }
        customs.incarnation = lambda name: services[name].starts
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=aiohttp.ClientTimeout(total=30)
        ) as http:
            cluster = Cluster(world, customs, services, http, random.Random(seed))
            try:
                await asyncio.gather(*(cluster.start(name) for name in REPLICAS))
                yield cluster
            finally:
                await cluster.stop()
    finally:
        await world.close()


async def _run(cluster: Cluster, database_url: str, *, kills: int, load_s: float) -> None:
    """The load (and the kills), then Customs decides until every item is notified."""
    decider_rng = random.Random(cluster.rng.random())
    pushers = [asyncio.create_task(cluster.pusher(name)) for name in REPLICAS]
    decider = asyncio.create_task(cluster.decider(decider_rng))
    tasks = [*pushers, decider]
    try:
        if kills:
            for _ in range(kills):
                await asyncio.sleep(cluster.rng.uniform(0.2, 1.0))  # the load runs
                await cluster.kill(cluster.rng.choice(REPLICAS))
        else:
            await asyncio.sleep(load_s)
        cluster.pushing = False  # the load stops; Customs goes on deciding
        await asyncio.wait_for(asyncio.gather(*pushers), timeout=60)
        assert cluster.acknowledged, "no push was acknowledged"

        engine = create_async_engine(database_url)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not await _finished(cluster, engine):
                if decider.done():
                    decider.result()  # the decider must not have died
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out: {await _diagnosis(cluster, database_url)}")
                await asyncio.sleep(0.5)
        finally:
            await engine.dispose()
    finally:
        cluster.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _finished(cluster: Cluster, engine: AsyncEngine) -> bool:
    """Every stored item NOTIFIED and Customs done with its plan (a cheap count first: the
    test process is Customs and the operator too, and must not starve them)."""
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            sa.text("SELECT count(*) FROM items WHERE state <> 'NOTIFIED'")
        )
        if waiting or not cluster.acknowledged:
            return False
        rows = await connection.execute(sa.text("SELECT item_id FROM items"))
        steps = cluster.world.steps
        return all(
            steps.get(reference_of(item), 0) == len(plan_for(reference_of(item)))
            for item in rows.scalars()
        )


async def _diagnosis(cluster: Cluster, database_url: str) -> str:
    states = await item_states(database_url)
    unfinished = Counter(state for state, _ in states.values() if state != "NOTIFIED")
    return f"items not NOTIFIED by state: {dict(unfinished)}; problems {cluster.world.problems[:3]}"


async def _recorded_batches(database_url: str) -> set[str]:
    """The declaration batch ids whose receipts the service recorded."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text("SELECT declaration_batch_id FROM declarations")
            )
            return set(rows.scalars())
    finally:
        await engine.dispose()


async def _check(cluster: Cluster, database_url: str) -> dict[str, int]:
    """Assert never skipped, never forwarded twice, resends only of batches in flight at a
    kill, every item decided and notified in order; the figures."""
    world, customs = cluster.world, cluster.customs
    assert customs.refusals == []
    assert world.problems == [], world.problems[:3]
    states = await item_states(database_url)
    recorded = await _recorded_batches(database_url)

    # Never skipped: every acknowledged item (and every item stored) reached Customs.
    sends_of: dict[str, list[Send]] = defaultdict(list)
    keys_of: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for send in customs.sends:
        for reference, version, item_id in send.declarations:
            sends_of[item_id].append(send)
            keys_of[item_id].add((reference, version))
    lost = sorted(cluster.acknowledged - sends_of.keys())
    assert lost == [], f"{len(lost)} acknowledged items never reached Customs: {lost[:5]}"
    assert cluster.acknowledged <= states.keys()
    assert sends_of.keys() == states.keys(), "Customs and the database disagree on the items"

    # Each item under its one reference and version, whoever sent it and however often.
    for item, keys in keys_of.items():
        assert keys == {(reference_of(item), 1)}, (item, keys)

    # Orphans: sends whose receipt the service never recorded (a batch id sent n times and
    # recorded once has n - 1 of them). Each came from a killed incarnation, in flight then.
    received = Counter(send.batch_id for send in customs.sends)
    assert recorded <= received.keys(), "the service recorded a batch Customs never received"
    orphaned: list[Send] = []
    answered_left = dict.fromkeys(recorded, 1)
    for send in reversed(customs.sends):  # the last send of a recorded id is the answered one
        if answered_left.get(send.batch_id):
            answered_left[send.batch_id] -= 1
        else:
            orphaned.append(send)
    killed = {kill.sender for kill in cluster.kills}
    by_sender = Counter(send.sender for send in orphaned)
    assert set(by_sender) <= killed, f"orphaned batches from replicas never killed: {by_sender}"
    assert all(count <= IN_FLIGHT for count in by_sender.values()), by_sender

    # Never forwarded twice: at most one recorded send per item; an item without one was in
    # an orphaned batch and decided before it could be sent again (the decision closed it).
    orphan_ids = {id(send) for send in orphaned}
    for item, sends in sends_of.items():
        answered = sum(id(send) not in orphan_ids for send in sends)
        assert answered <= 1, (item, [send.batch_id for send in sends])

    # Decided as Customs decided and notified in order, one notice per decision.
    notices: dict[str, list[ItemNotice]] = defaultdict(list)
    for notice_id in world.operator.order:
        notice = world.operator.received[notice_id].notice
        notices[notice.item_id].append(notice)
    for item, (state, decision) in states.items():
        plan = plan_for(reference_of(item))
        assert (state, decision) == ("NOTIFIED", plan[-1].value), (item, state, decision)
        seen = notices[item]
        assert [notice.decision for notice in seen] == list(plan), (item, seen)

    raw = sum(len(sends) for sends in sends_of.values())
    return {
        "kills": len(cluster.kills),
        "kills right after a send": sum(kill.moment == "send" for kill in cluster.kills)
        - cluster.untargeted,
        "items acknowledged": len(cluster.acknowledged),
        "items lost": len(lost),
        "resends": raw - len(sends_of),
        "batches in flight at a kill (orphaned)": len(orphaned),
        "declarations in them": sum(len(send.declarations) for send in orphaned),
        "batches forwarded by replica-a": sum(s.sender[0] == REPLICAS[0] for s in customs.sends),
        "batches forwarded by replica-b": sum(s.sender[0] == REPLICAS[1] for s in customs.sends),
        "notices delivered again": world.operator.duplicates,
    }


def _summary(title: str, figures: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    by_replica = "/".join(str(figures[f"batches forwarded by {name}"]) for name in REPLICAS)
    with capsys.disabled():
        print(
            f"\n{title}: {figures['kills']} kills ({figures['kills right after a send']} right "
            f"after a send), {figures['items acknowledged']} items acknowledged, "
            f"lost {figures['items lost']}, {figures['resends']} resends of "
            f"{figures['batches in flight at a kill (orphaned)']} batches in flight at a kill "
            f"({figures['declarations in them']} declarations), batches by replica {by_replica}, "
            f"{figures['notices delivered again']} notices delivered again"
        )


async def test_two_replicas_send_each_item_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No kills: SKIP LOCKED claims never hand an item to both replicas."""
    async with fresh_postgres_database() as url:
        async with _cluster(tmp_path, url, seed=21) as cluster:
            await _run(cluster, url, kills=0, load_s=QUIET_LOAD_S)
        figures = await _check(cluster, url)
    _summary("replicas, no kills", figures, capsys)
    assert figures["resends"] == 0
    assert figures["batches in flight at a kill (orphaned)"] == 0
    assert cluster.customs.duplicates == 0
    assert cluster.customs.resent_batches == 0
    # Both replicas forwarded: their claims really competed for the same outbox.
    assert figures["batches forwarded by replica-a"] > 0
    assert figures["batches forwarded by replica-b"] > 0


async def test_killing_one_replica_skips_nothing_and_resends_only_batches_in_flight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kills of either replica, one at a time: every item forwarded, decided and notified;
    a second send of an item only as the resend of a batch in flight at a kill."""
    async with fresh_postgres_database() as url:
        async with _cluster(tmp_path, url, seed=28) as cluster:
            await _run(cluster, url, kills=KILLS, load_s=0)
        figures = await _check(cluster, url)
    _summary("replicas, kill -9 of one", figures, capsys)
    assert figures["kills"] == KILLS
    assert figures["items lost"] == 0
    assert figures["resends"] <= figures["declarations in them"]
