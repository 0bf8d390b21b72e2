"""The connector's HTTP app on loopback for hostile-input tests, driven synchronously.

The app (over the in-memory store, with the decide stage for one Customs destination) runs on
an event loop in a thread of its own, so hypothesis tests stay plain functions: every call
waits for its answer with a timeout, which is the per-request hang guard.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from connector.adapters.web import server
from connector.adapters.web.customs import DECIDE
from connector.core.model import CustomsDecision
from connector.flow.accept import AcceptService
from tests.integration.web.conftest import TOKEN_A, operators
from tests.unit.flow.test_decide import DESTINATION, Rig

T = TypeVar("T")
HANG_GUARD_S = 20.0
"""No single request may take longer (a hang, not a speed assertion)."""
MAX_BODY_BYTES = 32 * 1024 * 1024
PUSH_HEADERS = {
    "Authorization": f"Bearer {TOKEN_A}",
    "Content-Type": "application/xml",
    "Accept": "application/json",
}
RESPONSES_PATH = f"/v1/customs/{DESTINATION}/responses"


class Served:
    """The app on 127.0.0.1 in a background loop; :meth:`close` stops everything."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.rig = Rig()
        self.run(self._start())

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = HANG_GUARD_S) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    async def _start(self) -> None:
        rig = self.rig
        await rig.store.upsert_operators(operators())
        await rig.forwarded(1, 2, 3)
        app = server.build_web_app(
            store=rig.store,
            accept=AcceptService(rig.store, rig.clock),
            clock=rig.clock,
            max_body_bytes=MAX_BODY_BYTES,
        )
        app[DECIDE] = rig.service
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HANG_GUARD_S))

    def close(self) -> None:
        async def stop() -> None:
            await self.http.close()
            await self._runner.cleanup()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST and the status with the JSON answer ({} when it is not JSON)."""

        async def send() -> tuple[int, dict[str, Any]]:
            async with self.http.post(
                self.base + path, data=body, headers=headers or PUSH_HEADERS
            ) as response:
                text = await response.text()
                try:
                    answer = json.loads(text)
                except ValueError:
                    answer = {}
                return response.status, answer if isinstance(answer, dict) else {}

        return self.run(send())

    def push(self, body: bytes) -> tuple[int, dict[str, Any]]:
        return self.post("/v1/batches", body)

    def respond(self, body: bytes) -> tuple[int, dict[str, Any]]:
        return self.post(RESPONSES_PATH, body, {"Content-Type": "application/xml"})

    def raw(self, request: bytes) -> bytes:
        """Send raw bytes on a new connection; everything answered until it closes."""

        async def send() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(request)
                await writer.drain()
                chunks = []
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                writer.close()

        return self.run(send())

    def decision(self, number: int) -> CustomsDecision | None:
        """The decision the store holds on Rig item ``number``."""
        return self.run(self.rig.state(number))[1]

    def item_count(self) -> int:
        return len(self.rig.store.items)
