"""Structured logs: JSON lines on the given stream, secrets masked, levels filtered."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from connector import logs


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_json_lines_with_level_time_and_bound_context() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        structlog.get_logger("t").info("batch.pushed", items=3)
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "batch.pushed"
    assert event["items"] == 3
    assert event["level"] == "info"
    assert event["request_id"] == "r-1"
    assert event["timestamp"].endswith("Z")


def test_secret_named_keys_are_masked() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    structlog.get_logger("t").info(
        "x", token="tok-123", key_passphrase="pp", Authorization="Bearer b", items=1
    )
    event = json.loads(stream.getvalue())
    assert (event["token"], event["key_passphrase"], event["Authorization"]) == ("***",) * 3
    assert event["items"] == 1
    assert "tok-123" not in stream.getvalue()


def test_personal_data_keys_are_masked() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    structlog.get_logger("t").info(
        "x", sender_name="Anna Müller", addressee_address="Hauptstr. 5", item_id="RR1"
    )
    event = json.loads(stream.getvalue())
    assert (event["sender_name"], event["addressee_address"]) == ("***", "***")
    assert event["item_id"] == "RR1"
    assert "Müller" not in stream.getvalue()


def test_level_filters_and_console_format() -> None:
    stream = io.StringIO()
    logs.configure("warning", "console", stream)
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud", n=1)
    text = stream.getvalue()
    assert "quiet" not in text
    assert "loud" in text
    assert not text.lstrip().startswith("{")


def test_auto_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    structlog.get_logger("t").info("e")
    assert json.loads(stream.getvalue())["event"] == "e"


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        logs.configure("chatty")


def test_default_stream_follows_sys_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replaced (and later closed) stderr never breaks logging: the current one is used."""
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logs.configure("info", "json")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    structlog.get_logger("t").info("after")
    assert json.loads(second.getvalue())["event"] == "after"
