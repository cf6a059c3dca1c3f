"""The storage engine: one RocksDB (via rocksdict, raw bytes) per data directory.

One column family per keyspace (``ks.<name>``) plus internal ones (``_meta``,
``_hints``, ``_aae`` ...). Storage keys are ``hash64(key) + key`` (see
:mod:`ringkv.hashing`), so one ring range is one contiguous key range: handoff,
repair and dropping a range are range scans and range deletes here.

Foreign exceptions (rocksdict raises bare ``Exception``) are translated once,
at this boundary, into :mod:`ringkv.errors`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from itertools import chain, islice
from operator import itemgetter
from typing import Iterator, Optional

from rocksdict import (
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from ringkv.config import StoreOptions
from ringkv.errors import BadRequest, ClosedError, RingKVError, Unavailable
from ringkv.hashing import HASH_LEN, RING_SIZE, token_bytes

__all__ = ["Storage", "Batch", "META_CF", "HINTS_CF", "AAE_CF", "FEED_CF_PREFIX", "keyspace_cf", "read_counter"]

META_CF = "_meta"
HINTS_CF = "_hints"
AAE_CF = "_aae"
INTERNAL_CFS = (META_CF, HINTS_CF, AAE_CF)
#: Column families of feeds start so. Feeds are read by long range scans,
#: which bigger blocks make cheaper per entry (about 10% at 16 KiB).
FEED_CF_PREFIX = "fd."
FEED_BLOCK_SIZE = 16 * 1024
_TOP = b"\xff" * HASH_LEN
_SUM_MOD = 1 << 64
#: Counter values the storage keeps in memory (one per feed a node holds, usually far fewer).
_MAX_COUNTERS = 100_000


def read_counter(raw: Optional[bytes]) -> tuple[int, int]:
    """``(count, sum)`` of a stored counter (see :meth:`Batch.add`); one stored before sums were kept has sum 0."""
    if not raw:
        return 0, 0
    return int.from_bytes(raw[:8], "big", signed=True), int.from_bytes(raw[8:16], "big")


def keyspace_cf(name: str) -> str:
    """Column family that holds a keyspace's records."""
    return "ks." + name


@contextlib.contextmanager
def _rocks_errors(what: str):
    """Translate rocksdict's bare exceptions into ringkv errors."""
    try:
        yield
    except RingKVError:
        raise
    except Exception as exc:
        msg = str(exc)
        if "lock" in msg.lower() and ("LOCK" in msg or "hold" in msg):
            raise Unavailable(f"{what}: the data directory is in use by another process ({msg.splitlines()[0]})") from None
        raise Unavailable(f"{what}: {msg.splitlines()[0] if msg else type(exc).__name__}") from None


class Batch:
    """Writes applied atomically by :meth:`Storage.write`."""

    __slots__ = ("_wb", "_storage", "count", "counters", "marks", "clears")

    def __init__(self, storage: "Storage") -> None:
        self._storage = storage
        self._wb = WriteBatch(raw_mode=True)
        self.count = 0
        #: ``(cf, key) -> [delta, term]`` of counters, resolved when the batch is written
        self.counters: Optional[dict[tuple[str, bytes], list[int]]] = None
        #: keys a companion writer already added to this batch: a batch cannot be
        #: read back, so one that writes a key twice must remember it did
        self.marks: Optional[set[bytes]] = None
        #: writes to META_CF other than counters: the storage forgets the counter values it keeps
        self.clears = False

    def add(self, cf: str, key: bytes, delta: int, term: int = 0) -> None:
        """Add ``delta`` to the counter at ``key``, and ``term`` to the sum kept beside it, when the batch is written.

        A counter is stored as 16 bytes: its count (signed, never below 0)
        and a sum modulo 2**64 (say, of hashes of what is counted, so two
        equal counts can be told to count the same things). Counters are
        read and updated as the batch is written, under the storage's lock:
        many changes to one counter in a batch, or in batches written by
        several threads, all count, with one read each.
        """
        if self.counters is None:
            self.counters = {}
        acc = self.counters.get((cf, key))
        if acc is None:
            self.counters[(cf, key)] = [delta, term]
        else:
            acc[0] += delta
            acc[1] += term
        self.count += 1

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self._wb.put(key, value, self._storage._handle(cf))
        self.count += 1
        if cf == META_CF:
            self.clears = True

    def delete(self, cf: str, key: bytes) -> None:
        self._wb.delete(key, self._storage._handle(cf))
        self.count += 1
        if cf == META_CF:
            self.clears = True

    def delete_range(self, cf: str, begin: bytes, end: bytes) -> None:
        self._wb.delete_range(begin, end, self._storage._handle(cf))
        self.count += 1
        if cf == META_CF:
            self.clears = True


