"""Hybrid logical clock.

Timestamps are one 64-bit int: milliseconds since the epoch in the high 48
bits, a logical counter in the low 16. They order like wall-clock time, never
run behind the physical clock (``now()`` is at least the current millisecond),
never repeat on one clock, and move past any timestamp the clock has seen from
a peer, so a value written after another value was read carries a larger
timestamp even across skewed machines.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

__all__ = ["HLC", "LOGICAL_BITS", "to_millis", "from_millis"]

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
#: A peer timestamp further ahead of our physical clock than this is not
#: adopted whole (a broken peer clock must not drag every node into the future).
DEFAULT_MAX_DRIFT_MS = 5 * 60 * 1000


def to_millis(ts: int) -> int:
    """The wall-clock milliseconds of an HLC timestamp."""
    return ts >> LOGICAL_BITS


def from_millis(ms: int) -> int:
    """The smallest HLC timestamp at wall-clock millisecond ``ms``."""
    return int(ms) << LOGICAL_BITS


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HLC:
    """A hybrid logical clock; ``physical`` returns wall-clock milliseconds.

    ``floor`` and ``extend`` make it never run backwards across restarts,
    whatever the wall clock does: the clock starts above ``floor`` (a
    ceiling a previous run recorded), and before it hands out a timestamp
    above its current ceiling it calls ``extend(ts)``, which records a new
    ceiling above ``ts`` and returns it.
    """

    __slots__ = ("_last", "_physical", "max_drift_ms", "_ceiling", "_extend", "_lock")

    def __init__(self, physical: Callable[[], int] = _wall_ms, max_drift_ms: int = DEFAULT_MAX_DRIFT_MS, *,
                 floor: int = 0, extend: Optional[Callable[[int], int]] = None) -> None:
        self._physical = physical
        self._last = floor
        self.max_drift_ms = max_drift_ms
        self._extend = extend
        self._ceiling = floor if extend is not None else 1 << 64
        #: an embedded database is used from threads: one ceiling recorded at a time
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        """The latest timestamp issued or observed."""
        return self._last

    def now(self) -> int:
        """A new timestamp, greater than every earlier one of this clock.

        Not locked (a lock would cost half of the call): two threads calling
        at once may get equal timestamps. Recording a ceiling is locked, so
        ceilings are recorded in order and nothing above one is handed out
        before it is recorded.
        """
        wall = self._physical() << LOGICAL_BITS
        last = self._last
        ts = wall if wall > last else last + 1
        if ts > self._ceiling:
            with self._lock:
                if ts > self._ceiling:
                    self._ceiling = self._extend(ts)  # type: ignore[misc]  # set whenever the ceiling is finite
        self._last = ts
        return ts

    def settle(self) -> int:
        """Lower the ceiling to the latest timestamp and return it: what a clean stop records.

        A clock that recorded nothing more starts from there the next time,
        not a lease ahead of the wall clock.
        """
        with self._lock:
            if self._extend is not None:
                self._ceiling = self._last
            return self._last

    def observe(self, remote: int) -> int:
        """Account for a timestamp seen from a peer; returns a new local timestamp.

        A remote time beyond ``max_drift_ms`` ahead of our physical clock is
        clamped to that bound rather than adopted.
        """
        wall_ms = self._physical()
        limit = (wall_ms + self.max_drift_ms) << LOGICAL_BITS | _LOGICAL_MASK
        if remote > limit:
            remote = limit
        if remote > self._last:
            self._last = remote
        return self.now()
