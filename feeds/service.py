"""Feeds on a cluster node: append, paged iteration at R, get with links, remove.

Entries are ordinary replicated records of the keyspace's feed table, so
appends reuse the quorum write path (W acks, hints, read repair) unchanged.
What is feed-specific: the coordinating replica mints the entry id (no head
record is ever read or rewritten, so concurrent appends never conflict), and
iteration merges R replicas' range scans — an entry one replica lacks is
filled in from the others and repaired on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from typing import Awaitable, Callable, Optional


from ringkv.codec import encode_record
from ringkv.errors import BadRequest, QuorumError, RingKVError, TooLarge, Unavailable, WrongType
from ringkv.feeds.ids import EntryIds
from ringkv.feeds.messages import (
    FeedAppend,
    FeedAppended,
    FeedCount,
    FeedEntry,
    FeedGet,
    FeedLength,
    FeedList,
    FeedNames,
    FeedPackedPage,
    FeedPage,
    FeedRemove,
    FeedReplicaLength,
    FeedReplicaList,
    FeedReplicaPage,
    FeedReplicaScan,
    FeedScan,
)
from ringkv.feeds.pages import Joined, packed_fields, page_digest
from ringkv.feeds.store import FeedStore, entry_data, page_of
from ringkv.keys import as_optional_count
from ringkv.quorum.retries import RetryMemo
from ringkv.quorum.coordinator import Coordinator
from ringkv.quorum.dvv import DVVSet, encode_context
from ringkv.quorum.messages import KvPut, KvWritten, ReplicaPut
from ringkv.quorum.plan import merge_records
from ringkv.quorum.scan import gather_replies
from ringkv.quorum.tables import ENTRY_ID_LEN, FEEDS_SUFFIX, MAX_FEED_NAME, Table, feed_entry_key, feed_prefix, split_feed_key
from ringkv.codec import decode_record
from ringkv.wire import Message

log = logging.getLogger(__name__)

__all__ = ["FeedService", "check_feed", "MAX_PAGE", "merge_pages"]

MAX_PAGE = 4096
#: Iterations read ahead for at once, pages read ahead for each (each at most
#: MAX_AHEAD entries and PAGE_BYTES of records), and how long an iteration's
#: pages wait for its next request.
AHEAD_SESSIONS = 16
AHEAD_DEPTH = 2
MAX_AHEAD = 2048
AHEAD_TTL = 10.0


def check_feed(feed: object) -> bytes:
    if isinstance(feed, str):
        try:
            feed = feed.encode()
        except UnicodeEncodeError:
            raise BadRequest("feed name is not valid unicode (a lone surrogate?)") from None
    if not isinstance(feed, bytes):
        raise WrongType(f"feed name must be str or bytes, not {type(feed).__name__}")
    if not 1 <= len(feed) <= MAX_FEED_NAME:
        raise BadRequest(f"feed name must be 1 to {MAX_FEED_NAME} bytes")
    return feed


def merge_pages(pages: list[tuple[list[tuple[bytes, DVVSet]], bool]], reverse: bool) -> tuple[list[tuple[bytes, DVVSet]], Optional[bytes], bool]:
    """Merge replicas' pages: ``(entries up to the safe cut, cut key, more)``.

    A replica whose page was full may hold entries past its last key that the
    others did not return, so the merged page ends at the earliest such last
    key (latest, in reverse); everything before it is complete.
    """
    merged: dict[bytes, DVVSet] = {}
    cut: Optional[bytes] = None
    more = False
    for entries, full in pages:
        for key, rec in entries:
            merged[key] = merge_records([merged.get(key), rec])
        if full and entries:
            more = True
            last = entries[-1][0]
            if cut is None or (last > cut if reverse else last < cut):
                cut = last
    keys = sorted(merged, reverse=reverse)
    if cut is not None:
        keys = [k for k in keys if (k >= cut if reverse else k <= cut)]
    return [(k, merged[k]) for k in keys], (keys[-1] if keys else cut), more


def _appended(entry_id: bytes, n: int, done: Message) -> FeedAppended:
    if isinstance(done, KvWritten):  # the client copies it to the other replicas
        return FeedAppended(entry_id, n, done.record, done.node, done.w)
    return FeedAppended(entry_id, n)


class FeedService:
    """Feed requests on one node, on top of its :class:`Coordinator`."""

    def __init__(self, coordinator: Coordinator, store: FeedStore, ids: EntryIds, request: Callable[[str, Message, float], Awaitable[Message]],
                 flush: Callable[[], None] = lambda: None) -> None:
        self.c = coordinator
        #: Sends queued requests now: the digest requests travel while this node scans its own page.
        self._flush = flush
        self.store = store
        self.ids = ids
        self._request = request
        #: request id -> entry id already made: a repeated append stores one entry.
        self._recent: RetryMemo = RetryMemo()
        #: iteration (FeedScan.session) -> its pages read ahead; least recently used first
        #: least recently used first (an OrderedDict: finding a plain dict's first key scans the slots freed at its front)
        self._streams: OrderedDict[int, _Stream] = OrderedDict()
        #: ``(column family, storage key) -> hash of its hash-tree segment`` or None
        #: (no complete tree): replicas that agree on it need not scan to compare pages
        self.tree_hash: Callable[[str, bytes], Optional[int]] = lambda cf, skey: None
        coordinator.table_hooks[True] = store.length_extra
        coordinator.stats.setdefault("feed_scan_merges", 0)
        coordinator.stats.setdefault("feed_pages_ahead", 0)
        coordinator.stats.setdefault("feed_length_scans", 0)
        coordinator.stats.setdefault("feed_tree_agreed", 0)

    def _table(self, keyspace: str) -> Table:
        return self.c.table(keyspace + FEEDS_SUFFIX)

    def _remaining(self, deadline: float) -> float:
        return deadline - asyncio.get_running_loop().time()

    # -- appends and removes ----------------------------------------------

    async def append(self, msg: FeedAppend, deadline: float) -> FeedAppended:
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        if len(msg.data) > self.c.max_value_size:
            raise TooLarge(f"entry is {len(msg.data)} bytes; the limit is {self.c.max_value_size}")
        view = self.c.view
        walk: Optional[list[str]] = view.walk(feed)
        preferred = walk[: table.info.n]  # type: ignore[index]
        if view.node_id not in preferred and not msg.forwarded:
            fwd = dataclasses.replace(msg, forwarded=True)
            for node in preferred:
                if view.is_alive(node):
                    try:
                        return await self.c._call(node, fwd, deadline)  # type: ignore[return-value]
                    except QuorumError:
                        raise
                    except Unavailable:
                        continue
            walk = None  # the forwarding waited: the ring may have changed meanwhile
        entry_id, put = self._entry_put(table, feed, msg)
        return _appended(entry_id, table.info.n, await self.c.put(put, deadline, walk=walk))

    def append_now(self, msg: FeedAppend, deadline: float) -> "FeedAppended | asyncio.Future":
        """:meth:`append` without a coroutine, on one of the feed's replicas (the usual case); NotImplemented elsewhere."""
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        if len(msg.data) > self.c.max_value_size:
            raise TooLarge(f"entry is {len(msg.data)} bytes; the limit is {self.c.max_value_size}")
        walk = self.c.view.walk(feed)
        if self.c.view.node_id not in walk[: table.info.n] and not msg.forwarded:
            return NotImplemented  # forwarding waits for another replica: the general path
        entry_id, put = self._entry_put(table, feed, msg)
        done = self.c.put_future(put, deadline, walk=walk)
        if isinstance(done, KvWritten):
            return _appended(entry_id, table.info.n, done)
        out = asyncio.get_running_loop().create_future()

        def settle(f: asyncio.Future) -> None:
            if f.cancelled():
                out.cancel()
            elif f.exception() is not None:
                out.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                out.set_result(_appended(entry_id, table.info.n, f.result()))

        done.add_done_callback(settle)
        return out

    def _entry_put(self, table: Table, feed: bytes, msg: FeedAppend) -> tuple[bytes, KvPut]:
        """The entry id for ``msg`` (the same one for a repeated request id) and the write that stores it."""
        rid = msg.request_id
        entry_id = self._recent.get(rid) if rid else None
        if entry_id is None:
            if msg.after is not None:
                self.ids.observe(_check_id(msg.after))
            entry_id = self.ids.next()
            if rid:
                self._recent[rid] = entry_id
        # the same request id again re-sends the same record (no second entry, no new dot)
        return entry_id, KvPut(table.wire_name, feed_entry_key(feed, entry_id), msg.data, None, msg.w, None, rid and "feed:" + rid, True, msg.ring)

    async def remove(self, msg: FeedRemove, deadline: float) -> None:
        table = self._table(msg.keyspace)
        key = feed_entry_key(check_feed(msg.feed), _check_id(msg.entry_id))
        rec = await self.c.read(table, key, None, deadline)
        # Write the tombstone even if the read found one: it may be on fewer
        # than W replicas (a remove that failed after writing it here), and an
        # acknowledged remove must be on W. Even if the read found nothing: the
        # append may be held by fallbacks only (sloppy quorum); the tombstone
        # wins when they meet.
        await self.c.put(KvPut(table.wire_name, key, None, encode_context(rec.clock), msg.w, None, "", True), deadline)

    # -- reads -------------------------------------------------------------

    async def _gather(self, table: Table, feed: bytes, r: Optional[int], local: Callable[[], Message], remote: Message, deadline: float) -> dict[str, Message]:
        """Ask the feed's preferred replicas; return once R answered (QuorumError if they cannot)."""
        info = table.info
        r = as_optional_count(r, "r", info.n) or info.r
        return await gather_replies(self.c, self.c.view.walk(feed)[: info.n], r, local, remote, deadline)

    async def scan(self, msg: FeedScan, deadline: float) -> FeedPage | FeedPackedPage:
        """A page of an iteration: the one read ahead for it if there is one, else read now.

        An iteration (``msg.session``) that wants more pages (``msg.ahead``
        entries each) gets them read before it asks, up to
        :data:`AHEAD_DEPTH` pages ahead: the scans, the digests and the
        client's work on a page overlap instead of each waiting for a round
        trip. Every page is still read after the iteration began.
        """
        if not msg.session:
            return await self._scan(msg, deadline)
        loop = asyncio.get_running_loop()
        what = (msg.keyspace, msg.feed, msg.reverse, msg.r)
        stream = self._streams.pop(msg.session, None)
        if stream is not None and stream.what != what:
            stream.drop()  # the same session id for another read: nothing read ahead fits
            stream = None
        page: FeedPage | FeedPackedPage | None = None
        try:
            if stream is not None:
                task = stream.pages.pop(msg.after, None)
                if task is None:
                    stream.drop()  # the client is not where the pages read ahead assumed
                else:
                    page = await self._taken(task, max(1, min(int(msg.limit), MAX_PAGE)), deadline)
            if page is None:
                page = await self._scan(msg, deadline)
        except BaseException:
            if stream is not None:
                stream.drop()  # a failed or abandoned request ends the iteration's reads ahead
            raise
        ahead = max(0, min(int(msg.ahead), MAX_AHEAD))
        if stream is None and ahead and page.more:
            stream = _Stream(what)
        if stream is not None:
            stream.ahead, stream.budget = ahead, max(1.0, deadline - loop.time())
            stalled, stream.stalled = stream.stalled, None
            if stalled is not None and ahead:
                self._read_ahead(stream, dataclasses.replace(stalled, limit=ahead))
            else:
                self._ahead_of(stream, msg, page)
            self._keep(msg.session, stream, loop.time())
        return page

    async def _taken(self, task: asyncio.Task, limit: int, deadline: float) -> FeedPage | FeedPackedPage | None:
        """The page ``task`` read ahead, if it has it within half of this request's time; None otherwise."""
        if not task.done():
            await asyncio.wait([task], timeout=max(0.0, self._remaining(deadline) / 2))
        if not task.done():
            task.cancel()
            return None
        if task.cancelled() or task.exception() is not None:
            return None
        self.c.stats["feed_pages_ahead"] += 1
        return task.result().first(limit)

    def _keep(self, session: int, stream: "_Stream", now: float) -> None:
        """Keep ``stream`` as the most recently used; streams unused for AHEAD_TTL or beyond AHEAD_SESSIONS go."""
        old = self._streams.pop(session, None)
        if old is not None and old is not stream:
            old.drop()
        stream.used = now
        self._streams[session] = stream
        while self._streams:
            first = next(iter(self._streams))
            if len(self._streams) <= AHEAD_SESSIONS and self._streams[first].used > now - AHEAD_TTL:
                break
            self._streams.pop(first).drop()

    def _ahead_of(self, stream: "_Stream", msg: FeedScan, page: FeedPage | FeedPackedPage) -> None:
        """Start reading the page after ``page``, if the iteration still wants pages and there is one."""
        if stream.ahead and page.more and page.cursor is not None:
            self._read_ahead(stream, dataclasses.replace(msg, after=page.cursor, limit=stream.ahead))

    def _read_ahead(self, stream: "_Stream", msg: FeedScan) -> None:
        if msg.after in stream.pages:
            return
        if len(stream.pages) >= AHEAD_DEPTH:
            stream.stalled = msg  # started when the client takes a page
            return
        task = self.c._spawn(self._page_ahead(stream, msg))
        task.add_done_callback(_consume)
        stream.pages[msg.after] = task

    async def _page_ahead(self, stream: "_Stream", msg: FeedScan) -> FeedPage | FeedPackedPage:
        page = await self._scan(msg, asyncio.get_running_loop().time() + stream.budget)
        self._ahead_of(stream, msg, page)
        return page

    async def _scan(self, msg: FeedScan, deadline: float) -> FeedPage | FeedPackedPage:
        """A page merged from R replicas.

        Fast path: one replica (this node when it is one) sends its entries,
        R-1 others only a digest of the same page; when the digests match the
        page is served as stored, nothing is decoded or merged. Any mismatch
        or failure falls back to full pages from R replicas, merged and
        read-repaired.
        """
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        after = None if msg.after is None else _check_id(msg.after)
        limit = max(1, min(int(msg.limit), MAX_PAGE))
        req = FeedReplicaScan(msg.keyspace, feed, after, msg.reverse, limit)
        r = as_optional_count(msg.r, "r", table.info.n) or table.info.r
        agreed = await self._digest_scan(table, feed, r, req, deadline, packed=bool(msg.session))
        if agreed is not None:
            return agreed
        self.c.stats["feed_scan_merges"] += 1
        answers = await self._gather(table, feed, r, lambda: self.replica_scan(req), req, deadline)
        pages = {node: ([(k, decode_record(raw)) for k, raw in a.entries], a.full) for node, a in answers.items()}  # type: ignore[union-attr]
        merged, cut, more = merge_pages(list(pages.values()), msg.reverse)
        self._repair(table, merged, pages, cut, msg.reverse)
        live = [(split_feed_key(k)[1], data) for k, rec in merged if (data := entry_data(rec)) is not None]
        return FeedPage([i for i, _ in live], [d for _, d in live], split_feed_key(cut)[1] if cut is not None else after, more)

    async def _digest_scan(self, table: Table, feed: bytes, r: int, req: FeedReplicaScan, deadline: float,
                           packed: bool = False) -> FeedPage | FeedPackedPage | None:
        """One replica's page if R-1 others' digests match it; None otherwise.

        The page is built while the digests are on their way. When this node
        is the source, the request carries its hash-tree hash of the feed's
        segment, read in the same step as its scan: a replica with the same
        hash holds the same records and answers without scanning; others
        digest the page. ``packed``: it may be a ``feed.packed_page`` (the
        requester sent a session, so it knows that message).
        """
        view = self.c.view
        me = view.node_id
        live = [n for n in view.walk(feed)[: table.info.n] if n == me or view.is_alive(n)]
        if len(live) < r:
            return None
        source = me if me in live else live[0]
        others = [n for n in live if n != source][: r - 1]
        tree = self.tree_hash(table.cf, feed_prefix(feed)) if source == me and others else None
        tree = tree or None  # 0: an empty segment, cheap to digest; never vouched for by a tree
        digest_req = dataclasses.replace(req, digest=True, tree=None if tree is None else tree.to_bytes(16, "big"))
        # half the budget at most: a replica that hangs here leaves time for the full read
        now = asyncio.get_running_loop().time()
        deadline = now + (deadline - now) / 2
        futs = [self.c._call_future(n, digest_req, deadline) for n in others]
        try:
            self._flush()  # a failing WAL sync falls back to the merged read below, like any other failure here
            page: FeedPage | FeedPackedPage
            if source == me:
                rows, full = self._scan_rows(req)
                joined = Joined(rows)
                digest = joined.digest
                skip = joined.uniform_skip() if packed else None
                if skip is not None:
                    page = FeedPackedPage(*packed_fields(joined, skip, rows[-1][0][-ENTRY_ID_LEN:], full))
                else:
                    page = FeedPage(*page_of(rows, full, req.after))
            else:
                reply = await self.c._call(source, req, deadline)
                rows, full, digest = reply.entries, reply.full, reply.digest  # type: ignore[attr-defined]
                page = FeedPage(*page_of(rows, full, req.after))
            agreed = 0
            for fut in futs:
                reply = await fut
                if reply.same and tree is not None:  # type: ignore[attr-defined]
                    agreed += 1
                elif reply.digest != digest:  # type: ignore[attr-defined]
                    return None
            self.c.stats["feed_tree_agreed"] += agreed
            return page
        except RingKVError:
            return None
        finally:
            for fut in futs:
                if not fut.done():
                    fut.cancel()
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _repair(self, table: Table, merged, pages, cut, reverse: bool) -> None:
        """Send the merged record to replicas whose copy is missing or stale (background)."""
        me = self.c.view.node_id
        for node, (entries, full) in pages.items():
            have = dict(entries)
            last = entries[-1][0] if entries else None
            for key, rec in merged:
                if full and last is not None and (key < last if reverse else key > last):
                    continue  # beyond what this replica was asked for
                if have.get(key) == rec:
                    continue
                self.c.stats["read_repairs"] += 1
                if node == me:
                    self.c.apply(table, key, rec)
                else:
                    self.c._spawn(self._send_repair(node, ReplicaPut(table.wire_name, key, encode_record(rec), None)))

    async def _send_repair(self, node: str, msg: ReplicaPut) -> None:
        try:
            await self.c._request(self.c.view.addr(node), msg, 5.0)
        except RingKVError:
            pass

    async def get(self, msg: FeedGet, deadline: float) -> FeedEntry:
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        eid = _check_id(msg.entry_id)
        rec = await self.c.read(table, feed_entry_key(feed, eid), msg.r, deadline)
        data = entry_data(rec)
        prev_id = await self._neighbour(msg.keyspace, feed, eid, True, msg.r, deadline)
        next_id = await self._neighbour(msg.keyspace, feed, eid, False, msg.r, deadline)
        return FeedEntry(eid, data, prev_id, next_id)

    async def _neighbour(self, keyspace: str, feed: bytes, eid: bytes, reverse: bool, r, deadline: float) -> Optional[bytes]:
        after: Optional[bytes] = eid
        while True:
            ids, _, cursor, more = (await self._scan(FeedScan(keyspace, feed, after, reverse, 16, r), deadline)).page()
            if ids:
                return ids[0]
            if not more:
                return None
            after = cursor

    async def length(self, msg: FeedLength, deadline: float) -> FeedCount:
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        answers = await self._gather(
            table, feed, msg.r,
            lambda: self.replica_length(FeedReplicaLength(msg.keyspace, feed)),
            FeedReplicaLength(msg.keyspace, feed), deadline,
        )
        if len({(a.count, a.digest) for a in answers.values()}) == 1:  # type: ignore[attr-defined]
            return FeedCount(next(iter(answers.values())).count)  # type: ignore[attr-defined]
        # The replicas hold different entries: count what a read at R returns
        # (merged and read-repaired, so they agree again afterwards).
        self.c.stats["feed_length_scans"] += 1
        count, after = 0, None
        while True:
            ids, _, after, more = (await self._scan(FeedScan(msg.keyspace, feed, after, False, MAX_PAGE, msg.r), deadline)).page()
            count += len(ids)
            if not more:
                return FeedCount(count)

    async def feeds(self, msg: FeedList, deadline: float) -> FeedNames:
        table = self._table(msg.keyspace)
        view = self.c.view
        out = dict(self.store.feeds(table.info.name))
        members = [n for n in view.walk(b"")] if hasattr(view, "walk") else []
        for node in members:
            if node == view.node_id or not view.is_alive(node):
                continue
            try:
                reply = await self.c._call(node, FeedReplicaList(msg.keyspace), deadline)
            except RingKVError:
                continue
            for name, n in reply.feeds:  # type: ignore[attr-defined]
                out[name] = max(n, out.get(name, 0))
        return FeedNames([[k, v] for k, v in sorted(out.items())])

    # -- replica side ------------------------------------------------------

    def _scan_rows(self, msg: FeedReplicaScan) -> tuple[list[tuple[bytes, bytes]], bool]:
        table = self._table(msg.keyspace)
        limit = max(1, min(int(msg.limit), MAX_PAGE))
        after = None if msg.after is None else _check_id(msg.after)
        return self.store.scan(table, check_feed(msg.feed), after, msg.reverse, limit)

    def replica_scan(self, msg: FeedReplicaScan) -> FeedReplicaPage:
        if msg.digest and msg.tree is not None:
            table = self._table(msg.keyspace)
            mine = self.tree_hash(table.cf, feed_prefix(check_feed(msg.feed)))
            if mine and mine == int.from_bytes(msg.tree, "big"):
                return FeedReplicaPage([], False, 0, True)
        rows, full = self._scan_rows(msg)
        if msg.digest:
            return FeedReplicaPage([], full, page_digest(rows))
        return FeedReplicaPage([[k[8:], v] for k, v in rows], full, page_digest(rows))

    def replica_length(self, msg: FeedReplicaLength) -> FeedCount:
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        return FeedCount(*self.store.counted(table.info.name, feed))

    def replica_list(self, msg: FeedReplicaList) -> FeedNames:
        table = self._table(msg.keyspace)
        return FeedNames([[k, v] for k, v in self.store.feeds(table.info.name)])


class _Stream:
    """One iteration's pages read ahead (cursor -> task), the next one waiting for room, and what it reads."""

    __slots__ = ("what", "pages", "stalled", "ahead", "budget", "used")

    def __init__(self, what: tuple) -> None:
        self.what = what  # (keyspace, feed, reverse, r)
        self.pages: dict[Optional[bytes], asyncio.Task] = {}
        self.stalled: Optional[FeedScan] = None
        self.ahead = 0  # entries per page the client last said it wants next; 0: no more
        self.budget = 1.0  # seconds a read ahead may take (the client's last request's)
        self.used = 0.0

    def drop(self) -> None:
        for task in self.pages.values():
            task.cancel()
        self.pages.clear()
        self.stalled = None


def _consume(task: asyncio.Future) -> None:
    """A read-ahead nobody asked for is dropped without a 'never retrieved' warning."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, RingKVError):
        log.error("feed read-ahead failed", exc_info=exc)


def _check_id(entry_id: object) -> bytes:
    if not isinstance(entry_id, bytes) or len(entry_id) != 16:
        raise BadRequest("bad entry id")
    return entry_id
