"""What a replicated record belongs to: a keyspace's keys, or its feeds.

Both are stored and replicated the same way (DVV records, quorum, hints,
read repair); they differ in column family and *placement*. A key is placed
by itself. A feed entry's key is ``u16 len(feed) + feed + entry id`` and is
placed by its feed, so all entries of a feed share one preference list and,
under the ``hash64(feed)`` prefix, form one contiguous, ordered RocksDB range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ringkv.errors import BadRequest
from ringkv.hashing import hash64_bytes
from ringkv.keyspaces import KeyspaceInfo
from ringkv.storage import FEED_CF_PREFIX, keyspace_cf

__all__ = ["Table", "FEEDS_SUFFIX", "resolve_table", "feed_entry_key", "split_feed_key", "feed_prefix", "feed_cf", "MAX_FEED_NAME"]

FEEDS_SUFFIX = "/feeds"
MAX_FEED_NAME = 1024
ENTRY_ID_LEN = 16


def feed_cf(keyspace: str) -> str:
    return FEED_CF_PREFIX + keyspace


def feed_prefix(feed: bytes) -> bytes:
    """The storage-key prefix shared by every entry of ``feed`` (in its column family)."""
    return hash64_bytes(feed) + len(feed).to_bytes(2, "big") + feed


def feed_entry_key(feed: bytes, entry_id: bytes) -> bytes:
    return len(feed).to_bytes(2, "big") + feed + entry_id


def split_feed_key(key: bytes) -> tuple[bytes, bytes]:
    """``(feed, entry_id)`` of a feed entry key; BadRequest if it is not one."""
    if len(key) < 2:
        raise BadRequest("not a feed entry key")
    n = int.from_bytes(key[:2], "big")
    if len(key) != 2 + n + ENTRY_ID_LEN:
        raise BadRequest("not a feed entry key")
    return key[2 : 2 + n], key[2 + n :]


def _feed_of(key: bytes) -> bytes:
    return split_feed_key(key)[0]


def _same(key: bytes) -> bytes:
    return key


@dataclass(frozen=True)
class Table:
    """A keyspace's keys (``feed=False``) or its feed entries (``feed=True``)."""

    wire_name: str
    info: KeyspaceInfo
    cf: str
    feed: bool

    @property
    def place(self) -> Callable[[bytes], bytes]:
        """Key -> the bytes whose hash places it on the ring."""
        return _feed_of if self.feed else _same

    @property
    def lww(self) -> bool:
        """Feed entries are written once; only plain keys follow the keyspace's lww mode."""
        return self.info.lww and not self.feed

    def skey(self, key: bytes) -> bytes:
        return hash64_bytes(self.place(key)) + key


def resolve_table(name: str, keyspace: Callable[[str], KeyspaceInfo]) -> Table:
    """The table a wire name designates: ``"users"`` or ``"users/feeds"``."""
    if not isinstance(name, str):
        raise BadRequest("keyspace name must be a str")
    if name.endswith(FEEDS_SUFFIX):
        info = keyspace(name[: -len(FEEDS_SUFFIX)])
        return Table(name, info, feed_cf(info.name), True)
    info = keyspace(name)
    return Table(name, info, keyspace_cf(info.name), False)
