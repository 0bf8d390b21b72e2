"""Pull sources against real files and a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from connector.adapters.sources import DirectorySource, HttpSource
from connector.core.schemas import MessageKind, default_registry
from connector.errors import SourceUnavailable, XmlTooLarge
from connector.flow.accept import AcceptService
from connector.flow.pull import PullService
from connector.ports import FetchedBatch
from connector.sample import generate_batch
from connector.testing import FrozenClock, InMemoryItemStore

OP = "DE-POST"
TOKEN = "s3cret-pull-token"

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def _batch(items: int, seed: int) -> bytes:
    return generate_batch(items, seed=seed, operator_id=OP).xml


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


# --- directory ------------------------------------------------------------------------------


async def test_directory_batches_come_in_name_order_and_move_to_done(tmp_path: Path) -> None:
    """Files are fetched oldest name first, with the name as cursor, and moved to done/."""
    (tmp_path / "b.xml").write_bytes(b"<b/>")
    (tmp_path / "a.xml").write_bytes(b"<a/>")
    source = DirectorySource(tmp_path, settle_seconds=0)
    first = await source.fetch(None)
    assert first is not None
    assert (first.data, first.cursor, first.name) == (b"<a/>", "a.xml", str(tmp_path / "a.xml"))
    assert await source.fetch("a.xml") == first  # still there until done
    await source.done(first, ok=True, detail="stored")
    second = await source.fetch(first.cursor)
    assert second is not None
    assert second.cursor == "b.xml"
    await source.done(second, ok=True, detail="stored")
    assert await source.fetch(second.cursor) is None
    assert _tree(tmp_path) == {"done/a.xml", "done/b.xml"}


async def test_directory_refused_batch_goes_to_failed_with_its_reason(tmp_path: Path) -> None:
    """done(ok=False) moves the file to failed/ beside <name>.error.txt holding the detail."""
    (tmp_path / "poison.xml").write_bytes(b"<not-xml")
    source = DirectorySource(tmp_path, settle_seconds=0)
    batch = await source.fetch(None)
    assert batch is not None
    await source.done(batch, ok=False, detail="xml_malformed: not well-formed")
    assert _tree(tmp_path) == {"failed/poison.xml", "failed/poison.xml.error.txt"}
    assert (tmp_path / "failed" / "poison.xml").read_bytes() == b"<not-xml"
    error = (tmp_path / "failed" / "poison.xml.error.txt").read_text(encoding="utf-8")
    assert error == "xml_malformed: not well-formed\n"


async def test_directory_ignores_partial_hidden_and_unsettled_files(tmp_path: Path) -> None:
    """.tmp/.part, dot files, other suffixes and recently modified files are not picked up."""
    for name in ("a.xml.tmp", "b.xml.part", ".c.xml", "d.txt", "e.tmp", "f.part"):
        (tmp_path / name).write_bytes(b"<x/>")
    (tmp_path / "sub.xml").mkdir()
    assert await DirectorySource(tmp_path, settle_seconds=0).fetch(None) is None
    fresh = tmp_path / "fresh.xml"
    fresh.write_bytes(b"<x/>")
    settling = DirectorySource(tmp_path, settle_seconds=60)
    assert await settling.fetch(None) is None
    old = time.time() - 120
    os.utime(fresh, (old, old))
    batch = await settling.fetch(None)
    assert batch is not None
    assert batch.cursor == "fresh.xml"


async def test_directory_oversize_file_is_failed_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file above max_bytes goes to failed/ with its reason, without being opened."""
    (tmp_path / "a-big.xml").write_bytes(b"<x>" + b"y" * 100 + b"</x>")
    (tmp_path / "b-small.xml").write_bytes(b"<x/>")
    opened: list[Path] = []
    real_open = Path.open

    def spying_open(self: Path, *args: object, **kwargs: object) -> object:
        opened.append(self)
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", spying_open)
    source = DirectorySource(tmp_path, max_bytes=50, settle_seconds=0)
    with pytest.raises(XmlTooLarge, match=r"a-big\.xml is larger than 50 bytes"):
        await source.fetch(None)
    assert tmp_path / "a-big.xml" not in opened
    assert "failed/a-big.xml" in _tree(tmp_path)
    reason = (tmp_path / "failed" / "a-big.xml.error.txt").read_text(encoding="utf-8")
    assert reason.startswith("xml_too_large: ")
    batch = await source.fetch(None)
    assert batch is not None
    assert batch.cursor == "b-small.xml"


