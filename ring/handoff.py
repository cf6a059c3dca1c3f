"""Which hash ranges move when ownership changes (pure functions, no IO).

Given the ring that serves reads now (``old``) and the ring once pending
changes complete (``new``), for replication factor ``n``:

* :func:`gains` — ranges a node will replicate but does not yet, with the
  current owners it can pull them from (join, replace, after a remove);
* :func:`losses` — ranges a node replicates now but will not, with the new
  owners that gain them (leave pushes these);
* :func:`owned` — everything a node must keep (old or new), so cleanup after
  a change drops only the rest.

Ranges are half-open ``[lo, hi)`` over ``0 .. 2**64`` (``hi`` may be
``2**64``), ready for storage range scans.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringkv.hashing import RING_SIZE
from ringkv.ring.ring import Ring

__all__ = ["Move", "gains", "losses", "owned", "elementary"]


@dataclass(frozen=True)
class Move:
    """Range ``[lo, hi)`` and the peers on the other side of the move."""

    lo: int
    hi: int
    peers: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.hi - self.lo


def elementary(old: Ring, new: Ring, n: int) -> list[tuple[int, int, tuple[str, ...], tuple[str, ...]]]:
    """``(lo, hi, old_owners, new_owners)`` over the whole ring, owners constant in each piece."""
    bounds = sorted({t for m in old.members for t in old.tokens_of(m)} | {t for m in new.members for t in new.tokens_of(m)})
    if not bounds:
        return []
    out = []
    # piece i covers (bounds[i-1], bounds[i]]; the first wraps from the last bound
    for i, end in enumerate(bounds):
        start = bounds[i - 1]
        o = tuple(old.preference_list_for_hash(end, n)) if len(old) else ()
        w = tuple(new.preference_list_for_hash(end, n)) if len(new) else ()
        if start == end:  # a single boundary: the whole ring
            out.append((0, RING_SIZE, o, w))
        elif start < end:
            out.append((start + 1, end + 1, o, w))
        else:
            out.append((0, end + 1, o, w))
            if start + 1 < RING_SIZE:
                out.append((start + 1, RING_SIZE, o, w))
    out.sort()
    return out


def _merge(moves: list[Move]) -> list[Move]:
    out: list[Move] = []
    for m in sorted(moves, key=lambda m: m.lo):
        if out and out[-1].hi == m.lo and out[-1].peers == m.peers:
            out[-1] = Move(out[-1].lo, m.hi, m.peers)
        else:
            out.append(m)
    return out


def gains(me: str, old: Ring, new: Ring, n: int) -> list[Move]:
    """Ranges ``me`` must receive; ``peers`` are the current owners to pull from."""
    return _merge([Move(lo, hi, tuple(p for p in o if p != me)) for lo, hi, o, w in elementary(old, new, n) if me in w and me not in o])


def losses(me: str, old: Ring, new: Ring, n: int) -> list[Move]:
    """Ranges ``me`` holds now but will not; ``peers`` are the new owners without a copy yet."""
    return _merge([Move(lo, hi, tuple(p for p in w if p not in o)) for lo, hi, o, w in elementary(old, new, n) if me in o and me not in w])


def owned(me: str, old: Ring, new: Ring, n: int) -> list[tuple[int, int]]:
    """Ranges ``me`` replicates in either ring (to keep); merged and sorted."""
    keep = [(lo, hi) for lo, hi, o, w in elementary(old, new, n) if me in o or me in w]
    out: list[tuple[int, int]] = []
    for lo, hi in keep:
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out
