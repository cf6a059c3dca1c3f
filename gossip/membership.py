"""Membership state: members, the view CRDT, and cluster metadata.

A *view* maps ``node_id -> Member``. Views merge entry by entry, keeping the
entry that is greatest in one total order, so merging is commutative,
associative and idempotent (a join-semilattice) and gossip converges whatever
order entries arrive in.

The order of two entries of one member (its "version" in the wide sense) is::

    (rank(status), incarnation, counter, status, addr, tokens)

* ``rank`` is 0 for ``joining|up|leaving``, 1 for ``left``, 2 for ``removed``.
  A terminal entry therefore beats every live entry whatever its
  ``(incarnation, counter)``: stale gossip can never resurrect a member that
  left or was removed, and the member itself cannot refute a removal.
* Only the owner writes its live entries; it bumps ``counter`` for its own
  changes and ``incarnation`` (counter reset to 0) to refute a suspicion or to
  re-assert itself after a restart.
* Any node may mark another member ``removed`` (operator action for a dead
  node): it writes the same entry with status ``removed`` and ``counter + 1``.
  Two concurrent removals of one member tie on rank and version and are
  ordered by content, so every node keeps the same one.
* ``left`` and ``removed`` are final for that ``node_id``; a node that comes
  back after either must join under a new id.
* Terminal entries are not kept forever: a node purges one some time after
  it went terminal and then quarantines the id, holding the purged entry as
  a tombstone (see :mod:`ringkv.gossip.node`). A purged entry leaves the view,
  its fingerprints and digests, so nodes that both purged agree again.

Cluster metadata is a second, small CRDT map ``key -> MetaEntry(counter,
writer, value)``, ordered by ``(counter, writer, fingerprint)``; a writer sets
``counter = current + 1``, so a later write wins and concurrent writes are
resolved identically everywhere. ``value=None`` is a deletion marker (kept, so
the deletion itself wins against stale copies).

Fingerprints (64-bit blake2b of the msgpack'ed entry) let two nodes compare
views cheaply: XOR of entry fingerprints per bucket of node ids.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Iterable, Iterator, Mapping

import msgpack

from ringkv.errors import BadRequest, ProtocolError

__all__ = [
    "JOINING", "UP", "LEAVING", "LEFT", "REMOVED", "STATUSES", "TERMINAL",
    "Member", "MetaEntry", "View", "MetadataMap", "NBUCKETS",
    "merge_member", "merge_views", "merge_meta", "merge_metadata",
    "check_member_wire", "check_meta_wire",
]

JOINING, UP, LEAVING, LEFT, REMOVED = "joining", "up", "leaving", "left", "removed"
STATUSES = (JOINING, UP, LEAVING, LEFT, REMOVED)
TERMINAL = frozenset((LEFT, REMOVED))
RANK = {JOINING: 0, UP: 0, LEAVING: 0, LEFT: 1, REMOVED: 2}

#: Number of node-id buckets used by push-pull digests (part of the protocol).
NBUCKETS = 64
MAX_ID = 256
MAX_ADDR = 512
MAX_TOKENS = 4096
MAX_KEY = 256
MAX_DEPTH = 16
U63 = 1 << 63
U64 = 1 << 64


_packer = msgpack.Packer()


def _fp(obj: Any) -> int:
    return int.from_bytes(blake2b(_packer.pack(obj), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=1 << 16)
def bucket_of(node_id: str) -> int:
    """Stable digest bucket of a node id."""
    return zlib.crc32(node_id.encode("utf-8", "surrogatepass")) % NBUCKETS


# -- validation of untrusted wire entries ------------------------------------

def _str(value: Any, what: str, limit: int, empty: bool = False) -> None:
    if type(value) is not str or len(value) > limit or (not empty and not value):
        raise ProtocolError(f"{what}: expected a non-empty string of at most {limit} chars")


def _uint(value: Any, what: str) -> None:
    if type(value) is not int or not 0 <= value < U63:
        raise ProtocolError(f"{what}: expected an integer in [0, 2**63)")


def check_member_wire(raw: Any) -> None:
    """Validate ``[node_id, addr, tokens, status, incarnation, counter]``."""
    if type(raw) not in (list, tuple) or len(raw) != 6:
        raise ProtocolError("member: expected a list of 6 fields")
    node_id, addr, tokens, status, inc, ctr = raw
    _str(node_id, "member.node_id", MAX_ID)
    _str(addr, "member.addr", MAX_ADDR)
    if type(tokens) not in (list, tuple) or len(tokens) > MAX_TOKENS:
        raise ProtocolError(f"member.tokens: expected a list of at most {MAX_TOKENS} ints")
    for t in tokens:
        if type(t) is not int or not 0 <= t < U64:
            raise ProtocolError("member.tokens: tokens are integers in [0, 2**64)")
    if type(status) is not str or status not in RANK:
        raise ProtocolError("member.status: unknown status")
    _uint(inc, "member.incarnation")
    _uint(ctr, "member.counter")


def check_plain(value: Any, depth: int = 0) -> None:
    """Metadata values must be plain msgpack data (no objects, bounded depth)."""
    if depth > MAX_DEPTH:
        raise ProtocolError("metadata value nested too deeply")
    if value is None or type(value) in (bool, float, str, bytes):
        return
    if type(value) is int:
        if not -U63 <= value < U64:
            raise ProtocolError("metadata value: integer out of range")
    elif type(value) in (list, tuple):
        for v in value:
            check_plain(v, depth + 1)
    elif type(value) is dict:
        for k, v in value.items():
            if type(k) not in (str, bytes):  # what msgpack's strict_map_key accepts
                raise ProtocolError("metadata value: map keys are str or bytes")
            check_plain(k, depth + 1)
            check_plain(v, depth + 1)
    else:
        raise ProtocolError(f"metadata value: unsupported type {type(value).__name__}")


def check_meta_wire(raw: Any) -> None:
    """Validate ``[key, counter, writer, value]``."""
    if type(raw) not in (list, tuple) or len(raw) != 4:
        raise ProtocolError("metadata: expected a list of 4 fields")
    _str(raw[0], "metadata.key", MAX_KEY)
    _uint(raw[1], "metadata.counter")
    _str(raw[2], "metadata.writer", MAX_ID)
    check_plain(raw[3])


# -- entries -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Member:
    """One member's gossiped state; immutable, ordered by :meth:`order`."""

    node_id: str
    addr: str
    tokens: tuple[int, ...] = ()
    status: str = JOINING
    incarnation: int = 0
    counter: int = 0
    fp: int = field(init=False, repr=False, compare=False)
    _wire: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        w = (self.node_id, self.addr, self.tokens, self.status, self.incarnation, self.counter)
        try:
            check_member_wire(w)
        except ProtocolError as exc:
            raise BadRequest(str(exc)) from None
        object.__setattr__(self, "_wire", w)
        object.__setattr__(self, "fp", _fp(w))

    @property
    def version(self) -> tuple[int, int]:
        return self.incarnation, self.counter

    @property
    def rank(self) -> int:
        return RANK[self.status]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def order(self) -> tuple:
        """Total order used by merge (see the module docstring)."""
        return (RANK[self.status], self.incarnation, self.counter, self.status, self.addr, self.tokens)

    def wire(self) -> tuple:
        """``(node_id, addr, tokens, status, incarnation, counter)``, packed as a list."""
        return self._wire

    @classmethod
    def from_wire(cls, raw: Any) -> "Member":
        """Build from a wire list; ProtocolError if malformed."""
        check_member_wire(raw)
        return _interned(raw)