async def test_directory_never_deletes_or_overwrites(tmp_path: Path) -> None:
    """A name already in done/ gets a numbered twin; every byte ever dropped is kept."""
    source = DirectorySource(tmp_path, settle_seconds=0)
    for content in (b"<first/>", b"<second/>"):
        (tmp_path / "same.xml").write_bytes(content)
        batch = await source.fetch(None)
        assert batch is not None
        await source.done(batch, ok=True, detail="stored")
    assert (tmp_path / "done" / "same.xml").read_bytes() == b"<first/>"
    assert (tmp_path / "done" / "same.1.xml").read_bytes() == b"<second/>"
    assert _tree(tmp_path) == {"done/same.xml", "done/same.1.xml"}


async def test_directory_move_failure_is_source_unavailable(tmp_path: Path) -> None:
    """A batch that cannot be moved (here: gone) raises SourceUnavailable, cause kept."""
    source = DirectorySource(tmp_path, settle_seconds=0)
    ghost = FetchedBatch(b"<x/>", cursor="ghost.xml", name=str(tmp_path / "ghost.xml"))
    with pytest.raises(SourceUnavailable, match="cannot move") as caught:
        await source.done(ghost, ok=True, detail="stored")
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert list((tmp_path / "done").iterdir()) == []  # no placeholder left behind


async def test_directory_missing_is_source_unavailable(tmp_path: Path) -> None:
    """A directory that does not exist is an unavailable source, not a crash."""
    with pytest.raises(SourceUnavailable, match="cannot list"):
        await DirectorySource(tmp_path / "absent", settle_seconds=0).fetch(None)


async def test_directory_pull_end_to_end(tmp_path: Path) -> None:
    """A pull over a directory stores good batches, fails the poison one and keeps every file."""
    (tmp_path / "001.xml").write_bytes(_batch(3, 1))
    (tmp_path / "002.xml").write_bytes(b"<broken")
    (tmp_path / "003.xml").write_bytes(_batch(2, 2))
    (tmp_path / "004.xml.part").write_bytes(b"<half")
    store, clock = InMemoryItemStore(), FrozenClock()
    pull = PullService(store, AcceptService(store=store, clock=clock), clock)
    outcome = await pull.run_once(OP, DirectorySource(tmp_path, settle_seconds=0))
    assert (outcome.batches_stored, outcome.batches_refused, outcome.items_accepted) == (2, 1, 5)
    assert await store.get_cursor(OP) == "003.xml"
    assert _tree(tmp_path) == {
        "done/001.xml",
        "done/001.xml.ack.xml",
        "done/003.xml",
        "done/003.xml.ack.xml",
        "failed/002.xml",
        "failed/002.xml.error.txt",
        "004.xml.part",
    }
    assert store.pull_errors[OP][0].startswith(f"{tmp_path / '002.xml'}: xml_malformed: ")
    # The operator gets each stored batch's acknowledgement beside it, valid by its schema.
    schema = default_registry().lxml(MessageKind.ACKNOWLEDGEMENT)
    for name in ("001.xml", "003.xml"):
        receipt = etree.parse(str(tmp_path / "done" / f"{name}.ack.xml")).getroot()
        assert schema.validate(receipt), schema.error_log
        assert receipt.findall(".//{urn:ead-connector:acknowledgement:1}Reference")


# --- HTTP -----------------------------------------------------------------------------------


