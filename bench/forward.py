"""Signing and forwarding throughput, next to parse + validate + sign of the same items.

The baseline, per 1,000-item batch: parse and validate the item batch (schema and rules) and
sign the whole document once (XML-DSig, exclusive C14N, ECDSA P-256): the least work that
turns operator data into a signed message. The figures:

- ``sign``: build the declaration batch of the stored items (each item parsed once, moved
  into the declaration namespace) and sign it, as the forward stage does per batch;
- ``forward``: the forward stage draining an outbox of accepted items on SQLite to the mock
  Customs (in its own process, ``connector.peers.serve``) over loopback HTTPS with mutual
  TLS: claim, build, sign, POST, verify the signed receipt, record the evidence and the
  FORWARDED events. Target: >= 0.5 of the baseline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bench.timing import Figure, best_of
from connector.adapters.customs_client import CustomsEndpoint, HttpCustomsGateway
from connector.adapters.db import engine
from connector.adapters.db.store import SqlItemStore
from connector.adapters.keystore import KeyRing
from connector.core import signing
from connector.core.inbound import validate_item_batch
from connector.core.routing import CustomsRoute, Router
from connector.core.xmlsafe import parse_xml
from connector.flow.accept import AcceptService
from connector.flow.forward import ForwardService
from connector.forwarder import BatchBuilder
from connector.peers.tls import LoopbackPki
from connector.ports import ForwardClaim, OperatorRecord
from connector.sample import generate_batch
from connector.sample_data import DESTINATION_WEIGHT
from connector.testing import SystemClock

OPERATOR = "PL-POCZTA"
DESTINATION = "EU-ICS2"
PASSPHRASE = b"bench passphrase"
BATCH = 1_000
#: Forward runs at once, as forwarding.concurrency (default 2) runs them in the service.
WORKERS = 2


def _baseline(batches: list[bytes], key: signing.SigningKey) -> None:
    for data in batches:
        validate_item_batch(data)
        signing.sign(parse_xml(data), key)


async def _forward(batches: list[bytes], directory: Path, ring: KeyRing) -> tuple[float, float]:
    """(seconds to build + sign every batch, seconds to forward every item) on one outbox."""
    url = f"sqlite+aiosqlite:///{directory}/bench.db"
    await engine.upgrade(url)
    store = await SqlItemStore.open(url)
    clock = SystemClock()
    await store.upsert_operators((OperatorRecord(OPERATOR, OPERATOR, token_sha256="0" * 64),))
    accept = AcceptService(store, clock)
    first: list[ForwardClaim] = []
    for data in batches:
        ack = await accept.accept_batch(OPERATOR, data)
        for item in ack.items if not first else ():
            stored = await store.get_item(OPERATOR, item.item_id)
            assert stored is not None
            first.append(
                ForwardClaim(
                    0,
                    stored.reference,
                    OPERATOR,
                    stored.item_id,
                    stored.version,
                    stored.destination_country,
                    stored.item_xml,
                    0,
                )
            )
    pki = LoopbackPki.create(directory / "pki")
    client = pki.issue_client("connector")
    customs_ring = KeyRing.create(directory / "customs", PASSPHRASE, "ec", "Mock Customs", 30)
    trusted = directory / "connector.pem"
    trusted.write_bytes(ring.active.certificate.public_bytes(serialization.Encoding.PEM))
    # Customs on its own process (and CPU), as a real one is.
    customs = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.peers.serve",
        "customs",
        "--pki",
        str(pki.directory),
        "--keys",
        str(directory / "customs"),
        "--trust",
        str(trusted),
        "--destination",
        DESTINATION,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "MOCK_CUSTOMS_PASSPHRASE": PASSPHRASE.decode()},
    )
    assert customs.stdout is not None
    ready = (await asyncio.wait_for(customs.stdout.readline(), 60)).decode().split()
    if ready[:1] != ["READY"]:
        raise AssertionError(f"the mock Customs did not start: {ready}")
    endpoint = CustomsEndpoint(
        destination=DESTINATION,
        url=ready[1],
        ca_file=pki.ca_file,
        client_cert_file=client.cert_file,
        client_key_file=client.key_file,
        customs_certificates=(customs_ring.active.certificate,),
    )
    gateway = HttpCustomsGateway({DESTINATION: endpoint}, clock)
    router = Router([CustomsRoute(DESTINATION, frozenset(DESTINATION_WEIGHT))], ())
    build = BatchBuilder("EADC-BENCH", ring, clock, refresh_s=-1)

    def route(claim: ForwardClaim) -> str | None:
        return router.customs_for(claim.destination_country, claim.operator_id)

    try:
        # The sign figure: one batch's stored items, built and signed (nothing sent).
        started = time.perf_counter()
        for _ in batches:
            build(first, DESTINATION)
        sign_seconds = time.perf_counter() - started
        sent = 0

        async def worker(owner: str) -> None:
            nonlocal sent
            service = ForwardService(
                store, gateway, clock, owner, build, route, batch_size=BATCH, lease_s=60
            )
            while True:
                outcome = await service.run_once()
                sent += outcome.sent
                if not outcome.claimed:
                    break

        started = time.perf_counter()
        await asyncio.gather(*(worker(f"bench-{n}") for n in range(WORKERS)))
        forward_seconds = time.perf_counter() - started
    finally:
        await gateway.close()
        customs.terminate()
        output = (await customs.communicate())[0].decode()
        await store.close()
    stats = json.loads(output.split("STATS ", 1)[1]) if "STATS " in output else {}
    if sent != BATCH * len(batches) or stats.get("declarations") != sent:
        raise AssertionError(f"forwarded {sent} of {BATCH * len(batches)} items: {stats}")
    return sign_seconds, forward_seconds


def run(quick: bool) -> list[Figure]:
    count = 3 if quick else 10
    batches = [generate_batch(BATCH, seed=300 + i, operator_id=OPERATOR).xml for i in range(count)]
    items = BATCH * count
    with tempfile.TemporaryDirectory(prefix="ead-bench-forward-") as name:
        directory = Path(name)
        ring = KeyRing.create(directory / "keys", PASSPHRASE, "ec", "EADC-BENCH", 30)
        baseline = best_of(lambda: _baseline(batches, ring.active), 1 if quick else 3)
        sign_seconds, forward_seconds = asyncio.run(_forward(batches, directory, ring))
    return [
        Figure("sign declaration batches (1,000 items)", items, sign_seconds, baseline),
        Figure("forward to mock Customs (HTTPS mTLS, SQLite)", items, forward_seconds, baseline),
    ]