_INTERN: dict[tuple, Member] = {}
_INTERN_MAX = 1 << 16


def _interned(raw: Any) -> Member:
    """The Member for a validated wire entry, shared while it is recent.

    Entries are immutable, so every node of a simulation (or every message of a
    busy process) that sees the same entry can hold the same object: no second
    parse, fingerprint or copy.
    """
    key = (raw[0], raw[1], tuple(raw[2]), raw[3], raw[4], raw[5])
    m = _INTERN.get(key)
    if m is None:
        if len(_INTERN) >= _INTERN_MAX:
            _INTERN.clear()
        m = object.__new__(Member)
        for name, value in zip(("node_id", "addr", "tokens", "status", "incarnation", "counter"), key):
            object.__setattr__(m, name, value)
        object.__setattr__(m, "_wire", key)
        object.__setattr__(m, "fp", _fp(key))
        _INTERN[key] = m
    return m


@dataclass(frozen=True, slots=True)
class MetaEntry:
    """One cluster metadata entry; ``value=None`` marks a deletion."""

    key: str
    counter: int
    writer: str
    value: Any = None
    fp: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            check_meta_wire(self.wire())
        except ProtocolError as exc:
            raise BadRequest(str(exc)) from None
        object.__setattr__(self, "fp", _fp(self.wire()))

    def order(self) -> tuple:
        return (self.counter, self.writer, self.fp)

    def wire(self) -> list:
        return [self.key, self.counter, self.writer, self.value]

    @classmethod
    def from_wire(cls, raw: Any) -> "MetaEntry":
        check_meta_wire(raw)
        return cls(raw[0], raw[1], raw[2], raw[3])


