"""The feed surface shared by the embedded database and cluster clients.

A backend implements a handful of page-level calls; iteration, cursors,
``follow`` (tail -f), ``trim`` and the async twins are derived here once.
Paging state lives in :class:`Pager`, so the sync and async loops are thin.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import AsyncIterator, Awaitable, Callable, Iterator, Optional

from ringkv.errors import BadRequest, WrongType
from ringkv.feeds.ids import format_id, parse_id

__all__ = ["Entry", "Pager", "FeedAPI", "AsyncFeedAPI", "Page", "check_limit"]

#: ``(raw ids, data of each, cursor raw id or None, more)``
Page = tuple[list[bytes], list[bytes], Optional[bytes], bool]

#: Entries asked for first, then per page: a short read stays cheap, a long
#: one pays few round trips (and a cluster coordinator reads its pages ahead).
FIRST_PAGE = 512
MAX_PAGE = 2048


class Entry:
    """One feed entry. ``prev_id``/``next_id`` are set by ``get`` (linked-list navigation).

    The printable ``id`` is made from the raw 16-byte id on first use: a
    scan that only reads ``data`` never formats ids.
    """

    __slots__ = ("_id", "data", "prev_id", "next_id")

    def __init__(self, id: str | bytes, data: bytes, prev_id: Optional[str] = None, next_id: Optional[str] = None) -> None:
        self._id = id
        self.data = data
        self.prev_id = prev_id
        self.next_id = next_id

    @property
    def id(self) -> str:
        i = self._id
        if type(i) is bytes:
            i = self._id = format_id(i)
        return i  # type: ignore[return-value]

    def _key(self) -> tuple:
        return (self.id, self.data, self.prev_id, self.next_id)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, Entry) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Entry(id={self.id!r}, data={self.data!r}, prev_id={self.prev_id!r}, next_id={self.next_id!r})"


def check_limit(limit: object) -> Optional[int]:
    if limit is None:
        return None
    if type(limit) is not int:
        raise WrongType(f"limit must be an int, not {type(limit).__name__}")
    if limit < 0:
        raise BadRequest("limit must be >= 0")
    return limit


def _opt_id(entry_id: Optional[str]) -> Optional[str]:
    return None if entry_id is None else format_id(entry_id) if isinstance(entry_id, bytes) else entry_id


class Pager:
    """Walks a feed page by page from an exclusive cursor; yields at most ``limit``."""

    def __init__(self, start: Optional[str], reverse: bool, limit: Optional[int]) -> None:
        self.after = None if start is None else parse_id(start)
        if type(reverse) is not bool:
            raise WrongType(f"reverse must be a bool, not {type(reverse).__name__}")
        self.reverse = reverse
        self.left = check_limit(limit)
        self.done = self.left == 0
        self.size = FIRST_PAGE
        #: names this iteration to a cluster coordinator, which reads its next page ahead
        self.session = secrets.randbits(63) | 1

    def request(self) -> tuple[Optional[bytes], bool, int]:
        size = self.size if self.left is None else max(1, min(self.size, self.left))
        return self.after, self.reverse, size

    def stream(self) -> tuple[int, int]:
        """``(session, size of the pages after the one requested)``; 0 when that one is the last wanted."""
        if self.left is None:
            return self.session, MAX_PAGE
        return self.session, max(0, min(self.left - self.size, MAX_PAGE))

    def take(self, page: Page) -> Iterator[Entry]:
        """Advance past ``page``; its entries are made as they are consumed (after the next request is out)."""
        ids, datas, cursor, more = page
        if self.left is not None and len(ids) >= self.left:
            ids, datas = ids[: self.left], datas[: self.left]
            self.left = 0
            if ids:
                cursor = ids[-1]  # stopped early: resume right after the last one taken
        elif self.left is not None:
            self.left -= len(ids)
        if cursor is not None:
            self.after = cursor
        elif ids:
            self.after = ids[-1]
        self.done = self.left == 0 or not more
        self.size = MAX_PAGE
        return map(Entry, ids, datas)


class FeedAPI:
    """A feed (sync); backends implement ``append``, ``_page``, ``_get``, ``remove``, ``length``."""

    name: str

    def append(self, data: bytes | str, *, w: Optional[int] = None) -> str:
        raise NotImplementedError

    def _page(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int]) -> Page:
        raise NotImplementedError

    def _get(self, entry_id: bytes, r: Optional[int]) -> tuple[Optional[bytes], Optional[bytes], Optional[bytes]]:
        """``(data or None, prev raw id, next raw id)``."""
        raise NotImplementedError

    def remove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        raise NotImplementedError

    def length(self, *, r: Optional[int] = None) -> int:
        raise NotImplementedError

    # -- derived -----------------------------------------------------------

    def get(self, entry_id: str, *, r: Optional[int] = None) -> Optional[Entry]:
        """The entry with its live neighbours' ids, or None if it does not exist (or was removed)."""
        raw = parse_id(entry_id)
        data, prev_id, next_id = self._get(raw, r)
        if data is None:
            return None
        return Entry(format_id(raw), data, _opt_id(prev_id), _opt_id(next_id))

    def iterate(self, start: Optional[str] = None, reverse: bool = False, limit: Optional[int] = None, *, r: Optional[int] = None) -> Iterator[Entry]:
        """Live entries in order (newest first with ``reverse``), after ``start`` (exclusive).

        Any entry's ``id`` is a cursor: pass it as ``start`` to resume right after it.
        """
        pager = Pager(start, reverse, limit)
        if pager.done:
            return
        pending = self._start_page(*pager.request(), r, pager.stream())
        try:
            while pending is not None:
                entries = pager.take(pending())
                pending = None if pager.done else self._start_page(*pager.request(), r, pager.stream())
                yield from entries
        finally:
            if pending is not None:
                _cancel(pending)

    def _start_page(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int], stream: tuple[int, int] = (0, 0)) -> Callable[[], Page]:
        """Begin fetching a page; the returned call gives it. Backends with a network prefetch here.

        ``stream`` is :meth:`Pager.stream`: what a cluster coordinator may read ahead.
        """
        return lambda: self._page(after, reverse, limit, r)

    def __iter__(self) -> Iterator[Entry]:
        return self.iterate()

    def all(self) -> list[Entry]:
        return list(self.iterate())

    def last(self) -> Optional[Entry]:
        return next(iter(self.iterate(reverse=True, limit=1)), None)

    def trim(self, *, keep_last: Optional[int] = None, before: Optional[str] = None) -> int:
        """Remove old entries: all but the newest ``keep_last``, or all before ``before``. Returns how many."""
        _doomed([], keep_last, before)  # bad arguments fail before any scan
        doomed = _doomed([e.id for e in self.iterate()], keep_last, before)
        for eid in doomed:
            self.remove(eid)
        return len(doomed)

    def follow(self, start: Optional[str] = None, *, poll: float = 0.2, timeout: Optional[float] = None) -> Iterator[Entry]:
        """Entries appended after ``start`` (default: after the tail as of this call), waiting for new ones.

        Stops after ``timeout`` seconds without a new entry (None: never).
        """
        _check_follow(poll, timeout)
        return self._follow(start if start is not None else _tail_id(self.last()), poll, timeout)

    def _follow(self, cursor: Optional[str], poll: float, timeout: Optional[float]) -> Iterator[Entry]:
        idle_since = time.monotonic()
        while True:
            got = False
            for entry in self.iterate(cursor):
                got = True
                cursor = entry.id
                yield entry
            if got:
                idle_since = time.monotonic()
            elif timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            else:
                time.sleep(poll)  # polling interval of a tail -f, not a test wait


