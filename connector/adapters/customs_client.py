"""The Customs gateway over HTTPS with mutual TLS: POST a signed batch, verify the signed receipt.

:class:`HttpCustomsGateway` implements :class:`~connector.ports.CustomsGateway`. Per
destination it keeps one long-lived :class:`aiohttp.ClientSession` (created at first use) on an
:class:`ssl.SSLContext` from :func:`client_ssl_context`, and a semaphore bounding concurrent
sends. One :meth:`~HttpCustomsGateway.send`:

1. ``POST <url>`` with the signed batch, ``Content-Type: application/xml`` and
   ``Idempotency-Key: <declaration batch id>`` (Customs answers a repeated id with a
   ``duplicate`` receipt and declares nothing again);
2. on a connection error, a timeout, ``408``, ``425``, ``429`` or ``5xx``: up to
   ``fast_retries`` more attempts after a short exponential backoff with jitter, or after the
   ``Retry-After`` the answer asked for when it is no longer than ``retry_after_cap_s`` (a longer
   one ends the send at once); then :class:`~connector.errors.CustomsUnavailable`, which the
   forward stage retries later from its durable outbox;
3. ``2xx``: the body is a declaration receipt, verified against the destination's pinned
   Customs certificates (:func:`connector.core.signing.verify`); only the verified tree is read,
   and it must name the batch sent and this destination. Any fault of the receipt raises
   :class:`~connector.errors.SignatureInvalid` (the forward stage sends the batch again later,
   under the same id, so Customs does not declare it twice).

Errors that another attempt in the same send cannot fix are not retried in-request:

- a TLS failure (the server certificate does not verify, or the server refused our client
  certificate) raises ``CustomsUnavailable`` at once. It is a configuration or rotation
  problem, not a verdict on the declaration, so the items stay queued and are sent once the
  certificates are fixed;
- ``401``, ``403``, ``404``, ``405`` (our credentials or the endpoint URL) and ``3xx``
  (redirects are never followed) raise ``CustomsUnavailable`` at once, for the same reason;
- any other ``4xx`` is Customs refusing the batch: :class:`~connector.errors.CustomsRefused`
  with the problem ``code`` and ``detail`` of the ``application/problem+json`` body.

Logs go to ``connector.customs`` (URLs, statuses, batch ids; never key material).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Final, cast
from urllib.parse import urlsplit

import aiohttp
import structlog
from cryptography import x509
from lxml import etree

from connector.core import receipts, signing
from connector.core.schemas import MessageKind, default_registry
from connector.errors import (
    ConfigurationError,
    ConnectorError,
    CustomsRefused,
    CustomsUnavailable,
    InvalidMessage,
    SignatureInvalid,
)
from connector.ports import Clock, CustomsReceipt

__all__ = [
    "DEFAULT_MAX_RECEIPT_BYTES",
    "CustomsEndpoint",
    "HttpCustomsGateway",
    "client_ssl_context",
]

DEFAULT_MAX_RECEIPT_BYTES: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024
_RETRY_STATUSES: Final = frozenset({408, 425, 429})
_NOT_A_VERDICT: Final = frozenset({401, 403, 404, 405})
_BATCH_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_MAX_DETAIL: Final = 300
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")

_log = structlog.get_logger("connector.customs")

Sleep = Callable[[float], Awaitable[object]]


def client_ssl_context(
    ca_file: Path | str | None,
    cert_file: Path | str | None = None,
    key_file: Path | str | None = None,
    passphrase: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS client context: TLS >= 1.2, server certificate and host name always verified.

    ``ca_file`` is the PEM bundle the server certificate must chain to (None: the system
    trust store). ``cert_file`` (with ``key_file``, default the same file) is the client
    certificate chain presented for mTLS; ``passphrase`` decrypts the key. An encrypted key
    without a passphrase fails here instead of prompting on a terminal.

    Raises:
        ConfigurationError: a file is missing or unreadable, or the key does not decrypt or
            does not match the certificate. The message names the file, never the passphrase.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"Cannot load the CA bundle {ca_file}: {_reason(exc)}", key="ca_file"
        ) from exc
    if cert_file is None:
        if key_file is not None:
            raise ConfigurationError(
                "A client key needs its client certificate.", key="client_cert_file"
            )
        return context

    def password() -> bytes:
        return passphrase or b""

    try:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None, password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"Cannot load the client certificate {cert_file} with key {key_file or cert_file}: "
            f"{_reason(exc)} (missing file, wrong passphrase, or a key of another certificate).",
            key="client_cert_file",
        ) from exc
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomsEndpoint:
    """How to reach one Customs destination, and whose receipts to trust.

    Raises:
        ConfigurationError: a URL that is not ``https://host...``, no pinned Customs
            certificate, a client key without its certificate, or a limit out of range.
    """

    destination: str
    """The destination id the forward stage routes items to (``CustomsGateway.send``)."""
    url: str
    """The full ``https://`` URL batches are POSTed to."""
    ca_file: Path | None = None
    """PEM bundle the server certificate must chain to; None: the system trust store.
    Server verification is always on."""
    client_cert_file: Path | None = None
    """Our mTLS client certificate (chain), PEM; None: no client certificate."""
    client_key_file: Path | None = None
    """Its private key, PEM; None: the key is in ``client_cert_file``."""
    client_key_passphrase: bytes | None = field(default=None, repr=False)
    """Decrypts ``client_key_file``; never logged or printed."""
    customs_certificates: tuple[x509.Certificate, ...] = field(repr=False)
    """Pinned signing certificates of Customs, for the receipts: several during a rotation."""
    connect_timeout_s: float = 10.0
    """Limit on establishing the connection (TCP and TLS)."""
    total_timeout_s: float = 60.0
    """Limit on one attempt, from connecting to the last byte of the answer."""
    max_concurrency: int = 4
    """Sends in flight to this destination at once (also the connection pool size)."""
    fast_retries: int = 2
    """Further attempts within one send after a retryable failure."""
    retry_after_cap_s: float = 30.0
    """The longest ``Retry-After`` waited for within a send; longer ones end the send."""
    backoff_s: float = 0.25
    """First in-request backoff; doubles per attempt, with jitter of +/- 50 %."""
    max_receipt_bytes: int = DEFAULT_MAX_RECEIPT_BYTES
    """Largest answer body read."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigurationError(
                f"The Customs URL of {self.destination} must be https://host/..., not "
                f"{parts.scheme or 'no scheme'}://: declarations never travel unencrypted.",
                key="url",
            )
        if parts.username is not None or parts.password is not None:
            raise ConfigurationError(
                f"The Customs URL of {self.destination} must not carry credentials.", key="url"
            )
        certificates = tuple(self.customs_certificates)
        if not certificates or not all(isinstance(c, x509.Certificate) for c in certificates):
            raise ConfigurationError(
                f"Customs destination {self.destination} needs at least one pinned signing "
                "certificate to verify its receipts.",
                key="customs_certificates",
            )
        object.__setattr__(self, "customs_certificates", certificates)
        if self.client_key_file is not None and self.client_cert_file is None:
            raise ConfigurationError(
                f"Customs destination {self.destination}: a client key needs its certificate.",
                key="client_cert_file",
            )
        for name in ("connect_timeout_s", "total_timeout_s", "backoff_s"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive.", key=name)
        if self.retry_after_cap_s < 0:
            raise ConfigurationError(
                "retry_after_cap_s must not be negative.", key="retry_after_cap_s"
            )
        if self.max_concurrency < 1:
            raise ConfigurationError("max_concurrency must be at least 1.", key="max_concurrency")
        if not 0 <= self.fast_retries <= 10:
            raise ConfigurationError("fast_retries must be from 0 to 10.", key="fast_retries")
        if self.max_receipt_bytes < 1:
            raise ConfigurationError("max_receipt_bytes must be positive.", key="max_receipt_bytes")

    @property
    def verify_policy(self) -> signing.VerifyPolicy:
        """The policy receipts are verified with: the pinned certificates, default algorithms."""
        return signing.VerifyPolicy(self.customs_certificates)


@dataclass
class _Peer:
    """The live state of one destination."""

    endpoint: CustomsEndpoint
    ssl_context: ssl.SSLContext
    policy: signing.VerifyPolicy
    session: aiohttp.ClientSession | None = None
    semaphore: asyncio.Semaphore | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    retry_after: str | None


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class HttpCustomsGateway:
    """Sends signed declaration batches to Customs destinations over HTTPS with mTLS.

    ``clock`` dates a ``Retry-After`` given as an HTTP date; receipts' certificates are checked
    at the real time, like the TLS certificates. ``sleep`` and ``rng`` are the in-request
    backoff's (tests pass a recorder). Call :meth:`close` at shutdown.

    Raises:
        ConfigurationError: at construction, an endpoint's TLS files cannot be loaded, or a
            mapping key differs from its endpoint's destination.
    """

    def __init__(
        self,
        endpoints: Mapping[str, CustomsEndpoint],
        clock: Clock,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not cryptography
        self._peers: dict[str, _Peer] = {}
        for destination, endpoint in endpoints.items():
            if destination != endpoint.destination:
                raise ConfigurationError(
                    f"Customs endpoint {endpoint.destination!r} is listed as {destination!r}.",
                    key="destination",
                )
            context = client_ssl_context(
                endpoint.ca_file,
                endpoint.client_cert_file,
                endpoint.client_key_file,
                endpoint.client_key_passphrase,
            )
            self._peers[destination] = _Peer(endpoint, context, endpoint.verify_policy)

    def __repr__(self) -> str:
        return f"HttpCustomsGateway({sorted(self._peers)})"

    @property
    def destinations(self) -> tuple[str, ...]:
        """The configured destination ids."""
        return tuple(self._peers)

    async def close(self) -> None:
        """Close every open session; a later send opens a new one."""
        for peer in self._peers.values():
            session, peer.session = peer.session, None
            if session is not None:
                await session.close()

    async def send(
        self, destination: str, declaration_batch_id: str, signed_xml: bytes
    ) -> CustomsReceipt:
        """Deliver one signed batch and return Customs' verified receipt.

        Raises:
            ConfigurationError: ``destination`` is not configured.
            InvalidMessage: ``declaration_batch_id`` is not an Identifier (header-safe).
            CustomsUnavailable: not delivered now (retry later); the message says why, with
                the last status and the number of attempts.
            CustomsRefused: Customs refused the batch (4xx); the message has its problem code.
            SignatureInvalid: the receipt does not verify, or is not the receipt of this batch
                from this destination (``context["check"]`` says which).
        """
        peer = self._peers.get(destination)
        if peer is None:
            raise ConfigurationError(
                f"No Customs endpoint is configured for destination {destination!r}.",
                destination=destination,
            )
        if not _BATCH_ID.fullmatch(declaration_batch_id):
            raise InvalidMessage(
                f"Declaration batch id {declaration_batch_id[:80]!r} is not an Identifier."
            )
        log = _log.bind(destination=destination, declaration_batch_id=declaration_batch_id)
        if peer.semaphore is None:
            peer.semaphore = asyncio.Semaphore(peer.endpoint.max_concurrency)
        async with peer.semaphore:
            answer, attempts = await self._deliver(peer, declaration_batch_id, signed_xml, log)
        if 200 <= answer.status < 300:
            receipt = self._receipt(peer, declaration_batch_id, answer.body)
            log.info("customs.sent", status=answer.status, attempts=attempts)
            return receipt
        raise self._failure(peer, declaration_batch_id, answer, attempts, log)

    async def _deliver(
        self,
        peer: _Peer,
        batch_id: str,
        signed_xml: bytes,
        log: structlog.typing.FilteringBoundLogger,
    ) -> tuple[_Answer, int]:
        """POST until an answer that is not retryable, or raise CustomsUnavailable."""
        endpoint = peer.endpoint
        last: _Retryable | None = None
        attempts = endpoint.fast_retries + 1
        for attempt in range(1, attempts + 1):
            if last is not None:
                await self._sleep(self._delay(endpoint, attempt - 1, last))
            try:
                answer = await self._post(peer, batch_id, signed_xml)
            except _Retryable as exc:
                last = exc
            else:
                if not _retryable(answer.status):
                    return answer, attempt
                last = _Retryable(f"HTTP {answer.status}", self._retry_after(answer))
            log.warning("customs.attempt_failed", attempt=attempt, reason=last.reason)
            if last.retry_after_s is not None and last.retry_after_s > endpoint.retry_after_cap_s:
                raise CustomsUnavailable(
                    f"{endpoint.url} asked to retry after {last.retry_after_s:g} s ({last.reason}, "
                    f"attempt {attempt}); more than the {endpoint.retry_after_cap_s:g} s waited "
                    "within a send.",
                    destination=endpoint.destination,
                    attempts=attempt,
                    retry_after_s=last.retry_after_s,
                )
        assert last is not None
        raise CustomsUnavailable(
            f"{endpoint.url} failed {attempts} time(s); last: {last.reason}.",
            destination=endpoint.destination,
            attempts=attempts,
        ) from (last.__cause__ or last)

    def _delay(self, endpoint: CustomsEndpoint, retry: int, last: _Retryable) -> float:
        if last.retry_after_s is not None:
            return last.retry_after_s
        base = endpoint.backoff_s * 2 ** (retry - 1)
        return float(base * (0.5 + self._rng.random()))

    async def _post(self, peer: _Peer, batch_id: str, signed_xml: bytes) -> _Answer:
        endpoint = peer.endpoint
        session = self._session(peer)
        headers = {
            "Content-Type": "application/xml",
            "Accept": "application/xml, application/problem+json",
            "Idempotency-Key": batch_id,
        }
        try:
            async with session.post(
                endpoint.url, data=signed_xml, headers=headers, allow_redirects=False
            ) as response:
                body = await _read_limited(response, endpoint.max_receipt_bytes)
                return _Answer(
                    status=response.status,
                    body=body,
                    content_type=response.content_type,
                    retry_after=response.headers.get("Retry-After"),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            tls = _tls_error(exc)
            if tls is not None:
                raise CustomsUnavailable(
                    f"TLS with {endpoint.url} failed: {tls}. Check the CA bundle, the server "
                    "certificate and our client certificate.",
                    destination=endpoint.destination,
                ) from exc
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ") if str(exc) else type(exc).__name__
            raise _Retryable(_clean(reason)) from exc

    def _session(self, peer: _Peer) -> aiohttp.ClientSession:
        if peer.session is None or peer.session.closed:
            endpoint = peer.endpoint
            connector = aiohttp.TCPConnector(
                ssl=peer.ssl_context,
                limit=endpoint.max_concurrency,
                limit_per_host=endpoint.max_concurrency,
            )
            peer.session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=endpoint.total_timeout_s, sock_connect=endpoint.connect_timeout_s
                ),
                trust_env=False,
            )
        return peer.session

    def _retry_after(self, answer: _Answer) -> float | None:
        value = (answer.retry_after or "").strip()
        if not value:
            return None
        if value.isascii() and value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.utcoffset() is None:
            return None
        return max(0.0, (when - self._clock.now()).total_seconds())

    def _failure(
        self,
        peer: _Peer,
        batch_id: str,
        answer: _Answer,
        attempts: int,
        log: structlog.typing.FilteringBoundLogger,
    ) -> ConnectorError:
        endpoint = peer.endpoint
        code, detail = _problem(answer)
        context: dict[str, object] = {
            "destination": endpoint.destination,
            "status": answer.status,
            "attempts": attempts,
        }
        if code is not None:
            context["customs_code"] = code
        described = f"HTTP {answer.status}" + (f" {code}" if code else "")
        described += f": {detail}" if detail else ""
        if 400 <= answer.status < 500 and answer.status not in _NOT_A_VERDICT:
            log.warning("customs.refused", status=answer.status, customs_code=code)
            return CustomsRefused(
                f"{endpoint.destination} refused declaration batch {batch_id}: {described}",
                **context,
            )
        log.warning("customs.unusable_answer", status=answer.status, customs_code=code)
        hint = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        return CustomsUnavailable(
            f"{endpoint.url} answered {described}{hint}; check the endpoint URL and our "
            "client certificate.",
            **context,
        )

    def _receipt(self, peer: _Peer, batch_id: str, body: bytes) -> CustomsReceipt:
        """The verified receipt of ``batch_id``, or SignatureInvalid."""
        endpoint = peer.endpoint
        where = f"The receipt of {endpoint.destination} for declaration batch {batch_id}"
        try:
            result = signing.verify(body, peer.policy)  # at the real time, as TLS does
        except SignatureInvalid as exc:
            raise type(exc)(
                f"{where} does not verify: {exc.message}",
                **{**exc.context, "destination": endpoint.destination},
            ) from exc
        except InvalidMessage as exc:
            raise SignatureInvalid(
                f"{where} is not usable XML: {exc.message}",
                check="receipt_unreadable",
                destination=endpoint.destination,
            ) from exc
        document = result.signed_xml
        schema = default_registry().lxml(MessageKind.DECLARATION_RECEIPT)
        if document.tag != MessageKind.DECLARATION_RECEIPT.root_tag or not schema.validate(
            document
        ):
            first = next(iter(cast("Iterable[etree._LogEntry]", schema.error_log)), None)
            raise SignatureInvalid(
                f"{where} is signed but not a valid declaration receipt"
                + (f": line {first.line}: {_clean(first.message)[:_MAX_DETAIL]}" if first else "."),
                check="receipt_invalid",
                destination=endpoint.destination,
            )
        try:
            info = receipts.read_declaration_receipt(document)
        except InvalidMessage as exc:
            raise SignatureInvalid(
                f"{where} is signed but unusable: {exc.message}",
                check="receipt_invalid",
                destination=endpoint.destination,
            ) from exc
        if info.declaration_batch_id != batch_id:
            raise SignatureInvalid(
                f"{where} names another batch, {info.declaration_batch_id}: a receipt of "
                "another batch cannot acknowledge this one.",
                check="receipt_batch_mismatch",
                destination=endpoint.destination,
            )
        if info.destination != endpoint.destination:
            raise SignatureInvalid(
                f"{where} names another destination, {info.destination}.",
                check="receipt_destination_mismatch",
                destination=endpoint.destination,
            )
        if info.duplicate:
            _log.info(
                "customs.duplicate",
                destination=endpoint.destination,
                declaration_batch_id=batch_id,
                received_at=info.received_at.isoformat(),
            )
        return CustomsReceipt(
            destination=endpoint.destination,
            declaration_batch_id=batch_id,
            received_at=info.received_at,
            receipt=body,
        )


def _retryable(status: int) -> bool:
    return status in _RETRY_STATUSES or 500 <= status < 600


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    length = response.content_length
    if length is not None and length > limit:
        raise _Retryable(f"HTTP {response.status} with a body of {length} bytes (limit {limit})")
    data = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise _Retryable(f"HTTP {response.status} with a body over {limit} bytes")
    return bytes(data)


def _tls_error(exc: BaseException) -> str | None:
    """A description of the TLS failure behind ``exc``, or None if it is not one."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ClientConnectorCertificateError):
            return _clean(str(seen.certificate_error))
        if isinstance(seen, ssl.SSLError):
            return _clean(seen.reason or str(seen))
        if isinstance(seen, aiohttp.ClientSSLError):
            return _clean(str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _problem(answer: _Answer) -> tuple[str | None, str]:
    """The problem ``code`` and ``detail`` of an error answer (or a bit of its text)."""
    text = answer.body.decode("utf-8", "replace")
    if answer.content_type in {"application/problem+json", "application/json"}:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code")
            detail = body.get("detail") or body.get("title") or ""
            return (
                _clean(str(code))[:64] if code else None,
                _clean(str(detail))[:_MAX_DETAIL],
            )
    return None, _clean(text)[:_MAX_DETAIL]


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()