def merge_member(a: Member | None, b: Member | None) -> Member | None:
    """The winner of two entries of one member."""
    if a is None:
        return b
    if b is None:
        return a
    if a.node_id != b.node_id:
        raise ValueError("merging entries of different members")
    return b if b.order() > a.order() else a


def merge_views(a: Mapping[str, Member], b: Mapping[str, Member]) -> dict[str, Member]:
    """Pure merge of two views (the CRDT join)."""
    out = dict(a)
    for k, m in b.items():
        out[k] = merge_member(out.get(k), m)  # type: ignore[assignment]
    return out


def merge_meta(a: MetaEntry | None, b: MetaEntry | None) -> MetaEntry | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.order() > a.order() else a


def merge_metadata(a: Mapping[str, MetaEntry], b: Mapping[str, MetaEntry]) -> dict[str, MetaEntry]:
    out = dict(a)
    for k, e in b.items():
        out[k] = merge_meta(out.get(k), e)  # type: ignore[assignment]
    return out


# -- stores with fingerprints ---------------------------------------------------

class View:
    """A node's membership view with per-bucket fingerprints for push-pull."""

    __slots__ = ("_members", "_buckets", "_fps", "_hash")

    def __init__(self, members: Iterable[Member] = ()) -> None:
        self._members: dict[str, Member] = {}
        self._buckets: list[dict[str, Member]] = [{} for _ in range(NBUCKETS)]
        self._fps = [0] * NBUCKETS
        self._hash = 0
        for m in members:
            self.merge(m)

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._members

    def get(self, node_id: str) -> Member | None:
        return self._members.get(node_id)

    def as_dict(self) -> dict[str, Member]:
        return dict(self._members)

    def mapping(self) -> Mapping[str, Member]:
        return self._members

    def merge(self, m: Member) -> tuple[bool, Member | None]:
        """Merge one entry; ``(changed, previous entry)``."""
        old = self._members.get(m.node_id)
        if old is not None and not m.order() > old.order():
            return False, old
        self.put(m)
        return True, old

    def put(self, m: Member) -> None:
        """Store ``m`` unconditionally (the owner's own entry)."""
        old = self._members.get(m.node_id)
        b = bucket_of(m.node_id)
        delta = m.fp ^ (old.fp if old is not None else 0)
        self._fps[b] ^= delta
        self._hash ^= delta
        self._members[m.node_id] = m
        self._buckets[b][m.node_id] = m

    def discard(self, node_id: str) -> Member | None:
        """Drop an entry (a purged departed member); returns it, or None."""
        m = self._members.pop(node_id, None)
        if m is None:
            return None
        b = bucket_of(node_id)
        self._fps[b] ^= m.fp
        self._hash ^= m.fp
        del self._buckets[b][node_id]
        return m

    def buckets(self) -> list[int]:
        """Per-bucket XOR of entry fingerprints."""
        return list(self._fps)

    def fingerprint(self) -> tuple[int, int]:
        """``(size, xor of all fingerprints)``: equal views have equal fingerprints."""
        return len(self._members), self._hash

    def bucket(self, b: int) -> Iterable[Member]:
        return self._buckets[b].values()

    def digest(self, buckets: Iterable[int]) -> list[list]:
        """``[node_id, rank, incarnation, counter, fp]`` for members of ``buckets``."""
        return [[m.node_id, RANK[m.status], m.incarnation, m.counter, m.fp]
                for b in buckets for m in self._buckets[b].values()]


class MetadataMap:
    """Cluster metadata store; one XOR fingerprint for the whole (small) map."""

    __slots__ = ("_entries", "_hash", "_values")

    def __init__(self) -> None:
        self._entries: dict[str, MetaEntry] = {}
        self._hash = 0
        self._values: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> MetaEntry | None:
        return self._entries.get(key)

    @property
    def fp(self) -> int:
        return self._hash

    def values(self) -> Mapping[str, Any]:
        """Live values (deletion markers hidden)."""
        return self._values

    def entries(self) -> Iterable[MetaEntry]:
        return self._entries.values()

    def merge(self, e: MetaEntry) -> bool:
        old = self._entries.get(e.key)
        if old is not None and not e.order() > old.order():
            return False
        self._hash ^= e.fp ^ (old.fp if old is not None else 0)
        self._entries[e.key] = e
        if e.value is None:
            self._values.pop(e.key, None)
        else:
            self._values[e.key] = e.value
        return True

    def wire_all(self) -> list[list]:
        return [e.wire() for e in self._entries.values()]
