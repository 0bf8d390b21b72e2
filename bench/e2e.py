"""The connector end to end, as operators and Customs meet it, on SQLite and on PostgreSQL.

Every run starts fresh: a new database, ``ead-connector run`` process(es) with the shipped
defaults (:func:`bench.harness.write_config`), and the releasing mock Customs in its own
process (:mod:`bench.customs_peer`). The operator pushes the batches over HTTP
(``POST /v1/batches``, a few clients at once) and reads the pull feed (``GET /v1/notices``);
the service validates, stores, forwards over HTTPS with mutual TLS, Customs verifies and posts
its signed RELEASEs back (one response per at most 1,000 items), the service verifies them and
stores a signed notice per item. A run ends when every accepted item's final notice was read.

- :func:`throughput`: accepted items / (start of the first push .. the last final notice
  read), with 1 replica on SQLite or 1..N replicas on one PostgreSQL database;
- :func:`latency`: a steady offered load (``batch`` items every ``interval`` seconds), and the
  time from the start of each item's push to its final notice read from the feed;
- :func:`backlog`: the items accepted with forwarding off (``--role api``, as while Customs is
  unreachable), then the service restarted with forwarding on and the backlog drained; peak
  RSS of the service processes (``VmHWM``) over both phases.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import (
    Batch,
    Credentials,
    CustomsPeer,
    Operator,
    ServiceProcess,
    database_cpu_s,
    free_port,
    write_config,
)
from connector.adapters.db import engine

#: Concurrent pushing clients (spread over the replicas in turn).
CLIENTS = 4


@dataclass
class Run:
    """One end-to-end run."""

    name: str
    items: int
    seconds: float
    replicas: int = 1
    final: int = 0
    """Accepted items whose final notice the operator read."""
    peak_rss_mb: float | None = None
    """The sum over the replicas."""
    process_rss_mb: tuple[float, ...] = ()
    """The peak RSS of each replica."""
    service_cpu_s: float | None = None
    customs_cpu_s: float | None = None
    bench_cpu_s: float | None = None
    """CPU time of this process (the operator) during the run."""
    database_cpu_s: float | None = None
    """CPU time of the PostgreSQL backends of the run's database (None on SQLite)."""
    latencies_s: list[float] = field(default_factory=list)
    customs: dict[str, object] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


