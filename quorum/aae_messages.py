"""Wire messages of anti-entropy and tombstone GC.

Hash ranges travel as inclusive ``[lo, last]`` pairs (``last <= 2**64 - 1``
fits msgpack's uint64, where a half-open ``hi`` of ``2**64`` would not).
Every nested field is checked in ``check()``: a malformed message is a
ProtocolError before any handler sees it.
"""

from __future__ import annotations

from ringkv.errors import ProtocolError
from ringkv.hashing import RING_SIZE
from ringkv.wire import Message, message

__all__ = [
    "AaeHashes",
    "AaeHashList",
    "AaeKeys",
    "AaeKeyList",
    "AaeTombstones",
    "AaeTombStates",
    "AaePurge",
    "AaePurged",
    "AaeRepair",
    "AaeRepairStats",
    "MAX_INDEXES",
    "MAX_PIECES",
    "MAX_KEYS",
    "MAX_KEY_BYTES",
    "pieces_to_wire",
    "pieces_from_wire",
]

#: Tree nodes per aae.hashes request.
MAX_INDEXES = 1 << 15
#: Ranges per request (two nodes with many vnodes share a few hundred).
MAX_PIECES = 1 << 16
#: Keys per aae.keys page / tombstone batch.
MAX_KEYS = 10_000
#: Largest storage key carried (a user key is at most 16 MiB by config; real ones are far smaller).
MAX_KEY_BYTES = 16 * 1024 * 1024 + 1024
_MAX_TABLE = 300
_DIGEST = 16


def _fail(msg: Message, what: str) -> None:
    raise ProtocolError(f"{msg.TYPE}.{what}")


def _check_table(msg: Message, name: str) -> None:
    if not 0 < len(name) <= _MAX_TABLE:
        _fail(msg, "table: bad length")


def _is_int(v: object) -> bool:
    return type(v) is int


def _is_digest(v: object) -> bool:
    return type(v) is bytes and len(v) == _DIGEST


def _is_key(v: object) -> bool:
    return type(v) is bytes and len(v) <= MAX_KEY_BYTES


def _check_pieces(msg: Message, pieces: object) -> None:
    if len(pieces) > MAX_PIECES:  # type: ignore[arg-type]
        _fail(msg, "pieces: too many")
    prev = -1
    for p in pieces:  # type: ignore[union-attr]
        if not isinstance(p, (list, tuple)) or len(p) != 2 or not _is_int(p[0]) or not _is_int(p[1]):
            _fail(msg, "pieces: expected [lo, last] int pairs")
        lo, last = p
        if not prev < lo <= last < RING_SIZE:
            _fail(msg, "pieces: must be sorted, disjoint, within [0, 2**64)")
        prev = last


def pieces_to_wire(pieces: list[tuple[int, int]]) -> list[list[int]]:
    """Half-open ``[lo, hi)`` pieces as inclusive wire pairs."""
    return [[lo, hi - 1] for lo, hi in pieces]


def pieces_from_wire(pieces: list) -> list[tuple[int, int]]:
    return [(lo, last + 1) for lo, last in pieces]


@message("aae.hashes")
class AaeHashes(Message):
    """Hashes of tree nodes ``indexes`` on ``level`` of ``table``'s tree.

    ``bits`` is the requester's segment bits: trees of different shapes
    cannot be compared. With ``pieces`` (leaf level only), each segment's
    hash is restricted to the keys inside those ranges.
    """

    table: str
    bits: int
    level: int
    indexes: list
    pieces: list

    def check(self) -> None:
        _check_table(self, self.table)
        if not 1 <= self.bits <= 24:
            _fail(self, "bits: out of range")
        if not 0 <= self.level < 8:
            _fail(self, "level: out of range")
        if len(self.indexes) > MAX_INDEXES:
            _fail(self, "indexes: too many")
        for i in self.indexes:
            if not _is_int(i) or not 0 <= i < (1 << self.bits):
                _fail(self, "indexes: expected ints within the tree")
        _check_pieces(self, self.pieces)


