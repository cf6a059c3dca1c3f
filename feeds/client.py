"""Feeds through a cluster client: :class:`AsyncFeed` on the client's loop, :class:`ClientFeed` blocking.

Requests go token-aware to a replica of the feed id; appends are never sent
twice after a timeout (a second append would be a second entry).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import TYPE_CHECKING, Awaitable, Callable, Optional

from ringkv.errors import WrongType
from ringkv.feeds.api import AsyncFeedAPI, FeedAPI, Page
from ringkv.feeds.ids import format_id, parse_id
from ringkv.feeds.messages import FeedAppend, FeedGet, FeedLength, FeedList, FeedRemove, FeedScan
from ringkv.feeds.service import check_feed
from ringkv.keys import as_value
from ringkv.quorum.messages import KvWritten
from ringkv.quorum.tables import FEEDS_SUFFIX, feed_entry_key

if TYPE_CHECKING:
    from ringkv.client import AsyncClient, _Runner

__all__ = ["AsyncFeed", "ClientFeed", "afeeds"]


def _opt_count(value: object, name: str) -> Optional[int]:
    if value is not None and type(value) is not int:
        raise WrongType(f"{name} must be an int")
    return value  # type: ignore[return-value]


class AsyncFeed(AsyncFeedAPI):
    """A feed of a cluster keyspace, used from the client's event loop."""

    def __init__(self, client: "AsyncClient", keyspace: str, name: str | bytes) -> None:
        self._client = client
        self._keyspace = keyspace
        self._feed = check_feed(name)
        self.name = self._feed.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<AsyncFeed {self.name!r} in {self._keyspace!r}>"

    async def aappend(self, data, *, w: Optional[int] = None) -> str:
        """Append; appends take turns among the feed's replicas, and one writer's appends keep their order."""
        marks = self._client.feed_marks
        mark_key = (self._keyspace, self._feed)
        after, n = marks.get(mark_key, (None, 0))
        client = self._client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + client.timeout
        table, digest = await client.copy_offer(self._keyspace)
        msg = FeedAppend(self._keyspace, self._feed, as_value(data, 1 << 30), _opt_count(w, "w"), False, client.request_id(), after, digest)
        reply = await client.call(msg, self._feed, idempotent=False, spread=n, timeout=max(deadline - loop.time(), 0.001))
        eid = reply.entry_id  # type: ignore[attr-defined]
        if reply.record is not None:  # type: ignore[attr-defined]  # stored by its coordinator; the copies are ours to send
            written = KvWritten(reply.record, reply.node, reply.n, reply.w)  # type: ignore[attr-defined]
            await client.writes.copy(self._keyspace + FEEDS_SUFFIX, feed_entry_key(self._feed, eid), written, table, digest, deadline, place=self._feed)
        last = marks.get(mark_key, (None, 0))[0]
        marks[mark_key] = (eid if last is None or eid > last else last, reply.n)  # type: ignore[attr-defined]
        return format_id(eid)

    async def _apage(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int], stream: tuple[int, int] = (0, 0)) -> Page:
        return await (await self._astart_page(after, reverse, limit, r, stream))

    async def _astart_page(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int], stream: tuple[int, int] = (0, 0)) -> Awaitable[Page]:
        """Send the page request now: the next page is on its way while this one is read."""
        call = self._client.start_call(FeedScan(self._keyspace, self._feed, after, reverse, limit, _opt_count(r, "r"), *stream), self._feed)
        return _Pending(call)

    async def _aget(self, entry_id: bytes, r: Optional[int]):
        reply = await self._client.call(FeedGet(self._keyspace, self._feed, entry_id, _opt_count(r, "r")), self._feed)
        return reply.data, reply.prev_id, reply.next_id  # type: ignore[attr-defined]

    async def aremove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        await self._client.call(FeedRemove(self._keyspace, self._feed, parse_id(entry_id), _opt_count(w, "w")), self._feed, idempotent=False)

    async def alength(self, *, r: Optional[int] = None) -> int:
        reply = await self._client.call(FeedLength(self._keyspace, self._feed, _opt_count(r, "r")), self._feed)
        return reply.count  # type: ignore[attr-defined]


async def _as_page(call: Awaitable) -> Page:
    return (await call).page()


class _Pending:
    """A page request on its way; awaiting it gives the page, ``cancel`` drops it unread."""

    __slots__ = ("_call",)

    def __init__(self, call) -> None:
        self._call = call

    def __await__(self):
        return _as_page(self._call).__await__()

    def cancel(self) -> None:
        self._call.close()


async def afeeds(client: "AsyncClient", keyspace: str) -> list[str]:
    reply = await client.call(FeedList(keyspace))
    return [name for name, _ in reply.feeds]  # type: ignore[attr-defined]


class _Prefetched:
    """A page being fetched on the client's loop; calling it waits for it."""

    def __init__(self, fut: Future) -> None:
        self._fut = fut

    def __call__(self) -> Page:
        return self._fut.result()

    def cancel(self) -> None:
        self._fut.cancel()


class ClientFeed(FeedAPI, AsyncFeedAPI):
    """A blocking feed handle of a :class:`ringkv.Client` (with ``a*`` twins)."""

    def __init__(self, runner: "_Runner", core: AsyncFeed) -> None:
        self._runner = runner
        self._core = core
        self.name = core.name

    def __repr__(self) -> str:
        return f"<ClientFeed {self.name!r}>"

    def append(self, data, *, w: Optional[int] = None) -> str:
        return self._runner.run(self._core.aappend(data, w=w))

    def _page(self, after, reverse, limit, r) -> Page:
        return self._runner.run(self._core._apage(after, reverse, limit, r))

    def _start_page(self, after, reverse, limit, r, stream=(0, 0)) -> Callable[[], Page]:
        """The request runs on the client's loop thread while this thread reads the current page."""
        fut = self._runner.submit(self._core._apage(after, reverse, limit, r, stream))
        return _Prefetched(fut)

    def _get(self, entry_id, r):
        return self._runner.run(self._core._aget(entry_id, r))

    def remove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        self._runner.run(self._core.aremove(entry_id, w=w))

    def length(self, *, r: Optional[int] = None) -> int:
        return self._runner.run(self._core.alength(r=r))

    async def aappend(self, data, *, w: Optional[int] = None) -> str:
        return await self._runner.arun(self._core.aappend(data, w=w))

    async def _apage(self, after, reverse, limit, r, stream=(0, 0)) -> Page:
        return await self._runner.arun(self._core._apage(after, reverse, limit, r, stream))

    async def _astart_page(self, after, reverse, limit, r, stream=(0, 0)) -> Awaitable[Page]:
        return self._apage(after, reverse, limit, r, stream)

    async def _aget(self, entry_id, r):
        return await self._runner.arun(self._core._aget(entry_id, r))

    async def aremove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        await self._runner.arun(self._core.aremove(entry_id, w=w))

    async def alength(self, *, r: Optional[int] = None) -> int:
        return await self._runner.arun(self._core.alength(r=r))
