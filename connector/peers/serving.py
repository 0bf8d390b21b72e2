"""Start a mock peer's aiohttp app on a loopback port (0: any free one)."""

from __future__ import annotations

import ssl

from aiohttp import web

__all__ = ["start_site"]


async def start_site(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[web.AppRunner, int]:
    """The running app's runner and the port actually bound; nothing left open on failure."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])