class Feed:
    """A postal operator's pull endpoint: batches by cursor, with scripted misbehaviour."""

    def __init__(self, batches: list[bytes]) -> None:
        self.batches = batches
        self.requests: list[str | None] = []
        self.fail_first = 0  # answer 500 to this many requests first
        self.always_fail = False
        self.delay = 0.0
        self.omit_cursor = False
        self.oversize_at: int | None = None  # index served as a huge body
        self.declare_length = True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        after = request.query.get("after")
        self.requests.append(after)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        if self.always_fail or self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500, text="boom")
        if self.delay:
            await asyncio.sleep(self.delay)
        index = 0 if after is None else int(after) + 1
        if index >= len(self.batches):
            return web.Response(status=204)
        headers = {} if self.omit_cursor else {"X-Next-Cursor": str(index)}
        if index == self.oversize_at:
            if self.declare_length:
                return web.Response(body=b"<x>" + b"y" * 5000, headers=headers)
            response = web.StreamResponse(headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(10):
                await response.write(b"y" * 1000)
            await response.write_eof()
            return response
        return web.Response(
            body=self.batches[index], content_type="application/xml", headers=headers
        )


@pytest.fixture
async def feed_url(aiohttp_server: ServerFactory) -> tuple[Feed, str]:
    feed = Feed([_batch(2, 1), _batch(3, 2)])
    app = web.Application()
    app.router.add_get("/feed", feed.handle)
    server = await aiohttp_server(app)
    return feed, str(server.make_url("/feed"))


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_http_serves_batches_then_nothing(feed_url: tuple[Feed, str]) -> None:
    """Two batches come with their X-Next-Cursor, then 204 means nothing new; token is sent."""
    feed, url = feed_url
    source = HttpSource(url, token=TOKEN, sleep=Sleeps())
    try:
        first = await source.fetch(None)
        assert first is not None
        assert (first.data, first.cursor, first.name) == (feed.batches[0], "0", url)
        second = await source.fetch(first.cursor)
        assert second is not None
        assert second.cursor == "1"
        assert await source.fetch(second.cursor) is None
        assert feed.requests == [None, "0", "1"]
    finally:
        await source.close()


async def test_http_pull_end_to_end(feed_url: tuple[Feed, str]) -> None:
    """A pull over HTTP stores both batches and keeps the operator's cursor."""
    _, url = feed_url
    store, clock = InMemoryItemStore(), FrozenClock()
    pull = PullService(store, AcceptService(store=store, clock=clock), clock)
    source = HttpSource(url, token=TOKEN)
    try:
        outcome = await pull.run_once(OP, source)
    finally:
        await source.close()
    assert (outcome.batches_stored, outcome.items_accepted, outcome.error) == (2, 5, None)
    assert await store.get_cursor(OP) == "1"


async def test_http_wrong_token_fails_without_retry(feed_url: tuple[Feed, str]) -> None:
    """A 401 is not retried: it becomes SourceUnavailable at once."""
    feed, url = feed_url
    sleeps = Sleeps()
    source = HttpSource(url, token="wrong", sleep=sleeps)
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 401"):
            await source.fetch(None)
    finally:
        await source.close()
    assert (len(feed.requests), sleeps.delays) == (1, [])


async def test_http_transient_errors_are_retried_with_backoff(feed_url: tuple[Feed, str]) -> None:
    """Two 500s then success: the third attempt returns the batch after growing delays."""
    feed, url = feed_url
    feed.fail_first = 2
    sleeps = Sleeps()
    source = HttpSource(url, token=TOKEN, retries=2, backoff_s=0.1, sleep=sleeps)
    try:
        batch = await source.fetch(None)
    finally:
        await source.close()
    assert batch is not None
    assert batch.cursor == "0"
    assert len(feed.requests) == 3
    assert len(sleeps.delays) == 2
    assert 0.05 <= sleeps.delays[0] <= 0.15
    assert 0.1 <= sleeps.delays[1] <= 0.3


async def test_http_persistent_errors_become_source_unavailable(
    feed_url: tuple[Feed, str],
) -> None:
    """Always 500: after retries+1 attempts the fetch fails with SourceUnavailable."""
    feed, url = feed_url
    feed.always_fail = True
    source = HttpSource(url, token=TOKEN, retries=2, sleep=Sleeps())
    try:
        with pytest.raises(SourceUnavailable, match="failed 3 times; last: HTTP 500"):
            await source.fetch(None)
    finally:
        await source.close()
    assert len(feed.requests) == 3


async def test_http_slow_server_times_out(feed_url: tuple[Feed, str]) -> None:
    """A server slower than timeout_s is retried, then SourceUnavailable with the timeout kept."""
    feed, url = feed_url
    feed.delay = 1.0
    source = HttpSource(url, token=TOKEN, timeout_s=0.1, retries=1, sleep=Sleeps())
    try:
        with pytest.raises(SourceUnavailable, match="failed 2 times") as caught:
            await source.fetch(None)
    finally:
        await source.close()
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_http_connection_refused_is_source_unavailable(unused_tcp_port: int) -> None:
    """Nobody listening: SourceUnavailable with the aiohttp error as its cause."""
    source = HttpSource(f"http://127.0.0.1:{unused_tcp_port}/feed", retries=1, sleep=Sleeps())
    try:
        with pytest.raises(SourceUnavailable, match="failed 2 times") as caught:
            await source.fetch(None)
    finally:
        await source.close()
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_http_batch_without_cursor_is_source_unavailable(feed_url: tuple[Feed, str]) -> None:
    """A batch without X-Next-Cursor cannot be checkpointed, so it is not returned."""
    feed, url = feed_url
    feed.omit_cursor = True
    source = HttpSource(url, token=TOKEN, sleep=Sleeps())
    try:
        with pytest.raises(SourceUnavailable, match="X-Next-Cursor"):
            await source.fetch(None)
    finally:
        await source.close()


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_http_oversize_batch_is_refused_and_skipped(
    feed_url: tuple[Feed, str], declare_length: bool
) -> None:
    """A body above max_bytes is refused (length or running count) and the next fetch skips it."""
    feed, url = feed_url
    feed.batches = [b"<x/>", b"<too-big/>", b"<y/>"]
    feed.oversize_at = 1
    feed.declare_length = declare_length
    source = HttpSource(url, token=TOKEN, max_bytes=1000, sleep=Sleeps())
    try:
        with pytest.raises(XmlTooLarge, match="larger than 1000 bytes"):
            await source.fetch("0")
        after = await source.fetch("0")
    finally:
        await source.close()
    assert after is not None
    assert (after.data, after.cursor) == (b"<y/>", "2")
    assert feed.requests == ["0", "1"]


async def test_http_refused_batch_is_skipped_by_the_next_fetch(
    feed_url: tuple[Feed, str],
) -> None:
    """done(ok=False) makes the next fetch from the same cursor continue after that batch."""
    feed, url = feed_url
    feed.batches = [b"<a/>", b"<b/>", b"<c/>"]
    source = HttpSource(url, token=TOKEN, sleep=Sleeps())
    try:
        poison = await source.fetch("0")
        assert poison is not None
        await source.done(poison, ok=False, detail="xml_malformed: nope")
        following = await source.fetch("0")
        assert following is not None
        await source.done(following, ok=True, detail="stored")
        assert following.cursor == "2"
        assert await source.fetch(None) is not None  # other positions are untouched
    finally:
        await source.close()
    assert feed.requests == ["0", "1", None]


async def test_http_session_is_reused_and_closed(feed_url: tuple[Feed, str]) -> None:
    """One ClientSession per source, created lazily from the factory and closed by close()."""
    _, url = feed_url
    sessions: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession())
        return sessions[-1]

    source = HttpSource(url, token=TOKEN, session_factory=factory)
    assert sessions == []
    await source.fetch(None)
    await source.fetch("0")
    assert len(sessions) == 1
    await source.close()
    assert sessions[0].closed
    assert TOKEN not in repr(source)
