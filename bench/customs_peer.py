"""A mock Customs that releases every item at once, in its own process, for the end-to-end bench.

``python -m bench.customs_peer --pki DIR --keys DIR --trust PEM --destination ID
--callback URL [--callback URL ...]``

It is :class:`~connector.peers.customs.MockCustoms` (mTLS, every declaration batch verified
and schema-checked, signed receipts) plus a decider: each item of a newly stored batch is
queued for a RELEASE, and two senders POST the queued releases, at most ``--chunk`` per signed
customs response, to the connectors' callback routes (``--callback``, the base URLs, taken in
turn). A response that is not answered 200 is sent again after a short pause. It prints
``READY <declarations URL>`` once it listens and, on SIGTERM or SIGINT, ``STATS <json>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from connector.adapters.keystore import KeyRing, load_certificate
from connector.core.model import CustomsDecision
from connector.peers.customs import MockCustoms, _Checked
from connector.peers.tls import LoopbackPki
from connector.shutdown import stop_on_signals

__all__ = ["ReleasingCustoms", "main"]

#: Senders posting responses at once (one is signed while the other is applied).
SENDERS = 2
RETRY_S = 0.2
STOP_GRACE_S = 5.0


class ReleasingCustoms(MockCustoms):
    """A mock Customs that answers every stored declaration with a RELEASE, by callback."""

    def __init__(
        self, *args: object, callbacks: Sequence[str], chunk: int = 1000, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._callbacks = itertools.cycle(
            [self.responses_url(url.rstrip("/")) for url in callbacks]
        )
        self._chunk = chunk
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._ready = asyncio.Event()
        self._numbers = itertools.count(1)
        self.released = 0
        """Items the connector acknowledged a RELEASE of (its answer 200)."""
        self.responses_sent = 0
        self.send_failures = 0
        self.refused_decisions = 0
        """Decisions the connector answered with a problem."""

    def _record(self, checked: _Checked, body: bytes, request: web.Request) -> bytes:
        receipt = super()._record(checked, body, request)
        for declaration in checked.declarations:
            if declaration.reference not in self._queued:
                self._queued.add(declaration.reference)
                self._queue.append(declaration.reference)
        self._ready.set()
        return receipt

    async def run_senders(self, stop: asyncio.Event) -> None:
        """Send the queued releases until ``stop`` is set."""
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._sender(session, stop) for _ in range(SENDERS)))

    async def _sender(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._queue:
                self._ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), 0.5)
                continue
            references = [self._queue.popleft() for _ in range(min(self._chunk, len(self._queue)))]
            if not await self._send(session, references):
                self._queue.extendleft(reversed(references))
                await asyncio.sleep(RETRY_S)

    async def _send(self, session: aiohttp.ClientSession, references: list[str]) -> bool:
        decisions = [self.decision_for(ref, CustomsDecision.RELEASE) for ref in references]
        response_id = f"RSP-BENCH-{os.getpid()}-{next(self._numbers):08d}"
        body = await asyncio.to_thread(self.customs_response, decisions, response_id=response_id)
        try:
            async with session.post(
                next(self._callbacks), data=body, headers={"Content-Type": "application/xml"}
            ) as answer:
                payload = await answer.json(content_type=None)
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.send_failures += 1
            return False
        if status != 200:
            self.send_failures += 1
            return False
        self.responses_sent += 1
        self.released += int(payload["applied"]) + int(payload["repeated"])
        self.refused_decisions += len(payload["problems"])
        self._sent(decisions)
        return True

    def stats(self) -> dict[str, object]:
        return {
            **super().stats(),
            "refused_batches": dict(Counter(self.refusals)),
            "released": self.released,
            "responses": self.responses_sent,
            "send_failures": self.send_failures,
            "refused_decisions": self.refused_decisions,
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.customs_peer")
    parser.add_argument("--pki", required=True, type=Path, help="LoopbackPki directory")
    parser.add_argument("--keys", required=True, type=Path, help="its signing key ring")
    parser.add_argument("--passphrase-env", default="MOCK_CUSTOMS_PASSPHRASE")
    parser.add_argument("--trust", required=True, type=Path, action="append")
    parser.add_argument("--destination", required=True)
    parser.add_argument("--callback", required=True, action="append", help="connector base URL")
    parser.add_argument("--chunk", type=int, default=1000, help="most decisions per response")
    parser.add_argument("--port", type=int, default=0)
    return parser


async def _serve(args: argparse.Namespace, passphrase: bytes) -> int:
    pki = LoopbackPki.load(args.pki)
    mock = ReleasingCustoms(
        KeyRing.load(args.keys, passphrase).active,
        [load_certificate(path) for path in args.trust],
        ssl_context=pki.server_context(require_client_cert=True),
        destination=args.destination,
        port=args.port,
        callbacks=args.callback,
        chunk=args.chunk,
    )
    stop = stop_on_signals()
    async with mock:
        senders = asyncio.create_task(mock.run_senders(stop))
        print(f"READY {mock.declarations_url}", flush=True)
        await stop.wait()
        # A send in flight may finish; one the connector does not answer is cut.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(senders, STOP_GRACE_S)
    print(f"STATS {json.dumps(mock.stats(), sort_keys=True)}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    passphrase = os.environ.get(args.passphrase_env, "").encode()
    if not passphrase:
        print(f"set {args.passphrase_env} to the key ring's passphrase", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, passphrase))


if __name__ == "__main__":
    sys.exit(main())
