"""Wire messages of the gossip protocol.

Every message validates its nested lists in ``check()`` so that anything a
peer sends either decodes into a well-formed message or raises
:class:`~ringkv.errors.ProtocolError`. ``check()`` also re-checks top-level
field types, so a core handed a hand-built message can validate it the same
way.

Nested shapes (all plain lists, msgpack-friendly):

* member entry: ``[node_id, addr, tokens, status, incarnation, counter]``
* metadata entry: ``[key, counter, writer, value]``
* gossip item (piggyback): ``["m", member]``, ``["k", metadata]``,
  ``["s", node_id, incarnation, from_id]`` (suspect) or
  ``["d", node_id, incarnation, from_id]`` (down), or ``["p", member]``
  (purged: the sender dropped this ``left``/``removed`` entry and quarantines
  its id; sent only to a peer that still holds the member)
* digest item: ``[node_id, rank, incarnation, counter, fingerprint]``
* view fingerprint: ``[size, xor of entry fingerprints]``
"""

from __future__ import annotations

from typing import Any

from ringkv.errors import ProtocolError
from ringkv.wire import Message, message

from .membership import (
    MAX_ADDR, MAX_ID, NBUCKETS, TERMINAL, U63, U64, check_member_wire, check_meta_wire,
)

__all__ = [
    "Ping", "Ack", "Nack", "PingReq", "Gossip", "Join", "Sync", "SyncDigest", "SyncDelta",
    "GOSSIP_MESSAGES", "check_gossip_item",
]

#: Upper bound on list lengths in one message (a full view of a big cluster).
MAX_ITEMS = 100_000


def _uint(v: Any, what: str) -> None:
    if type(v) is not int or not 0 <= v < U63:
        raise ProtocolError(f"{what}: expected an integer in [0, 2**63)")


def _u64(v: Any, what: str) -> None:
    if type(v) is not int or not 0 <= v < U64:
        raise ProtocolError(f"{what}: expected an integer in [0, 2**64)")


def _id(v: Any, what: str, empty: bool = False) -> None:
    if type(v) is not str or len(v) > MAX_ID or (not empty and not v):
        raise ProtocolError(f"{what}: expected a node id")


def _addr(v: Any, what: str) -> None:
    if type(v) is not str or not v or len(v) > MAX_ADDR:
        raise ProtocolError(f"{what}: expected an address")


def _list(v: Any, what: str, limit: int = MAX_ITEMS) -> None:
    if type(v) not in (list, tuple) or len(v) > limit:
        raise ProtocolError(f"{what}: expected a list of at most {limit} items")


def check_gossip_item(item: Any) -> None:
    """Validate one piggybacked item."""
    if type(item) not in (list, tuple) or not item:
        raise ProtocolError("gossip item: expected a non-empty list")
    kind = item[0]
    if kind == "m" and len(item) == 2:
        check_member_wire(item[1])
    elif kind == "k" and len(item) == 2:
        check_meta_wire(item[1])
    elif kind == "p" and len(item) == 2:
        check_member_wire(item[1])
        if item[1][3] not in TERMINAL:
            raise ProtocolError("purged member: status must be left or removed")
    elif kind in ("s", "d") and len(item) == 4:
        _id(item[1], "rumor.node_id")
        _uint(item[2], "rumor.incarnation")
        _id(item[3], "rumor.from")
    else:
        raise ProtocolError("gossip item: unknown kind or wrong length")


def _gossip(items: Any) -> None:
    _list(items, "gossip", 4096)
    for it in items:
        check_gossip_item(it)


@message("gossip.ping")
class Ping(Message):
    """Direct probe; ``target_id`` is the node id expected to answer."""

    seq: int
    src_id: str
    src_addr: str
    target_id: str
    gossip: list

    def check(self) -> None:
        _uint(self.seq, "ping.seq")
        _id(self.src_id, "ping.src_id")
        _addr(self.src_addr, "ping.src_addr")
        _id(self.target_id, "ping.target_id")
        _gossip(self.gossip)


@message("gossip.ack")
class Ack(Message):
    """Answer to a ping, carrying the responder's current incarnation."""

    seq: int
    src_id: str
    incarnation: int
    gossip: list

    def check(self) -> None:
        _uint(self.seq, "ack.seq")
        _id(self.src_id, "ack.src_id")
        _uint(self.incarnation, "ack.incarnation")
        _gossip(self.gossip)


@message("gossip.nack")
class Nack(Message):
    """A relay could not reach the target in time (Lifeguard)."""

    seq: int
    src_id: str

    def check(self) -> None:
        _uint(self.seq, "nack.seq")
        _id(self.src_id, "nack.src_id")


