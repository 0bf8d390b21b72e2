"""Structured logs: one event per line on stderr, JSON for machines or colourless text for people.

:func:`configure` is called once by the CLI (and again with the loaded settings). Every event
carries ``timestamp`` (UTC, ISO 8601), ``level`` and ``event`` plus its keys, and
the context bound per request (``request_id``, ``operator``). Values under keys that name a
secret (``token``, ``passphrase``, ``password``, ``secret``, ``authorization``) or personal
data (``sender``, ``addressee``, ``address``, ``street``, ``email``, ``phone``, ``person``)
are replaced by ``***`` before rendering, whatever logged them. stdout stays free for
command output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, Literal, TextIO

import structlog

__all__ = ["LogFormat", "configure", "redact_secrets"]

LogFormat = Literal["auto", "json", "console"]
_SECRET_PARTS: Final = ("token", "passphrase", "password", "secret", "authorization")
#: Personal data of senders and addressees never belongs in logs (item ids identify items).
_PERSONAL_PARTS: Final = ("sender", "addressee", "address", "street", "email", "phone", "person")
_REDACTED: Final = "***"


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: hide the value of every key that names a secret or personal data."""
    for key in list(event):
        lowered = key.lower()
        if key != "event" and any(part in lowered for part in _SECRET_PARTS + _PERSONAL_PARTS):
            event[key] = _REDACTED
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by tests)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(
    level: str = "info", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Send structlog events at ``level`` and above to ``stream`` (stderr) in ``log_format``.

    ``auto`` is JSON unless the stream is a terminal.
    """
    target: TextIO | _CurrentStderr = stream if stream is not None else _CurrentStderr()
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    as_json = log_format == "json" or (log_format == "auto" and not target.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(target),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
