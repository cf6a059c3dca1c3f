"""Wire messages of feeds."""

from __future__ import annotations

from ringkv.errors import ProtocolError
from ringkv.feeds.pages import check_packed, first_of_packed, unpack
from ringkv.wire import Message, check_pairs, message

__all__ = [
    "FeedAppend",
    "FeedAppended",
    "FeedScan",
    "FeedPage",
    "FeedPackedPage",
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


def _all_bytes(items: list) -> bool:
    return set(map(type, items)) <= {bytes}


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
    #: The newest entry id this writer appended to the feed: the new entry sorts after it,
    #: whichever replica makes it (a writer's appends keep their order).
    after: bytes | None = None
    #: The client's ring digest when it offers to copy the entry to the other replicas (as ``kv.put``'s).
    ring: bytes | None = None


@message("feed.appended")
class FeedAppended(Message):
    """The new entry's id; ``n``: the feed's replica count (a writer spreads appends over them)."""

    entry_id: bytes
    n: int = 0
    #: Set when the client copies the entry (its append offered to): the record the
    #: coordinator ``node`` stored, and the write's W, as in ``kv.written``.
    record: bytes | None = None
    node: str = ""
    w: int = 0


@message("feed.scan")
class FeedScan(Message):
    """A page of live entries after ``after`` (exclusive), merged from R replicas.

    ``session`` (non-zero) names one iteration; with ``ahead`` > 0 the
    coordinator starts reading that iteration's next page of ``ahead``
    entries as soon as this one is sent, so the client's next request finds
    it ready. Every page is still read after the iteration began.
    """

    keyspace: str
    feed: bytes
    after: bytes | None
    reverse: bool
    limit: int
    r: int | None = None
    session: int = 0
    ahead: int = 0


@message("feed.page")
class FeedPage(Message):
    """Live entries as parallel lists (``ids[i]`` holds ``data[i]``); ``cursor``: resume point; ``more``: not the end yet.

    Parallel lists rather than pairs: a page of thousands of entries is
    checked with a few calls instead of a loop over every entry.
    """

    ids: list
    data: list
    cursor: bytes | None
    more: bool

    def page(self) -> tuple[list, list, bytes | None, bool]:
        """``(ids, data, cursor, more)``."""
        return self.ids, self.data, self.cursor, self.more

    def first(self, limit: int) -> "FeedPage":
        """This page cut to its first ``limit`` entries (the cursor then is the last one kept)."""
        limit = max(1, limit)
        if len(self.ids) <= limit:
            return self
        return FeedPage(self.ids[:limit], self.data[:limit], self.ids[limit - 1], True)

    def check(self) -> None:
        if len(self.ids) != len(self.data) or not _all_bytes(self.ids) or not _all_bytes(self.data) or not set(map(len, self.ids)) <= {16}:
            raise ProtocolError("feed.page: bad entries")


@message("feed.packed_page")
class FeedPackedPage(Message):
    """A page as one replica stores it, when all its records share one layout (the common case).

    ``keys``: the entries' storage keys, ``stride`` bytes each, ending in
    the 16-byte entry id; ``records``: their records back to back, entry
    ``i`` being ``lengths[i]`` bytes (u32, little-endian) whose value starts
    ``skip`` bytes in. A few large byte strings instead of thousands of small
    ones: the coordinator, which every page of an iteration waits for, joins
    them rather than slicing each entry (:mod:`ringkv.feeds.pages`).
    """

    keys: bytes
    stride: int
    records: bytes
    lengths: bytes
    skip: int
    cursor: bytes | None
    more: bool

    def page(self) -> tuple[list, list, bytes | None, bool]:
        """``(ids, data, cursor, more)``."""
        return (*unpack(self.keys, self.stride, self.records, self.lengths, self.skip), self.cursor, self.more)

    def first(self, limit: int) -> "FeedPackedPage":
        limit = max(1, limit)
        if len(self.lengths) <= 4 * limit:
            return self
        return FeedPackedPage(*first_of_packed(self.keys, self.stride, self.records, self.lengths, self.skip, limit))

    def check(self) -> None:
        check_packed(self)


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
    #: a replica's sum of its live entry ids' hashes (:meth:`FeedStore.counted`); 0 to a client
    digest: int = 0


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
    """One replica's page; with ``digest`` only the page's digest comes back (a digest read).

    ``tree``: the requester's hash-tree hash of the feed's segment, taken
    with its own scan of the page. A replica whose hash is the same holds
    the same records and answers ``same`` without scanning.
    """

    keyspace: str
    feed: bytes
    after: bytes | None
    reverse: bool
    limit: int
    digest: bool = False
    tree: bytes | None = None


@message("feed.replica_page")
class FeedReplicaPage(Message):
    """``entries``: ``[entry key, record bytes]`` incl. tombstones (empty for a digest read); ``full``: hit a limit.

    ``digest`` hashes the page as stored: replicas whose pages hash the same
    hold the same records, so the coordinator needs one replica's entries
    and the others' digests (Cassandra's digest reads).
    """

    entries: list
    full: bool
    digest: int = 0
    #: the replica's segment hash equals the requester's ``tree``: no scan was made
    same: bool = False

    def check(self) -> None:
        check_pairs(self.entries, "feed.replica_page")


@message("feed.replica_length")
class FeedReplicaLength(Message):
    keyspace: str
    feed: bytes


@message("feed.replica_list")
class FeedReplicaList(Message):
    keyspace: str
