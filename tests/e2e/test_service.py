"""The service as operators meet it: ``ead-connector run`` in a subprocess on loopback.

Crash safety: a push is acknowledged only after its items are committed, so killing the
process with SIGKILL at any moment never loses an acknowledged item. Replicas: two
processes sharing one PostgreSQL database run each scheduled pull tick exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from lxml import etree
from sqlalchemy.ext.asyncio import create_async_engine

from connector.sample import SampleBatch, generate_batch

TOKEN = "e2e-token-of-the-polish-post-0123456789"
OPERATOR = "PL-POCZTA"
PG_URL = os.environ.get("CONNECTOR_TEST_DATABASE_URL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    directory: Path,
    database_url: str,
    port: int,
    *,
    pull_every: int = 0,
    pull_url: str | None = None,
    extra: str = "",
) -> Path:
    (directory / "op.token").write_text(TOKEN)
    pull = ""
    if pull_url:
        pull = (
            f'pull = {{ url = "{pull_url}", timeout_seconds = 5 }}\n'
            f"schedule = {{ interval_seconds = {pull_every or 1} }}\n"
        )
    elif pull_every:
        drop = directory / "drop"
        drop.mkdir(exist_ok=True)
        pull = (
            f'pull = {{ directory = "{drop}" }}\nschedule = {{ interval_seconds = {pull_every} }}\n'
        )
    config = directory / "connector.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f"[http]\nport = {port}\nrate_limit_per_second = 0  # load tests push as fast as they can\n"
        f"{extra}"
        f'[[operators]]\nid = "{OPERATOR}"\ntoken_file = "op.token"\n{pull}'
    )
    return config


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def service(config: Path, log: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``ead-connector run`` until it answers /healthz; killed on exit whatever happened."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(config), *extra],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def wait_healthy(
    session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a speed assertion
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}")
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the service did not become healthy")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        yield session


async def push(session: aiohttp.ClientSession, base: str, data: bytes) -> dict[str, object]:
    async with session.post(
        f"{base}/v1/batches",
        data=data,
        headers={"Content-Type": "application/xml", "Accept": "application/json"},
    ) as response:
        assert response.status == 200, await response.text()
        result: dict[str, object] = await response.json()
        return result


def accepted_ids(ack: dict[str, object]) -> set[str]:
    items = ack["items"]
    assert isinstance(items, list)
    return {item["item_id"] for item in items if item["status"] == "accepted"}


async def count_items(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(
                (await connection.execute(sa.text("SELECT count(*) FROM items"))).scalar_one()
            )
    finally:
        await engine.dispose()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    assert PG_URL is not None
    name = f"e2e_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(sa.text(statement))
        finally:
            await admin.dispose()

    await run(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        return
    if PG_URL is None:
        pytest.skip("needs CONNECTOR_TEST_DATABASE_URL (PostgreSQL)")
    async with fresh_postgres_database() as url:
        yield url


async def test_same_batch_twice_is_stored_once(
    tmp_path: Path, http: aiohttp.ClientSession, database_url: str
) -> None:
    database = database_url
    port = free_port()
    config = write_config(tmp_path, database, port)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    batch = generate_batch(1000, seed=21, operator_id=OPERATOR).xml
    base = f"http://127.0.0.1:{port}"
    with service(config, tmp_path / "run.log") as process:
        await wait_healthy(http, base, process)
        first = await push(http, base, batch)
        second = await push(http, base, batch)
    assert first["items"] == second["items"]
    assert len(accepted_ids(first)) == 1000
    assert await count_items(database) == 1000


def _children(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.add(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _until_gone(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + 30  # a hang guard, not a speed assertion
    while (alive := {pid for pid in pids if _alive(pid)}) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return alive


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
async def test_intake_workers_check_pushes_and_end_with_the_service(
    tmp_path: Path, http: aiohttp.ClientSession, stop: signal.Signals
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    port = free_port()
    config = write_config(tmp_path, database, port, extra="[intake]\nworkers = 2\n")
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    base = f"http://127.0.0.1:{port}"
    batches = [generate_batch(300, seed=40 + n, operator_id=OPERATOR).xml for n in range(4)]
    with service(config, tmp_path / "run.log") as process:
        await wait_healthy(http, base, process)
        workers = _children(process.pid)
        assert len(workers) >= 2  # the two intake workers (and the spawn tracker)
        acks = await asyncio.gather(*(push(http, base, data) for data in batches))
        process.send_signal(stop)
        process.wait(timeout=60)
    assert sum(len(accepted_ids(ack)) for ack in acks) == 1200
    assert await _until_gone(workers) == set(), "intake workers outlived the service"
    assert await count_items(database) == 1200


async def test_sigkill_during_pushes_loses_no_acknowledged_item(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Push batches continuously, kill -9 at a random moment, restart: every ack holds."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    port = free_port()
    config = write_config(tmp_path, database, port)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(1234)
    acknowledged: set[str] = set()
    interrupted = 0
    seed = 0
    for _ in range(3):  # kills; `make soak` may raise this later
        with service(config, tmp_path / "run.log") as process:
            await wait_healthy(http, base, process)

            async def pusher() -> None:
                nonlocal seed, interrupted
                while True:
                    seed += 1
                    data = generate_batch(200, seed=seed, operator_id=OPERATOR).xml
                    try:
                        acknowledged.update(accepted_ids(await push(http, base, data)))
                    except (TimeoutError, aiohttp.ClientError):
                        interrupted += 1  # no answer: the operator would resend
                        return

            task = asyncio.create_task(pusher())
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            os.kill(process.pid, signal.SIGKILL)
            await asyncio.wait_for(task, timeout=60)
    assert acknowledged, "no push was acknowledged before the kills"
    with service(config, tmp_path / "run.log") as process:
        await wait_healthy(http, base, process)
        missing = []
        for item_id in sorted(acknowledged):
            async with http.get(f"{base}/v1/items/{item_id}") as response:
                if response.status != 200:
                    missing.append(item_id)
    assert missing == [], f"{len(missing)} acknowledged items lost"
    assert interrupted >= 1


async def test_scheduled_http_pull_stores_the_operators_batches(
    tmp_path: Path, http: aiohttp.ClientSession, database_url: str
) -> None:
    """The service pulls an operator's HTTP source on its schedule, cursor by cursor."""
    batches = [generate_batch(50, seed=70 + n, operator_id=OPERATOR) for n in range(2)]
    asked: list[str | None] = []

    async def source(request: web.Request) -> web.Response:
        after = request.query.get("after")
        asked.append(after)
        position = 0 if after is None else int(after)
        if position >= len(batches):
            return web.Response(status=204)
        return web.Response(
            body=batches[position].xml,
            content_type="application/xml",
            headers={"X-Next-Cursor": str(position + 1)},
        )

    source_app = web.Application()
    source_app.router.add_get("/batches", source)
    runner = web.AppRunner(source_app)
    await runner.setup()
    source_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", source_port).start()
    port = free_port()
    config = write_config(
        tmp_path, database_url, port, pull_url=f"http://127.0.0.1:{source_port}/batches"
    )
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    base = f"http://127.0.0.1:{port}"
    wanted = _item_ids(batches)
    try:
        with service(config, tmp_path / "run.log") as process:
            await wait_healthy(http, base, process)
            deadline = time.monotonic() + 30  # a hang guard, not a speed assertion
            while time.monotonic() < deadline:
                async with http.get(f"{base}/v1/items/{wanted[-1]}") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.2)
            for item_id in wanted:
                async with http.get(f"{base}/v1/items/{item_id}") as response:
                    assert response.status == 200, item_id
    finally:
        await runner.cleanup()
    assert asked[:3] == [None, "1", "2"]
    assert await count_items(database_url) == 100