@message("aae.hash_list")
class AaeHashList(Message):
    """Reply to aae.hashes: one 16-byte hash per requested index."""

    hashes: list

    def check(self) -> None:
        if len(self.hashes) > MAX_INDEXES or not all(_is_digest(h) for h in self.hashes):
            _fail(self, "hashes: expected 16-byte hashes")


@message("aae.keys")
class AaeKeys(Message):
    """Storage keys and digests of ``table`` in ``[lo, last]``, after ``after``, up to ``limit``."""

    table: str
    lo: int
    last: int
    after: bytes | None
    limit: int

    def check(self) -> None:
        _check_table(self, self.table)
        if not 0 <= self.lo <= self.last < RING_SIZE:
            _fail(self, "range: expected 0 <= lo <= last < 2**64")
        if self.after is not None and len(self.after) > MAX_KEY_BYTES:
            _fail(self, "after: too long")
        if not 1 <= self.limit <= MAX_KEYS:
            _fail(self, f"limit: expected 1..{MAX_KEYS}")


@message("aae.key_list")
class AaeKeyList(Message):
    """Reply to aae.keys: ``[[skey, digest], ...]`` in key order; ``more`` if the page was cut."""

    keys: list
    more: bool

    def check(self) -> None:
        if len(self.keys) > MAX_KEYS:
            _fail(self, "keys: too many")
        prev = b""
        for k in self.keys:
            if not isinstance(k, (list, tuple)) or len(k) != 2 or not _is_key(k[0]) or len(k[0]) < 8 or not _is_digest(k[1]):
                _fail(self, "keys: expected [storage key, 16-byte digest] pairs")
            if k[0] <= prev:
                _fail(self, "keys: not in key order")
            prev = k[0]


@message("aae.tombstones")
class AaeTombstones(Message):
    """GC: this member's state (digest, eligible, hinted) for each key of ``table``."""

    table: str
    keys: list

    def check(self) -> None:
        _check_table(self, self.table)
        if len(self.keys) > MAX_KEYS or not all(_is_key(k) for k in self.keys):
            _fail(self, "keys: expected a list of bytes")


@message("aae.tomb_states")
class AaeTombStates(Message):
    """Reply to aae.tombstones: ``[[digest | None, eligible, hinted], ...]`` aligned with the keys."""

    states: list

    def check(self) -> None:
        if len(self.states) > MAX_KEYS:
            _fail(self, "states: too many")
        for s in self.states:
            if (
                not isinstance(s, (list, tuple))
                or len(s) != 3
                or not (s[0] is None or _is_digest(s[0]))
                or type(s[1]) is not bool
                or type(s[2]) is not bool
            ):
                _fail(self, "states: expected [digest or nil, bool, bool] triples")


@message("aae.purge")
class AaePurge(Message):
    """GC: purge each ``[key, digest]`` of ``table`` if this member still holds exactly that tombstone."""

    table: str
    keys: list

    def check(self) -> None:
        _check_table(self, self.table)
        if len(self.keys) > MAX_KEYS:
            _fail(self, "keys: too many")
        for k in self.keys:
            if not isinstance(k, (list, tuple)) or len(k) != 2 or not _is_key(k[0]) or not _is_digest(k[1]):
                _fail(self, "keys: expected [key, 16-byte digest] pairs")


@message("aae.purged")
class AaePurged(Message):
    purged: int

    def check(self) -> None:
        if self.purged < 0:
            _fail(self, "purged: negative")


@message("aae.repair")
class AaeRepair(Message):
    """Operator -> node: run one anti-entropy pass (all peers, then GC) now; answers its stats."""

    keyspace: str | None = None

    def check(self) -> None:
        if self.keyspace is not None and not 0 < len(self.keyspace) <= _MAX_TABLE:
            _fail(self, "keyspace: bad length")


@message("aae.repair_stats")
class AaeRepairStats(Message):
    """Reply to aae.repair: ``ranges_compared``, ``segments_differing``, ``keys_repaired``,
    ``tombstones_purged``, ``seconds`` and a few more counters."""

    stats: dict

    def check(self) -> None:
        for k, v in self.stats.items():
            if not isinstance(k, str) or type(v) not in (int, float):
                _fail(self, "stats: expected a map of str to numbers")
