"""Feeds of the embedded database: one replica, the same records and layout as a node's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ringkv.feeds.api import AsyncFeedAPI, FeedAPI, Page
from ringkv.feeds.ids import format_id, parse_id
from ringkv.feeds.service import check_feed
from ringkv.feeds.store import FeedStore, entry_data, page_of
from ringkv.keys import as_optional_count, as_value
from ringkv.quorum.tables import FEEDS_SUFFIX, Table, feed_entry_key, resolve_table

if TYPE_CHECKING:
    from ringkv.embedded import Database

__all__ = ["EmbeddedFeed"]


class EmbeddedFeed(FeedAPI, AsyncFeedAPI):
    """A feed in an embedded database (async twins run inline)."""

    def __init__(self, db: "Database", keyspace: str, name: str | bytes) -> None:
        self._db = db
        self._feed = check_feed(name)
        self.name = self._feed.decode("utf-8", "replace")
        self._keyspace = keyspace

    def __repr__(self) -> str:
        return f"<EmbeddedFeed {self.name!r} in {self._keyspace!r}>"

    @property
    def _table(self) -> Table:
        db = self._db
        db._check_open()
        return resolve_table(self._keyspace + FEEDS_SUFFIX, lambda n: db.keyspace(n).info)

    @property
    def _store(self) -> FeedStore:
        return self._db._feed_store

    def _write(self, table: Table, key: bytes, value: Optional[bytes], context) -> None:
        self._db._replica.write(table.cf, table.skey(key), value, context, extra=self._store.length_extra(table, key))

    def append(self, data, *, w: Optional[int] = None) -> str:
        table = self._table
        if w is not None:
            as_optional_count(w, "w", table.info.n)
        value = as_value(data, self._db.options.max_value_size)
        entry_id = self._db._feed_ids.next()
        self._write(table, feed_entry_key(self._feed, entry_id), value, None)
        return format_id(entry_id)

    def _page(self, after: Optional[bytes], reverse: bool, limit: int, r: Optional[int]) -> Page:
        table = self._table
        if r is not None:
            as_optional_count(r, "r", table.info.n)
        return page_of(*self._store.scan(table, self._feed, after, reverse, limit), after)

    def _neighbour(self, entry_id: bytes, reverse: bool) -> Optional[bytes]:
        for entry in self.iterate(format_id(entry_id), reverse, 1):
            return parse_id(entry.id)
        return None

    def _get(self, entry_id: bytes, r: Optional[int]):
        table = self._table
        as_optional_count(r, "r", table.info.n)
        rec = self._db._replica.read(table.cf, table.skey(feed_entry_key(self._feed, entry_id)))
        data = entry_data(rec)
        return data, self._neighbour(entry_id, True), self._neighbour(entry_id, False)

    def remove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        table = self._table
        as_optional_count(w, "w", table.info.n)
        key = feed_entry_key(self._feed, parse_id(entry_id))
        rec = self._db._replica.read(table.cf, table.skey(key))
        if entry_data(rec) is not None:
            self._write(table, key, None, rec.clock)

    def length(self, *, r: Optional[int] = None) -> int:
        as_optional_count(r, "r", self._table.info.n)
        return self._store.length(self._table.info.name, self._feed)

    # async twins, inline
    async def aappend(self, data, *, w: Optional[int] = None) -> str:
        return self.append(data, w=w)

    async def _apage(self, after, reverse, limit, r) -> Page:
        return self._page(after, reverse, limit, r)

    async def _aget(self, entry_id, r):
        return self._get(entry_id, r)

    async def aremove(self, entry_id: str, *, w: Optional[int] = None) -> None:
        self.remove(entry_id, w=w)

    async def alength(self, *, r: Optional[int] = None) -> int:
        return self.length(r=r)
