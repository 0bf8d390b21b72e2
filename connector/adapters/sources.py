"""Operator pull sources: a directory of batch files and an HTTP feed.

Both implement :class:`connector.ports.OperatorSource`. Library and OS errors are translated
here, with the cause kept: reaching the source fails with
:class:`~connector.errors.SourceUnavailable`; a batch the source refuses by itself (larger than
``max_bytes``) raises :class:`~connector.errors.XmlTooLarge` *after* the source has set it
aside, so the pull records the refusal and goes on with the next batch.

Skipping refused batches. The store keeps one cursor per operator, committed only with stored
items, so a batch that is refused as a whole cannot move it. Each source therefore skips
refused batches itself:

- :class:`DirectorySource` moves them to ``failed/`` (with ``<name>.error.txt``);
- :class:`HttpSource` remembers, in memory, "after cursor C, continue at C'" for the refused
  batch between C and C'. The refusal is recorded as the operator's pull error. After a restart
  the memory is gone: a refused batch that is still the last one is fetched, refused and
  reported once more, which costs one request and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from connector.core.xmlsafe import DEFAULT_LIMITS
from connector.errors import SourceUnavailable, XmlTooLarge
from connector.ports import FetchedBatch

__all__ = ["DirectorySource", "HttpSource"]

DEFAULT_MAX_BYTES: Final = DEFAULT_LIMITS.max_bytes
_PARTIAL_SUFFIXES: Final = (".tmp", ".part")
_CHUNK: Final = 64 * 1024
_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
_MAX_SKIPS: Final = 1024  # remembered refused HTTP positions, oldest dropped first


# --- directory ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Picked:
    path: Path
    data: bytes | None  # None: larger than the limit, not read


class DirectorySource:
    """Batches are ``*.xml`` files dropped into one directory, taken oldest name first.

    The cursor of a batch is its file name. Files are moved out after processing (to ``done/``
    or ``failed/``), so :meth:`fetch` always returns the first remaining file by name and does
    not compare names with the cursor: a file dropped late under an older name is still
    picked up, and one whose move failed after it was stored is fetched again (a duplicate).
    No file is ever deleted or overwritten: a name already taken in ``done/`` or ``failed/``
    gets a ``.N`` suffix.

    Half-written files are left alone: names ending in ``.tmp`` or ``.part`` (and names that
    do not end in ``.xml`` or that start with a dot) are ignored, and so is a file modified in
    the last ``settle_seconds``; the first settled file in name order is taken. Symbolic links
    and subdirectories are ignored, so a drop cannot point the connector at other files.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        settle_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.settle_seconds = settle_seconds

    def __repr__(self) -> str:
        return f"DirectorySource({str(self.path)!r})"

    async def fetch(self, cursor: str | None) -> FetchedBatch | None:
        """The oldest settled batch file (by name), or None when there is none."""
        picked = await asyncio.to_thread(self._pick)
        if picked is None:
            return None
        if picked.data is None:
            detail = (
                f"{XmlTooLarge.code}: the file is larger than the limit of {self.max_bytes} bytes"
            )
            await asyncio.to_thread(self._move, picked.path, "failed", detail)
            raise XmlTooLarge(
                f"{picked.path.name} is larger than {self.max_bytes} bytes; "
                "moved to failed/ unread",
                limit=self.max_bytes,
            )
        return FetchedBatch(picked.data, cursor=picked.path.name, name=str(picked.path))

    async def done(
        self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
    ) -> None:
        """Move the file to ``done/`` beside ``<name>.ack.xml`` (the acknowledgement, when
        given), or to ``failed/`` beside ``<name>.error.txt``."""
        path = self.path / Path(batch.cursor).name
        await asyncio.to_thread(
            self._move, path, "done" if ok else "failed", None if ok else detail, receipt
        )

    def _candidates(self) -> list[Path]:
        with _os_errors(f"cannot list {self.path}"):
            entries = sorted(os.scandir(self.path), key=lambda entry: entry.name)
        return [
            Path(entry.path)
            for entry in entries
            if entry.name.endswith(".xml")
            and not entry.name.startswith(".")
            and not entry.name.endswith(_PARTIAL_SUFFIXES)
            and entry.is_file(follow_symlinks=False)
        ]

    def _pick(self) -> _Picked | None:
        settled_before = time.time() - self.settle_seconds
        for path in self._candidates():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # moved away meanwhile
            except OSError as exc:
                raise SourceUnavailable(f"cannot read {path}: {exc}") from exc
            if self.settle_seconds > 0 and stat.st_mtime > settled_before:
                continue
            if stat.st_size > self.max_bytes:
                return _Picked(path, None)
            with _os_errors(f"cannot read {path}"), path.open("rb") as stream:
                data = stream.read(self.max_bytes + 1)  # never more than the limit
            if len(data) > self.max_bytes:  # grew after stat
                return _Picked(path, None)
            return _Picked(path, data)
        return None

    def _move(
        self, path: Path, folder: str, error: str | None, receipt: bytes | None = None
    ) -> None:
        with _os_errors(f"cannot move {path} to {folder}/"):
            target_dir = self.path / folder
            target_dir.mkdir(exist_ok=True)
            target = _reserve(target_dir, path.name)
            try:
                os.replace(path, target)  # replaces only the empty placeholder reserved above
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            if error is not None:
                error_path = target.with_name(target.name + ".error.txt")
                error_path.write_text(error + "\n", encoding="utf-8")
            if receipt is not None:
                target.with_name(target.name + ".ack.xml").write_bytes(receipt)


