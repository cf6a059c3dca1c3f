"""A replica's local side of reads and writes, shared by every mode.

The embedded database is one replica with N=1; a cluster node uses the same
object to coordinate writes (new dot) and to apply records sent by other
replicas (merge). Read-modify-write of one key is serialised by a striped
lock, so threads writing one key never issue the same dot twice. Callers pass
storage keys (placement is theirs to decide: see :mod:`ringkv.quorum.tables`).
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping, Optional, Sequence

from rocksdict import Rdict

from ringkv.codec import decode_parts, decode_record, encode_one, encode_record, replaces_one, supersedes_one
from ringkv.quorum.dvv import DVVSet, sync, sync_lww, update, update_lww
from ringkv.quorum.hlc import HLC
from ringkv.storage import Batch, Storage

__all__ = ["LocalReplica", "Extra"]

_STRIPES = 64
_STRIPE_MASK = _STRIPES - 1

#: ``extra(batch, old, new)`` adds companion writes (a hint index entry, a feed
#: length) to the batch that stores a record, so both land atomically.
Extra = Optional[Callable[[Batch, Optional[DVVSet], DVVSet], None]]

#: ``observer(batch, cf, skey, old_bytes, new_bytes, old_parts, new_parts)`` sees
#: every record write (anti-entropy keeps its hash tree current in the same
#: batch). The parts are ``(clock, entries)`` of those bytes where the writer
#: decoded them already, else None: decoding is most of an observer's cost.
Observer = Callable[[Batch, str, bytes, Optional[bytes], bytes, Optional[tuple], Optional[tuple]], None]


def _parts(rec: Optional[DVVSet]) -> Optional[tuple]:
    return None if rec is None else (rec.clock, rec.entries)


class LocalReplica:
    """Reads, coordinated writes and merges against one node's storage."""

    def __init__(self, storage: Storage, actor: str, hlc: HLC | None = None) -> None:
        self.storage = storage
        self.actor = actor
        self.hlc = hlc or HLC()
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._write_options = storage.write_options
        #: Called for every record written through this replica; see :data:`Observer`.
        self.observers: list[Observer] = []
        #: Called with the column family when a batch observers saw failed to be written.
        self.write_failed: list[Callable[[str], None]] = []

    def _store(self, cf: str, skey: bytes, old_raw: Optional[bytes], new_raw: bytes, extra, old, new) -> None:
        batch = self.storage.batch()
        batch.put(cf, skey, new_raw)
        if extra is not None:
            extra(batch, old, new)
        if self.observers:
            old_parts, new_parts = _parts(old), _parts(new)
            for observe in self.observers:
                observe(batch, cf, skey, old_raw, new_raw, old_parts, new_parts)
        self._commit(batch, cf)

    def _commit(self, batch: Batch, cf: str) -> None:
        try:
            self.storage.write(batch)
        except BaseException:
            for failed in self.write_failed:
                failed(cf)  # observers counted records that did not land
            raise

    def read(self, cf: str, skey: bytes) -> Optional[DVVSet]:
        raw = self.storage.cf(cf).get(skey)
        return decode_record(raw) if raw is not None else None

    def write(
        self,
        cf: str,
        skey: bytes,
        value: Optional[bytes],
        context: Optional[Mapping[str, int]] = None,
        *,
        lww: bool = False,
        timestamp: Optional[int] = None,
        extra: Extra = None,
    ) -> tuple[DVVSet, bytes]:
        """Coordinate a new write (``value=None`` deletes) with this replica's dot: the record and its stored bytes."""
        storage = self.storage
        table = storage.cf(cf)
        # the dot's counter is an HLC time: it stays above any this actor
        # handed out for the key, even ones its record no longer shows
        now = self.hlc.now()
        ts = now if timestamp is None else timestamp
        with self._locks[skey[0] & _STRIPE_MASK]:
            raw = table.get(skey)
            if context is None and (raw is None or (extra is None and timestamp is None and value is not None and supersedes_one(raw, self.actor, now))):
                # a new key (or one forgotten here), or one only we wrote: the new dot replaces all
                actor = self.actor
                local, rec = None, DVVSet({actor: now}, [(actor, now, ts, value)])
                data = encode_record(rec) if value is None else encode_one(actor, now, ts, value)
            else:
                local = decode_record(raw) if raw is not None else None
                rec = (update_lww if lww else update)(local, context, value, self.actor, ts, now)
                data = encode_record(rec)
            if extra is None and not self.observers:
                table.put(skey, data, storage.write_options)
                if storage._sync_each:
                    storage.sync_wal()
            else:
                self._store(cf, skey, raw, data, extra, local, rec)
        return rec, data

    def put_plain(self, cf: str, table: Rdict, skey: bytes, value: bytes, lww: bool) -> None:
        """:meth:`write` of a value with no context, timestamp or companion writes (an embedded ``put``).

        ``table`` is ``cf``'s column family. A new key's record, or the record
        of a key only this replica wrote, is encoded straight from the one
        new dot (see :func:`~ringkv.codec.supersedes_one`), with no record
        object; a replica with observers takes :meth:`write`.
        """
        if self.observers:
            self.write(cf, skey, value, lww=lww)
            return
        now = self.hlc.now()
        actor = self.actor
        with self._locks[skey[0] & _STRIPE_MASK]:
            raw = table.get(skey)
            if raw is None or supersedes_one(raw, actor, now):
                data = encode_one(actor, now, now, value)
            else:
                data = encode_record((update_lww if lww else update)(decode_record(raw), None, value, actor, now, now))
            table.put(skey, data, self._write_options)
        if self.storage._sync_each:
            self.storage.sync_wal()

    def apply(self, cf: str, skey: bytes, incoming: DVVSet, *, lww: bool = False, extra: Extra = None) -> DVVSet:
        """Merge a record from another replica into ours; returns the merged record."""
        table = self.storage.cf(cf)
        for e in incoming.entries:
            if e[2] > self.hlc.last:
                self.hlc.observe(e[2])
        with self._locks[skey[0] & _STRIPE_MASK]:
            raw = table.get(skey)
            local = decode_record(raw) if raw is not None else None
            merged = (sync_lww if lww else sync)(local, incoming)
            if local is None or merged != local:
                self._store(cf, skey, raw, encode_record(merged), extra, local, merged)
            elif extra is not None:
                batch = self.storage.batch()
                extra(batch, local, merged)
                self.storage.write(batch)
        return merged

    def apply_many(self, cf: str, records: Sequence[tuple[bytes, bytes, Extra]], *, lww: bool = False) -> int:
        """Merge encoded records ``(skey, raw, extra)`` from another replica; returns how many changed ours.

        Same outcome as :meth:`apply` on each, for a streamed chunk: one
        multi-get and one batch, and a record we lack is stored as the bytes
        received (decoded only to validate it and observe its timestamps).
        Observers and ``extra`` hooks run for every record as in :meth:`apply`.
        """
        if not records:
            return 0
        parts = [decode_parts(raw) for _, raw, _ in records]  # a corrupt record rejects the chunk
        top = max((e[2] for _, entries in parts for e in entries), default=0)
        if top > self.hlc.last:
            self.hlc.observe(top)
        skeys = [r[0] for r in records]
        locks = [self._locks[i] for i in sorted({k[0] & _STRIPE_MASK for k in skeys})]
        for lock in locks:
            lock.acquire()
        try:
            return self._apply_many(cf, records, parts, self.storage.cf(cf).get(skeys), lww)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _apply_many(self, cf: str, records, parts, found: list, lww: bool) -> int:
        storage, observers, merge = self.storage, self.observers, sync_lww if lww else sync
        batch = storage.batch()
        written: dict[bytes, bytes] = {}  # a key twice in one chunk merges into its first copy
        changed = 0
        try:
            for (skey, raw, extra), (clock, entries), old_raw in zip(records, parts, found):
                if written:
                    old_raw = written.get(skey, old_raw)
                if old_raw is None and (not lww or len(entries) < 2) or old_raw is not None and extra is None and replaces_one(old_raw, clock, entries):
                    local, new_raw = None, raw  # what the merge would store: nothing here, or only older
                    merged = DVVSet(clock, list(entries)) if extra is not None else None
                    new_parts = (clock, entries)
                else:
                    local = decode_record(old_raw) if old_raw is not None else None
                    merged = merge(local, DVVSet(clock, list(entries)))
                    new_raw = encode_record(merged) if local is None or merged != local else None
                    new_parts = (merged.clock, merged.entries)
                if new_raw is not None:
                    batch.put(cf, skey, new_raw)
                    written[skey] = new_raw
                    changed += 1
                if extra is not None:
                    extra(batch, local, merged)
                if new_raw is not None:
                    for observe in observers:
                        observe(batch, cf, skey, old_raw, new_raw, _parts(local), new_parts)
        finally:
            self._commit(batch, cf)  # also on error: observers already counted what the batch holds
        return changed
