"""Dotted version vector sets: the causal history of one key.

A record is a *clock* (a version vector: for each actor, how many of its
writes to this key are known) plus *entries*, the surviving siblings, each
tagged with the dot ``(actor, counter)`` that created it, an HLC timestamp and
a value (``None`` for a tombstone: a delete is a versioned entry, not an
absence). This is the dotted causal container of Almeida et al. (2014), the
form Riak 2.x keeps per key.

* ``sync`` merges two replicas' records: an entry survives unless the other
  side has seen its dot (its clock covers it) and no longer holds it. It is a
  join, so merge order never matters and nothing concurrent is dropped.
* ``update`` makes a new write at a coordinating replica: it drops exactly the
  entries the writer's context covers and adds one new dot.
* Actors are per-process-incarnation ids (node id + epoch, see storage), so a
  replica that lost unsynced writes in a crash never reissues a dot it had
  already handed out — Riak's kv679 lesson.

Entries are plain tuples ``(actor, counter, ts, value)`` for speed.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import msgpack

from ringkv.errors import BadRequest, WrongType

__all__ = [
    "Entry",
    "DVVSet",
    "sync",
    "sync_lww",
    "update",
    "update_lww",
    "encode_context",
    "decode_context",
    "join_clocks",
]

Entry = tuple  # (actor: str, counter: int, ts: int, value: bytes | None)

_MAX_CONTEXT_BYTES = 1 << 20


class DVVSet:
    """One key's clock and surviving entries (siblings and tombstones)."""

    __slots__ = ("clock", "entries")

    def __init__(self, clock: dict[str, int] | None = None, entries: list[Entry] | None = None) -> None:
        self.clock: dict[str, int] = clock if clock is not None else {}
        self.entries: list[Entry] = entries if entries is not None else []

    @property
    def values(self) -> list[bytes]:
        """Live sibling values (tombstones excluded), oldest dot first."""
        return [e[3] for e in self.entries if e[3] is not None]

    @property
    def is_deleted(self) -> bool:
        """True when every surviving entry is a tombstone."""
        for e in self.entries:
            if e[3] is not None:
                return False
        return True

    @property
    def timestamp(self) -> int:
        """Latest HLC timestamp among the entries (0 if none)."""
        return max((e[2] for e in self.entries), default=0)

    def dots(self) -> set[tuple[str, int]]:
        return {(e[0], e[1]) for e in self.entries}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DVVSet):
            return NotImplemented
        return self.clock == other.clock and _canonical(map(tuple, self.entries)) == _canonical(map(tuple, other.entries))

    def __repr__(self) -> str:
        return f"DVVSet(clock={self.clock!r}, entries={self.entries!r})"


