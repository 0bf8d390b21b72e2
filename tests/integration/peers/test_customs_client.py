"""The HTTPS Customs gateway against the mock Customs on loopback, with mTLS and real keys."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connector.adapters.customs_client import (
    CustomsEndpoint,
    HttpCustomsGateway,
    client_ssl_context,
)
from connector.core import signing
from connector.core.receipts import ReceiptStatus, read_declaration_receipt
from connector.errors import (
    CertificateUntrusted,
    ConfigurationError,
    CustomsRefused,
    CustomsUnavailable,
    InvalidMessage,
    SignatureInvalid,
)
from connector.peers.customs import MockCustoms
from connector.peers.tls import IssuedCertificate, LoopbackPki
from connector.testing import SystemClock

from .conftest import (
    DESTINATION,
    EXAMPLE_REFERENCES,
    GatewayFactory,
    Keys,
    new_key,
    signed_batch,
)


def _receipt_status(receipt: bytes, customs: MockCustoms) -> ReceiptStatus:
    verified = signing.verify(receipt, signing.VerifyPolicy((customs.certificate,)))
    return read_declaration_receipt(verified.signed_xml).status


# --- delivery --------------------------------------------------------------------------------


async def test_send_delivers_and_returns_the_verified_receipt(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys, client_cert: IssuedCertificate
) -> None:
    """A signed batch reaches Customs over mTLS; the signed receipt comes back verified."""
    gateway = gateway_for(customs)
    receipt = await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert receipt.destination == DESTINATION
    assert receipt.declaration_batch_id == "DB-1"
    received = customs.received["DB-1"]
    assert receipt.received_at == received.received_at
    assert _receipt_status(receipt.receipt, customs) is ReceiptStatus.ACCEPTED
    assert customs.batches == ["DB-1"]
    assert customs.requests == 1
    assert {reference for reference, _ in customs.declarations} == set(EXAMPLE_REFERENCES)
    assert received.idempotency_key == "DB-1"
    assert received.client_fingerprint == client_cert.fingerprint
    assert received.signer_fingerprint == keys.connector.fingerprint
    assert gateway_for.sleeps.delays == []


async def test_resending_a_batch_id_is_a_duplicate_not_new_declarations(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """The same batch id again gets a duplicate receipt and declares nothing twice."""
    gateway = gateway_for(customs)
    batch = signed_batch(keys.connector, "DB-1")
    first = await gateway.send(DESTINATION, "DB-1", batch)
    again = await gateway.send(DESTINATION, "DB-1", batch)
    assert _receipt_status(again.receipt, customs) is ReceiptStatus.DUPLICATE
    assert again.received_at == first.received_at  # the time of the first receipt
    assert customs.batches == ["DB-1"]
    assert customs.resent_batches == 1
    assert len(customs.declarations) == 3
    assert customs.duplicates == 0


async def test_same_items_in_a_new_batch_are_counted_as_duplicates(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """Items re-sent under another batch id (a crashed replica) are not declared again."""
    gateway = gateway_for(customs)
    await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    await gateway.send(DESTINATION, "DB-2", signed_batch(keys.connector, "DB-2"))
    assert customs.batches == ["DB-1", "DB-2"]
    assert len(customs.declarations) == 3
    assert customs.duplicates == 3
    await gateway.send(
        DESTINATION, "DB-3", signed_batch(keys.connector, "DB-3", versions=[2, 1, 1])
    )
    assert customs.items[EXAMPLE_REFERENCES[0]].version == 2  # an amendment is a new version
    assert len(customs.declarations) == 4


async def test_concurrent_sends_share_one_session(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """Several sends at once to one destination all deliver, bounded by max_concurrency."""
    gateway = gateway_for(customs, max_concurrency=2)
    ids = [f"DB-{n}" for n in range(6)]
    receipts = await asyncio.gather(
        *(gateway.send(DESTINATION, i, signed_batch(keys.connector, i)) for i in ids)
    )
    assert [r.declaration_batch_id for r in receipts] == ids
    assert sorted(customs.batches) == sorted(ids)


async def test_a_closed_gateway_opens_a_new_session(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """After close() the next send opens a new session and still delivers."""
    gateway = gateway_for(customs)
    await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    await gateway.close()
    await gateway.send(DESTINATION, "DB-2", signed_batch(keys.connector, "DB-2"))
    assert customs.batches == ["DB-1", "DB-2"]


# --- in-request retries ----------------------------------------------------------------------


async def test_500_once_is_retried_within_the_send(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """One 500 is followed by a fast retry in the same send, which delivers."""
    gateway = gateway_for(customs)
    customs.fail_next(1, "error")
    receipt = await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert receipt.declaration_batch_id == "DB-1"
    assert customs.requests == 2
    assert len(gateway_for.sleeps.delays) == 1
    assert 0.005 <= gateway_for.sleeps.delays[0] <= 0.015  # backoff_s 0.01, jitter +/- 50 %


async def test_429_waits_for_retry_after(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A 429 with Retry-After within the cap is waited for, then the send delivers."""
    gateway = gateway_for(customs, retry_after_cap_s=5)
    customs.retry_after_s = 3
    customs.fail_next(1, "throttle")
    await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert gateway_for.sleeps.delays == [3.0]
    assert customs.requests == 2


