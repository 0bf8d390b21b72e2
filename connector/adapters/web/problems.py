"""Errors as RFC 9457 ``application/problem+json``, and a request id on every response.

:func:`problems_middleware` is the one place where an exception becomes an HTTP error:

- a :class:`~connector.errors.ConnectorError` keeps its stable ``code`` and ``http_status``;
- aiohttp's own :class:`~aiohttp.web.HTTPException` (unknown route, wrong method, body over
  ``client_max_size``) gets a code of the same vocabulary (``not_found``,
  ``method_not_allowed``, ``xml_too_large``);
- anything else is a 500 ``internal_error`` whose body says nothing about the cause; the
  exception is logged with the request id, which the caller can quote.

Body members: ``type`` is ``urn:ead-connector:problem:<code>``, a URN like the messages'
XML namespaces: stable and never dereferenced (RFC 9457 section 3.1.1), without claiming a web
domain the project may not control. ``title`` is the same for every occurrence of a code
(the error class's docstring). ``detail`` is the message of this occurrence, ``status`` the
HTTP status, ``code`` the stable code, ``request_id`` the id in the ``X-Request-Id`` header,
then the error's context entries that are JSON scalars and whose names do not look like
secrets. A 5xx ``ConnectorError`` shows only its default message and no context: its real
message may name hosts or paths, so it is logged instead.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Final

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from connector import errors

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_PREFIX",
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "problem_response",
    "problems_middleware",
    "set_body_limit",
]

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:ead-connector:problem:"
REQUEST_ID_HEADER: Final = "X-Request-Id"
REQUEST_ID: Final = web.RequestKey("request_id", str)
"""The id of the request being handled, as sent back in ``X-Request-Id``."""

WWW_AUTHENTICATE: Final = 'Bearer realm="ead-connector"'
"""Sent with every 401 (RFC 9110 section 11.6.1); client certificates need no challenge."""

# An incoming id is echoed only if it cannot smuggle anything into headers or logs.
_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_RESERVED_MEMBERS: Final = frozenset({"type", "title", "status", "code", "detail", "request_id"})
_SECRET_NAME: Final = re.compile(
    r"token|secret|passw|passphrase|credential|authori[sz]ation|private|cookie", re.IGNORECASE
)
_MAX_CONTEXT_TEXT: Final = 500

_INTERNAL_CODE: Final = "internal_error"
_INTERNAL_TITLE: Final = "The connector failed to handle the request."
_INTERNAL_DETAIL: Final = "An unexpected error occurred; quote the request id when reporting it."

# aiohttp's own HTTP errors, mapped onto the ConnectorError vocabulary where one exists.
_HTTP_ERROR_CLASSES: Final[Mapping[int, type[errors.ConnectorError]]] = {
    401: errors.NotAuthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    413: errors.XmlTooLarge,
    415: errors.UnsupportedMediaType,
}
_HTTP_ONLY: Final[Mapping[int, tuple[str, str]]] = {
    405: ("method_not_allowed", "The resource does not accept this method."),
}

_CLIENT_MAX_SIZE: Final = web.AppKey("client_max_size", int)

_log = structlog.get_logger("connector.web")


def set_body_limit(app: web.Application, limit: int) -> None:
    """Tell the middleware the ``client_max_size`` of ``app``, for the detail of its 413."""
    app[_CLIENT_MAX_SIZE] = limit


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _title(error_class: type[errors.ConnectorError]) -> str:
    return (error_class.__doc__ or error_class.code).strip().splitlines()[0]


def _safe_context(context: Mapping[str, object]) -> dict[str, object]:
    safe: dict[str, object] = {}
    for name, value in context.items():
        if name in _RESERVED_MEMBERS or _SECRET_NAME.search(name):
            continue
        if isinstance(value, str):
            safe[name] = value[:_MAX_CONTEXT_TEXT]
        elif value is None or isinstance(value, bool | int | float):
            safe[name] = value
    return safe


def problem_response(
    request: web.Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A problem+json response for ``request`` (its request id included)."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "request_id": request.get(REQUEST_ID, ""),
        **(extra or {}),
    }
    response = web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        charset="utf-8",
        headers=headers,
    )
    if status == HTTPStatus.UNAUTHORIZED:
        response.headers[hdrs.WWW_AUTHENTICATE] = WWW_AUTHENTICATE
    return response


def _from_connector_error(request: web.Request, exc: errors.ConnectorError) -> web.Response:
    status = exc.http_status
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        _log.error(
            "request.error", code=exc.code, status=status, error=exc.message, path=request.path
        )
        detail, extra = _title(type(exc)), {}
    else:
        _log.info("request.rejected", code=exc.code, status=status, path=request.path)
        detail, extra = exc.message, _safe_context(exc.context)
    headers: dict[str, str] = {}
    retry_after = exc.context.get("retry_after_s")
    if isinstance(retry_after, int | float):
        headers[hdrs.RETRY_AFTER] = str(max(1, math.ceil(retry_after)))
    return problem_response(
        request,
        status=status,
        code=exc.code,
        title=_title(type(exc)),
        detail=detail,
        extra=extra,
        headers=headers,
    )


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    error_class = _HTTP_ERROR_CLASSES.get(status)
    extra: dict[str, object] = {}
    if error_class is not None:
        code = error_class.code
        title = detail = _title(error_class)
    elif status in _HTTP_ONLY:
        code, title = _HTTP_ONLY[status]
        detail = title
    else:
        title = detail = _phrase(status) or exc.reason
        code = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "http_error"
    if status == HTTPStatus.METHOD_NOT_ALLOWED and isinstance(exc, web.HTTPMethodNotAllowed):
        extra["allowed"] = sorted(exc.allowed_methods)
    if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        limit = request.app.get(_CLIENT_MAX_SIZE)
        if limit is not None:
            detail = f"The request body is larger than the limit of {limit} bytes."
            extra["limit"] = limit
    _log.info("request.rejected", code=code, status=status, path=request.path)
    # Keep protocol headers such as Allow; the body and its headers are ours.
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() not in {"content-type", "content-length"}
    }
    return problem_response(
        request,
        status=status,
        code=code,
        title=title,
        detail=detail,
        extra=extra,
        headers=headers,
    )


def _request_id(request: web.Request) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id, and turn whatever the handler raises into problem+json."""
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response: web.StreamResponse
        try:
            response = await handler(request)
        except errors.ConnectorError as exc:
            response = _from_connector_error(request, exc)
        except web.HTTPException as exc:
            if exc.status < HTTPStatus.BAD_REQUEST:
                exc.headers[REQUEST_ID_HEADER] = request_id
                raise
            response = _from_http_exception(request, exc)
        except Exception:
            # CancelledError is a BaseException and passes: a dropped client is not a fault.
            _log.exception("request.failed", method=request.method, path=request.path)
            response = problem_response(
                request,
                status=HTTPStatus.INTERNAL_SERVER_ERROR,
                code=_INTERNAL_CODE,
                title=_INTERNAL_TITLE,
                detail=_INTERNAL_DETAIL,
            )
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response