def join_clocks(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Pointwise maximum of two version vectors."""
    out = dict(a)
    for actor, n in b.items():
        if out.get(actor, 0) < n:
            out[actor] = n
    return out


def _canonical(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e[0], e[1]))


def sync(a: Optional[DVVSet], b: Optional[DVVSet]) -> DVVSet:
    """Merge two replicas' versions of a key (commutative, associative, idempotent)."""
    if a is None:
        return b if b is not None else DVVSet()
    if b is None:
        return a
    ac, bc = a.clock, b.clock
    a_dots = {(e[0], e[1]) for e in a.entries}
    b_dots = {(e[0], e[1]) for e in b.entries}
    kept = [e for e in a.entries if (e[0], e[1]) in b_dots or bc.get(e[0], 0) < e[1]]
    kept.extend(e for e in b.entries if (e[0], e[1]) not in a_dots and ac.get(e[0], 0) < e[1])
    return DVVSet(join_clocks(ac, bc), _canonical(kept))


def _lww_key(e: Entry) -> tuple:
    return (e[2], e[0], e[1])


def sync_lww(a: Optional[DVVSet], b: Optional[DVVSet]) -> DVVSet:
    """Last-writer-wins merge: keep the entry with the highest (timestamp, actor, counter)."""
    a = a if a is not None else DVVSet()
    b = b if b is not None else DVVSet()
    both = a.entries + b.entries
    winner = [max(both, key=_lww_key)] if both else []
    return DVVSet(join_clocks(a.clock, b.clock), winner)


def _new_dot(local: Optional[DVVSet], context: Optional[Mapping[str, int]], actor: str, floor: int = 0) -> tuple[Mapping[str, int], Mapping[str, int], int]:
    """``(local clock, effective context, new counter)`` of a write by ``actor``.

    The counter passes both what this replica and what the writer's context
    saw of ``actor``, and is at least ``floor``. A replica's own record can
    forget dots it handed out (a tombstone purged here but not everywhere, a
    range dropped after a move); with ``floor`` from a clock that only moves
    forward (the node's HLC), a new dot is still never one handed out before.
    """
    clock = local.clock if local is not None else {}
    ctx = clock if context is None else context
    return clock, ctx, max(clock.get(actor, 0) + 1, ctx.get(actor, 0) + 1, floor)


def update(
    local: Optional[DVVSet],
    context: Optional[Mapping[str, int]],
    value: Optional[bytes],
    actor: str,
    ts: int,
    floor: int = 0,
) -> DVVSet:
    """A new write (``value=None`` deletes) coordinated by ``actor``; its counter is at least ``floor``.

    With a context, exactly the entries that context covers are superseded;
    without one, everything the coordinating replica holds is.
    """
    clock, ctx, counter = _new_dot(local, context, actor, floor)
    kept = [e for e in local.entries if ctx.get(e[0], 0) < e[1]] if local is not None else []
    kept.append((actor, counter, ts, value))
    new_clock = join_clocks(clock, ctx) if context is not None else dict(clock)
    new_clock[actor] = counter
    return DVVSet(new_clock, _canonical(kept) if len(kept) > 1 else kept)


def update_lww(
    local: Optional[DVVSet],
    context: Optional[Mapping[str, int]],
    value: Optional[bytes],
    actor: str,
    ts: int,
    floor: int = 0,
) -> DVVSet:
    """A last-writer-wins write: the result holds one entry, the latest by timestamp."""
    clock, ctx, counter = _new_dot(local, context, actor, floor)
    new: Entry = (actor, counter, ts, value)
    entries = (local.entries if local is not None else []) + [new]
    new_clock = join_clocks(clock, ctx)
    new_clock[actor] = counter
    return DVVSet(new_clock, [max(entries, key=_lww_key)])


def encode_context(clock: Mapping[str, int]) -> bytes:
    """The opaque causal context handed to clients (compact msgpack)."""
    flat: list = []
    for actor in sorted(clock):
        flat.append(actor)
        flat.append(clock[actor])
    return msgpack.packb(flat, use_bin_type=True)


#: Counters are HLC times (below 2**63); a context claiming more is forged,
#: and storing it would leave the key's next dot unencodable.
_MAX_COUNTER = 1 << 62


def decode_context(ctx: object) -> dict[str, int]:
    """Parse a client-supplied context; ``BadRequest`` if it is not one of ours."""
    if not isinstance(ctx, (bytes, bytearray, memoryview)):
        raise WrongType(f"context must be bytes from a previous get, not {type(ctx).__name__}")
    if len(ctx) > _MAX_CONTEXT_BYTES:
        raise BadRequest("context is too large")
    try:
        flat = msgpack.unpackb(bytes(ctx), raw=False, use_list=True, strict_map_key=True)
    except Exception:
        raise BadRequest("context is not a ringkv causal context") from None
    if not isinstance(flat, list) or len(flat) % 2:
        raise BadRequest("context is not a ringkv causal context")
    out: dict[str, int] = {}
    for i in range(0, len(flat), 2):
        actor, n = flat[i], flat[i + 1]
        if not isinstance(actor, str) or type(n) is not int or not 0 <= n < _MAX_COUNTER:
            raise BadRequest("context is not a ringkv causal context")
        out[actor] = n
    return out
