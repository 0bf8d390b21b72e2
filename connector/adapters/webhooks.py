"""Operators' notice webhooks over HTTP(S): POST one signed notice, read the status.

:class:`HttpNoticeWebhook` implements :class:`~connector.ports.NoticeWebhook` with one
long-lived :class:`aiohttp.ClientSession` (created at first use) whose connection pool bounds
the requests in flight (``max_concurrency``). One :meth:`~HttpNoticeWebhook.deliver` is one
``POST <webhook_url>`` with the signed notice as stored, ``Content-Type: application/xml``
and ``X-Notice-Id: <notice id>``; there are no in-request retries (the notify stage's durable
backoff retries). The answer:

- ``2xx``: delivered (the body is not read beyond a small limit);
- a connection error, a timeout, a TLS failure, ``408``, ``425``, ``429``, ``5xx``, a redirect
  (never followed: a notice goes only where it was configured to) and ``401``, ``403``,
  ``404``, ``405`` (the endpoint's configuration, not a verdict on the notice):
  :class:`~connector.errors.WebhookUnavailable`, retried later;
- any other ``4xx`` (``400``, ``410 Gone``, ``413``, ``415``, ``422``, ...): the operator's
  endpoint refused this notice, :class:`~connector.errors.WebhookRefused`, dead at once.

TLS server verification is always on for ``https://`` webhooks (``ca_file``, else the system
trust store; host names checked). The webhook needs no shared secret: each notice is
XML-DSig signed by the connector. Logs name the webhook without its query string, which may
hold an operator's token.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import structlog

from connector.adapters.customs_client import client_ssl_context
from connector.errors import ConfigurationError, InvalidMessage, WebhookRefused, WebhookUnavailable

__all__ = ["HttpNoticeWebhook", "safe_url"]

_UNAVAILABLE: Final = frozenset({401, 403, 404, 405, 408, 425, 429})
_NOTICE_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_MAX_ANSWER: Final = 4096
_MAX_DETAIL: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")

_log = structlog.get_logger("connector.webhooks")


def safe_url(url: str) -> str:
    """The URL without its query and fragment, for logs and errors."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class HttpNoticeWebhook:
    """POSTs signed notices to webhooks; call :meth:`close` at shutdown.

    Raises:
        ConfigurationError: at construction, a limit out of range or a CA bundle that does
            not load.
    """

    def __init__(
        self,
        *,
        ca_file: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        total_timeout_s: float = 30.0,
        max_concurrency: int = 8,
        user_agent: str = "ead-connector",
    ) -> None:
        """``ssl_context`` replaces the one made from ``ca_file`` (tests)."""
        if not (connect_timeout_s > 0 and total_timeout_s > 0):
            raise ConfigurationError("webhook timeouts must be positive", key="timeout_seconds")
        if max_concurrency < 1:
            raise ConfigurationError("max_concurrency must be at least 1", key="concurrency")
        self._ssl = ssl_context if ssl_context is not None else client_ssl_context(ca_file)
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)
        self._max_concurrency = max_concurrency
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl, limit=self._max_concurrency, limit_per_host=self._max_concurrency
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        """Close the session; a later delivery opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, url: str, notice_id: str, signed_xml: bytes) -> None:
        """POST one signed notice (see the module docstring for how answers count).

        Raises:
            InvalidMessage: ``notice_id`` is not header-safe.
            WebhookUnavailable: not delivered now; send again later.
            WebhookRefused: the webhook refused the notice.
        """
        if not _NOTICE_ID.fullmatch(notice_id):
            raise InvalidMessage(f"notice id {notice_id[:80]!r} is not an Identifier")
        where = safe_url(url)
        headers = {
            "Content-Type": "application/xml",
            "X-Notice-Id": notice_id,
            "User-Agent": self._user_agent,
        }
        try:
            async with self._client().post(
                url, data=signed_xml, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                body = await response.content.read(_MAX_ANSWER)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = _clean(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            raise WebhookUnavailable(
                f"{where}: {reason}", webhook=where, notice_id=notice_id
            ) from exc
        if 200 <= status < 300:
            _log.debug("webhook.delivered", webhook=where, notice_id=notice_id, status=status)
            return
        detail = _clean(body.decode("utf-8", "replace"))
        text = f"{where} answered HTTP {status}" + (f": {detail}" if detail else "")
        if status < 400 or status >= 500 or status in _UNAVAILABLE:
            raise WebhookUnavailable(text, webhook=where, notice_id=notice_id, status=status)
        raise WebhookRefused(text, webhook=where, notice_id=notice_id, status=status)


def _clean(text: str) -> str:
    """One line, at most ``_MAX_DETAIL`` characters (an operator's text goes into logs)."""
    return _CONTROL.sub(" ", text).strip()[:_MAX_DETAIL]
