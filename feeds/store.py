"""Local storage of feeds: entry ranges, per-feed lengths, the list of feeds.

Entries live in the keyspace's feed column family under the feed's prefix
(see :mod:`ringkv.quorum.tables`), so one feed is one ordered range scan. A
feed's length is a counter kept beside it and changed in the same WriteBatch
as the entry that changes it (:meth:`ringkv.storage.Batch.add`): appends and
removes never count by scanning.
"""

from __future__ import annotations

from typing import Optional

from ringkv.codec import live_value, live_values
from ringkv.hashing import hash64
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.replica import Extra
from ringkv.quorum.tables import ENTRY_ID_LEN, Table, feed_prefix, split_feed_key
from ringkv.storage import META_CF, Storage, read_counter

__all__ = ["FeedStore", "entry_data", "page_of", "PAGE_BYTES"]

_LEN = b"feedlen:"
#: Bytes of records a page stops at (a page of big entries stays a modest message).
PAGE_BYTES = 1 << 20


def entry_data(rec: Optional[DVVSet]) -> Optional[bytes]:
    """A feed entry's data, or None if it was removed (or never stored here).

    Entries are written once and only ever removed, so a feed is a
    two-phase set: a tombstone wins over the value even when the remove did
    not see the append (a sloppy-quorum append held by fallbacks while the
    remove read the owners leaves both as concurrent siblings).
    """
    return None if rec is None else live_value(rec.entries)


def page_of(rows: list[tuple[bytes, bytes]], full: bool, after: Optional[bytes]) -> tuple[list[bytes], list[bytes], Optional[bytes], bool]:
    """A client page ``(ids, data, cursor, more)`` from one replica's ``(storage key, record)`` rows.

    Removed entries are left out, but the cursor passes them, so the next
    page starts after the last row seen.
    """
    if not rows:
        return [], [], after, False
    values = live_values([v for _, v in rows])
    if None in values:
        kept = [(k, d) for (k, _), d in zip(rows, values) if d is not None]
        ids, datas = [k[-ENTRY_ID_LEN:] for k, _ in kept], [d for _, d in kept]
    else:
        ids, datas = [k[-ENTRY_ID_LEN:] for k, _ in rows], values
    return ids, datas, rows[-1][0][-ENTRY_ID_LEN:], full  # type: ignore[return-value]


def _live(rec: Optional[DVVSet]) -> bool:
    return entry_data(rec) is not None


class FeedStore:
    """Feed scans and lengths on one node's storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def _len_key(keyspace: str, feed: bytes) -> bytes:
        return _LEN + keyspace.encode() + b"\0" + feed

    def length(self, keyspace: str, feed: bytes) -> int:
        return self.counted(keyspace, feed)[0]

    def counted(self, keyspace: str, feed: bytes) -> tuple[int, int]:
        """``(length, digest)``: the digest is the sum of the hashes of the live entry ids here, modulo 2**64.

        Two replicas with the same length hold the same entries only if the
        digests agree too; a length compared alone can hide one replica
        lacking an entry and another lacking a remove.
        """
        return read_counter(self.storage.get(META_CF, self._len_key(keyspace, feed)))

    def length_extra(self, table: Table, key: bytes) -> Extra:
        """Keeps the feed's length and digest in step with one entry's record, in its batch."""
        feed, entry_id = split_feed_key(key)
        lkey = self._len_key(table.info.name, feed)
        h = hash64(entry_id)

        def extra(batch, old: Optional[DVVSet], new: DVVSet) -> None:
            delta = _live(new) - _live(old)
            if delta:
                batch.add(META_CF, lkey, delta, delta * h)

        return extra

    def feeds(self, keyspace: str) -> list[tuple[str, int]]:
        """``(feed, length)`` of every feed this node holds entries of."""
        prefix = _LEN + keyspace.encode() + b"\0"
        out = []
        for k, v in self.storage.scan(META_CF, prefix, prefix[:-1] + b"\x01"):
            out.append((k[len(prefix):].decode("utf-8", "replace"), read_counter(v)[0]))
        return out

    def drop_lengths(self, keyspace: str, lo: int, hi: int) -> None:
        """Forget the lengths of feeds placed in ``[lo, hi)``: their entries are leaving this node."""
        prefix = _LEN + keyspace.encode() + b"\0"
        b = self.storage.batch()
        for k, _ in self.storage.scan(META_CF, prefix, prefix[:-1] + b"\x01"):
            if lo <= hash64(k[len(prefix):]) < hi:
                b.delete(META_CF, k)
        self.storage.write(b)

    def drop_keyspace(self, keyspace: str) -> None:
        """Forget the lengths of a dropped keyspace's feeds (its entries go with its column family)."""
        prefix = _LEN + keyspace.encode() + b"\0"
        b = self.storage.batch()
        b.delete_range(META_CF, prefix, prefix[:-1] + b"\x01")
        self.storage.write(b, sync=True)

    def scan(self, table: Table, feed: bytes, after: Optional[bytes], reverse: bool, limit: int,
             max_bytes: int = PAGE_BYTES) -> tuple[list[tuple[bytes, bytes]], bool]:
        """``([(storage key, record bytes)], full)`` after ``after`` (exclusive), tombstones included.

        Records are returned as stored: a replica ships them without decoding,
        and equal replicas are recognised by comparing bytes. A page holds at
        most ``limit`` entries and stops once ``max_bytes`` of records are in it.
        """
        prefix = feed_prefix(feed)
        lo, hi = prefix, prefix + b"\xff" * (ENTRY_ID_LEN + 1)
        if after is not None:
            if reverse:
                hi = prefix + after
            else:
                lo = prefix + after + b"\x00"
        return self.storage.scan_page(table.cf, lo, hi, reverse=reverse, limit=limit, max_bytes=max_bytes)
