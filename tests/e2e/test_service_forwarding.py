"""``ead-connector run`` forwards what it accepts to Customs, follows a key rotation, and
stops cleanly on SIGTERM.

The service runs in a subprocess with a ``[[destinations]]`` entry pointing at the mock
Customs in this process (HTTPS with mutual TLS, real keys on both sides).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from connector.adapters.keystore import KeyRing
from connector.core import signing
from connector.peers.customs import MockCustoms
from connector.peers.tls import LoopbackPki
from connector.sample import generate_batch
from connector.sample_data import DESTINATION_WEIGHT
from tests.e2e.test_service import (
    OPERATOR,
    PG_URL,
    TOKEN,
    accepted_ids,
    cli,
    free_port,
    fresh_postgres_database,
    push,
    service,
    wait_healthy,
)

PASSPHRASE = "e2e key passphrase"


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s  # a hang guard, not a speed assertion
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def customs(tmp_path: Path) -> AsyncIterator[tuple[MockCustoms, LoopbackPki, KeyRing]]:
    pki = LoopbackPki.create(tmp_path / "pki")
    connector_ring = KeyRing.create(tmp_path / "keys", PASSPHRASE.encode(), "ec", "EADC-E2E", 30)
    customs_ring = KeyRing.create(tmp_path / "customs-keys", b"x" * 8, "ec", "Mock Customs", 30)
    mock = MockCustoms(
        customs_ring.active,
        connector_ring.published,
        ssl_context=pki.server_context(require_client_cert=True),
        destination="EU-ICS2",
    )
    await mock.start()
    try:
        yield mock, pki, connector_ring
    finally:
        await mock.stop()


def _config(
    tmp_path: Path,
    port: int,
    mock: MockCustoms,
    pki: LoopbackPki,
    database_url: str | None = None,
    name: str = "connector.toml",
) -> Path:
    client = pki.issue_client(name.removesuffix(".toml"))
    customs_pem = tmp_path / "customs.pem"
    customs_pem.write_bytes(mock.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "op.token").write_text(TOKEN)
    countries = ", ".join(f'"{country}"' for country in sorted(DESTINATION_WEIGHT))
    config = tmp_path / name
    database_url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    config.write_text(
        f'connector_id = "EADC-E2E"\n'
        f'[database]\nurl = "{database_url}"\n'
        f"[http]\nport = {port}\n"
        f'[signing]\nkeys_dir = "keys"\n'
        f"[forwarding]\nidle_seconds = 0.2\n"
        f'[[operators]]\nid = "{OPERATOR}"\ntoken_file = "op.token"\n'
        f'[[destinations]]\nid = "EU-ICS2"\nurl = "{mock.declarations_url}"\n'
        f"countries = [{countries}]\n"
        f'certificates = ["customs.pem"]\nca_file = "{pki.ca_file}"\n'
        f'client_cert = "{client.cert_file}"\nclient_key = "{client.key_file}"\n'
    )
    return config


async def test_run_forwards_accepted_items_and_follows_a_key_rotation(
    tmp_path: Path,
    customs: tuple[MockCustoms, LoopbackPki, KeyRing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock, pki, ring = customs
    port = free_port()
    config = _config(tmp_path, port, mock, pki)
    monkeypatch.setenv("CONNECTOR_KEY_PASSPHRASE", PASSPHRASE)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        with service(config, tmp_path / "service.log") as process:
            await wait_healthy(http, base, process)
            ack = await push(http, base, generate_batch(300, seed=1, operator_id=OPERATOR).xml)
            first = accepted_ids(ack)
            await _until(lambda: len(mock.declarations) == len(first), "the first items")

            # "keys rotate" by another process: publish the new certificate, then switch.
            new_id = ring.add(days=60)
            mock.trust(ring.published[-1])
            ring.activate(new_id)
            await asyncio.sleep(6)  # the service looks at the ring every 5 s
            ack = await push(http, base, generate_batch(200, seed=2, operator_id=OPERATOR).xml)
            second = accepted_ids(ack)
            total = len(first) + len(second)
            await _until(lambda: len(mock.declarations) == total, "the second items")

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
    assert set(mock.declarations.values()) == first | second
    assert mock.duplicates == 0
    assert mock.refusals == []
    last = mock.received[mock.batches[-1]]
    assert last.signer_fingerprint == signing.fingerprint(ring.active.certificate)
    assert "forward" in (tmp_path / "service.log").read_text()


@pytest.mark.skipif(PG_URL is None, reason="needs CONNECTOR_TEST_DATABASE_URL (PostgreSQL)")
async def test_api_and_worker_roles_split_intake_and_forwarding(
    tmp_path: Path,
    customs: tuple[MockCustoms, LoopbackPki, KeyRing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run --role api`` takes pushes; a separate ``run --role worker`` forwards them."""
    mock, pki, _ = customs
    monkeypatch.setenv("CONNECTOR_KEY_PASSPHRASE", PASSPHRASE)
    api_port, worker_port = free_port(), free_port()
    async with fresh_postgres_database() as url:
        api = _config(tmp_path, api_port, mock, pki, url, "api.toml")
        worker = _config(tmp_path, worker_port, mock, pki, url, "worker.toml")
        assert cli("db", "upgrade", "--config", str(api)).returncode == 0
        base = f"http://127.0.0.1:{api_port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            with service(api, tmp_path / "api.log", "--role", "api") as api_process:
                await wait_healthy(http, base, api_process)
                batch = generate_batch(100, seed=5, operator_id=OPERATOR).xml
                accepted = accepted_ids(await push(http, base, batch))
                await asyncio.sleep(1.0)
                assert mock.declarations == {}  # the api role does not forward
                with service(worker, tmp_path / "worker.log", "--role", "worker") as worker_process:
                    await _until(lambda: len(mock.declarations) == len(accepted), "forwarding")
                    worker_process.send_signal(signal.SIGTERM)
                    assert worker_process.wait(timeout=30) == 0
                # The worker has no HTTP port.
                with pytest.raises(aiohttp.ClientConnectionError):
                    await http.get(f"http://127.0.0.1:{worker_port}/healthz")
    assert set(mock.declarations.values()) == accepted
