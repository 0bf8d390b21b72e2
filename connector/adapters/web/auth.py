"""Who is calling: operator authentication by bearer token or mTLS client certificate.

An operator proves its identity with one of:

- ``Authorization: Bearer <token>``: the SHA-256 hex digest of the token is looked up with
  :meth:`~connector.ports.ItemStore.operator_by_token`, then compared once more with
  :func:`hmac.compare_digest` against the record's stored digest;
- a TLS client certificate: the SHA-256 fingerprint of its DER bytes is looked up with
  :meth:`~connector.ports.ItemStore.operator_by_cert`. The server's SSL context must request
  client certificates (``CERT_OPTIONAL`` or ``CERT_REQUIRED``) and decides which issuers it
  trusts; a certificate is never the credential behind a TLS-terminating proxy.

An ``Authorization`` header, when present, decides alone: a wrong token is refused even if a
known certificate came with it, so a misconfigured client fails loudly. Tokens and their
digests are never logged; failures are logged with a reason only.

The admin API uses a separate token (``CONNECTOR_ADMIN_TOKEN``) checked by
:func:`require_admin`; an operator token never passes it, and the admin token never
authenticates an operator.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from typing import Final, Protocol

import structlog
from aiohttp import hdrs, web

from connector.adapters.web.ratelimit import RateLimiter
from connector.errors import NotAuthenticated, TooManyRequests
from connector.ports import OperatorRecord

__all__ = [
    "OPERATORS",
    "OperatorLookup",
    "authenticated_operator",
    "require_admin",
    "sha256_hex",
]


class OperatorLookup(Protocol):
    """The part of :class:`~connector.ports.ItemStore` that authentication needs."""

    async def operator_by_token(self, token_sha256: str) -> OperatorRecord | None: ...

    async def operator_by_cert(self, cert_sha256: str) -> OperatorRecord | None: ...


OPERATORS: Final[web.AppKey[OperatorLookup]] = web.AppKey("operators")
RATE_LIMITER: Final[web.AppKey[RateLimiter | None]] = web.AppKey("rate_limiter")
"""Per-operator request limit; absent or None: no limit."""
"""Where :func:`authenticated_operator` finds operators (the app factory sets the store)."""

_OPERATOR: Final = web.RequestKey("operator", OperatorRecord)
# Far above any real token; keeps a hostile header from costing a large hash.
_MAX_TOKEN_CHARS: Final = 1024

_log = structlog.get_logger("connector.web.auth")


def sha256_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 digest of ``data``, as tokens and certificates are stored."""
    return hashlib.sha256(data).hexdigest()


def _bearer_token(request: web.Request) -> str | None:
    """The bearer token of ``request``, None without an Authorization header."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_CHARS:
        raise _refused("malformed_authorization")
    return token


def _client_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


def _refused(reason: str) -> NotAuthenticated:
    _log.info("auth.refused", reason=reason)
    return NotAuthenticated()


def _same_digest(expected: str | None, presented: str) -> bool:
    return expected is not None and hmac.compare_digest(expected.lower(), presented)


async def authenticated_operator(request: web.Request) -> OperatorRecord:
    """The operator behind ``request``; raises NotAuthenticated (401) otherwise.

    The answer is kept on the request, so a handler may ask more than once.
    """
    if _OPERATOR in request:
        return request[_OPERATOR]
    operators = request.app[OPERATORS]
    token = _bearer_token(request)
    if token is not None:
        presented = sha256_hex(token.encode())
        record = await operators.operator_by_token(presented)
        if record is None or not _same_digest(record.token_sha256, presented):
            raise _refused("unknown_token")
    else:
        certificate = _client_certificate(request)
        if certificate is None:
            raise _refused("no_credentials")
        fingerprint = sha256_hex(certificate)
        record = await operators.operator_by_cert(fingerprint)
        if record is None or not _same_digest(record.cert_sha256, fingerprint):
            raise _refused("unknown_certificate")
    if not record.enabled:
        raise _refused("operator_disabled")
    limiter = request.app.get(RATE_LIMITER)
    if limiter is not None:
        wait = limiter.take(record.operator_id)
        if wait:
            _log.info("request.rate_limited", operator=record.operator_id)
            raise TooManyRequests(
                f"more than {limiter.rate:g} requests per second (bursts of {limiter.burst})",
                retry_after_s=round(wait, 3),
            )
    request[_OPERATOR] = record
    structlog.contextvars.bind_contextvars(operator=record.operator_id)
    return record


def require_admin(request: web.Request, admin_token_sha256: str | None) -> None:
    """Raise NotAuthenticated (401) unless ``request`` carries the admin token.

    ``admin_token_sha256`` is the SHA-256 hex digest of ``CONNECTOR_ADMIN_TOKEN``; None means
    no admin token is configured, and then nobody is an admin.
    """
    token = _bearer_token(request)
    if token is None:
        raise _refused("no_credentials")
    presented = sha256_hex(token.encode())
    if admin_token_sha256 is None or not _same_digest(admin_token_sha256, presented):
        raise _refused("not_admin")
