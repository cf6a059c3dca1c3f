"""Who a data directory belongs to: node id, epoch, actor.

The node id is made once and kept. The *epoch* starts at the creation time of
the directory and grows each time the directory is opened after an unclean
shutdown (crash, ``kill -9``): writes coordinated after such a restart (or
from a wiped directory reusing the node id) use a new actor id
(``node_id.epoch``), so a replica that lost unsynced writes can never hand
out a dot it had already used — the fix for Riak's kv679 lost-update bug.

The directory also keeps a ceiling for its hybrid logical clock
(:func:`persistent_clock`), so that clock never runs backwards across a
restart, even when the wall clock was set back meanwhile: dot counters and
feed entry ids, both taken from it, never repeat.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Optional

from ringkv.errors import BadRequest
from ringkv.quorum.hlc import HLC, from_millis
from ringkv.storage import Storage

__all__ = ["Identity", "open_identity", "mark_clean_shutdown", "new_node_id", "persistent_clock", "HLC_LEASE"]

log = logging.getLogger("ringkv.identity")

_NODE_ID = b"node_id"
_EPOCH = b"epoch"
_CLEAN = b"clean_shutdown"
_HLC_CEILING = b"hlc_ceiling"
#: How far past the latest timestamp the recorded ceiling is set: one synced
#: write per this much clock time, and after a restart the clock starts at
#: most this far ahead of the wall clock.
HLC_LEASE = from_millis(2_000)


def new_node_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Identity:
    node_id: str
    epoch: int

    @property
    def actor(self) -> str:
        return f"{self.node_id}.{_base36(self.epoch)}"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def open_identity(storage: Storage, node_id: str | None = None) -> Identity:
    """Load (or create) the directory's identity and start a session on it."""
    stored = storage.meta_get(_NODE_ID)
    if stored is not None:
        have = stored.decode()
        if node_id is not None and node_id != have:
            raise BadRequest(f"data directory {storage.path} belongs to node {have}, not {node_id}")
        node_id = have
    else:
        node_id = node_id or new_node_id()
        storage.meta_put(_NODE_ID, node_id.encode())
    raw_epoch = storage.meta_get(_EPOCH)
    if raw_epoch is None:
        # A fresh directory starts from the clock, not from 1: a node whose disk
        # was wiped and that comes back under its old id must not reuse an actor
        # whose dots other replicas still hold (they would cover the new writes).
        epoch = int(time.time() * 1000)
    else:
        epoch = int(raw_epoch)
        if storage.meta_get(_CLEAN) != b"1":
            epoch += 1
    storage.meta_put(_EPOCH, str(epoch).encode())
    storage.meta_put(_CLEAN, b"0")
    return Identity(node_id, epoch)


def mark_clean_shutdown(storage: Storage, clock: Optional[HLC] = None) -> None:
    """Record a clean stop (the next start keeps the actor) and ``clock``'s latest timestamp as its ceiling."""
    if clock is not None:
        storage.meta_put(_HLC_CEILING, str(clock.settle()).encode())
    storage.meta_put(_CLEAN, b"1")


def persistent_clock(storage: Storage) -> HLC:
    """The directory's hybrid logical clock: it starts above every timestamp a previous run handed out."""
    raw = storage.meta_get(_HLC_CEILING)
    floor = 0
    if raw is not None:
        try:
            floor = int(raw)
        except ValueError:
            log.warning("the stored clock ceiling of %s is unreadable; the clock starts from the wall clock", storage.path)

    def extend(ts: int) -> int:
        ceiling = ts + HLC_LEASE
        # as durable as the writes it stamps: synced when they are (a crash of the
        # process keeps it either way; after a power cut the actor changes anyway)
        storage.meta_put(_HLC_CEILING, str(ceiling).encode(), sync=storage.options.fsync)
        return ceiling

    return HLC(floor=floor, extend=extend)
