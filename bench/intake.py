"""Push intake throughput over loopback HTTP into SQLite, next to validation alone.

Both run in this process on the same batches: the baseline validates each batch
(parse + schema + rules); the figure pushes each one to the real HTTP API, which validates,
commits the items with their events and outbox rows, and answers with the acknowledgement.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.timing import Figure
from connector.adapters.db import engine
from connector.app import build_app, open_connector
from connector.core.inbound import validate_item_batch
from connector.sample import generate_batch
from connector.settings import load_settings

OPERATOR = "PL-POCZTA"
TOKEN = "bench-token-0123456789abcdef"


async def _push_all(batches: list[bytes], database: str, clients: int) -> float:
    directory = Path(tempfile.mkdtemp(prefix="ead-bench-"))
    (directory / "op.token").write_text(TOKEN)
    config = directory / "c.toml"
    config.write_text(
        f'[database]\nurl = "{database}"\n[[operators]]\nid = "{OPERATOR}"\n'
        'token_file = "op.token"\n'
    )
    settings = load_settings(config, {})
    await engine.upgrade(settings.database.url)
    connector = await open_connector(settings)
    app = await build_app(connector, schedule=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/v1/batches"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            queue = list(reversed(batches))

            async def client() -> None:
                while queue:
                    async with session.post(url, data=queue.pop()) as response:
                        await response.read()
                        if response.status != 200:
                            raise AssertionError(f"push failed with {response.status}")

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            return time.perf_counter() - started
    finally:
        await runner.cleanup()


def run(quick: bool) -> list[Figure]:
    count = 3 if quick else 20
    batches = [generate_batch(1_000, seed=100 + i, operator_id=OPERATOR).xml for i in range(count)]
    started = time.perf_counter()
    for data in batches:
        validate_item_batch(data)
    baseline = time.perf_counter() - started
    items = 1_000 * count
    figures = []
    for clients in (1,) if quick else (1, 2):
        with tempfile.TemporaryDirectory(prefix="ead-bench-db-") as directory:
            database = f"sqlite+aiosqlite:///{directory}/bench.db"
            seconds = asyncio.run(_push_all(batches, database, clients))
        name = f"push intake, {clients} client{'s' if clients > 1 else ''} (SQLite)"
        figures.append(Figure(name, items, seconds, baseline))
    return figures
