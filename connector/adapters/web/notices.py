"""The notices feed: ``GET /v1/notices?after=CURSOR&limit=N`` (DESIGN.md section 5).

The calling operator's signed item notices, oldest first, after ``CURSOR`` (the
``next_cursor`` of the previous page; 0 or absent: from the start), at most ``N``
(default 100, at most 1000). Ordered by the store's notice sequence, so a later decision on an
item always comes after the earlier one; scoped to the authenticated operator (another
operator's notices are never listed, and a cursor says nothing about them). The feed is
resumable: keep ``next_cursor`` (it stays the same when the page is empty) and ask again.

JSON (``Accept: application/json``)::

    {"notices": [{"notice_id", "item_id", "decision", "reason", "customs_reference",
                  "issued_at", "signed_xml", "sequence"}, ...], "next_cursor": "42"}

XML (the default, or ``Accept: application/xml``): each signed notice is a whole document
with an enveloped signature over itself, so the feed carries it base64-encoded, bytes and
signature intact (decode, then verify with the connector's certificate)::

    <NoticeFeed xmlns="urn:ead-connector:notice-feed:1">
      <NextCursor>42</NextCursor>
      <Notices>
        <SignedNotice sequence="41" noticeId="NTC...">PD94bWwg...</SignedNotice>
      </Notices>
    </NoticeFeed>
"""

from __future__ import annotations

import base64
from typing import Final

from aiohttp import hdrs, web
from lxml import etree

from connector.adapters.web import auth, server
from connector.core import notices
from connector.errors import InvalidMessage
from connector.ports import StoredNotice

__all__ = [
    "DEFAULT_LIMIT",
    "FEED_NAMESPACE",
    "MAX_LIMIT",
    "NOTICES_ROUTES",
    "feed_xml",
    "list_notices",
]

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
FEED_NAMESPACE: Final = "urn:ead-connector:notice-feed:1"


def _number(request: web.Request, name: str, default: int, maximum: int | None) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 19:
        raise InvalidMessage(
            f"query parameter {name} must be a non-negative integer", parameter=name
        )
    value = int(text)
    return min(value, maximum) if maximum is not None else value


def feed_entry(stored: StoredNotice) -> dict[str, object]:
    """One notice of the JSON feed: DESIGN.md's members and its ``sequence``."""
    return {**notices.notice_as_dict(stored.notice, stored.signed_xml), "sequence": stored.sequence}


def feed_xml(page: tuple[StoredNotice, ...], next_cursor: int) -> bytes:
    """The XML form of a feed page (see the module docstring)."""
    root = etree.Element(f"{{{FEED_NAMESPACE}}}NoticeFeed", nsmap={None: FEED_NAMESPACE})  # type: ignore[dict-item]
    etree.SubElement(root, f"{{{FEED_NAMESPACE}}}NextCursor").text = str(next_cursor)
    listed = etree.SubElement(root, f"{{{FEED_NAMESPACE}}}Notices")
    for stored in page:
        entry = etree.SubElement(
            listed,
            f"{{{FEED_NAMESPACE}}}SignedNotice",
            sequence=str(stored.sequence),
            noticeId=stored.notice.notice_id,
        )
        entry.text = base64.b64encode(stored.signed_xml).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


async def list_notices(request: web.Request) -> web.Response:
    """The caller's notices after ``after``, at most ``limit``, with the next cursor."""
    operator = await auth.authenticated_operator(request)
    after = _number(request, "after", 0, None)
    limit = max(_number(request, "limit", DEFAULT_LIMIT, MAX_LIMIT), 1)
    page = await request.app[server.STORE].notices_after(operator.operator_id, after, limit)
    next_cursor = page[-1].sequence if page else after
    if server.wants_json(request.headers.get(hdrs.ACCEPT)):
        response = web.json_response(
            {"notices": [feed_entry(stored) for stored in page], "next_cursor": str(next_cursor)}
        )
    else:
        response = web.Response(
            body=feed_xml(page, next_cursor), content_type="application/xml", charset="utf-8"
        )
    response.headers[hdrs.VARY] = hdrs.ACCEPT
    return response


NOTICES_ROUTES: Final = (web.get("/v1/notices", list_notices, name="list_notices"),)