class Storage:
    """A data directory's RocksDB with its column families."""

    def __init__(self, path: str, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        self.path = os.path.abspath(path)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise BadRequest(f"cannot use {self.path} as a data directory: {exc.strerror}") from None
        self._lock = threading.RLock()
        self._cache = Cache(self.options.block_cache_mb * 1024 * 1024)
        opts = self._cf_options()
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        opts.increase_parallelism(2)
        existing: list[str] = []
        if os.path.exists(os.path.join(self.path, "CURRENT")):
            with _rocks_errors(f"opening {self.path}"):
                existing = Rdict.list_cf(self.path, Options(raw_mode=True))
        wanted = set(existing) | set(INTERNAL_CFS)
        wanted.discard("default")
        with _rocks_errors(f"opening {self.path}"):
            self._db = Rdict(self.path, opts, column_families={n: self._cf_options(n) for n in wanted})
        self._cfs: dict[str, Rdict] = {}
        self._handles: dict[str, object] = {}
        for name in wanted:
            self._cfs[name] = self._db.get_column_family(name)
            self._handles[name] = self._db.get_column_family_handle(name)
        # Writes never sync one by one: with ``fsync`` on, :meth:`durable` (or
        # the owner, see :meth:`defer_sync`) syncs the WAL once for all writes
        # made so far: group commit.
        self._wopts = WriteOptions()
        #: Write options for hot paths writing to ``cf()`` directly; call :meth:`durable` after.
        self.write_options = self._wopts
        self._sync_each = self.options.fsync
        self._synced_seq = 0
        self._sync_lock = threading.Lock()
        #: WAL fsyncs done (each covers every write before it).
        self.wal_syncs = 0
        #: ``(cf, key) -> (count, sum)`` of counters as last written (see :meth:`Batch.add`): an
        #: update costs no read. Any other write to META_CF clears it (they are rare).
        self._counters: dict[tuple[str, bytes], tuple[int, int]] = {}
        self._closed = False

    def _cf_options(self, name: str = "default") -> Options:
        opts = Options(raw_mode=True)
        table = BlockBasedOptions()
        if name.startswith(FEED_CF_PREFIX):
            table.set_block_size(FEED_BLOCK_SIZE)
        table.set_block_cache(self._cache)
        table.set_bloom_filter(10, False)
        table.set_cache_index_and_filter_blocks(True)
        opts.set_block_based_table_factory(table)
        return opts

    # -- column families -------------------------------------------------

    def cf_names(self) -> list[str]:
        return sorted(self._cfs)

    def has_cf(self, name: str) -> bool:
        return name in self._cfs

    def cf(self, name: str) -> Rdict:
        """The column family object, for hot paths that call it directly."""
        try:
            return self._cfs[name]
        except KeyError:
            self._check_open()
            raise BadRequest(f"no column family {name!r}") from None

    def _handle(self, name: str) -> object:
        try:
            return self._handles[name]
        except KeyError:
            self._check_open()
            raise BadRequest(f"no column family {name!r}") from None

    def create_cf(self, name: str) -> None:
        with self._lock:
            self._check_open()
            if name in self._cfs:
                return
            with _rocks_errors(f"creating column family {name}"):
                self._cfs[name] = self._db.create_column_family(name, self._cf_options(name))
                self._handles[name] = self._db.get_column_family_handle(name)

    def drop_cf(self, name: str) -> None:
        """Drop a column family and all its data (instant: files are deleted later)."""
        with self._lock:
            self._check_open()
            cf = self._cfs.pop(name, None)
            self._handles.pop(name, None)
            if cf is None:
                return
            with _rocks_errors(f"dropping column family {name}"):
                cf.close()
                self._db.drop_column_family(name)

    # -- point operations ------------------------------------------------

    def get(self, cf: str, key: bytes) -> Optional[bytes]:
        with _rocks_errors("read"):
            return self.cf(cf).get(key)

    def get_many(self, cf: str, keys: list[bytes]) -> list[Optional[bytes]]:
        """The values of ``keys`` (None where absent), in one RocksDB multi-get."""
        with _rocks_errors("read"):
            return self.cf(cf).get(keys)

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        with _rocks_errors("write"):
            if cf == META_CF:
                with self._lock:
                    self._counters.pop((cf, key), None)
                    self.cf(cf).put(key, value, self._wopts)
            else:
                self.cf(cf).put(key, value, self._wopts)
        self.durable()

    def delete(self, cf: str, key: bytes) -> None:
        with _rocks_errors("delete"):
            if cf == META_CF:
                with self._lock:
                    self._counters.pop((cf, key), None)
                    self.cf(cf).delete(key, self._wopts)
            else:
                self.cf(cf).delete(key, self._wopts)
        self.durable()

    def batch(self) -> Batch:
        self._check_open()
        return Batch(self)

    def write(self, batch: Batch, sync: bool | None = None) -> None:
        """Apply a batch atomically; ``sync=True`` makes it durable now whatever the fsync option."""
        if batch.count == 0:
            return
        if not batch.counters and not batch.clears:  # the common case, without a context manager
            try:
                self._db.write(batch._wb, self._wopts)
            except Exception as exc:
                with _rocks_errors("write"):
                    raise exc from None
        else:
            self._write_locked(batch)
        batch.count = 0
        if sync:
            self.sync_wal()
        elif sync is None and self._sync_each:
            self.sync_wal()

    def _write_locked(self, batch: Batch) -> None:
        """A batch with counters or writes to META_CF: under the lock that keeps the counter values."""
        with _rocks_errors("write"):
            if batch.counters:
                with self._lock:
                    known = self._counters
                    if batch.clears:
                        known.clear()
                    new = []
                    for ck, (delta, term) in batch.counters.items():
                        cur = known.get(ck)
                        count, total = read_counter(self.cf(ck[0]).get(ck[1])) if cur is None else cur
                        cur = (max(0, count + delta), (total + term) % _SUM_MOD)
                        batch._wb.put(ck[1], cur[0].to_bytes(8, "big", signed=True) + cur[1].to_bytes(8, "big"), self._handle(ck[0]))
                        new.append((ck, cur))
                    self._db.write(batch._wb, self._wopts)
                    if len(known) + len(new) > _MAX_COUNTERS:
                        known.clear()
                    known.update(new)
                batch.counters = None
            else:
                with self._lock:
                    self._counters.clear()
                    self._db.write(batch._wb, self._wopts)

    def durable(self) -> None:
        """After a write: with ``fsync`` on, return only once it is on disk.

        Threads that write at once share one WAL sync (the first to get the
        lock syncs for all). A no-op with ``fsync`` off, or once the owner
        took over syncing with :meth:`defer_sync`.
        """
        if self._sync_each:
            self.sync_wal()

    def defer_sync(self) -> bool:
        """The owner calls :meth:`sync_wal` itself before acknowledging anything.

        A node does, before every send: all writes of one loop turn then share
        one fsync, and no acknowledgement leaves before the writes it covers
        are durable. Returns whether ``fsync`` is on (whether syncing is needed).
        """
        self._sync_each = False
        return self.options.fsync

    def sync_wal(self) -> None:
        """Make every write so far durable with one fsync (none if nothing changed since the last)."""
        seq = self._db.latest_sequence_number()
        if seq <= self._synced_seq:
            return
        with self._sync_lock:
            if seq <= self._synced_seq:
                return  # another writer's sync covered ours while we waited
            with _rocks_errors("sync"):
                self._db.flush_wal(True)
            self._synced_seq = seq
            self.wal_syncs += 1

    # -- ranges ----------------------------------------------------------

    def scan(
        self,
        cf: str,
        start: bytes | None = None,
        end: bytes | None = None,
        *,
        reverse: bool = False,
        chunk: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items with ``start <= key < end`` in key order (or reversed).

        Reads in chunks with a fresh iterator each, so a long scan holds no
        RocksDB iterator (and no pinned memtable) between chunks.
        """
        chunk = chunk or self.options.scan_chunk
        lo, hi = start, end
        while True:
            # rocksdict ignores iterate_lower_bound, so the lower edge is a
            # seek (forward) or a manual stop (reverse).
            ro = ReadOptions()
            if not reverse and hi is not None:
                ro.set_iterate_upper_bound(hi)
            with _rocks_errors("scan"):
                if reverse:
                    it = self.cf(cf).items(backwards=True, from_key=hi, read_opt=ro) if hi is not None else self.cf(cf).items(backwards=True, read_opt=ro)
                    items = []
                    for kv in it:
                        if hi is not None and kv[0] >= hi:
                            continue
                        if lo is not None and kv[0] < lo:
                            break
                        items.append(kv)
                        if len(items) >= chunk:
                            break
                else:
                    it = self.cf(cf).items(from_key=lo, read_opt=ro) if lo is not None else self.cf(cf).items(read_opt=ro)
                    items = list(islice(it, chunk))
            yield from items
            if len(items) < chunk:
                return
            last = items[-1][0]
            if reverse:
                hi = last
            else:
                lo = last + b"\x00"

    def scan_page(self, cf: str, start: bytes, end: Optional[bytes], *, reverse: bool = False, limit: int, max_bytes: int) -> tuple[list[tuple[bytes, bytes]], bool]:
        """One page of ``start <= key < end``: at most ``limit`` items and about ``max_bytes`` of values.

        ``end`` None (forward only) scans to the end of the column family.

        Returns ``(items, full)``; ``full`` means the page stopped at a bound,
        not at the end of the range. At least one item is returned when there
        is one, whatever its size, so a page always makes progress.
        """
        ro = ReadOptions()
        if end is None and reverse:
            raise BadRequest("a reverse page needs an end")
        if not reverse and end is not None:
            ro.set_iterate_upper_bound(end)
        items: list[tuple[bytes, bytes]] = []
        size = 0
        step = 16  # rows read per call into C; shrinks for big values so a page overshoots little
        with _rocks_errors("scan"):
            if reverse:
                it = self.cf(cf).items(backwards=True, from_key=end, read_opt=ro)
                first = next(it, None)
                it = chain([first] if first is not None and first[0] < end else [], it)
            else:
                it = self.cf(cf).items(from_key=start, read_opt=ro)
            while True:
                want = min(step, limit - len(items))
                chunk = list(islice(it, want))
                if reverse and chunk and chunk[-1][0] < start:
                    chunk = [kv for kv in chunk if kv[0] >= start]
                    items += chunk
                    return items, False
                items += chunk
                if len(chunk) < want:
                    return items, False
                size += sum(map(len, map(itemgetter(1), chunk)))
                if size >= max_bytes or len(items) >= limit:
                    return items, True
                step = max(1, min(256, (max_bytes - size) * len(items) // (2 * size or 1)))

    def scan_hash_range(self, cf: str, lo: int, hi: int, **kw) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key hash ``h`` satisfies ``lo <= h < hi`` (``hi`` may be 2**64)."""
        _check_range(lo, hi)
        return self.scan(cf, token_bytes(lo), token_bytes(hi) if hi < RING_SIZE else None, **kw)

    def delete_hash_range(self, cf: str, lo: int, hi: int) -> None:
        """Drop every key whose hash is in ``[lo, hi)`` — one range tombstone."""
        _check_range(lo, hi)
        begin = token_bytes(lo)
        with _rocks_errors("range delete"):
            if hi < RING_SIZE:
                self.cf(cf).delete_range(begin, token_bytes(hi), self._wopts)
            else:
                self.cf(cf).delete_range(begin, _TOP, self._wopts)
                for key, _ in list(self.scan(cf, _TOP)):  # the last hash value: vanishingly rare
                    self.cf(cf).delete(key, self._wopts)
        self.durable()

    def approximate_keys(self, cf: str) -> int:
        with _rocks_errors("stats"):
            return int(self.cf(cf).property_int_value("rocksdb.estimate-num-keys") or 0)

    # -- metadata --------------------------------------------------------

    def meta_get(self, key: bytes) -> Optional[bytes]:
        return self.get(META_CF, key)

    def meta_put(self, key: bytes, value: bytes, sync: bool = True) -> None:
        """Metadata writes are synced by default: they are rare and must survive power loss."""
        b = self.batch()
        b.put(META_CF, key, value)
        self.write(b, sync=sync)

    # -- lifecycle -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("storage is closed")

    def flush(self) -> None:
        with _rocks_errors("flush"):
            self._db.flush_wal(True)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self.options.fsync:
                with contextlib.suppress(RingKVError):
                    self.sync_wal()
            self._closed = True
            for cf in self._cfs.values():
                with contextlib.suppress(Exception):
                    cf.close()
            self._cfs.clear()
            self._handles.clear()
            with _rocks_errors("close"):
                self._db.close()


def _check_range(lo: int, hi: int) -> None:
    if type(lo) is not int or type(hi) is not int or not 0 <= lo <= hi <= RING_SIZE:
        raise BadRequest(f"bad hash range [{lo}, {hi})")