def _check_follow(poll: object, timeout: object) -> None:
    for name, value in (("poll", poll), ("timeout", timeout)):
        if value is None and name == "timeout":
            continue
        if type(value) not in (int, float):
            raise WrongType(f"{name} must be a number of seconds, not {type(value).__name__}")
        if not 0 < value < 1e9:
            raise BadRequest(f"{name} must be a positive number of seconds")


def _cancel(pending: object) -> None:
    """Drop a prefetched page nobody will read."""
    cancel = getattr(pending, "cancel", None) or getattr(pending, "close", None)
    if cancel is not None:
        cancel()


def _tail_id(entry: Optional[Entry]) -> Optional[str]:
    return entry.id if entry is not None else None


def _doomed(ids: list[str], keep_last: Optional[int], before: Optional[str]) -> list[str]:
    """Which of ``ids`` (oldest first) a trim removes."""
    if (keep_last is None) == (before is None):
        raise BadRequest("trim takes exactly one of keep_last= or before=")
    if keep_last is not None:
        if check_limit(keep_last) is None:
            raise BadRequest("keep_last must be an int >= 0")
        return ids[: max(0, len(ids) - keep_last)]
    bound = parse_id(before)
    return [i for i in ids if parse_id(i) < bound]


class AsyncFeedAPI:
    """A feed (async); backends implement ``aappend``, ``_apage``, ``_aget``, ``aremove``, ``alength``."""

    name: str

    async def aappend(self, data: bytes | str, *, w: Optional[int] = None) -> str:
        raise NotImplementedError

    async def _apage(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int]) -> Page:
        raise NotImplementedError

    async def _aget(self, entry_id: bytes, r: Optional[int]) -> tuple[Optional[bytes], Optional[bytes], Optional[bytes]]:
        raise NotImplementedError

    async def aremove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        raise NotImplementedError

    async def alength(self, *, r: Optional[int] = None) -> int:
        raise NotImplementedError

    async def aget(self, entry_id: str, *, r: Optional[int] = None) -> Optional[Entry]:
        raw = parse_id(entry_id)
        data, prev_id, next_id = await self._aget(raw, r)
        if data is None:
            return None
        return Entry(format_id(raw), data, _opt_id(prev_id), _opt_id(next_id))

    async def aiterate(self, start: Optional[str] = None, reverse: bool = False, limit: Optional[int] = None, *, r: Optional[int] = None) -> AsyncIterator[Entry]:
        pager = Pager(start, reverse, limit)
        if pager.done:
            return
        pending = await self._astart_page(*pager.request(), r, pager.stream())
        try:
            while pending is not None:
                entries = pager.take(await pending)
                pending = None if pager.done else await self._astart_page(*pager.request(), r, pager.stream())
                for entry in entries:
                    yield entry
        finally:
            if pending is not None:
                _cancel(pending)

    async def _astart_page(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int], stream: tuple[int, int] = (0, 0)) -> Awaitable[Page]:
        """Begin fetching a page; awaiting the result gives it. Backends with a network prefetch here."""
        return self._apage(after, reverse, limit, r)

    def __aiter__(self) -> AsyncIterator[Entry]:
        return self.aiterate()

    async def alast(self) -> Optional[Entry]:
        async for e in self.aiterate(reverse=True, limit=1):
            return e
        return None

    async def afollow(self, start: Optional[str] = None, *, poll: float = 0.2, timeout: Optional[float] = None) -> AsyncIterator[Entry]:
        _check_follow(poll, timeout)
        cursor = start if start is not None else _tail_id(await self.alast())
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        while True:
            got = False
            async for entry in self.aiterate(cursor):
                got = True
                cursor = entry.id
                yield entry
            if got:
                idle_since = loop.time()
            elif timeout is not None and loop.time() - idle_since >= timeout:
                return
            else:
                await asyncio.sleep(poll)

    async def atrim(self, *, keep_last: Optional[int] = None, before: Optional[str] = None) -> int:
        _doomed([], keep_last, before)
        doomed = _doomed([e.id async for e in self.aiterate()], keep_last, before)
        for eid in doomed:
            await self.aremove(eid)
        return len(doomed)
