"""Push intake throughput over loopback HTTP into SQLite, next to validation alone.

Both run in this process on the same batches: the baseline validates each batch
(parse + schema + rules); the figure pushes each one to the real HTTP API, which validates,
checks, commits the items with their events and outbox rows, and answers with the
acknowledgement. Pushes come from one, two or four clients at once (operators pushing side by
side), with the batches checked in a thread (the default) or in two intake worker processes
(``[intake] workers = 2``, one per core of the development VM). Each figure and its baseline
are run alternately and the best of each taken, so that the machine's drift during the run
hits both alike.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.timing import Figure, best_of
from connector.adapters.db import engine
from connector.app import build_app, open_connector
from connector.core.inbound import validate_item_batch
from connector.heap import settle_heap
from connector.sample import generate_batch
from connector.settings import load_settings

OPERATOR = "PL-POCZTA"
TOKEN = "bench-token-0123456789abcdef"


async def _push_all(batches: list[bytes], database: str, clients: int, workers: int = 0) -> float:
    directory = Path(tempfile.mkdtemp(prefix="ead-bench-"))
    (directory / "op.token").write_text(TOKEN)
    config = directory / "c.toml"
    config.write_text(
        f'[database]\nurl = "{database}"\n[[operators]]\nid = "{OPERATOR}"\n'
        'token_file = "op.token"\n'
        f"[intake]\nworkers = {workers}\n"
    )
    settings = load_settings(config, {})
    await engine.upgrade(settings.database.url)
    connector = await open_connector(settings)
    await connector.start_intake()
    app = await build_app(connector, schedule=False)
    thresholds = gc.get_threshold()
    settle_heap()  # as ``ead-connector run`` does
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
        await connector.close()
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _push_once(batches: list[bytes], clients: int, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="ead-bench-db-") as directory:
        database = f"sqlite+aiosqlite:///{directory}/bench.db"
        return asyncio.run(_push_all(batches, database, clients, workers))


def run(quick: bool) -> list[Figure]:
    count = 3 if quick else 20
    batches = [generate_batch(1_000, seed=100 + i, operator_id=OPERATOR).xml for i in range(count)]
    repeat = 1 if quick else 3

    def validate_all() -> None:
        for data in batches:
            validate_item_batch(data)

    items = 1_000 * count
    figures = []
    # (clients, intake worker processes): the default thread, then one worker per core.
    runs = [(1, 0), (4, 2)] if quick else [(1, 0), (2, 0), (2, 2), (4, 2)]
    for clients, workers in runs:
        # Alternately, so that drift hits both alike; a push times its requests only.
        seconds = baseline = float("inf")
        for _ in range(repeat):
            baseline = min(baseline, best_of(validate_all, 1))
            seconds = min(seconds, _push_once(batches, clients, workers))
        name = f"push intake, {clients} client{'s' if clients > 1 else ''}"
        name += f", {workers} workers (SQLite)" if workers else " (SQLite)"
        figures.append(Figure(name, items, seconds, baseline))
    return figures
