"""Wire messages of feeds."""

from __future__ import annotations

from ringkv.wire import Message, check_pairs, message

__all__ = [
    "FeedAppend",
    "FeedAppended",
    "FeedScan",
    "FeedPage",
    "FeedGet",
    "FeedEntry",
    "FeedRemove",
    "FeedLength",
    "FeedCount",
    "FeedList",
    "FeedNames",
    "FeedReplicaScan",
    "FeedReplicaPage",
    "FeedReplicaLength",
    "FeedReplicaList",
]


@message("feed.append")
class FeedAppend(Message):
    """Append ``data``; ``request_id`` makes a repeated delivery idempotent.

    The coordinating replica remembers the entry id it made for a request id
    (see :class:`~ringkv.feeds.service.FeedService`): the same request seen
    twice stores one entry, not two.
    """

    keyspace: str
    feed: bytes
    data: bytes
    w: int | None = None
    forwarded: bool = False
    request_id: str = ""


@message("feed.appended")
class FeedAppended(Message):
    entry_id: bytes


@message("feed.scan")
class FeedScan(Message):
    """A page of live entries after ``after`` (exclusive), merged from R replicas."""

    keyspace: str
    feed: bytes
    after: bytes | None
    reverse: bool
    limit: int
    r: int | None = None


@message("feed.page")
class FeedPage(Message):
    """``entries``: ``[entry_id, data]``; ``cursor``: resume point; ``more``: not the end yet."""

    entries: list
    cursor: bytes | None
    more: bool

    def check(self) -> None:
        check_pairs(self.entries, "feed.page")


@message("feed.get")
class FeedGet(Message):
    keyspace: str
    feed: bytes
    entry_id: bytes
    r: int | None = None


@message("feed.entry")
class FeedEntry(Message):
    """An entry and its live neighbours (``data`` None: no such live entry)."""

    entry_id: bytes
    data: bytes | None
    prev_id: bytes | None
    next_id: bytes | None


@message("feed.remove")
class FeedRemove(Message):
    keyspace: str
    feed: bytes
    entry_id: bytes
    w: int | None = None


@message("feed.length")
class FeedLength(Message):
    keyspace: str
    feed: bytes
    r: int | None = None


@message("feed.count")
class FeedCount(Message):
    count: int


@message("feed.list")
class FeedList(Message):
    keyspace: str


@message("feed.names")
class FeedNames(Message):
    """``feeds``: ``[name, length]`` pairs."""

    feeds: list

    def check(self) -> None:
        check_pairs(self.feeds, "feed.names", (str,), (int,))


@message("feed.replica_scan")
class FeedReplicaScan(Message):
    keyspace: str
    feed: bytes
    after: bytes | None
    reverse: bool
    limit: int


@message("feed.replica_page")
class FeedReplicaPage(Message):
    """``entries``: ``[entry key, record bytes]`` incl. tombstones; ``full``: hit the limit."""

    entries: list
    full: bool

    def check(self) -> None:
        check_pairs(self.entries, "feed.replica_page")


@message("feed.replica_length")
class FeedReplicaLength(Message):
    keyspace: str
    feed: bytes


@message("feed.replica_list")
class FeedReplicaList(Message):
    keyspace: str
