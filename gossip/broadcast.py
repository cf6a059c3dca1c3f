"""The piggyback queue: recent changes, each retransmitted a bounded number of times.

Items are keyed by subject (``("m", node_id)``, ``("l", node_id)``,
``("k", key)``), so a newer rumor about a subject replaces the older one.
Selection takes the least-transmitted items first and, among equals, the most
recently added, as SWIM/memberlist do; it costs O(items taken + levels).
"""

from __future__ import annotations

from typing import Any, Hashable

__all__ = ["BroadcastQueue"]


class BroadcastQueue:
    def __init__(self) -> None:
        #: transmit count -> {key: item}, insertion ordered (newest last)
        self._levels: dict[int, dict[Hashable, Any]] = {}
        self._where: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def add(self, key: Hashable, item: Any) -> None:
        """Queue ``item``, replacing any older item with the same key."""
        lvl = self._where.pop(key, None)
        if lvl is not None:
            del self._levels[lvl][key]
        self._levels.setdefault(0, {})[key] = item
        self._where[key] = 0

    def discard(self, key: Hashable) -> None:
        """Stop spreading the item under ``key`` (its subject was purged)."""
        lvl = self._where.pop(key, None)
        if lvl is not None:
            bucket = self._levels[lvl]
            del bucket[key]
            if not bucket:
                del self._levels[lvl]

    def take(self, count: int, limit: int, skip: Hashable = None) -> list:
        """Up to ``count`` items; each taken item counts one transmission."""
        out: list = []
        moved: list[tuple[Hashable, Any, int]] = []
        for lvl in sorted(self._levels):
            bucket = self._levels[lvl]
            for key in _newest(bucket, count - len(out) + 1):
                if key == skip or len(out) >= count:
                    continue
                out.append(bucket[key])
                moved.append((key, bucket.pop(key), lvl + 1))
            if len(out) >= count:
                break
        for key, item, lvl in moved:
            if lvl >= limit:
                del self._where[key]
            else:
                self._levels.setdefault(lvl, {})[key] = item
                self._where[key] = lvl
        for lvl in [lvl for lvl, b in self._levels.items() if not b]:
            del self._levels[lvl]
        return out


def _newest(bucket: dict, n: int) -> list:
    it = reversed(bucket)
    return [k for _, k in zip(range(n), it)]
