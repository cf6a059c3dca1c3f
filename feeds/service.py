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
from typing import Awaitable, Callable, Optional

from cachetools import TTLCache

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
    FeedPage,
    FeedRemove,
    FeedReplicaLength,
    FeedReplicaList,
    FeedReplicaPage,
    FeedReplicaScan,
    FeedScan,
)
from ringkv.feeds.store import FeedStore, entry_data
from ringkv.keys import as_optional_count
from ringkv.quorum.coordinator import Coordinator
from ringkv.quorum.dvv import DVVSet, encode_context
from ringkv.quorum.messages import KvPut, ReplicaPut
from ringkv.quorum.plan import Tally, merge_records
from ringkv.quorum.tables import FEEDS_SUFFIX, MAX_FEED_NAME, Table, feed_entry_key, split_feed_key
from ringkv.codec import decode_record
from ringkv.wire import Message

__all__ = ["FeedService", "check_feed", "MAX_PAGE", "merge_pages"]

MAX_PAGE = 1000


def check_feed(feed: object) -> bytes:
    if isinstance(feed, str):
        feed = feed.encode()
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


class FeedService:
    """Feed requests on one node, on top of its :class:`Coordinator`."""

    def __init__(self, coordinator: Coordinator, store: FeedStore, ids: EntryIds, request: Callable[[str, Message, float], Awaitable[Message]]) -> None:
        self.c = coordinator
        self.store = store
        self.ids = ids
        self._request = request
        #: request id -> entry id already made: a repeated append stores one entry.
        self._recent: TTLCache = TTLCache(maxsize=100_000, ttl=600)
        coordinator.table_hooks[True] = store.length_extra

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
        preferred = view.walk(feed)[: table.info.n]
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
        rid = msg.request_id
        entry_id = self._recent.get(rid) if rid else None
        if entry_id is None:
            entry_id = self.ids.next()
            if rid:
                self._recent[rid] = entry_id
        # the same request id again re-sends the same record (no second entry, no new dot)
        await self.c.put(KvPut(table.wire_name, feed_entry_key(feed, entry_id), msg.data, None, msg.w, None, rid and "feed:" + rid, True), deadline)
        return FeedAppended(entry_id)

    async def remove(self, msg: FeedRemove, deadline: float) -> None:
        table = self._table(msg.keyspace)
        key = feed_entry_key(check_feed(msg.feed), _check_id(msg.entry_id))
        rec = await self.c.read(table, key, None, deadline)
        if rec.entries and entry_data(rec) is None:
            return  # already removed: removing is idempotent
        # Write the tombstone even if the read found nothing: the append may be
        # held by fallbacks only (sloppy quorum); the tombstone wins when they meet.
        await self.c.put(KvPut(table.wire_name, key, None, encode_context(rec.clock), msg.w, None, "", True), deadline)

    # -- reads -------------------------------------------------------------

    async def _gather(self, table: Table, feed: bytes, r: Optional[int], local: Callable[[], object], remote: Message, deadline: float) -> dict[str, Message | object]:
        """Ask the feed's preferred replicas; return once R answered (QuorumError if they cannot)."""
        info = table.info
        r = as_optional_count(r, "r", info.n) or info.r
        view = self.c.view
        preferred = view.walk(feed)[: info.n]
        tally = Tally(r, len(preferred))
        answers: dict[str, object] = {}
        pending: dict[asyncio.Future, str] = {}
        for node in preferred:
            if node == view.node_id:
                answers[node] = local()
                tally.success(node)
            elif view.is_alive(node):
                pending[self.c._call_future(node, remote, deadline)] = node
            else:
                tally.failure(node)
        try:
            while pending and not tally.met and not tally.impossible:
                done, _ = await asyncio.wait(pending, timeout=max(0.0, self._remaining(deadline)), return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    break
                for fut in done:
                    node = pending.pop(fut)
                    if fut.exception() is None:
                        answers[node] = fut.result()
                        tally.success(node)
                    else:
                        tally.failure(node)
        finally:
            for fut in pending:
                fut.cancel()
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        if not tally.met:
            raise QuorumError(acks=len(tally.ok), required=r, failed=tally.failed + list(pending.values()))
        return answers

    async def scan(self, msg: FeedScan, deadline: float) -> FeedPage:
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        after = None if msg.after is None else _check_id(msg.after)
        limit = max(1, min(int(msg.limit), MAX_PAGE))
        answers = await self._gather(
            table, feed, msg.r,
            lambda: self.replica_scan(FeedReplicaScan(msg.keyspace, feed, after, msg.reverse, limit)),
            FeedReplicaScan(msg.keyspace, feed, after, msg.reverse, limit), deadline,
        )
        pages = {node: ([(k, decode_record(raw)) for k, raw in a.entries], a.full) for node, a in answers.items()}  # type: ignore[union-attr]
        merged, cut, more = merge_pages(list(pages.values()), msg.reverse)
        self._repair(table, merged, pages, cut, msg.reverse)
        entries = [[split_feed_key(k)[1], data] for k, rec in merged if (data := entry_data(rec)) is not None]
        return FeedPage(entries, split_feed_key(cut)[1] if cut is not None else after, more)

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
            page = await self.scan(FeedScan(keyspace, feed, after, reverse, 16, r), deadline)
            if page.entries:
                return page.entries[0][0]
            if not page.more:
                return None
            after = page.cursor

    async def length(self, msg: FeedLength, deadline: float) -> FeedCount:
        table = self._table(msg.keyspace)
        feed = check_feed(msg.feed)
        answers = await self._gather(
            table, feed, msg.r,
            lambda: FeedCount(self.store.length(table.info.name, feed)),
            FeedReplicaLength(msg.keyspace, feed), deadline,
        )
        return FeedCount(max(a.count for a in answers.values()))  # type: ignore[union-attr]

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

    def replica_scan(self, msg: FeedReplicaScan) -> FeedReplicaPage:
        table = self._table(msg.keyspace)
        limit = max(1, min(int(msg.limit), MAX_PAGE))
        after = None if msg.after is None else _check_id(msg.after)
        rows = self.store.scan(table, check_feed(msg.feed), after, msg.reverse, limit)
        return FeedReplicaPage([[k, encode_record(rec)] for k, rec in rows], len(rows) >= limit)

    def replica_length(self, msg: FeedReplicaLength) -> FeedCount:
        table = self._table(msg.keyspace)
        return FeedCount(self.store.length(table.info.name, check_feed(msg.feed)))

    def replica_list(self, msg: FeedReplicaList) -> FeedNames:
        table = self._table(msg.keyspace)
        return FeedNames([[k, v] for k, v in self.store.feeds(table.info.name)])


def _check_id(entry_id: object) -> bytes:
    if not isinstance(entry_id, bytes) or len(entry_id) != 16:
        raise BadRequest("bad entry id")
    return entry_id
