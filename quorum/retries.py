"""What a request id already produced, so that a retried request repeats it instead of writing twice."""

from __future__ import annotations

import time
from typing import Callable, Generic, Hashable, Optional, TypeVar

__all__ = ["RetryMemo"]

V = TypeVar("V")


class RetryMemo(Generic[V]):
    """Request id -> outcome, kept for at least ``keep`` seconds or ``size - 1`` later ids, whichever ends first.

    Every coordinated write records its id here, so this is on the hot path:
    two generations of plain dicts (the older one is dropped whole when the
    newer fills up or ages) cost a dict store per write, about a tenth of
    ``cachetools.TTLCache``'s bookkeeping. Memory stays under ``2 * size`` ids.
    """

    __slots__ = ("_new", "_old", "_size", "_keep", "_clock", "_rotate_at")

    def __init__(self, size: int = 100_000, keep: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._new: dict[Hashable, V] = {}
        self._old: dict[Hashable, V] = {}
        self._size, self._keep, self._clock = size, keep, clock
        self._rotate_at = clock() + keep

    def get(self, rid: Hashable) -> Optional[V]:
        got = self._new.get(rid)
        return got if got is not None else self._old.get(rid)

    def __setitem__(self, rid: Hashable, value: V) -> None:
        new = self._new
        new[rid] = value
        if len(new) >= self._size or self._clock() >= self._rotate_at:
            self._old, self._new = new, {}
            self._rotate_at = self._clock() + self._keep

    def __len__(self) -> int:
        return len(self._new) + len(self._old)
