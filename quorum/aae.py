"""Anti-entropy hash trees, kept current by every record write.

Each replicated column family (``ks.*`` keys, ``fd.*`` feed entries) has one
tree. Its leaves are ``2**bits`` *segments* of the 64-bit hash space: a
storage key's first 8 bytes are its ring position, so segment ``i`` holds
the keys whose position's top ``bits`` bits equal ``i`` and is one contiguous
RocksDB key range. A segment's hash is the XOR of the 128-bit digests
(XXH3-128) of ``len(skey) + skey + record`` over its keys, so a write changes it
by ``digest(old) ^ digest(new)`` with no read of the other keys. Levels of
32-way XORs sit above the leaves (1024 segments: 32 groups, then 1024), so two
replicas compare 32 hashes first and descend only where they differ.

The record inside a digest is re-encoded canonically (clock sorted by
actor, entries by dot): two replicas holding the same record in a different
byte order must hash alike, or they would "differ" forever.

Every record write updates the tree in memory (:meth:`Trees.observe`, a
:class:`~ringkv.quorum.replica.LocalReplica` observer). Leaves reach the
``_aae`` column family when the node stops cleanly (:meth:`Trees.seal`),
with the tree's header; opening the trees deletes the headers again, so a
node that crashed finds none and rebuilds its trees. (Writing a leaf in each
record's batch cost a record write a third of its time.) The upper levels
are rebuilt in memory from the leaves at start. A tree whose header is
missing or of another format is rebuilt once by a chunked scan, during which
writes below the scan cursor update it and writes above are left to the scan.

The ``_aae`` column family also holds the tombstone index the GC uses
(:mod:`ringkv.quorum.gc`): one entry per fully deleted record, with its
digest and since when this replica has held exactly that record.

Layout of ``_aae`` (``cf`` is the column family name)::

    b"h" cf 0x00            -> msgpack [FORMAT, bits]     tree header (leaves stored at a clean stop)
    b"s" cf 0x00 u32 seg     -> 16-byte segment hash       (absent: 0)
    b"t" cf 0x00 skey        -> 16-byte digest + f64 since  tombstone index
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter, OrderedDict
from itertools import islice
from typing import Callable, Iterable, Optional, Sequence

import msgpack
import xxhash
from cachetools import LRUCache

from ringkv.codec import decode_parts
from ringkv.errors import BadRequest, CorruptRecord, RingKVError
from ringkv.hashing import RING_SIZE, token_bytes
from ringkv.quorum.aae_ranges import FANOUT_BITS, Pieces, clip, covering_indexes, intersect, intersects, level_bits, node_range
from ringkv.storage import AAE_CF, Batch, Storage

__all__ = [
    "FORMAT",
    "DIGEST_LEN",
    "FANOUT_BITS",
    "is_replicated",
    "canonical_record",
    "record_digest",
    "level_bits",
    "node_range",
    "HashTree",
    "Trees",
    "Pieces",
    "intersect",
    "clip",
    "intersects",
    "covering_indexes",
    "tomb_key",
]

log = logging.getLogger("ringkv.aae")

#: Version of the persisted tree; a different stored version is rebuilt.
FORMAT = 2
_CANON = b"\x01"
DIGEST_LEN = 16
REPLICATED_PREFIXES = ("ks.", "fd.")
_TOP = b"\xff" * 8
_SINCE = struct.Struct(">d")
_pack = msgpack.Packer(use_bin_type=True).pack
_digest = xxhash.xxh3_128_intdigest

#: How many records' digests :class:`Trees` remembers, holding at most
#: RECENT_BYTES of their records (bigger records are not remembered).
RECENT_DIGESTS = 16384
RECENT_BYTES = 4 << 20
RECENT_RECORD_MAX = 4096


def is_replicated(cf: str) -> bool:
    """Whether a column family holds replicated records (and so has a tree)."""
    return cf.startswith(REPLICATED_PREFIXES)


# -- digests ---------------------------------------------------------------


def _dot(e: tuple) -> tuple:
    return (e[0], e[1])


def canonical_record(raw: bytes, parts: Optional[tuple[dict, Sequence]] = None) -> tuple[bytes, bool]:
    """``(canonical bytes, fully deleted)`` of a stored record (CorruptRecord if it is not one).

    The same logical record hashes alike whatever its stored format
    (:mod:`ringkv.codec` has two) and its clock's byte order. ``parts`` is
    ``(clock, entries)`` of ``raw`` when the caller has decoded it already.
    """
    clock, entries = decode_parts(raw) if parts is None else parts
    if len(entries) == 1:
        deleted = entries[0][3] is None
    else:
        entries = sorted(entries, key=_dot)
        deleted = all(e[3] is None for e in entries)
    if len(clock) > 1:
        clock = dict(sorted(clock.items()))
    return _CANON + _pack([clock, entries]), deleted


def record_digest(skey: bytes, raw: bytes, parts: Optional[tuple[dict, Sequence]] = None) -> tuple[int, bool]:
    """``(128-bit digest, fully deleted)`` of one stored record under ``skey``.

    A record that does not decode is digested as its raw bytes (it then
    differs from every good copy, and repair reports it) and is never a
    tombstone.
    """
    try:
        canon, deleted = canonical_record(raw, parts)
    except CorruptRecord:
        return _digest(b"\xff\xff\xff\xff" + skey + raw), False
    return _digest(len(skey).to_bytes(4, "big") + skey + canon), deleted


# -- keys of the _aae column family -----------------------------------------


def _header_key(cf: str) -> bytes:
    return b"h" + cf.encode() + b"\x00"


def _seg_prefix(cf: str) -> bytes:
    return b"s" + cf.encode() + b"\x00"


def _seg_key(cf: str, seg: int) -> bytes:
    return _seg_prefix(cf) + seg.to_bytes(4, "big")


def _tomb_prefix(cf: str) -> bytes:
    return b"t" + cf.encode() + b"\x00"


def tomb_key(cf: str, skey: bytes) -> bytes:
    """Where the tombstone index keeps ``skey`` of ``cf``."""
    return _tomb_prefix(cf) + skey


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + b"\x01"


def encode_tomb(digest: int, since: float) -> bytes:
    return digest.to_bytes(DIGEST_LEN, "big") + _SINCE.pack(since)


def decode_tomb(raw: bytes) -> tuple[int, float]:
    """``(digest, since)`` of a tombstone index entry."""
    return int.from_bytes(raw[:DIGEST_LEN], "big"), _SINCE.unpack_from(raw, DIGEST_LEN)[0]


# -- one tree ----------------------------------------------------------------


class HashTree:
    """The segment hashes of one column family and the levels above them."""

    __slots__ = ("cf", "bits", "level_bits", "levels", "leaf", "shift", "cursor", "handle", "partial", "dirty")

    def __init__(self, cf: str, bits: int, handle: object) -> None:
        self.cf = cf
        self.bits = bits
        self.level_bits = level_bits(bits)
        self.levels = [[0] * (1 << lb) for lb in self.level_bits]
        self.leaf = self.levels[-1]
        self.shift = 64 - bits
        #: While rebuilding: keys below this storage key are counted (b"": none yet).
        #: ``None`` once the tree is complete.
        self.cursor: Optional[bytes] = b""
        #: The column family object the tree describes (a dropped and re-created
        #: column family is another object, and its tree starts over).
        self.handle = handle
        #: ``(seg, pieces) -> (leaf hash when computed, restricted hash)``.
        self.partial: LRUCache = LRUCache(maxsize=4096)
        #: Segments changed since the leaves were last stored.
        self.dirty: set[int] = set()

    @property
    def ready(self) -> bool:
        return self.cursor is None

    def segment(self, skey: bytes) -> int:
        return int.from_bytes(skey[:8], "big") >> self.shift

    def covers(self, skey: bytes) -> bool:
        """Whether the tree already counts ``skey`` (always, once ready)."""
        cursor = self.cursor
        return cursor is None or skey < cursor

    def toggle(self, seg: int, delta: int) -> None:
        """XOR ``delta`` into segment ``seg`` and every level above it."""
        bits = self.bits
        for lb, level in zip(self.level_bits, self.levels):
            level[seg >> (bits - lb)] ^= delta

    def load(self, leaves: Iterable[tuple[int, int]]) -> None:
        """Set the leaves (``(seg, hash)``; others 0) and recompute the levels."""
        for level in self.levels:
            for i in range(len(level)):
                level[i] = 0
        for seg, h in leaves:
            if 0 <= seg < len(self.leaf) and h:
                self.toggle(seg, h)

    def hashes(self, level: int, indexes: Iterable[int]) -> list[int]:
        nodes = self.levels[level]
        return [nodes[i] for i in indexes]

    def children(self, level: int, index: int) -> range:
        """Indexes on ``level + 1`` below node ``index`` of ``level``."""
        step = self.level_bits[level + 1] - self.level_bits[level]
        return range(index << step, (index + 1) << step)


# -- the trees of one node -----------------------------------------------------


class Trees:
    """Every replicated column family's tree on one node's storage.

    ``clock()`` gives the (wall-clock) time stamped on tombstone index
    entries; ``wake()`` is called when a tree needs a rebuild (the node's
    repair service then runs :meth:`rebuild`).
    """

    def __init__(
        self,
        storage: Storage,
        bits: int = 10,
        *,
        clock: Callable[[], float],
        wake: Callable[[], None] = lambda: None,
        scan_chunk: int = 256,
    ) -> None:
        if type(bits) is not int or not 1 <= bits <= 24:
            raise BadRequest("hash tree bits must be an int in [1, 24]")
        self.storage = storage
        self.bits = bits
        self.clock = clock
        self.wake = wake
        self.scan_chunk = scan_chunk
        self.trees: dict[str, HashTree] = {}
        #: Column families whose tree must be rebuilt.
        self.stale: set[str] = set()
        self._header = msgpack.packb([FORMAT, bits])
        #: ``skey -> (record bytes, digest, deleted)`` of records written lately: the
        #: next write of a key finds its old record's digest here, not by decoding it.
        #: A digest is a function of the key and the bytes alone, so a hit is exact.
        #: An OrderedDict: a plain dict's first key is a scan past every slot freed at its front.
        self._recent: OrderedDict[bytes, tuple[bytes, int, bool]] = OrderedDict()
        self._recent_bytes = 0
        #: Column families whose header :meth:`seal` stored: the next change deletes it first.
        self._sealed: set[str] = set()
        #: How many times each column family's tree was rebuilt from its records since this object was made.
        self.rebuilt: Counter[str] = Counter()

    # -- opening -------------------------------------------------------------

    def open(self) -> None:
        """Load the trees of existing column families (stale ones are queued for rebuild)."""
        storage = self.storage
        present = {cf for cf in storage.cf_names() if is_replicated(cf)}
        # forget trees of column families that no longer exist (one seek per column family)
        orphans = set()
        for kind in (b"h", b"s", b"t"):
            cursor, end = kind, bytes([kind[0] + 1])
            while True:
                first = next(iter(storage.scan(AAE_CF, cursor, end, chunk=1)), None)
                if first is None:
                    break
                name = first[0][1:].split(b"\x00", 1)[0]
                cf = name.decode("utf-8", "replace")
                if cf not in present:
                    orphans.add(cf)
                cursor = kind + name + b"\x01"
        for cf in orphans:
            self._wipe(cf)
        b = storage.batch()
        for cf in sorted(present):
            if self._open(cf, trust=True).ready:
                b.delete(AAE_CF, _header_key(cf))  # in use: a crash from now on means a rebuild
        storage.write(b)

    def _open(self, cf: str, trust: bool) -> HashTree:
        storage = self.storage
        tree = HashTree(cf, self.bits, storage.cf(cf))
        self.trees[cf] = tree
        if trust and storage.get(AAE_CF, _header_key(cf)) == self._header:
            prefix = _seg_prefix(cf)
            n = len(prefix)
            tree.load((int.from_bytes(k[n:], "big"), int.from_bytes(v, "big")) for k, v in storage.scan(AAE_CF, prefix, _prefix_end(prefix)))
            tree.cursor = None
        else:
            if trust:
                log.info("hash tree of %s is missing or from another version: rebuilding", cf)
            self.stale.add(cf)
            self.wake()
        return tree

    def _wipe(self, cf: str) -> None:
        """Delete everything ``_aae`` holds for ``cf``."""
        self._sealed.discard(cf)
        b = self.storage.batch()
        b.delete(AAE_CF, _header_key(cf))
        for prefix in (_seg_prefix(cf), _tomb_prefix(cf)):
            b.delete_range(AAE_CF, prefix, _prefix_end(prefix))
        self.storage.write(b)

    def tree(self, cf: str) -> HashTree:
        """The tree of ``cf`` (made, and queued for rebuild, if new or re-created)."""
        handle = self.storage.cf(cf)
        tree = self.trees.get(cf)
        if tree is None or tree.handle is not handle:
            if tree is not None:
                log.info("column family %s was re-created: its hash tree starts over", cf)
                self._wipe(cf)
            tree = self._open(cf, trust=False)
        return tree

    def get(self, cf: str) -> Optional[HashTree]:
        """The complete tree of ``cf``, or None (no such column family, or rebuilding)."""
        if not self.storage.has_cf(cf):
            self.forget(cf)
            return None
        tree = self.tree(cf)
        return tree if tree.ready else None

    def segment_hash(self, cf: str, skey: bytes) -> Optional[int]:
        """The hash of the segment holding ``skey``, if ``cf``'s tree is complete; None otherwise.

        Two replicas whose hashes of a segment agree hold the same records in
        all of it, so a reader that has one's records needs nothing more from
        the other. An empty segment (or leaves lost) hashes 0: a reader should
        not rely on that one, which costs nothing to scan anyway. Writes update the tree in the batch that stores them, on
        the event loop's thread: read between two calls into storage, the
        hash describes exactly what a scan at that moment returns.
        """
        tree = self.trees.get(cf)
        if tree is None or tree.cursor is not None or cf in self.stale:
            return None
        if not self.storage.has_cf(cf) or self.storage.cf(cf) is not tree.handle:
            return None
        return tree.leaf[tree.segment(skey)]

    def expire(self) -> None:
        """Queue every tree for a rebuild from storage; none vouches for its segments until rebuilt."""
        self.stale.update(self.trees)
        self.wake()

    def resync(self, cf: str) -> None:
        """After a batch failed to be written: make ``cf``'s tree match storage again.

        The tree was updated in memory for records that never landed, and the
        stored leaves are older than the records: rebuild it from them.
        """
        tree = self.trees.get(cf)
        if tree is None:
            return
        log.warning("a write to %s failed: its hash tree is rebuilt", cf)
        # A new tree that counts nothing until rebuilt (no reader trusts it meanwhile);
        # a rebuild of the old one that is under way sees it replaced and stops.
        self.trees[cf] = HashTree(cf, self.bits, tree.handle)
        self.stale.add(cf)
        # The failed batch may have carried the header's deletion after a seal: delete it
        # again on its own, or at the next write if storage still refuses.
        b = self.storage.batch()
        b.delete(AAE_CF, _header_key(cf))
        try:
            self.storage.write(b)
        except Exception:
            self._sealed.add(cf)
        else:
            self._sealed.discard(cf)
        self.wake()

    def _commit(self, batch: Batch, cf: str) -> None:
        """Write a batch whose tree changes were already made in memory (undone from storage if it fails)."""
        try:
            self.storage.write(batch)
        except BaseException:
            self.resync(cf)
            raise

    def forget(self, cf: str, *, stored: bool = False) -> None:
        """Drop the tree of a column family that was dropped.

        ``stored``: wipe what ``_aae`` holds for it even when no tree is
        loaded (the drop of a keyspace: leaves stored by an earlier run must
        not be trusted for a keyspace re-created under the same name).
        """
        if self.trees.pop(cf, None) is not None or stored:
            self._wipe(cf)
        self.stale.discard(cf)

    # -- the write path --------------------------------------------------------

    def observe(self, batch: Batch, cf: str, skey: bytes, old_raw: Optional[bytes], new_raw: bytes,
                old_parts: Optional[tuple] = None, new_parts: Optional[tuple] = None) -> None:
        """LocalReplica observer: update the tree and tombstone index in the record's batch."""
        if not is_replicated(cf):
            return
        tree = self.tree(cf)
        recent = self._recent
        new, deleted = record_digest(skey, new_raw, new_parts)
        seen = recent.pop(skey, None)
        if old_raw is not None:
            if seen is not None and seen[0] == old_raw:
                old, was_deleted = seen[1], seen[2]
            else:
                old, was_deleted = record_digest(skey, old_raw, old_parts)
        else:
            old, was_deleted = 0, False
        if seen is not None:
            self._recent_bytes -= len(seen[0])
        if len(new_raw) <= RECENT_RECORD_MAX:
            recent[skey] = (new_raw, new, deleted)
            self._recent_bytes += len(new_raw)
            while len(recent) > RECENT_DIGESTS or self._recent_bytes > RECENT_BYTES:
                self._recent_bytes -= len(recent.popitem(last=False)[1][0])  # the least recently written
        if tree.covers(skey) and old != new:
            seg = tree.segment(skey)
            tree.toggle(seg, old ^ new)
            tree.dirty.add(seg)
        if self._sealed:
            self._unseal(batch, cf)
        if deleted:
            if not was_deleted or old != new:
                batch.put(AAE_CF, tomb_key(cf, skey), encode_tomb(new, self.clock()))
        elif was_deleted:
            batch.delete(AAE_CF, tomb_key(cf, skey))

    # -- deletions that bypass the replica ---------------------------------------

    def _remove(self, batch: Batch, tree: HashTree, skey: bytes, raw: bytes, touched: set[int]) -> None:
        if tree.covers(skey):
            seg = tree.segment(skey)
            tree.toggle(seg, record_digest(skey, raw)[0])
            touched.add(seg)

    def _note_segments(self, batch: Batch, tree: HashTree, touched: Iterable[int]) -> None:
        """Note the segments a batch of removals changed (they are stored by :meth:`seal`)."""
        tree.dirty.update(touched)
        if self._sealed:
            self._unseal(batch, tree.cf)

    def _unseal(self, batch: Batch, cf: str) -> None:
        """A change after :meth:`seal`: the stored leaves no longer hold, so neither may the header."""
        if cf in self._sealed:
            self._sealed.discard(cf)
            batch.delete(AAE_CF, _header_key(cf))

    def seal(self) -> list[str]:
        """Store the changed leaves of every complete tree and its header (a clean stop); returns those column families.

        The next :meth:`open` loads them instead of rebuilding. A change made
        after this deletes the header in its own batch, so a tree is never
        trusted for leaves older than its records.
        """
        b = self.storage.batch()
        sealed = []
        for cf, tree in sorted(self.trees.items()):
            if not tree.ready or cf in self.stale or not self.storage.has_cf(cf) or self.storage.cf(cf) is not tree.handle:
                b.delete(AAE_CF, _header_key(cf))  # loaded at no start until it is complete and sealed
                continue
            for seg in sorted(tree.dirty):
                h = tree.leaf[seg]
                if h:
                    b.put(AAE_CF, _seg_key(cf, seg), h.to_bytes(DIGEST_LEN, "big"))
                else:
                    b.delete(AAE_CF, _seg_key(cf, seg))
            b.put(AAE_CF, _header_key(cf), self._header)
            sealed.append(cf)
        self.storage.write(b)
        for cf in sealed:
            self.trees[cf].dirty.clear()
        self._sealed.update(sealed)
        return sealed

    def delete_record(self, cf: str, skey: bytes, raw: bytes) -> None:
        """Delete one record known to hold ``raw``, with its tree and index entries, atomically."""
        tree = self.tree(cf)
        b = self.storage.batch()
        touched: set[int] = set()
        b.delete(cf, skey)
        self._remove(b, tree, skey, raw, touched)
        self._note_segments(b, tree, touched)
        b.delete(AAE_CF, tomb_key(cf, skey))
        self._commit(b, cf)

    def forget_range(self, cf: str, lo: int, hi: int) -> int:
        """Delete every record whose hash is in ``[lo, hi)``, keeping the tree right.

        Synchronous (one scan of the range, then one batch with the range
        delete, the segment updates and the tombstone index cleanup); prefer
        :meth:`drop_range` for large ranges on a serving node. Returns the
        number of records removed. A following ``storage.delete_hash_range``
        of the same range is then a harmless no-op.
        """
        if not self.storage.has_cf(cf) or not is_replicated(cf):
            return 0
        _check_range(lo, hi)
        tree = self.tree(cf)
        begin, end = token_bytes(lo), (token_bytes(hi) if hi < RING_SIZE else None)
        b = self.storage.batch()
        touched: set[int] = set()
        top: list[bytes] = []
        n = 0
        for skey, raw in self.storage.scan(cf, begin, end, chunk=self.scan_chunk):
            self._remove(b, tree, skey, raw, touched)
            if end is None and skey >= _TOP:
                top.append(skey)
            n += 1
        self._delete_span(b, cf, begin, end, top)
        self._note_segments(b, tree, touched)
        self._commit(b, cf)
        return n

    async def drop_range(self, cf: str, lo: int, hi: int, keep: Optional[Callable[[bytes], bool]] = None) -> int:
        """:meth:`forget_range` in chunks, yielding to the loop between them; ``keep(skey)`` spares a key."""
        if not self.storage.has_cf(cf) or not is_replicated(cf):
            return 0
        _check_range(lo, hi)
        end = token_bytes(hi) if hi < RING_SIZE else None
        cursor = token_bytes(lo)
        n = 0
        while True:
            if not self.storage.has_cf(cf):
                return n
            tree = self.tree(cf)
            items = list(islice(self.storage.scan(cf, cursor, end, chunk=self.scan_chunk), self.scan_chunk))
            if not items:
                return n
            b = self.storage.batch()
            touched: set[int] = set()
            for skey, raw in items:
                if keep is not None and keep(skey):
                    continue
                self._remove(b, tree, skey, raw, touched)
                b.delete(cf, skey)
                b.delete(AAE_CF, tomb_key(cf, skey))
                n += 1
            self._note_segments(b, tree, touched)
            self._commit(b, cf)
            if len(items) < self.scan_chunk:
                return n
            cursor = items[-1][0] + b"\x00"
            await asyncio.sleep(0)  # let client requests run between chunks

    def _delete_span(self, b: Batch, cf: str, begin: bytes, end: Optional[bytes], top: list[bytes]) -> None:
        b.delete_range(cf, begin, end if end is not None else _TOP)
        tp = _tomb_prefix(cf)
        b.delete_range(AAE_CF, tp + begin, tp + end if end is not None else _prefix_end(tp))
        for skey in top:  # keys at the very last hash value, beyond any range end
            b.delete(cf, skey)

    # -- rebuild -------------------------------------------------------------

    async def rebuild(self, cf: str) -> bool:
        """Rebuild ``cf``'s tree (and tombstone index) by a chunked scan; False if abandoned."""
        self.stale.discard(cf)
        if not self.storage.has_cf(cf):
            self.forget(cf)
            return False
        # a fresh tree: a rebuild of the same column family already under way sees it replaced and stops
        tree = self.trees[cf] = HashTree(cf, self.bits, self.tree(cf).handle)
        self._sealed.discard(cf)
        b = self.storage.batch()
        b.delete(AAE_CF, _header_key(cf))
        sp = _seg_prefix(cf)
        b.delete_range(AAE_CF, sp, _prefix_end(sp))
        self.storage.write(b)
        storage, chunk = self.storage, self.scan_chunk
        while True:
            if self.trees.get(cf) is not tree or not storage.has_cf(cf) or storage.cf(cf) is not tree.handle:
                return False  # dropped or re-created meanwhile: the newer tree rebuilds itself
            items = list(islice(storage.scan(cf, tree.cursor or None, chunk=chunk), chunk))
            b = storage.batch()
            now = self.clock()
            for skey, raw in items:
                d, deleted = record_digest(skey, raw)
                tree.toggle(tree.segment(skey), d)
                tk = tomb_key(cf, skey)
                have = storage.get(AAE_CF, tk)
                if deleted:
                    if have is None or decode_tomb(have)[0] != d:
                        b.put(AAE_CF, tk, encode_tomb(d, now))
                elif have is not None:
                    b.delete(AAE_CF, tk)
            if len(items) < chunk:
                # the scan reached the end: the tree is complete once this batch is stored
                # (no write can come in between; a failed write leaves it incomplete);
                # its leaves are stored at a clean stop (the rebuild deleted the old ones)
                storage.write(b)
                tree.dirty.update(s for s, h in enumerate(tree.leaf) if h)
                tree.cursor = None
                break
            storage.write(b)
            tree.cursor = items[-1][0] + b"\x00"
            await asyncio.sleep(0)  # chunked: never block the loop
        self.rebuilt[cf] += 1
        await self._clean_index(cf)
        log.info("hash tree of %s rebuilt", cf)
        return True

    async def _clean_index(self, cf: str) -> None:
        """Drop tombstone index entries whose record is gone or live (after a rebuild)."""
        prefix = _tomb_prefix(cf)
        cursor, end, n = prefix, _prefix_end(prefix), len(prefix)
        storage, chunk = self.storage, self.scan_chunk
        while storage.has_cf(cf):
            items = list(islice(storage.scan(AAE_CF, cursor, end, chunk=chunk), chunk))
            b = storage.batch()
            for tk, val in items:
                raw = storage.get(cf, tk[n:])
                if raw is None or not record_digest(tk[n:], raw)[1]:
                    b.delete(AAE_CF, tk)
            storage.write(b)
            if len(items) < chunk:
                return
            cursor = items[-1][0] + b"\x00"
            await asyncio.sleep(0)

    async def rebuild_stale(self) -> int:
        n = 0
        while self.stale:
            cf = min(self.stale)
            try:
                if await self.rebuild(cf):
                    n += 1
            except RingKVError as exc:  # a column family dropped under the scan, a closed store
                log.info("rebuilding the hash tree of %s failed: %s", cf, exc)
                self.stale.discard(cf)
        return n

    # -- reading -------------------------------------------------------------

    async def restricted(self, tree: HashTree, seg: int, pieces: Pieces) -> int:
        """Hash of segment ``seg`` restricted to ``pieces`` (already clipped to it).

        The whole segment's hash when ``pieces`` covers it; otherwise the
        XOR of the digests of its keys inside ``pieces``, cached until the
        segment changes.
        """
        lo, hi = node_range(tree.bits, seg)
        whole = tree.leaf[seg]
        if pieces == [(lo, hi)] or not whole:
            return whole if pieces else 0
        key = (seg, tuple(pieces))
        hit = tree.partial.get(key)
        if hit is not None and hit[0] == whole:
            return hit[1]
        h = 0
        for a, b in pieces:
            async for items in self.chunks(tree.cf, a, b):
                for skey, raw in items:
                    h ^= record_digest(skey, raw)[0]
        if tree.leaf[seg] == whole:
            tree.partial[key] = (whole, h)
        return h

    async def chunks(self, cf: str, lo: int, hi: int, after: Optional[bytes] = None):
        """Items of ``cf`` with hash in ``[lo, hi)`` (and key > ``after``), chunk by chunk."""
        cursor = token_bytes(lo)
        if after is not None and after >= cursor:
            cursor = after + b"\x00"
        end = token_bytes(hi) if hi < RING_SIZE else None
        chunk = self.scan_chunk
        while True:
            items = list(islice(self.storage.scan(cf, cursor, end, chunk=chunk), chunk))
            if items:
                yield items
            if len(items) < chunk:
                return
            cursor = items[-1][0] + b"\x00"
            await asyncio.sleep(0)  # chunked: never block the loop

    def key_digests(self, cf: str, lo: int, hi: int, after: Optional[bytes], limit: int, max_bytes: int = 1 << 20) -> tuple[list[tuple[bytes, int]], bool]:
        """Up to ``limit`` ``(skey, digest)`` in ``[lo, hi)`` after ``after``; and whether more follow."""
        cursor = token_bytes(lo)
        if after is not None and after >= cursor:
            cursor = after + b"\x00"
        end = token_bytes(hi) if hi < RING_SIZE else None
        out: list[tuple[bytes, int]] = []
        size = 0
        for skey, raw in self.storage.scan(self._cf_checked(cf), cursor, end, chunk=min(limit + 1, self.scan_chunk)):
            if len(out) >= limit or size >= max_bytes:
                return out, True
            out.append((skey, record_digest(skey, raw)[0]))
            size += len(skey) + DIGEST_LEN + 4
        return out, False

    def _cf_checked(self, cf: str) -> str:
        self.storage.cf(cf)  # BadRequest if missing
        return cf

    def tomb(self, cf: str, skey: bytes) -> Optional[tuple[int, float]]:
        """``(digest, since)`` of ``skey``'s tombstone index entry, if any."""
        raw = self.storage.get(AAE_CF, tomb_key(cf, skey))
        return decode_tomb(raw) if raw is not None else None

    def tombs(self, cf: str, after: Optional[bytes], limit: int) -> list[tuple[bytes, int, float]]:
        """Up to ``limit`` ``(skey, digest, since)`` index entries of ``cf`` after ``after``."""
        prefix = _tomb_prefix(cf)
        start = prefix + after + b"\x00" if after is not None else prefix
        n = len(prefix)
        out = []
        for tk, val in self.storage.scan(AAE_CF, start, _prefix_end(prefix), chunk=limit):
            d, since = decode_tomb(val)
            out.append((tk[n:], d, since))
            if len(out) >= limit:
                break
        return out

    def recompute(self, cf: str) -> list[int]:
        """Segment hashes of ``cf`` computed from scratch (for tests and checks; full scan)."""
        leaf = [0] * (1 << self.bits)
        shift = 64 - self.bits
        for skey, raw in self.storage.scan(cf):
            leaf[int.from_bytes(skey[:8], "big") >> shift] ^= record_digest(skey, raw)[0]
        return leaf

    def stored(self, cf: str) -> list[int]:
        """Segment hashes of ``cf`` as persisted in ``_aae``."""
        leaf = [0] * (1 << self.bits)
        prefix = _seg_prefix(cf)
        n = len(prefix)
        for k, v in self.storage.scan(AAE_CF, prefix, _prefix_end(prefix)):
            leaf[int.from_bytes(k[n:], "big")] = int.from_bytes(v, "big")
        return leaf


def _check_range(lo: int, hi: int) -> None:
    if type(lo) is not int or type(hi) is not int or not 0 <= lo <= hi <= RING_SIZE:
        raise BadRequest(f"bad hash range [{lo}, {hi})")
