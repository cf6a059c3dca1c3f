"""Clients of a running cluster: ``ringkv.connect`` and ``ringkv.connect_async``.

:class:`AsyncClient` is the one implementation: it runs on an asyncio loop,
keeps many requests in flight over one DEALER per node, learns the ring and
sends each request to a replica of its key (token-aware), falling back to
other live nodes. Gets it coordinates itself, and the copies of its puts it
sends itself (:mod:`ringkv.client_reads`, :mod:`ringkv.client_writes`),
whenever its view of the ring and keyspaces matches the nodes'. :class:`Client` is a thin sync wrapper that runs an
AsyncClient on a background loop; its ``a*`` twins await the same core from
any loop. There is no second copy of the logic.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
from concurrent.futures import Future
from typing import Any, AsyncIterator, Awaitable, Iterable, Iterator, Optional, TypeVar

from cachetools import LRUCache

from ringkv import runtime
from ringkv.api import DatabaseAPI, KeyspaceAPI
from ringkv.errors import BadRequest, ClosedError, QuorumError, RingKVError, Timeout, Unavailable, WrongType
from ringkv.keys import as_key, as_value
from ringkv.keyspaces import DEFAULT_KEYSPACE, KeyspaceInfo, check_name
from ringkv.node_messages import ClusterView, NodeStatus
from ringkv.quorum.messages import KeyspaceCreate, KeyspaceDrop, KeyspaceList, KvGet, KvPut, KvScan, KvWritten, LocalGet
from ringkv.quorum.scan import SCAN_PAGE
from ringkv.codec import decode_parts, decode_record
from ringkv.client_reads import DirectReads
from ringkv.client_writes import DirectWrites
from ringkv.feeds.client import AsyncFeed, ClientFeed, afeeds
from ringkv.quorum.dvv import encode_context
from ringkv.result import Result
from ringkv.ring import Ring
from ringkv.transport import Transport
from ringkv.wire import Message

__all__ = ["AsyncClient", "AsyncKeyspace", "Client", "ClientKeyspace", "connect", "connect_async"]

T = TypeVar("T")
_RETRY_ON = (Timeout, Unavailable, ClosedError)
_REFRESH_EVERY = 2.0


def _addrs(addrs: object) -> list[str]:
    if isinstance(addrs, str):
        addrs = [addrs]
    if not isinstance(addrs, (list, tuple)) or not addrs or not all(isinstance(a, str) and "://" in a for a in addrs):
        raise BadRequest("connect() takes a list of node addresses like ['tcp://127.0.0.1:7100']")
    return list(addrs)


def _timeout(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 3600:
        raise BadRequest(f"timeout must be a number of seconds in (0, 3600], not {value!r:.40}")
    return float(value)


class AsyncClient:
    """The cluster client core (one asyncio loop)."""

    def __init__(self, addrs: Iterable[str], *, timeout: float = 5.0, transport: Optional[Transport] = None) -> None:
        self.seeds = _addrs(list(addrs) if not isinstance(addrs, str) else addrs)
        self.timeout = _timeout(timeout)
        self._transport = transport
        self._own_transport = transport is None
        self._ring = Ring({})
        self._addr_of: dict[str, str] = {}
        self._alive: set[str] = set()
        #: the ring's walk from a key -> addresses to try, as of the last refresh
        self._routes: dict[tuple[str, ...], list[str]] = {}
        self._refreshed = -1e9
        self._refreshing: Optional[asyncio.Task] = None
        self._closed = False
        self._rid_prefix = secrets.token_hex(8)
        self._rid_seq = itertools.count()
        self._turn = itertools.count()
        #: ``(keyspace, feed) -> (newest entry id appended, replicas)``: orders and spreads this writer's appends
        self.feed_marks: LRUCache = LRUCache(maxsize=10_000)
        #: gets coordinated here, from the replicas' records (see :mod:`ringkv.client_reads`)
        self.reads = DirectReads(self)
        #: writes whose copies this client sends (see :mod:`ringkv.client_writes`)
        self.writes = DirectWrites(self)

    def request_id(self) -> str:
        """A unique id per write (a random per-client prefix and a counter: cheaper than uuid4)."""
        return f"{self._rid_prefix}{next(self._rid_seq):x}"

    async def start(self) -> "AsyncClient":
        if self._transport is None:
            self._transport = Transport(None, None)
            await self._transport.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempts = 0
        while True:  # a lost first message must not fail the connection
            try:
                await self.refresh()
                return self
            except Unavailable:
                attempts += 1
                if attempts >= 3 and loop.time() >= deadline:
                    raise

    async def aclose(self) -> None:
        await self.writes.aclose()  # first: a copy failing meanwhile can still go back to its coordinator
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
        if self._own_transport and self._transport is not None:
            await self._transport.stop()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- routing ---------------------------------------------------------

    async def refresh(self) -> None:
        """Learn members, tokens and liveness from the first node that answers."""
        last: Optional[BaseException] = None
        for addr in [*self._live_addrs(), *self.seeds]:
            try:
                view = await self._transport.request(addr, ClusterView(), min(2.0, self.timeout))  # type: ignore[union-attr]
            except RingKVError as exc:
                last = exc
                continue
            members = view.members  # type: ignore[attr-defined]
            self._addr_of = {m[0]: m[1] for m in members if m[3] not in ("left", "removed")}
            self._alive = {m[0] for m in members if m[4] != "down" and m[3] not in ("left", "removed")}
            self._ring = Ring({m[0]: m[2] for m in members if m[3] in ("up", "leaving") and m[2]})
            self._routes = {}
            self._refreshed = asyncio.get_running_loop().time()
            return
        raise Unavailable(f"no ringkv node answered at {', '.join(self.seeds)}: {last}")

    @property
    def transport(self) -> Optional[Transport]:
        return self._transport

    def live_members(self) -> tuple[set[str], dict[str, str]]:
        """Members believed alive, and every member's address, as last learned."""
        return self._alive, self._addr_of

    async def copy_offer(self, keyspace: str) -> tuple[Optional[tuple[int, int, int, bool]], Optional[bytes]]:
        """``keyspace``'s settings and our ring digest, for a write whose copies we offer to send; (None, None) if we cannot."""
        table = None if self._closed else self.reads._tables.get(keyspace) or await self.reads.table(keyspace)
        ring = self._ring
        return (table, ring.digest) if table is not None and len(ring) else (None, None)

    def stale(self) -> None:
        """Learn the cluster's view again with the next request."""
        self._refreshed = -1e9

    def _live_addrs(self) -> list[str]:
        return [a for n, a in self._addr_of.items() if n in self._alive]

    def _maybe_refresh(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._refreshed > _REFRESH_EVERY and (self._refreshing is None or self._refreshing.done()):
            self._refreshed = now
            self._refreshing = asyncio.ensure_future(self._quiet_refresh())

    async def _quiet_refresh(self) -> None:
        try:
            await self.refresh()
        except RingKVError:
            pass

    def _candidates(self, key: Optional[bytes]) -> list[str]:
        """Addresses to try for ``key``, best first (callers must not change the list: it is cached per ring arc)."""
        walk = self._ring.successors(key) if key is not None else ()
        out = self._routes.get(walk)
        if out is None:
            out = self._routes[walk] = self._route(walk)
        return out

    def _route(self, walk: tuple[str, ...]) -> list[str]:
        out = [self._addr_of[n] for n in walk if n in self._alive and n in self._addr_of]
        for a in self._live_addrs():
            if a not in out:
                out.append(a)
        for a in self.seeds:
            if a not in out:
                out.append(a)
        return out

    async def call(
        self,
        msg: Message,
        key: Optional[bytes] = None,
        *,
        addr: Optional[str] = None,
        timeout: Optional[float] = None,
        idempotent: bool = True,
        spread: int = 0,
    ) -> Message:
        """Send a request to the best node for ``key``, trying others on failure.

        ``spread`` > 1 takes turns among the first ``spread`` nodes for ``key``
        (the replicas of a feed, any of which may coordinate an append).

        A request that certainly did not arrive (``Unavailable``) moves on to
        the next node. After a ``Timeout`` the request may have been applied:
        only ``idempotent`` requests (reads) are sent again elsewhere; a write
        raises ``Timeout`` (outcome unknown) rather than risk being applied
        twice by two coordinators as two concurrent versions.
        """
        if self._closed:
            raise ClosedError("client is closed")
        self._maybe_refresh()
        loop = asyncio.get_running_loop()
        total = self.timeout if timeout is None else timeout
        deadline = loop.time() + total
        candidates = [addr] if addr is not None else self._candidates(key)
        if spread > 1 and len(candidates) > 1:
            k = next(self._turn) % min(spread, len(candidates))
            candidates = candidates[k:] + candidates[:k]
        last: BaseException = Unavailable("no node to send to")
        for i, target in enumerate(candidates):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # the first node may be dead and not yet known as such: leave time for others
            budget = remaining if i == len(candidates) - 1 else min(remaining, max(1.0, total / 2))
            try:
                return await self._transport.request(target, msg, budget)  # type: ignore[union-attr]
            except QuorumError:
                raise  # an answer, not a delivery failure: replicas may hold the write
            except _RETRY_ON as exc:
                last = exc
                self._refreshed = -1e9
                if isinstance(exc, Timeout) and not idempotent:
                    break
        if isinstance(last, Timeout):
            raise Timeout(f"no answer within {total:g}s (last tried {target}); the outcome is unknown") from None
        raise last

    def start_call(self, msg: Message, key: Optional[bytes] = None) -> Awaitable[Message]:
        """:meth:`call` for a read, its first send queued and flushed before this returns.

        A reader that prefetches its next page uses it: the request travels
        while the current page is being consumed, even if the consumer does
        not return to the loop until then.
        """
        if self._closed:
            raise ClosedError("client is closed")
        self._maybe_refresh()
        candidates = self._candidates(key)
        if not candidates or self._transport is None:
            return self.call(msg, key)
        budget = self.timeout if len(candidates) == 1 else min(self.timeout, max(1.0, self.timeout / 2))
        first = self._transport.request_future(candidates[0], msg, budget)
        first.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._transport.flush()
        return self._finish_call(first, msg, key)

    async def _finish_call(self, first: asyncio.Future, msg: Message, key: Optional[bytes]) -> Message:
        try:
            return await first
        except QuorumError:
            raise
        except _RETRY_ON:
            self._refreshed = -1e9
            return await self.call(msg, key)

    # -- API -------------------------------------------------------------

    def keyspace(self, name: str) -> "AsyncKeyspace":
        return AsyncKeyspace(self, check_name(name))

    def feed(self, name: str | bytes) -> AsyncFeed:
        """A feed of the default keyspace (created by its first append)."""
        return AsyncFeed(self, DEFAULT_KEYSPACE, name)

    async def afeeds(self) -> list[str]:
        return await afeeds(self, DEFAULT_KEYSPACE)

    async def aget(self, key, *, r: Optional[int] = None) -> Optional[Result]:
        return await self.keyspace(DEFAULT_KEYSPACE).aget(key, r=r)

    async def aput(self, key, value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        await self.keyspace(DEFAULT_KEYSPACE).aput(key, value, context, w=w, timestamp=timestamp)

    async def adelete(self, key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        await self.keyspace(DEFAULT_KEYSPACE).adelete(key, context, w=w)

    async def akeyspace_create(self, name: str, *, n: Optional[int] = None, r: Optional[int] = None, w: Optional[int] = None, conflict: str = "siblings") -> KeyspaceInfo:
        n = 3 if n is None else n
        info = KeyspaceInfo(name, n=n, r=min(2, n) if r is None else r, w=min(2, n) if w is None else w, conflict=conflict)
        await self.call(KeyspaceCreate(info.name, info.n, info.r, info.w, info.conflict), timeout=max(self.timeout, 10.0))
        return info

    async def akeyspaces(self) -> list[KeyspaceInfo]:
        reply = await self.call(KeyspaceList())
        return [KeyspaceInfo.from_dict(d) for d in reply.keyspaces]  # type: ignore[attr-defined]

    async def akeyspace_drop(self, name: str) -> None:
        await self.call(KeyspaceDrop(check_name(name)), timeout=max(self.timeout, 10.0))
        self.reads.forget(name)

    async def astatus(self, addr: Optional[str] = None) -> dict:
        reply = await self.call(NodeStatus(), addr=addr or self.seeds[0])
        return reply.status  # type: ignore[attr-defined]

    def ring(self) -> Ring:
        return self._ring


class AsyncKeyspace:
    """One keyspace through an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self.name = name

    def feed(self, name: str | bytes) -> AsyncFeed:
        return AsyncFeed(self._client, self.name, name)

    async def afeeds(self) -> list[str]:
        return await afeeds(self._client, self.name)

    async def aitems(self, *, r: Optional[int] = None) -> AsyncIterator[tuple[bytes, Result]]:
        """Live keys and their reads, in hash order: pages merged from R replicas of each part of the ring."""
        if r is not None and type(r) is not int:
            raise WrongType("r must be an int")
        start: Optional[bytes] = b""
        while start is not None:
            page = await self._client.call(KvScan(self.name, start, SCAN_PAGE, r))
            for key, raw in zip(page.keys, page.records):  # type: ignore[attr-defined]
                clock, entries = decode_parts(raw)
                values = [e[3] for e in entries if e[3] is not None]
                if values:
                    yield key, Result(values, clock, entries)
            start = page.next  # type: ignore[attr-defined]

    async def akeys(self, *, r: Optional[int] = None) -> AsyncIterator[bytes]:
        async for key, _ in self.aitems(r=r):
            yield key

    async def aget(self, key, *, r: Optional[int] = None) -> Optional[Result]:
        k = as_key(key, 1 << 30)
        if r is not None and type(r) is not int:
            raise WrongType("r must be an int")
        client = self._client
        timeout = None
        if not client._closed:
            reads = client.reads
            loop = asyncio.get_running_loop()
            start = loop.time()
            table = reads._tables.get(self.name) or await reads.table(self.name)
            if table is not None:
                try:
                    fut = reads.start(self.name, k, r, table, client.timeout / 4)  # silent replicas: leave a coordinator time
                except RingKVError:  # r= beyond an N that may be out of date: the coordinator judges
                    fut = None
                if fut is not None:
                    try:
                        merged = await fut
                    except RingKVError:
                        reads.stats["fallback"] += 1
                        timeout = client.timeout - (loop.time() - start)
                        if timeout <= 0:
                            raise Timeout(f"no answer within {client.timeout:g}s; the read did not complete") from None
                    else:
                        reads.stats["direct"] += 1
                        if not merged.values:
                            return None
                        return Result(merged.values, context=encode_context(merged.clock), timestamp=merged.timestamp)
        reply = await client.call(KvGet(self.name, k, r), k, timeout=timeout)
        values = reply.values  # type: ignore[attr-defined]
        if not values:
            return None
        return Result(values, context=reply.context, timestamp=reply.timestamp)  # type: ignore[attr-defined]

    async def aput(self, key, value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        await self._write(key, as_value(value, 1 << 30), context, w, timestamp)

    async def adelete(self, key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        await self._write(key, None, context, w, None)

    async def _write(self, key, value, context, w, timestamp) -> None:
        k = as_key(key, 1 << 30)
        if context is not None and not isinstance(context, bytes):
            raise WrongType(f"context must be bytes from a previous get, not {type(context).__name__}")
        if w is not None and type(w) is not int:
            raise WrongType("w must be an int")
        if timestamp is not None and type(timestamp) is not int:
            raise WrongType("timestamp must be int milliseconds since the epoch")
        client = self._client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + client.timeout
        table, digest = await client.copy_offer(self.name)
        msg = KvPut(self.name, k, value, context, w, timestamp, client.request_id(), False, digest)
        reply = await client.call(msg, k, idempotent=False, timeout=max(deadline - loop.time(), 0.001))
        if isinstance(reply, KvWritten):  # the coordinator stored it; the copies are ours to send
            await client.writes.copy(self.name, k, reply, table, digest, deadline)  # type: ignore[arg-type]

    async def aget_local(self, key, *, node: str) -> Optional[Result]:
        """Exactly what one node's replica stores for ``key`` (no quorum, no repair)."""
        k = as_key(key, 1 << 30)
        reply = await self._client.call(LocalGet(self.name, k), addr=node)
        raw = reply.record  # type: ignore[attr-defined]
        if raw is None:
            return None
        rec = decode_record(raw)
        if rec.is_deleted:
            return None
        return Result(rec.values, rec.clock, rec.entries, encode_context(rec.clock))


# -- the sync wrapper ---------------------------------------------------------


class _Runner:
    """Runs coroutines on a loop in another thread (owned or borrowed)."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        self._thread: Optional[threading.Thread] = None
        if loop is None:
            loop = runtime.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="ringkv-client", daemon=True)
            self._thread.start()
        self.loop = loop

    def run(self, coro: Awaitable[T]) -> T:
        return self.submit(coro).result()

    async def arun(self, coro: Awaitable[T]) -> T:
        if asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))  # type: ignore[arg-type]

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """An async iterator of the loop, consumed from another thread."""
        try:
            while True:
                try:
                    yield self.run(agen.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            self.run(agen.aclose())  # type: ignore[arg-type]

    async def aiterate(self, agen: AsyncIterator[T]) -> AsyncIterator[T]:
        """An async iterator of the loop, consumed from another loop."""
        try:
            while True:
                try:
                    yield await self.arun(agen.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            await self.arun(agen.aclose())  # type: ignore[arg-type]

    def submit(self, coro: Awaitable[T]) -> Future:
        """Start ``coro`` on the loop; the caller collects it (blocking) later."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()  # type: ignore[attr-defined]
            raise BadRequest("a blocking call inside the client's own event loop would deadlock; use the a* twin (await ks.aget(...))")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()
            self._thread = None


class ClientKeyspace(KeyspaceAPI):
    """One keyspace through a sync :class:`Client`; ``a*`` twins included."""

    def __init__(self, client: "Client", name: str) -> None:
        self._client = client
        self._core = AsyncKeyspace(client._core, name)
        self.name = name

    def get(self, key, *, r: Optional[int] = None) -> Optional[Result]:
        return self._client._runner.run(self._core.aget(key, r=r))

    def put(self, key, value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        return self._client._runner.run(self._core.aput(key, value, context, w=w, timestamp=timestamp))

    def delete(self, key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        return self._client._runner.run(self._core.adelete(key, context, w=w))

    def get_local(self, key, *, node: str) -> Optional[Result]:
        return self._client._runner.run(self._core.aget_local(key, node=node))

    async def aget(self, key, *, r: Optional[int] = None) -> Optional[Result]:
        return await self._client._runner.arun(self._core.aget(key, r=r))

    async def aput(self, key, value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        return await self._client._runner.arun(self._core.aput(key, value, context, w=w, timestamp=timestamp))

    async def adelete(self, key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        return await self._client._runner.arun(self._core.adelete(key, context, w=w))

    async def aget_local(self, key, *, node: str) -> Optional[Result]:
        return await self._client._runner.arun(self._core.aget_local(key, node=node))

    def feed(self, name: str | bytes) -> ClientFeed:
        """A feed of this keyspace (created by its first append)."""
        return ClientFeed(self._client._runner, AsyncFeed(self._client._core, self.name, name))

    def feeds(self) -> list[str]:
        return self._client._runner.run(afeeds(self._client._core, self.name))

    async def afeeds(self) -> list[str]:
        return await self._client._runner.arun(afeeds(self._client._core, self.name))

    def items(self, *, r: Optional[int] = None) -> Iterator[tuple[bytes, Result]]:
        """Live keys and their reads, in hash order, page by page (see :meth:`AsyncKeyspace.aitems`)."""
        return self._client._runner.iterate(self._core.aitems(r=r))

    def keys(self, *, r: Optional[int] = None) -> Iterator[bytes]:
        return self._client._runner.iterate(self._core.akeys(r=r))

    def aitems(self, *, r: Optional[int] = None) -> AsyncIterator[tuple[bytes, Result]]:
        return self._client._runner.aiterate(self._core.aitems(r=r))

    def akeys(self, *, r: Optional[int] = None) -> AsyncIterator[bytes]:
        return self._client._runner.aiterate(self._core.akeys(r=r))


class Client(DatabaseAPI):
    """A blocking client of a ringkv cluster (``ringkv.connect``)."""

    def __init__(self, core: AsyncClient, runner: _Runner) -> None:
        self._core = core
        self._runner = runner
        self._closed = False

    @property
    def timeout(self) -> float:
        return self._core.timeout

    def keyspace(self, name: str) -> ClientKeyspace:
        return ClientKeyspace(self, check_name(name))

    def keyspace_create(self, name: str, *, n: Optional[int] = None, r: Optional[int] = None, w: Optional[int] = None, conflict: str = "siblings") -> KeyspaceInfo:
        return self._runner.run(self._core.akeyspace_create(name, n=n, r=r, w=w, conflict=conflict))

    def keyspaces(self) -> list[KeyspaceInfo]:
        return self._runner.run(self._core.akeyspaces())

    def keyspace_drop(self, name: str) -> None:
        return self._runner.run(self._core.akeyspace_drop(name))

    def status(self, addr: Optional[str] = None) -> dict:
        return self._runner.run(self._core.astatus(addr))

    def ring(self) -> Ring:
        return self._core.ring()

    def get_local(self, key, *, node: str) -> Optional[Result]:
        return self.default.get_local(key, node=node)

    @property
    def default(self) -> ClientKeyspace:
        return self.keyspace(DEFAULT_KEYSPACE)

    def feed(self, name: str | bytes) -> ClientFeed:
        """A feed of the default keyspace (created by its first append)."""
        return self.default.feed(name)

    def feeds(self) -> list[str]:
        return self.default.feeds()

    async def akeyspace_create(self, name: str, **kw: Any) -> KeyspaceInfo:
        return await self._runner.arun(self._core.akeyspace_create(name, **kw))

    async def akeyspaces(self) -> list[KeyspaceInfo]:
        return await self._runner.arun(self._core.akeyspaces())

    async def akeyspace_drop(self, name: str) -> None:
        return await self._runner.arun(self._core.akeyspace_drop(name))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.run(self._core.aclose())
        except (RingKVError, RuntimeError):
            pass
        self._runner.close()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._runner.arun(self._core.aclose())
        self._runner.close()


def connect(addrs: Iterable[str] | str, *, timeout: float = 5.0) -> Client:
    """Connect to a running cluster through any of its nodes (blocking API + a* twins)."""
    core = AsyncClient(_addrs(addrs if isinstance(addrs, str) else list(addrs)), timeout=timeout)
    runner = _Runner()
    try:
        runner.run(core.start())
    except BaseException:
        try:
            runner.run(core.aclose())
        finally:
            runner.close()
        raise
    return Client(core, runner)


async def connect_async(addrs: Iterable[str] | str, *, timeout: float = 5.0) -> AsyncClient:
    """Connect on the running loop; returns an :class:`AsyncClient` (``aget``/``aput``...)."""
    core = AsyncClient(_addrs(addrs if isinstance(addrs, str) else list(addrs)), timeout=timeout)
    try:
        return await core.start()
    except BaseException:
        await core.aclose()
        raise
