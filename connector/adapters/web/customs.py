"""The Customs callback: ``POST /v1/customs/{destination}/responses``.

A Customs destination posts its signed customs response (``application/xml``, UTF-8, at most
the configured body size). **The signature is the authentication**: the body must verify
against the certificates pinned for that destination (``[[destinations]] certificates``), so
no token or client certificate is asked for; a forged, replayed, stale or misdirected response
changes nothing and is answered with a problem whose ``code`` says why
(``signature_invalid``, ``certificate_untrusted``, ``response_replayed``, ``response_stale``,
``response_misdirected``, ``envelope_invalid``...). An unknown destination, or a connector
without Customs destinations, is ``404 not_found``. Put mTLS in front when the network
requires it; it adds transport protection, not authority.

The answer (200, JSON) counts the decisions and lists the refused ones::

    {"destination": "EU-ICS2", "response_id": "...", "decisions": 3, "applied": 2,
     "repeated": 0, "problems": [{"index": 2, "item_reference": "...", "item_id": "...",
     "path": "/CustomsResponse/Decisions/Decision[3]", "code": "item_unknown",
     "message": "..."}]}
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from connector.adapters.web import server
from connector.errors import NotFound
from connector.flow.decide import DecideService

__all__ = ["CUSTOMS_ROUTES", "DECIDE", "receive_response"]

DECIDE: Final[web.AppKey[DecideService | None]] = web.AppKey("decide")
"""The decide stage (None or absent: no Customs destination takes responses)."""


async def receive_response(request: web.Request) -> web.Response:
    """Verify and apply one signed Customs response of ``{destination}``."""
    destination = request.match_info["destination"]
    decide = request.app.get(DECIDE)
    if decide is None or destination not in decide.destinations:
        raise NotFound(f"no Customs destination {destination[:64]!r}")
    server._require_xml_body(request)
    body = await server._read_body(request)
    outcome = await decide.receive(destination, body)
    return web.json_response(outcome.as_dict())


CUSTOMS_ROUTES: Final = (
    web.post("/v1/customs/{destination}/responses", receive_response, name="customs_responses"),
)