async def test_retry_after_beyond_the_cap_ends_the_send(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A Retry-After longer than the cap is left to the durable retry: no in-request wait."""
    gateway = gateway_for(customs, retry_after_cap_s=5)
    customs.retry_after_s = 120
    customs.mode = "throttle"
    with pytest.raises(CustomsUnavailable, match="retry after 120 s") as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert caught.value.context["retry_after_s"] == 120
    assert customs.requests == 1
    assert gateway_for.sleeps.delays == []


async def test_persistent_500_is_unavailable_after_the_fast_retries(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A 500 every time gives up after fast_retries + 1 requests with CustomsUnavailable."""
    gateway = gateway_for(customs, fast_retries=3)
    customs.mode = "error"
    with pytest.raises(CustomsUnavailable, match=r"failed 4 time\(s\); last: HTTP 500") as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert caught.value.context["attempts"] == 4
    assert customs.requests == 4
    delays = gateway_for.sleeps.delays
    assert len(delays) == 3
    assert delays[0] <= 0.015 < 0.02 <= delays[2]  # exponential: 0.01, 0.02, 0.04 +/- 50 %
    assert customs.batches == []


async def test_dropped_connections_are_unavailable(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A Customs that drops the connection is retried, then CustomsUnavailable."""
    gateway = gateway_for(customs)
    customs.mode = "down"
    with pytest.raises(CustomsUnavailable, match="disconnected") as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert caught.value.context["attempts"] == 3
    assert customs.requests == 3
    assert customs.batches == []


async def test_a_stopped_customs_is_unavailable(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """Nothing listening on the port (connection refused) is CustomsUnavailable."""
    gateway = gateway_for(customs)
    await customs.stop()
    with pytest.raises(CustomsUnavailable, match="ClientConnectorError"):
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert len(gateway_for.sleeps.delays) == 2


async def test_a_slow_customs_times_out(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """An answer slower than total_timeout_s is a timeout: CustomsUnavailable."""
    gateway = gateway_for(customs, total_timeout_s=0.2, fast_retries=0)
    customs.mode = "slow"
    with pytest.raises(CustomsUnavailable, match="Timeout"):
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert customs.requests == 1


# --- refusals and bad receipts ---------------------------------------------------------------


async def test_refusal_is_customs_refused_with_the_problem_code(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A 400 problem answer is CustomsRefused with Customs' code, and is not retried."""
    gateway = gateway_for(customs)
    customs.fail_next(1, "refuse")
    with pytest.raises(CustomsRefused, match="HTTP 400 declaration_refused") as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert caught.value.context["customs_code"] == "declaration_refused"
    assert caught.value.context["status"] == 400
    assert customs.requests == 1
    assert gateway_for.sleeps.delays == []


async def test_batch_signed_with_an_untrusted_key_is_refused_until_trusted(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """Customs refuses a batch signed with a key it does not trust, and accepts it after
    trust(); during a rotation overlap both keys are accepted, then the old one is not."""
    gateway = gateway_for(customs)
    rotated = new_key("EADC-TEST rotated")
    with pytest.raises(CustomsRefused) as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(rotated, "DB-1"))
    assert caught.value.context["customs_code"] == "certificate_untrusted"
    assert customs.refusals == ["certificate_untrusted"]
    customs.trust(rotated.certificate)
    await gateway.send(DESTINATION, "DB-1", signed_batch(rotated, "DB-1"))
    await gateway.send(DESTINATION, "DB-2", signed_batch(keys.connector, "DB-2"))  # overlap
    customs.distrust(keys.connector.certificate)
    with pytest.raises(CustomsRefused, match="certificate_untrusted"):
        await gateway.send(DESTINATION, "DB-3", signed_batch(keys.connector, "DB-3"))
    assert customs.batches == ["DB-1", "DB-2"]
    assert customs.received["DB-1"].signer_fingerprint == rotated.fingerprint
    customs.trust(keys.connector.certificate)  # the key fixture is shared by the module


async def test_unsigned_and_invalid_batches_are_refused(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """An unsigned batch, a signed but schema-invalid one and another destination's are
    refused with their codes."""
    gateway = gateway_for(customs)
    unsigned = signed_batch(keys.connector, "DB-1").split(b"<ds:Signature")[0]
    unsigned += b"</DeclarationBatch>"
    invalid = signing.sign(
        signed_batch(keys.connector, "DB-2")
        .split(b"<ds:Signature")[0]
        .replace(b"<Version>1</Version>", b"<Version>0</Version>", 1)
        + b"</DeclarationBatch>",
        keys.connector,
    )
    elsewhere = signed_batch(keys.connector, "DB-3", destination="UK-CDS")
    for batch_id, data, code in [
        ("DB-1", unsigned, "signature_invalid"),
        ("DB-2", invalid, "envelope_invalid"),
        ("DB-3", elsewhere, "destination_mismatch"),
    ]:
        with pytest.raises(CustomsRefused) as caught:
            await gateway.send(DESTINATION, batch_id, data)
        assert caught.value.context["customs_code"] == code
    assert customs.batches == []


async def test_reused_batch_id_with_other_items_is_refused(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A batch id already used for other declarations is refused, not called a duplicate."""
    gateway = gateway_for(customs)
    await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    other = signed_batch(keys.connector, "DB-1", versions=[2, 2, 2])
    with pytest.raises(CustomsRefused) as caught:
        await gateway.send(DESTINATION, "DB-1", other)
    assert caught.value.context["status"] == 409
    assert caught.value.context["customs_code"] == "batch_id_reused"
    assert len(customs.declarations) == 3


async def test_wrong_url_is_unavailable_not_refused(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A 404 (wrong endpoint URL) is not a verdict on the batch: CustomsUnavailable, no retry."""
    gateway = gateway_for(customs, url=customs.url + "/v1/wrong")
    with pytest.raises(CustomsUnavailable, match="HTTP 404"):
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert gateway_for.sleeps.delays == []
    assert customs.requests == 0


async def test_receipt_with_a_bad_signature_is_signature_invalid(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A receipt that does not verify raises SignatureInvalid; the resend is a duplicate."""
    gateway = gateway_for(customs)
    batch = signed_batch(keys.connector, "DB-1")
    customs.fail_next(1, "bad_signature")
    with pytest.raises(SignatureInvalid, match="does not verify") as caught:
        await gateway.send(DESTINATION, "DB-1", batch)
    assert caught.value.context["check"] == "digest"
    assert customs.batches == ["DB-1"]  # Customs took the batch; only the receipt was bad
    receipt = await gateway.send(DESTINATION, "DB-1", batch)  # the forward stage's retry
    assert _receipt_status(receipt.receipt, customs) is ReceiptStatus.DUPLICATE
    assert len(customs.declarations) == 3


async def test_receipt_of_another_batch_is_refused(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A validly signed receipt naming another batch id does not acknowledge this one."""
    gateway = gateway_for(customs)
    customs.fail_next(1, "wrong_batch")
    with pytest.raises(SignatureInvalid, match="names another batch") as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert caught.value.context["check"] == "receipt_batch_mismatch"


async def test_receipt_of_another_destination_is_refused(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A receipt naming another destination than the endpoint's is refused."""
    customs.destination = None
    gateway = gateway_for(customs)
    batch = signed_batch(keys.connector, "DB-1", destination="UK-CDS")
    with pytest.raises(SignatureInvalid) as caught:
        await gateway.send(DESTINATION, "DB-1", batch)
    assert caught.value.context["check"] == "receipt_destination_mismatch"


async def test_receipt_signed_with_an_unpinned_certificate_is_untrusted(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys
) -> None:
    """A receipt verifies only against the pinned Customs certificates."""
    gateway = gateway_for(customs, customs_certificates=(new_key("Not Customs").certificate,))
    with pytest.raises(CertificateUntrusted):
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))


# --- TLS ---------------------------------------------------------------------------------------


async def test_server_certificate_of_another_ca_is_unavailable_without_retry(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys, tmp_path: Path
) -> None:
    """A server certificate that does not chain to ca_file fails the handshake: the send is
    CustomsUnavailable at once (items stay queued until the trust is fixed), nothing sent."""
    other = LoopbackPki.create(tmp_path / "other")
    gateway = gateway_for(customs, ca_file=other.ca_file)
    with pytest.raises(CustomsUnavailable, match="TLS") as caught:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert "certificate verify failed" in caught.value.message
    assert gateway_for.sleeps.delays == []
    assert customs.requests == 0


async def test_customs_requiring_a_client_certificate_refuses_a_gateway_without_one(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys, tmp_path: Path
) -> None:
    """Without a client certificate, or with one of another CA, no request gets through."""
    other = LoopbackPki.create(tmp_path / "other").issue_client("stranger")
    for overrides in (
        {"client_cert_file": None, "client_key_file": None},
        {"client_cert_file": other.cert_file, "client_key_file": other.key_file},
    ):
        gateway = gateway_for(customs, **overrides)
        with pytest.raises(CustomsUnavailable):
            await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert customs.requests == 0


async def test_encrypted_client_key_with_its_passphrase(
    customs: MockCustoms, gateway_for: GatewayFactory, keys: Keys, pki: LoopbackPki
) -> None:
    """An encrypted client key works with its passphrase, which never reaches the logs."""
    secret = b"client key passphrase 42"
    client = pki.issue_client("encrypted-connector", passphrase=secret)
    gateway = gateway_for(
        customs,
        client_cert_file=client.cert_file,
        client_key_file=client.key_file,
        client_key_passphrase=secret,
    )
    with capture_logs() as logs:
        await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
    assert customs.received["DB-1"].client_fingerprint == client.fingerprint
    assert logs
    assert secret.decode() not in repr(logs)
    assert secret.decode() not in repr(gateway_for.endpoint(customs))


async def test_wrong_or_missing_passphrase_fails_at_construction(
    customs: MockCustoms, gateway_for: GatewayFactory, pki: LoopbackPki
) -> None:
    """An encrypted client key that does not decrypt is a ConfigurationError naming the file."""
    client = pki.issue_client("locked-connector", passphrase=b"the right one")
    for passphrase in (b"a wrong one", None):
        with pytest.raises(ConfigurationError, match=r"locked-connector\.key\.pem") as caught:
            gateway_for(
                customs,
                client_cert_file=client.cert_file,
                client_key_file=client.key_file,
                client_key_passphrase=passphrase,
            )
        assert "the right one" not in caught.value.message
        assert "a wrong one" not in caught.value.message


def test_client_context_is_strict(pki: LoopbackPki, client_cert: IssuedCertificate) -> None:
    """The client TLS context verifies the server and its host name, with TLS 1.2 at least."""
    context = client_ssl_context(pki.ca_file, client_cert.cert_file, client_cert.key_file)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    with pytest.raises(ConfigurationError, match="CA bundle"):
        client_ssl_context(pki.directory / "missing.pem")


# --- configuration -----------------------------------------------------------------------------


def _endpoint(**overrides: object) -> CustomsEndpoint:
    settings: dict[str, object] = {
        "destination": DESTINATION,
        "url": "https://127.0.0.1:9/v1/declarations",
        "customs_certificates": (new_key("Customs").certificate,),
    } | overrides
    return CustomsEndpoint(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"url": "http://127.0.0.1:9/v1/declarations"}, "url"),
        ({"url": "127.0.0.1:9/v1/declarations"}, "url"),
        ({"url": "https:///v1/declarations"}, "url"),
        ({"url": "https://user:pw@127.0.0.1/v1/declarations"}, "url"),
        ({"customs_certificates": ()}, "customs_certificates"),
        ({"client_key_file": Path("key.pem")}, "client_cert_file"),
        ({"total_timeout_s": 0}, "total_timeout_s"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"fast_retries": -1}, "fast_retries"),
    ],
    ids=[
        "http",
        "no-scheme",
        "no-host",
        "credentials",
        "no-pinned-certificate",
        "key-without-cert",
        "zero-timeout",
        "zero-concurrency",
        "negative-retries",
    ],
)
def test_endpoint_refuses_bad_configuration(overrides: dict[str, object], key: str) -> None:
    """http:// and other unusable endpoint settings are ConfigurationErrors naming the key."""
    with pytest.raises(ConfigurationError) as caught:
        _endpoint(**overrides)
    assert caught.value.context["key"] == key


async def test_unknown_destination_and_bad_batch_id_are_refused() -> None:
    """Sending to an unconfigured destination, or with a header-unsafe batch id, fails first."""
    gateway = HttpCustomsGateway({DESTINATION: _endpoint()}, SystemClock())
    with pytest.raises(ConfigurationError, match="UK-CDS"):
        await gateway.send("UK-CDS", "DB-1", b"<x/>")
    with pytest.raises(InvalidMessage):
        await gateway.send(DESTINATION, "DB-1\r\nX-Evil: 1", b"<x/>")
    await gateway.close()


def test_gateway_refuses_an_endpoint_listed_under_another_name() -> None:
    """The mapping key must be the endpoint's own destination id."""
    endpoint = _endpoint()
    with pytest.raises(ConfigurationError):
        HttpCustomsGateway({"UK-CDS": endpoint}, SystemClock())
    assert HttpCustomsGateway({DESTINATION: endpoint}, SystemClock()).destinations == (DESTINATION,)
    assert "customs_certificates" not in repr(replace(endpoint, client_key_passphrase=b"x"))