@message("gossip.ping_req")
class PingReq(Message):
    """Ask a peer to ping ``target`` on our behalf (indirect probe)."""

    seq: int
    src_id: str
    src_addr: str
    target_id: str
    target_addr: str
    gossip: list

    def check(self) -> None:
        _uint(self.seq, "ping_req.seq")
        _id(self.src_id, "ping_req.src_id")
        _addr(self.src_addr, "ping_req.src_addr")
        _id(self.target_id, "ping_req.target_id")
        _addr(self.target_addr, "ping_req.target_addr")
        _gossip(self.gossip)


@message("gossip.gossip")
class Gossip(Message):
    """Pure dissemination: a batch of piggyback items."""

    src_id: str
    gossip: list

    def check(self) -> None:
        _id(self.src_id, "gossip.src_id")
        _gossip(self.gossip)


@message("gossip.join")
class Join(Message):
    """A new node announces its own entry to a seed address."""

    member: list

    def check(self) -> None:
        check_member_wire(self.member)


@message("gossip.sync")
class Sync(Message):
    """Push-pull, step 1: whole-view and metadata fingerprints.

    ``buckets`` is empty on the first, cheap, message (agreeing views stop
    there); the receiver of an empty-bucket Sync that differs answers with a
    Sync carrying its 64 bucket fingerprints, and the digest step follows.
    """

    src_id: str
    src_addr: str
    view_fp: list
    meta_fp: int
    buckets: list

    def check(self) -> None:
        _id(self.src_id, "sync.src_id")
        _addr(self.src_addr, "sync.src_addr")
        _list(self.view_fp, "sync.view_fp", 2)
        if len(self.view_fp) != 2:
            raise ProtocolError("sync.view_fp: expected [size, fingerprint]")
        _uint(self.view_fp[0], "sync.view_fp.size")
        _u64(self.view_fp[1], "sync.view_fp.fp")
        _u64(self.meta_fp, "sync.meta_fp")
        _list(self.buckets, "sync.buckets", NBUCKETS)
        if len(self.buckets) not in (0, NBUCKETS):
            raise ProtocolError(f"sync.buckets: expected 0 or {NBUCKETS} fingerprints")
        for b in self.buckets:
            _u64(b, "sync.buckets[]")


@message("gossip.sync_digest")
class SyncDigest(Message):
    """Push-pull, step 2: the differing buckets' digests (and metadata if it differs)."""

    src_id: str
    src_addr: str
    buckets: list
    digest: list
    meta_fp: int
    meta: list

    def check(self) -> None:
        _id(self.src_id, "sync_digest.src_id")
        _addr(self.src_addr, "sync_digest.src_addr")
        _list(self.buckets, "sync_digest.buckets", NBUCKETS)
        for b in self.buckets:
            if type(b) is not int or not 0 <= b < NBUCKETS:
                raise ProtocolError("sync_digest.buckets[]: bad bucket index")
        _list(self.digest, "sync_digest.digest")
        for d in self.digest:
            if type(d) not in (list, tuple) or len(d) != 5:
                raise ProtocolError("sync_digest.digest[]: expected 5 fields")
            _id(d[0], "digest.node_id")
            if type(d[1]) is not int or not 0 <= d[1] <= 2:
                raise ProtocolError("digest.rank: expected 0..2")
            _uint(d[2], "digest.incarnation")
            _uint(d[3], "digest.counter")
            _u64(d[4], "digest.fp")
        _u64(self.meta_fp, "sync_digest.meta_fp")
        _list(self.meta, "sync_digest.meta")
        for e in self.meta:
            check_meta_wire(e)


@message("gossip.sync_delta")
class SyncDelta(Message):
    """Push-pull, step 3/4 (and the answer to a join): entries, plus ids wanted back."""

    src_id: str
    src_addr: str
    members: list
    meta: list
    want: list
    gossip: list

    def check(self) -> None:
        _id(self.src_id, "sync_delta.src_id")
        _addr(self.src_addr, "sync_delta.src_addr")
        _list(self.members, "sync_delta.members")
        for m in self.members:
            check_member_wire(m)
        _list(self.meta, "sync_delta.meta")
        for e in self.meta:
            check_meta_wire(e)
        _list(self.want, "sync_delta.want")
        for w in self.want:
            _id(w, "sync_delta.want[]")
        _gossip(self.gossip)


GOSSIP_MESSAGES: tuple[type[Message], ...] = (
    Ping, Ack, Nack, PingReq, Gossip, Join, Sync, SyncDigest, SyncDelta,
)
