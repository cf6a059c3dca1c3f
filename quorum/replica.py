"""A replica's local side of reads and writes, shared by every mode.

The embedded database is one replica with N=1; a cluster node uses the same
object to coordinate writes (new dot) and to apply records sent by other
replicas (merge). Read-modify-write of one key is serialised by a striped
lock, so threads writing one key never issue the same dot twice.
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping, Optional

from rocksdict import Rdict

from ringkv.codec import decode_record, encode_record
from ringkv.hashing import storage_key
from ringkv.quorum.dvv import DVVSet, sync, sync_lww, update, update_lww
from ringkv.quorum.hlc import HLC
from ringkv.storage import Batch, Storage

__all__ = ["LocalReplica"]

_STRIPES = 64
_STRIPE_MASK = _STRIPES - 1

#: Adds companion writes (a hint index entry...) to the batch of a record write.
Extra = Optional[Callable[[Batch, DVVSet], None]]


class LocalReplica:
    """Reads, coordinated writes and merges against one node's storage."""

    def __init__(self, storage: Storage, actor: str, hlc: HLC | None = None) -> None:
        self.storage = storage
        self.actor = actor
        self.hlc = hlc or HLC()
        self._locks = [threading.Lock() for _ in range(_STRIPES)]

    def read(self, cf: str, key: bytes) -> Optional[DVVSet]:
        raw = self.storage.cf(cf).get(storage_key(key))
        return decode_record(raw) if raw is not None else None

    def write(
        self,
        cf: str,
        key: bytes,
        value: Optional[bytes],
        context: Optional[Mapping[str, int]] = None,
        *,
        lww: bool = False,
        timestamp: Optional[int] = None,
        extra: Extra = None,
    ) -> DVVSet:
        """Coordinate a new write (``value=None`` deletes) with this replica's dot."""
        return self.write_table(self.storage.cf(cf), storage_key(key), value, context, lww, timestamp, cf if extra else None, extra)

    def write_table(
        self,
        table: Rdict,
        skey: bytes,
        value: Optional[bytes],
        context: Optional[Mapping[str, int]],
        lww: bool,
        timestamp: Optional[int],
        cf: Optional[str] = None,
        extra: Extra = None,
    ) -> DVVSet:
        """:meth:`write` on an already looked-up column family and storage key (the hot path)."""
        ts = self.hlc.now() if timestamp is None else timestamp
        with self._locks[skey[0] & _STRIPE_MASK]:
            raw = table.get(skey)
            local = decode_record(raw) if raw is not None else None
            rec = (update_lww if lww else update)(local, context, value, self.actor, ts)
            if extra is None:
                table.put(skey, encode_record(rec), self.storage.write_options)
            else:
                batch = self.storage.batch()
                batch.put(cf, skey, encode_record(rec))
                extra(batch, rec)
                self.storage.write(batch)
        return rec

    def apply(self, cf: str, key: bytes, incoming: DVVSet, *, lww: bool = False, extra: Extra = None) -> DVVSet:
        """Merge a record from another replica into ours; returns the merged record."""
        skey = storage_key(key)
        table = self.storage.cf(cf)
        for e in incoming.entries:
            if e[2] > self.hlc.last:
                self.hlc.observe(e[2])
        with self._locks[skey[0] & _STRIPE_MASK]:
            raw = table.get(skey)
            local = decode_record(raw) if raw is not None else None
            merged = (sync_lww if lww else sync)(local, incoming)
            if local is None or merged != local or extra is not None:
                batch = self.storage.batch()
                batch.put(cf, skey, encode_record(merged))
                if extra is not None:
                    extra(batch, merged)
                self.storage.write(batch)
        return merged
