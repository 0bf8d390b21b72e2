"""Run the mock Customs in its own process: ``python -m connector.peers.serve customs ...``.

For benchmarks and demos that want the counterparty on its own CPU, as a real Customs system
is. It loads a :class:`~connector.peers.tls.LoopbackPki` directory (server certificate, and
client certificates verified against its CA), the mock's signing key ring and the connector
certificates it trusts, listens on loopback, prints one line ``READY <declarations URL>`` on
stdout once it accepts connections, and runs until SIGTERM or SIGINT, when it prints
``STATS <json>`` (requests, batches, declarations, duplicates) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from connector.adapters.keystore import KeyRing, load_certificate
from connector.peers.customs import MockCustoms
from connector.peers.tls import LoopbackPki
from connector.shutdown import stop_on_signals

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m connector.peers.serve")
    commands = parser.add_subparsers(dest="peer", required=True)
    customs = commands.add_parser("customs", help="the mock Customs risk engine")
    customs.add_argument("--pki", required=True, type=Path, help="LoopbackPki directory")
    customs.add_argument("--keys", required=True, type=Path, help="its signing key ring")
    customs.add_argument(
        "--passphrase-env",
        default="MOCK_CUSTOMS_PASSPHRASE",
        help="environment variable holding the key ring's passphrase",
    )
    customs.add_argument(
        "--trust", required=True, type=Path, action="append", help="connector certificate (PEM)"
    )
    customs.add_argument("--destination", default=None, help="the only Destination accepted")
    customs.add_argument("--port", type=int, default=0)
    return parser


async def _serve_customs(args: argparse.Namespace, passphrase: bytes) -> int:
    pki = LoopbackPki.load(args.pki)
    ring = KeyRing.load(args.keys, passphrase)
    mock = MockCustoms(
        ring.active,
        [load_certificate(path) for path in args.trust],
        ssl_context=pki.server_context(require_client_cert=True),
        destination=args.destination,
        port=args.port,
    )
    stop = stop_on_signals()
    async with mock:
        print(f"READY {mock.declarations_url}", flush=True)
        await stop.wait()
    print(f"STATS {json.dumps(mock.stats(), sort_keys=True)}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # stdout carries the READY and STATS lines; per-request logs would only fill the pipe.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    passphrase = os.environ.get(args.passphrase_env, "").encode()
    if not passphrase:
        print(f"set {args.passphrase_env} to the key ring's passphrase", file=sys.stderr)
        return 2
    return asyncio.run(_serve_customs(args, passphrase))


if __name__ == "__main__":
    sys.exit(main())
