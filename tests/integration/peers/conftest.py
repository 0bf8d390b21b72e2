"""The Customs side on loopback: a test PKI, real signing keys, the mock Customs, the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from connector.adapters import keystore
from connector.adapters.customs_client import CustomsEndpoint, HttpCustomsGateway
from connector.core import signing
from connector.core.schemas import MessageKind
from connector.core.xmlsafe import parse_xml
from connector.peers.customs import MockCustoms
from connector.peers.tls import IssuedCertificate, LoopbackPki
from connector.testing import SystemClock

MESSAGES = Path(__file__).resolve().parents[2] / "data" / "messages"
DESTINATION = "EU-ICS2"  # the Destination of the example declaration batch
NS = MessageKind.DECLARATION_BATCH.namespace
#: The item references of the example declaration batch.
EXAMPLE_REFERENCES = ("EADC-01JDXJ2B8W4E6P", "EADC-01JDXJ2B8W9H3K", "EADC-01JDXJ2B8WBN7S")


def new_key(cn: str) -> signing.SigningKey:
    """A fresh EC signing key with its self-signed certificate, as ``keys generate`` makes."""
    private_key, certificate = keystore.generate_key("ec", cn, 30)
    return signing.SigningKey(private_key, certificate)


def signed_batch(
    key: signing.SigningKey,
    batch_id: str,
    *,
    versions: Iterable[int] | None = None,
    destination: str = DESTINATION,
) -> bytes:
    """The example declaration batch under ``batch_id`` (item versions changed if given),
    signed with ``key``."""
    root = parse_xml((MESSAGES / "declaration-batch.xml").read_bytes())
    header = root.find(f"{{{NS}}}Header")
    assert header is not None
    header.findall(f"{{{NS}}}DeclarationBatchId")[0].text = batch_id
    header.findall(f"{{{NS}}}Destination")[0].text = destination
    if versions is not None:
        nodes = root.findall(f"{{{NS}}}Declarations/{{{NS}}}Declaration/{{{NS}}}Version")
        for node, version in zip(nodes, versions, strict=True):
            node.text = str(version)
    return signing.sign(etree.tostring(root), key)


class Sleeps:
    """Records the gateway's backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class Keys:
    connector: signing.SigningKey
    customs: signing.SigningKey


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LoopbackPki:
    return LoopbackPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def client_cert(pki: LoopbackPki) -> IssuedCertificate:
    return pki.issue_client("connector")


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(connector=new_key("EADC-TEST"), customs=new_key("Mock Customs"))


@pytest.fixture
async def customs(pki: LoopbackPki, keys: Keys) -> AsyncIterator[MockCustoms]:
    """The mock Customs, requiring a client certificate of the loopback CA."""
    mock = MockCustoms(
        keys.customs,
        [keys.connector.certificate],
        ssl_context=pki.server_context(require_client_cert=True),
        destination=DESTINATION,
        slow_s=30.0,
    )
    async with mock:
        yield mock


@dataclass
class GatewayFactory:
    """Builds gateways to the mock; every one is closed after the test."""

    pki: LoopbackPki
    client: IssuedCertificate
    keys: Keys
    sleeps: Sleeps = field(default_factory=Sleeps)
    opened: list[HttpCustomsGateway] = field(default_factory=list)

    def endpoint(self, customs: MockCustoms, **overrides: Any) -> CustomsEndpoint:
        settings: dict[str, Any] = {
            "destination": DESTINATION,
            "url": customs.declarations_url,
            "ca_file": self.pki.ca_file,
            "client_cert_file": self.client.cert_file,
            "client_key_file": self.client.key_file,
            "customs_certificates": (customs.certificate,),
            "total_timeout_s": 5.0,
            "backoff_s": 0.01,
        } | overrides
        return CustomsEndpoint(**settings)

    def __call__(self, customs: MockCustoms, **overrides: Any) -> HttpCustomsGateway:
        endpoint = self.endpoint(customs, **overrides)
        gateway = HttpCustomsGateway(
            {endpoint.destination: endpoint}, SystemClock(), sleep=self.sleeps
        )
        self.opened.append(gateway)
        return gateway


@pytest.fixture
async def gateway_for(
    pki: LoopbackPki, client_cert: IssuedCertificate, keys: Keys
) -> AsyncIterator[GatewayFactory]:
    factory = GatewayFactory(pki, client_cert, keys)
    yield factory
    for gateway in factory.opened:
        await gateway.close()


@pytest.fixture
async def http(
    pki: LoopbackPki, client_cert: IssuedCertificate
) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client with the connector's client certificate."""
    connector = aiohttp.TCPConnector(ssl=pki.client_context(client_cert))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session