def _item_ids(batches: list[SampleBatch]) -> list[str]:
    tag = "{urn:ead-connector:item-batch:1}ItemId"
    return [node.text or "" for batch in batches for node in etree.fromstring(batch.xml).iter(tag)]


@pytest.mark.skipif(PG_URL is None, reason="needs CONNECTOR_TEST_DATABASE_URL (PostgreSQL)")
async def test_two_replicas_run_each_tick_exactly_once(tmp_path: Path) -> None:
    """Two service processes, one PostgreSQL database, a 1-second pull: one run per slot."""
    async with fresh_postgres_database() as database:
        configs = []
        for replica in ("a", "b"):
            directory = tmp_path / replica
            directory.mkdir()
            configs.append(write_config(directory, database, free_port(), pull_every=1))
        assert cli("db", "upgrade", "--config", str(configs[0])).returncode == 0
        engine = create_async_engine(database)
        query = sa.text("SELECT fire_time, owner FROM schedule_ticks ORDER BY fire_time")
        try:
            with (
                service(configs[0], tmp_path / "a.log"),
                service(configs[1], tmp_path / "b.log"),
            ):
                # Both replicas up and ticking for a few slots; on a loaded machine startup
                # alone can take seconds, so wait for the ticks (a hang guard, not a timing).
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    async with engine.connect() as connection:
                        ticks = len((await connection.execute(query)).all())
                    if ticks >= 5:
                        break
                    await asyncio.sleep(0.5)
            async with engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        finally:
            await engine.dispose()
        logs = [(tmp_path / f"{r}.log").read_text() for r in ("a", "b")]
        runs = sum(log.count("pull.finished") for log in logs)
        fire_times = [row.fire_time for row in rows]
        assert len(fire_times) == len(set(fire_times)) >= 3
        # Never more runs than claimed ticks; the kill at the end may cut one pull short per
        # replica (claimed, not yet logged as finished).
        assert len(rows) - 2 <= runs <= len(rows), (runs, len(rows))
