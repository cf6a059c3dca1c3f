"""Hash ranges of the ring, and their translation into storage key ranges.

The ring speaks in *ring ranges* ``(start, end]``: start exclusive, end
inclusive, wrapping past ``2**64 - 1`` to ``0`` when ``start > end``. That is
the natural shape because a token owns the keys from just after the previous
token up to and including itself. ``start == end`` is the whole ring (a ring
with one token position has a single range that goes all the way round).

Storage, range scans and Merkle segments want the opposite shape: sorted,
half-open, non-wrapping ``[lo, hi)`` intervals over ``0 .. 2**64``.
:meth:`TokenRange.pieces` converts; ``hi`` may be ``2**64``, meaning "to the end
of the key space" (it does not fit in 8 bytes, so callers scan to the end).
"""

from __future__ import annotations

from dataclasses import dataclass

from ringkv.errors import BadRequest, WrongType
from ringkv.hashing import RING_SIZE

__all__ = ["TokenRange", "split_wrapping", "check_position"]


def check_position(value: object, what: str = "token") -> int:
    """``value`` as a ring position, or the typed error saying why it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongType(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < RING_SIZE:
        raise BadRequest(f"{what} {value} is outside the ring [0, 2**64)")
    return int(value)


def split_wrapping(start: int, end: int) -> list[tuple[int, int]]:
    """The ring range ``(start, end]`` as sorted, non-wrapping ``[lo, hi)`` pieces.

    One piece when the range does not wrap, two when it does (fewer if one
    side is empty), ``[(0, 2**64)]`` for the whole ring (``start == end``).
    """
    start = check_position(start, "range start")
    end = check_position(end, "range end")
    if start == end:
        return [(0, RING_SIZE)]
    if start < end:
        return [(start + 1, end + 1)]
    pieces = [(0, end + 1)]
    if start + 1 < RING_SIZE:
        pieces.append((start + 1, RING_SIZE))
    return pieces


@dataclass(frozen=True, slots=True, order=True)
class TokenRange:
    """The ring range ``(start, end]``; wraps when ``start > end``; whole ring when equal."""

    start: int
    end: int

    def __post_init__(self) -> None:
        check_position(self.start, "range start")
        check_position(self.end, "range end")

    def __contains__(self, position: int) -> bool:
        start, end = self.start, self.end
        if start < end:
            return start < position <= end
        if start > end:
            return position > start or position <= end
        return 0 <= position < RING_SIZE

    @property
    def size(self) -> int:
        """How many ring positions the range holds (``2**64`` for the whole ring)."""
        return (self.end - self.start) % RING_SIZE or RING_SIZE

    @property
    def is_full(self) -> bool:
        return self.start == self.end

    @property
    def wraps(self) -> bool:
        """True when the range crosses ``2**64 - 1 -> 0`` (and is not the whole ring)."""
        return self.start > self.end

    def pieces(self) -> list[tuple[int, int]]:
        """This range as sorted, non-wrapping ``[lo, hi)`` intervals (see :func:`split_wrapping`)."""
        return split_wrapping(self.start, self.end)