def _reserve(directory: Path, name: str) -> Path:
    """Create an empty, new file for ``name`` in ``directory`` (``stem.N.xml`` if taken)."""
    stem, dot, suffix = name.rpartition(".")
    for number in range(10_000):
        candidate = name if number == 0 else f"{stem}.{number}{dot}{suffix}"
        target = directory / candidate
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return target
    raise FileExistsError(f"no free name for {name} in {directory}")


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise SourceUnavailable(f"{what}: {exc}") from exc


# --- HTTP -----------------------------------------------------------------------------------


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""


class HttpSource:
    """An operator's HTTP feed: ``GET url[?after=CURSOR]`` returns the next batch.

    ``200`` with an XML body is a batch whose position is the ``X-Next-Cursor`` response
    header (required); ``204`` or an empty ``200`` means nothing new. Connection errors,
    timeouts, ``408``, ``429`` and ``5xx`` are retried ``retries`` times with exponential
    backoff and jitter, then reported as :class:`~connector.errors.SourceUnavailable` with the
    last cause kept; other statuses (redirects included: the bearer token is never sent
    elsewhere) fail at once. A body larger than ``max_bytes`` is refused (checked on
    ``Content-Length`` and while reading) and skipped like a batch refused by the pull.

    :meth:`done` is a no-op for a stored batch (the committed cursor is the
    acknowledgement); for a refused one it remembers to continue after it.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 2,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backoff_s: float = 0.2,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_bytes = max_bytes
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._random = random.Random()  # noqa: S311 - retry jitter, not security
        # position before the refused batch -> position after it
        self._skips: OrderedDict[str | None, str] = OrderedDict()
        self._last: tuple[str, str | None] | None = None  # (batch cursor, cursor it followed)

    def __repr__(self) -> str:
        return f"HttpSource({self.url!r})"  # never the token

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def fetch(self, cursor: str | None) -> FetchedBatch | None:
        """The batch after ``cursor`` (past any batch refused earlier), or None."""
        after = cursor
        for _ in range(len(self._skips)):
            if after not in self._skips:
                break
            after = self._skips[after]
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                await self._sleep(delay * (0.5 + self._random.random()))
            try:
                batch = await self._get(after)
            except _Retryable as exc:
                last = exc
                continue
            if batch is not None:
                self._last = (batch.cursor, after)
            return batch
        raise SourceUnavailable(
            f"{self.url} failed {self.retries + 1} times; last: {last}", url=self.url
        ) from (last.__cause__ if last is not None and last.__cause__ is not None else last)

    async def done(
        self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
    ) -> None:
        """Remember to skip a refused batch; nothing to do for a stored one (the cursor
        advance acknowledges it; the operator reads item verdicts from the API)."""
        if self._last is not None and self._last[0] == batch.cursor:
            if not ok:
                self._skip(self._last[1], batch.cursor)
            self._last = None

    def _skip(self, after: str | None, to: str) -> None:
        self._skips[after] = to
        self._skips.move_to_end(after)
        while len(self._skips) > _MAX_SKIPS:
            self._skips.popitem(last=False)

    def _session_for_use(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._session_factory is not None:
                self._session = self._session_factory()
            else:
                self._session = aiohttp.ClientSession()
        return self._session

    async def _get(self, after: str | None) -> FetchedBatch | None:
        headers = {"Accept": "application/xml"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        params = {"after": after} if after is not None else None
        session = self._session_for_use()
        try:
            async with session.get(
                self.url,
                params=params,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                return await self._read(response, after)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def _read(
        self, response: aiohttp.ClientResponse, after: str | None
    ) -> FetchedBatch | None:
        status = response.status
        if status == 204:
            return None
        if status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status}")
        if status != 200:
            raise SourceUnavailable(f"{self.url} answered HTTP {status}", url=self.url)
        next_cursor = response.headers.get("X-Next-Cursor")
        length = response.content_length
        if length is not None and length > self.max_bytes:
            self._refuse_oversize(after, next_cursor, f"Content-Length {length}")
        data = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            data += chunk
            if len(data) > self.max_bytes:
                self._refuse_oversize(after, next_cursor, "body")
        if not data:
            return None
        if not next_cursor:
            raise SourceUnavailable(
                f"{self.url} sent a batch without an X-Next-Cursor header", url=self.url
            )
        return FetchedBatch(bytes(data), cursor=next_cursor, name=self.url)

    def _refuse_oversize(self, after: str | None, next_cursor: str | None, what: str) -> None:
        if not next_cursor:
            raise SourceUnavailable(
                f"{self.url} sent a batch larger than {self.max_bytes} bytes ({what}) "
                "without an X-Next-Cursor header; it cannot be skipped",
                url=self.url,
            )
        self._skip(after, next_cursor)
        raise XmlTooLarge(
            f"the batch from {self.url} after {after!r} is larger than {self.max_bytes} "
            f"bytes ({what}); skipped to {next_cursor!r}",
            limit=self.max_bytes,
        )