@asynccontextmanager
async def fresh_postgres(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url`` at head; dropped afterwards."""
    name = f"ead_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        await engine.upgrade(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory}/connector.db"


@asynccontextmanager
async def _world(
    credentials: Credentials, directory: Path, database_url: str, replicas: int
) -> AsyncIterator[tuple[list[ServiceProcess], CustomsPeer, Operator]]:
    """The mock Customs, ``replicas`` services and the operator, all started and healthy."""
    ports = [free_port() for _ in range(replicas)]
    customs = CustomsPeer(credentials, [f"http://127.0.0.1:{port}" for port in ports], free_port())
    config = write_config(directory, credentials, database_url, customs.url)
    services = [
        ServiceProcess(config, port, directory / f"service-{n}.log") for n, port in enumerate(ports)
    ]
    try:
        for service in services:
            service.start()
        await customs.start()
        async with Operator([service.base for service in services]) as operator:
            for service in services:
                await service.wait_healthy(operator.http)
            yield services, customs, operator
    finally:
        for service in services:
            service.stop()
        await customs.stop()


async def _diagnosis(
    database_url: str, services: Sequence[ServiceProcess], customs: CustomsPeer
) -> str:
    """Where a stuck run's items are: their states, the outbox, Customs' counts, the logs."""
    lines = []
    probe = create_async_engine(database_url)
    try:
        async with probe.connect() as connection:
            for query in (
                "SELECT state, count(*) FROM items GROUP BY state",
                "SELECT kind, status, count(*) FROM outbox GROUP BY kind, status",
            ):
                rows = (await connection.execute(sa.text(query))).all()
                lines.append(f"{query}: {[tuple(row) for row in rows]}")
    except sa.exc.SQLAlchemyError as error:
        lines.append(f"the database could not be read: {error}")
    finally:
        await probe.dispose()
    lines.append(f"Customs: {await customs.stop()}")
    for service in services:
        lines.append(f"{service.log}:\n{service.tail()}")
    return "\n".join(lines)


async def _drive(
    name: str,
    credentials: Credentials,
    directory: Path,
    database_url: str,
    replicas: int,
    push: PushPlan,
    poll_s: float = 0.05,
) -> Run:
    async with _world(credentials, directory, database_url, replicas) as world:
        services, customs, operator = world
        operator.poll_s = poll_s
        done = asyncio.Event()
        cpu_before = time.process_time()
        feed = asyncio.create_task(operator.read_feed(done))
        pushing = asyncio.create_task(push(operator))
        try:
            await operator.wait_final(pushing)
        except AssertionError as error:
            raise AssertionError(
                f"{name}: {error}\n{await _diagnosis(database_url, services, customs)}"
            ) from error
        finally:
            done.set()
            await feed
        bench_cpu = time.process_time() - cpu_before
        for service in services:
            service.sample()
        database = make_url(database_url)
        database_cpu = (
            database_cpu_s(database.database or "")
            if database.drivername.startswith("postgresql")
            else None
        )
        stats = await customs.stop()
        assert operator.first_push is not None
        assert operator.last_final is not None
        seconds = operator.last_final - operator.first_push
        latencies = operator.latencies_s()
        items = len(operator.accepted)
        final = len(operator.accepted & operator.final_at.keys())
    rss = [service.peak_rss_mb for service in services if service.peak_rss_mb is not None]
    cpu = [service.cpu_s for service in services if service.cpu_s is not None]
    return Run(
        name,
        items,
        seconds,
        replicas=replicas,
        final=final,
        peak_rss_mb=sum(rss) if rss else None,
        process_rss_mb=tuple(rss),
        service_cpu_s=sum(cpu) if cpu else None,
        customs_cpu_s=customs.cpu_s,
        bench_cpu_s=bench_cpu,
        database_cpu_s=database_cpu,
        latencies_s=latencies,
        customs=stats,
    )


class PushPlan:
    """How the operator pushes: all at once from :data:`CLIENTS` clients, or paced."""

    def __init__(self, batches: Sequence[Batch], interval_s: float | None = None) -> None:
        self.batches = batches
        self.interval_s = interval_s

    async def __call__(self, operator: Operator) -> None:
        if self.interval_s is None:
            await operator.push_all(self.batches, CLIENTS)
            return
        started = time.monotonic()
        pushes = []
        for number, batch in enumerate(self.batches):
            delay = started + number * self.interval_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pushes.append(asyncio.create_task(operator.push(batch.xml, batch.item_ids, number)))
        await asyncio.gather(*pushes)


async def throughput(
    credentials: Credentials,
    batches: Sequence[Batch],
    *,
    name: str,
    server_url: str | None = None,
    replicas: int = 1,
) -> Run:
    """Push ``batches`` as fast as the clients go; SQLite unless ``server_url`` (PostgreSQL)."""
    with tempfile.TemporaryDirectory(prefix="ead-bench-e2e-") as temp:
        directory = Path(temp)
        if server_url is None:
            url = _sqlite_url(directory)
            await engine.upgrade(url)
            return await _drive(name, credentials, directory, url, 1, PushPlan(batches))
        async with fresh_postgres(server_url) as url:
            return await _drive(name, credentials, directory, url, replicas, PushPlan(batches))


async def latency(
    credentials: Credentials, batches: Sequence[Batch], interval_s: float, *, name: str
) -> Run:
    """One batch every ``interval_s`` seconds to one service on SQLite."""
    with tempfile.TemporaryDirectory(prefix="ead-bench-latency-") as temp:
        directory = Path(temp)
        url = _sqlite_url(directory)
        await engine.upgrade(url)
        return await _drive(
            name, credentials, directory, url, 1, PushPlan(batches, interval_s), poll_s=0.02
        )


@dataclass
class Backlog:
    """The backlog run: intake with forwarding off, then the drain."""

    items: int
    intake_s: float
    drain_s: float
    peak_rss_mb: float | None
    intake_rss_mb: float | None
    drain_rss_mb: float | None

    @property
    def drain_items_per_s(self) -> float:
        return self.items / self.drain_s if self.drain_s > 0 else 0.0


async def backlog(credentials: Credentials, batches: Sequence[Batch]) -> Backlog:
    """Accept ``batches`` with forwarding off, then drain them to Customs; peak RSS of both."""
    with tempfile.TemporaryDirectory(prefix="ead-bench-backlog-") as temp:
        directory = Path(temp)
        url = _sqlite_url(directory)
        await engine.upgrade(url)
        customs_port = free_port()
        config = write_config(
            directory, credentials, url, f"https://127.0.0.1:{customs_port}/v1/declarations"
        )
        api = ServiceProcess(config, free_port(), directory / "api.log", role="api")
        api.start()
        try:
            async with Operator([api.base]) as operator:
                await api.wait_healthy(operator.http)
                started = time.monotonic()
                await operator.push_all(batches, CLIENTS)
                intake_s = time.monotonic() - started
        finally:
            api.stop()
        accepted = operator.accepted
        service = ServiceProcess(config, free_port(), directory / "service.log")
        customs = CustomsPeer(credentials, [service.base], customs_port)
        service.start()
        try:
            await customs.start()
            async with Operator([service.base]) as drainer:
                drainer.accepted = set(accepted)
                await service.wait_healthy(drainer.http)
                done = asyncio.Event()
                started = time.monotonic()
                feed = asyncio.create_task(drainer.read_feed(done))
                try:
                    await drainer.wait_final(asyncio.create_task(asyncio.sleep(0)))
                finally:
                    done.set()
                    await feed
                drain_s = time.monotonic() - started
            service.sample()
        finally:
            service.stop()
            await customs.stop()
    peaks = [rss for rss in (api.peak_rss_mb, service.peak_rss_mb) if rss is not None]
    return Backlog(
        len(accepted),
        intake_s,
        drain_s,
        max(peaks) if peaks else None,
        api.peak_rss_mb,
        service.peak_rss_mb,
    )


__all__ = [
    "CLIENTS",
    "Backlog",
    "PushPlan",
    "Run",
    "backlog",
    "fresh_postgres",
    "latency",
    "throughput",
]
