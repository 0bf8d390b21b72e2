"""A mock postal operator's notice webhook: an aiohttp server on loopback (HTTP or HTTPS).

``POST <path>`` (default ``/notices``) with a signed item notice (``application/xml``) and
``X-Notice-Id``:

1. the signature is verified with :func:`connector.core.signing.verify` against the connector
   certificates the mock is given (:meth:`MockOperator.trust`), and the verified document read
   as an item notice (:func:`connector.core.notices.parse_item_notice`, schema checked);
2. ``X-Notice-Id`` must be the notice's ``NoticeId``;
3. the first receipt of a notice id is recorded (:attr:`MockOperator.received`, in order of
   receipt in :attr:`MockOperator.order`); a repeat is counted (:attr:`MockOperator.duplicates`)
   and answered 200 like the first, as an operator deduplicating at-least-once delivery does.

A notice that does not verify or does not parse is ``400`` with a problem ``code``. Failure
modes, like the mock Customs (:attr:`MockOperator.mode`, :meth:`MockOperator.fail_next`):
``ok``; ``down`` (the connection is dropped without an answer); ``slow`` (the answer comes
after ``slow_s``); ``error`` (500); ``throttle`` (429); ``refuse`` (400, the notice refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Literal, get_args

import structlog
from aiohttp import web
from cryptography import x509

from connector.core import notices, signing
from connector.core.notices import ItemNotice
from connector.errors import ConfigurationError, ConnectorError, SignatureInvalid
from connector.peers.serving import start_site

__all__ = ["MODES", "MockOperator", "Mode", "ReceivedNotice"]

Mode = Literal["ok", "down", "slow", "error", "throttle", "refuse"]
MODES: Final[frozenset[str]] = frozenset(get_args(Mode))

_log = structlog.get_logger("connector.peers.operator")


@dataclass(frozen=True, slots=True)
class ReceivedNotice:
    """A notice as the mock operator verified and kept it (its first receipt)."""

    notice: ItemNotice
    signed_xml: bytes
    received_at: datetime
    signer_fingerprint: str


class MockOperator:
    """The mock webhook on ``host`` (loopback) and ``port`` (0: any free port).

    ``trusted``: the connector certificates notices must be signed with (its published ones).
    ``ssl_context``: a server context for HTTPS (e.g. ``LoopbackPki.server_context()``), None
    for plain HTTP.
    """

    def __init__(
        self,
        trusted: Iterable[x509.Certificate],
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/notices",
        slow_s: float = 30.0,
    ) -> None:
        self._trusted: dict[str, x509.Certificate] = {}
        for certificate in trusted:
            self.trust(certificate)
        self._ssl_context = ssl_context
        self.host = host
        self.port = port
        self.path = path
        self.slow_s = slow_s
        self._mode: Mode = "ok"
        self._next: deque[Mode] = deque()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._arrived = asyncio.Condition()
        self.requests = 0
        """Every request, failed ones included."""
        self.received: dict[str, ReceivedNotice] = {}
        """Verified notices by notice id (the first receipt)."""
        self.order: list[str] = []
        """Notice ids in order of first receipt."""
        self.duplicates = 0
        """Verified receipts of a notice id received before."""
        self.refusals: list[str] = []
        """The problem code of every 4xx answer, in order."""

    def __repr__(self) -> str:
        return f"MockOperator({self.url if self._runner else 'stopped'}, mode={self._mode})"

    # --- control --------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """How every request is answered once the :meth:`fail_next` queue is empty."""
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._mode = _checked_mode(mode)

    def fail_next(self, n: int, mode: Mode) -> None:
        """Answer the next ``n`` requests in ``mode``, then go back to :attr:`mode`."""
        self._next.extend([_checked_mode(mode)] * n)

    def trust(self, certificate: x509.Certificate) -> None:
        """Accept notices signed with ``certificate`` (from now on)."""
        self._trusted[signing.fingerprint(certificate)] = certificate

    def notices_of(self, item_id: str) -> list[ItemNotice]:
        """The notices received for an item, in order of receipt."""
        return [
            self.received[notice_id].notice
            for notice_id in self.order
            if self.received[notice_id].notice.item_id == item_id
        ]

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        """Return once ``count`` distinct notices were received.

        Raises:
            TimeoutError: fewer arrived within ``timeout_s``.
        """
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout_s
            )

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The webhook URL to configure (``operators[].webhook_url``), after :meth:`start`."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{self.path}"

    async def start(self) -> str:
        """Listen; returns the webhook URL (:attr:`url`) with the port actually bound."""
        if self._runner is not None:
            raise ConfigurationError("The mock operator is running already.")
        app = web.Application()
        app.router.add_post(self.path, self._notice)
        runner, self.port = await start_site(app, self.host, self.port, self._ssl_context)
        self._runner = runner
        self._stopping = asyncio.Event()
        _log.info("mock_operator.started", url=self.url)
        return self.url

    async def stop(self) -> None:
        """Stop listening; slow requests in flight are cut off."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._stopping.set()
            await runner.cleanup()

    async def __aenter__(self) -> MockOperator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the route ------------------------------------------------------------------------

    async def _notice(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        mode = self._next.popleft() if self._next else self._mode
        if mode == "down":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp ends the handler quietly, sending nothing
        if mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.slow_s)
        if mode == "error":
            return _problem(500, "internal_error", "The mock operator failed (mode error).")
        if mode == "throttle":
            return _problem(429, "too_many_requests", "Slow down (mode throttle).")
        if mode == "refuse":
            return self._refuse("notice_refused", "Refused by the mock (mode refuse).")
        if request.content_type != "application/xml":
            return self._refuse("unsupported_media_type", "Send application/xml.")
        body = await request.read()
        try:
            notice, fingerprint = await asyncio.to_thread(self._check, body)
        except ConnectorError as exc:
            return self._refuse(exc.code, exc.message)
        if request.headers.get("X-Notice-Id") != notice.notice_id:
            return self._refuse("notice_id_mismatch", "X-Notice-Id is not the notice's NoticeId.")
        async with self._arrived:
            if notice.notice_id in self.received:
                self.duplicates += 1
            else:
                self.received[notice.notice_id] = ReceivedNotice(
                    notice, body, datetime.now(UTC), fingerprint
                )
                self.order.append(notice.notice_id)
                self._arrived.notify_all()
        return web.json_response({"notice_id": notice.notice_id, "status": "received"})

    def _check(self, body: bytes) -> tuple[ItemNotice, str]:
        """Verify and read a notice (in a worker thread); raise ConnectorError."""
        trusted = tuple(self._trusted.values())
        if not trusted:
            raise SignatureInvalid("The mock operator trusts no connector certificate.")
        verified = signing.verify(body, signing.VerifyPolicy(trusted))
        return notices.parse_item_notice(verified.signed_xml), verified.fingerprint

    def _refuse(self, code: str, detail: str) -> web.Response:
        self.refusals.append(code)
        _log.info("mock_operator.refused", code=code)
        return _problem(400, code, detail)


def _checked_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mock operator mode {mode!r}; one of {sorted(MODES)}.")
    return mode  # type: ignore[return-value]


def _problem(status: int, code: str, detail: str) -> web.Response:
    body = {"type": f"urn:ead-connector:problem:{code}", "status": status, "code": code}
    body["detail"] = detail
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/problem+json",
        charset="utf-8",
    )
