"""Hash-range arithmetic of anti-entropy: tree levels, and sets of ranges.

Ranges here are *pieces*: sorted, disjoint, half-open ``[lo, hi)`` intervals
over ``0 .. 2**64`` (:meth:`ringkv.ring.TokenRange.pieces` makes them from ring
ranges). A tree level of ``lb`` bits splits the hash space into ``2**lb``
equal nodes; node ``i`` covers ``[i << (64 - lb), (i + 1) << (64 - lb))``.
"""

from __future__ import annotations

from bisect import bisect_right

from ringkv.hashing import RING_SIZE

__all__ = ["Pieces", "FANOUT_BITS", "intersect", "clip", "intersects", "level_bits", "node_range", "covering_indexes", "normalize"]

#: log2 of the fan-out between tree levels (32).
FANOUT_BITS = 5

#: Sorted, disjoint, half-open ``[lo, hi)`` intervals over ``0 .. 2**64``.
Pieces = list[tuple[int, int]]


def intersect(a: Pieces, b: Pieces) -> Pieces:
    """The intersection of two sorted, disjoint interval lists."""
    out: Pieces = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def clip(pieces: Pieces, lo: int, hi: int) -> Pieces:
    """The parts of ``pieces`` inside ``[lo, hi)``."""
    out: Pieces = []
    k = max(0, bisect_right(pieces, (lo, RING_SIZE + 1)) - 1)
    while k < len(pieces) and pieces[k][0] < hi:
        a, b = max(pieces[k][0], lo), min(pieces[k][1], hi)
        if a < b:
            out.append((a, b))
        k += 1
    return out


def intersects(pieces: Pieces, lo: int, hi: int) -> bool:
    k = max(0, bisect_right(pieces, (lo, RING_SIZE + 1)) - 1)
    while k < len(pieces) and pieces[k][0] < hi:
        if pieces[k][1] > lo:
            return True
        k += 1
    return False


def level_bits(bits: int) -> list[int]:
    """Bits of each level, top first: 10 -> ``[5, 10]``, 16 -> ``[5, 10, 15, 16]``."""
    out = []
    b = FANOUT_BITS
    while b < bits:
        out.append(b)
        b += FANOUT_BITS
    out.append(bits)
    return out


def node_range(lb: int, index: int) -> tuple[int, int]:
    """The ``[lo, hi)`` hash range of node ``index`` on a level of ``lb`` bits."""
    shift = 64 - lb
    return index << shift, (index + 1) << shift


def covering_indexes(pieces: Pieces, lb: int) -> list[int]:
    """Indexes of the nodes of a ``lb``-bit level that intersect ``pieces``."""
    shift = 64 - lb
    out: list[int] = []
    for lo, hi in pieces:
        first, last = lo >> shift, (hi - 1) >> shift
        if out and first <= out[-1]:
            first = out[-1] + 1
        out.extend(range(first, last + 1))
    return out


def normalize(pieces: Pieces) -> Pieces:
    """Sort ``pieces`` and merge the ones that overlap or touch."""
    out: Pieces = []
    for lo, hi in sorted(pieces):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
