"""Referral answers: ``POST /v1/answers`` (DESIGN.md section 5).

The authenticated operator answers a REQUEST_INFO (free text and/or document references) or a
REQUEST_SCREENING (the screening outcome) with a referral answer (``application/xml``,
referral-answer-1.xsd) quoting the ``ReferralReference`` of the item notice. The answer is
validated, checked against the referral pending on the item, stored and queued for Customs in
one transaction (:class:`~connector.flow.answer.AnswerService`); the item moves to FORWARDING.

The answer (200, JSON), the same for the same answer sent again (nothing changes then)::

    {"answer_id": "A-1", "item_id": "RR123456785DE", "reference": "...",
     "referral_reference": "RF-...", "referral": "REQUEST_INFO", "state": "FORWARDING",
     "received_at": "..."}

Refusals (problem+json): ``403 forbidden`` for an answer naming another operator;
``404 not_found`` when the caller has no such item or no referral is pending on it (never
referred, decided since, or answered already; another operator's item looks the same);
``409 referral_mismatch`` for another referral reference or the wrong kind of answer;
``409 illegal_transition`` for an answer id used before for another answer; ``400`` for XML
that is unsafe, malformed or not a valid referral answer.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from connector.adapters.web import auth, server
from connector.flow.answer import AnswerService

__all__ = ["ANSWERS", "ANSWER_ROUTES", "post_answer"]

ANSWERS: Final[web.AppKey[AnswerService]] = web.AppKey("answers", AnswerService)
"""The answer intake (absent: one over the app's store and clock, without a wake-up)."""


async def post_answer(request: web.Request) -> web.Response:
    """Take one referral answer of the authenticated operator."""
    operator = await auth.authenticated_operator(request)
    server._require_xml_body(request)
    body = await server._read_body(request)
    service = request.app.get(ANSWERS)
    if service is None:
        service = AnswerService(request.app[server.STORE], request.app[server.CLOCK])
    recorded = await service.receive(operator.operator_id, body)
    return web.json_response(recorded.as_dict())


ANSWER_ROUTES: Final = (web.post("/v1/answers", post_answer, name="post_answer"),)
